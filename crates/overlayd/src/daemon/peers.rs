//! Peers: `add_peer` / `remove_peer` / `change_allowed_ip` on the base
//! overlay or a dedicated service's device. Every allowed IP is checked
//! against this node's own networks, the other peers of the device and the
//! host's own networks; the desired state is recorded first and undone on
//! the device and in the store when programming fails, so a refused
//! request changes nothing. Cluster mode programs its peers through
//! `put_peer` too. Decided by `overlayd_engine::request::peers`, carried
//! out by `execute.rs`.

use ipnet::IpNet;
use overlayd_proto::{Response, Scope};
use overlayd_state::{Owner, Table};

use overlayd_engine::request::peers::{self, AllowedIpChange, PeerDesired};

use super::error::{OpError, OpResult};
use super::node::{Core, Node};
use super::overlay::{parse_cidrs, parse_endpoint, parse_pubkey, wg_call};
use super::plan;
use super::records::{peer_key, PeerRecord};

impl Node {
    /// The network and device a peer scope refers to.
    fn scope_device(&self, scope: Option<Scope>) -> OpResult<(Owner, String)> {
        let owner = match scope.unwrap_or_default() {
            Scope::Global => {
                if self.global()?.is_none() {
                    return Err(OpError::NotFound(
                        "the global overlay is not set up; call setup_global_overlay (`overlayd global up`) first".into(),
                    ));
                }
                Owner::Base
            }
            Scope::Service { service } => {
                let o = Owner::service(&service)?;
                if self
                    .marker
                    .get(&o)
                    .and_then(|e| e.interface.as_ref())
                    .is_none()
                {
                    return Err(OpError::NotFound(format!(
                        "service {service:?} has no dedicated overlay; set it up with mode dedicated first"
                    )));
                }
                o
            }
        };
        let entry = self
            .marker
            .get(&owner)
            .ok_or_else(|| OpError::NotFound(format!("{owner} is not recorded")))?;
        let dev = entry
            .interface
            .clone()
            .ok_or_else(|| OpError::State(format!("{owner} has no device")))?;
        Ok((owner, dev))
    }

    /// The peers recorded for `owner`'s device, as the engine sees them.
    fn device_peers(&self, owner: &Owner) -> OpResult<Vec<PeerDesired>> {
        Ok(self
            .store
            .read(|tx| tx.list_prefix::<PeerRecord>(Table::Peers, &format!("{owner}|")))?
            .iter()
            .map(|(_, p)| PeerDesired::from(p))
            .collect())
    }

    /// `add_peer`: add or replace.
    pub async fn add_peer(
        &mut self,
        public_key: &str,
        endpoint: &str,
        allowed_ips: &str,
        keepalive: u64,
        scope: Option<Scope>,
    ) -> OpResult<Response> {
        parse_pubkey(public_key)?;
        let ep = parse_endpoint(endpoint).await?;
        let nets = parse_cidrs(allowed_ips)?;
        if keepalive > u64::from(u16::MAX) {
            return Err(OpError::Invalid(format!(
                "persistent_keepalive_secs {keepalive} is over {}",
                u16::MAX
            )));
        }
        let (owner, dev) = self.scope_device(scope)?;
        let rec = PeerRecord {
            network: owner.to_string(),
            public_key: public_key.trim().to_string(),
            endpoint: ep.to_string(),
            allowed_ips: nets.iter().map(ToString::to_string).collect(),
            persistent_keepalive_secs: keepalive,
            cluster: false,
        };
        self.put_peer(&owner, &dev, rec, &nets).await?;
        Ok(Response::Ok)
    }

    /// Record and program one peer on `owner`'s device `dev` (add or
    /// replace); on failure the device and the store are as before. Used by
    /// `add_peer` and by cluster mode, so routes and records stay consistent.
    /// Checked by the engine (`request::peers::check_put`), then against
    /// the host's networks, then planned (`plan_put`) and executed.
    pub(crate) async fn put_peer(
        &mut self,
        owner: &Owner,
        dev: &str,
        rec: PeerRecord,
        nets: &[IpNet],
    ) -> OpResult<()> {
        let own = match owner {
            Owner::Base => Some(self.overlay.public_base64()),
            o => self.marker.get(o).and_then(|e| e.wg_public_key.clone()),
        };
        let rec = PeerDesired::from(&rec);
        peers::check_put(
            owner,
            own.as_deref(),
            &rec,
            &self.used_subnets(),
            &self.device_peers(owner)?,
        )?;
        self.refuse_host_conflicts("allowed IP", nets).await?;
        let key = peer_key(&rec.network, &rec.public_key);
        let old: Option<PeerRecord> = self.store.read(|tx| tx.get(Table::Peers, &key))?;
        let plan = peers::plan_put(dev, rec, old.as_ref().map(PeerDesired::from));
        self.execute_plan(plan).await
    }

    pub(crate) async fn drop_routes(&self, dev: &str, p: &PeerRecord, keep: &[IpNet]) {
        for c in &p.allowed_ips {
            if let Ok(n) = c.parse::<IpNet>() {
                if !keep.contains(&n) {
                    let _ = self.host.delete_route(n, dev).await;
                }
            }
        }
    }

    /// `remove_peer`: a peer neither recorded nor on the device is `not_found`.
    pub async fn remove_peer(&mut self, pubkey: &str, scope: Option<Scope>) -> OpResult<Response> {
        let pk = parse_pubkey(pubkey)?;
        let (owner, dev) = self.scope_device(scope)?;
        let key = peer_key(&owner.to_string(), pubkey.trim());
        let rec: Option<PeerRecord> = self.store.read(|tx| tx.get(Table::Peers, &key))?;
        // Without a record, whether a peer left by an interrupted add_peer
        // is on the device decides between `ok` and `not_found`.
        let on_device = match rec {
            Some(_) => true,
            None => {
                let d = dev.clone();
                wg_call(&self.wg, move |wg| wg.status(&d))
                    .await?
                    .peers
                    .iter()
                    .any(|p| p.public_key == pk)
            }
        };
        let plan = peers::plan_remove(
            &owner,
            &dev,
            pubkey.trim(),
            rec.as_ref().map(PeerDesired::from),
            on_device,
        )?;
        self.execute_plan(plan).await?;
        Ok(Response::Ok)
    }

    /// `add_allowed_ip` / `remove_allowed_ip` (`request::peers::plan_allowed_ip`).
    pub async fn change_allowed_ip(
        &mut self,
        pubkey: &str,
        cidr: &str,
        scope: Option<Scope>,
        add: bool,
    ) -> OpResult<Response> {
        parse_pubkey(pubkey)?;
        let net = plan::parse_cidr(cidr)?;
        let (owner, dev) = self.scope_device(scope)?;
        let key = peer_key(&owner.to_string(), pubkey.trim());
        let rec: Option<PeerRecord> = self.store.read(|tx| tx.get(Table::Peers, &key))?;
        let adds = rec
            .as_ref()
            .is_some_and(|r| add && !r.allowed_ips.contains(&net.to_string()));
        let device_peers = if adds {
            self.device_peers(&owner)?
        } else {
            Vec::new()
        };
        let used = self.used_subnets();
        let plan = peers::plan_allowed_ip(AllowedIpChange {
            owner: &owner,
            device: &dev,
            given_key: pubkey,
            rec: rec.as_ref().map(PeerDesired::from),
            net,
            add,
            used: &used,
            device_peers: &device_peers,
        })?;
        if adds {
            self.refuse_host_conflicts("allowed IP", &[net]).await?;
        }
        self.execute_plan(plan).await?;
        Ok(Response::Ok)
    }
}

impl Core {
    /// Peer CIDRs per network owner (traffic to them is not masqueraded).
    pub fn peer_cidrs(&self) -> Vec<(String, IpNet)> {
        self.store
            .read(|tx| tx.list::<PeerRecord>(Table::Peers))
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(_, p)| {
                let net = p.network.clone();
                p.allowed_ips
                    .into_iter()
                    .filter_map(move |c| c.parse().ok().map(|n| (net.clone(), n)))
            })
            .collect()
    }
}
