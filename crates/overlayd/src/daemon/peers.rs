//! Peers: `add_peer` / `remove_peer` / `change_allowed_ip` on the base
//! overlay or a dedicated service's device. Every allowed IP is checked
//! against this node's own networks, the other peers of the device and the
//! host's own networks; the desired state is recorded first and undone on
//! the device and in the store when programming fails, so a refused
//! request changes nothing. Cluster mode programs its peers through
//! `put_peer` too.

use ipnet::IpNet;
use overlayd_proto::{Response, Scope};
use overlayd_state::{Owner, Table};

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

    /// Refuse allowed IPs that overlap this node's own networks or another
    /// peer's allowed IPs on the same device.
    fn check_allowed(&self, owner: &Owner, pubkey: &str, nets: &[IpNet]) -> OpResult<()> {
        for (o, s) in self.used_subnets() {
            for n in nets {
                if overlayd_engine::ipam::overlaps(n, &s) {
                    return Err(OpError::Conflict(super::address_plan::collision_message(
                        n,
                        pubkey.trim(),
                        &o,
                        &s,
                    )));
                }
            }
        }
        let others: Vec<(String, PeerRecord)> = self
            .store
            .read(|tx| tx.list_prefix(Table::Peers, &format!("{owner}|")))?;
        for (_, p) in others.iter().filter(|(_, p)| p.public_key != pubkey) {
            for c in &p.allowed_ips {
                if let Ok(existing) = c.parse::<IpNet>() {
                    for n in nets {
                        if overlayd_engine::ipam::overlaps(n, &existing) {
                            return Err(OpError::Invalid(format!(
                                "allowed IP {n} overlaps {existing} of peer {}",
                                p.public_key
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
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
    pub(crate) async fn put_peer(
        &mut self,
        owner: &Owner,
        dev: &str,
        rec: PeerRecord,
        nets: &[IpNet],
    ) -> OpResult<()> {
        let dev = dev.to_string();
        let own = match owner {
            Owner::Base => Some(self.key.public_base64()),
            o => self.marker.get(o).and_then(|e| e.wg_public_key.clone()),
        };
        if own.as_deref() == Some(rec.public_key.as_str()) {
            return Err(OpError::Invalid(format!(
                "public key {} is {owner}'s own key; a device cannot be its own peer — give the other node's key",
                rec.public_key
            )));
        }
        self.check_allowed(owner, &rec.public_key, nets)?;
        self.refuse_host_conflicts("allowed IP", nets).await?;
        let key = peer_key(&rec.network, &rec.public_key);
        let old: Option<PeerRecord> = self.store.read(|tx| tx.get(Table::Peers, &key))?;
        // Desired state first: a crash after this is finished by the next
        // start, which programs every recorded peer.
        self.store.write(|tx| tx.put(Table::Peers, &key, &rec))?;
        if let Err(e) = self.apply_peer(&dev, &rec).await {
            // Undo on the device and in the store: the request changes nothing.
            let _ = self.store.write(|tx| match &old {
                Some(o) => tx.put(Table::Peers, &key, o),
                None => tx.remove(Table::Peers, &key).map(|_| ()),
            });
            self.drop_routes(&dev, &rec, &[]).await;
            match &old {
                Some(o) => {
                    let _ = self.apply_peer(&dev, o).await;
                }
                None => {
                    let pk = parse_pubkey(&rec.public_key)?;
                    let d = dev.clone();
                    let _ = wg_call(&self.wg, move |wg| wg.remove_peer(&d, &pk)).await;
                }
            }
            return Err(e);
        }
        if let Some(o) = &old {
            self.drop_routes(&dev, o, nets).await;
        }
        self.sync_firewall_or_warn().await;
        Ok(())
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
        // Removed from the device even without a record, so a peer left by
        // an interrupted add_peer can always be taken away.
        let d = dev.clone();
        let was_on_device = wg_call(&self.wg, move |wg| wg.remove_peer(&d, &pk)).await?;
        let Some(rec) = rec else {
            if was_on_device {
                return Ok(Response::Ok);
            }
            return Err(OpError::NotFound(format!(
                "no peer {} on {owner}; see `overlayd wg show` for the peers there",
                pubkey.trim()
            )));
        };
        self.drop_routes(&dev, &rec, &[]).await;
        self.store
            .write(|tx| tx.remove(Table::Peers, &key).map(|_| ()))?;
        self.sync_firewall_or_warn().await;
        Ok(Response::Ok)
    }

    /// `add_allowed_ip` / `remove_allowed_ip`.
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
        let Some(mut rec) = self
            .store
            .read(|tx| tx.get::<PeerRecord>(Table::Peers, &key))?
        else {
            return Err(OpError::NotFound(format!(
                "no peer {pubkey} on {owner}; add it with add_peer first"
            )));
        };
        let s = net.to_string();
        if add {
            if rec.allowed_ips.contains(&s) {
                return Ok(Response::Ok);
            }
            self.check_allowed(&owner, pubkey.trim(), &[net])?;
            self.refuse_host_conflicts("allowed IP", &[net]).await?;
            rec.allowed_ips.push(s);
            self.apply_peer(&dev, &rec).await?;
        } else {
            if !rec.allowed_ips.contains(&s) {
                return Ok(Response::Ok);
            }
            if rec.allowed_ips.len() == 1 {
                return Err(OpError::Invalid(format!(
                    "{s} is the peer's last allowed IP; remove the peer instead"
                )));
            }
            rec.allowed_ips.retain(|c| *c != s);
            self.apply_peer(&dev, &rec).await?;
            let pk = parse_pubkey(pubkey)?;
            let d = dev.clone();
            wg_call(&self.wg, move |wg| wg.remove_allowed_ip(&d, &pk, net)).await?;
            let _ = self.host.delete_route(net, &dev).await;
        }
        self.store.write(|tx| tx.put(Table::Peers, &key, &rec))?;
        self.sync_firewall_or_warn().await;
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
