//! The node's cluster-mode operations: subnets leased from etcd (the seam
//! the address plan calls), the member record this node publishes, peers
//! and DNS names applied for other members, and the `cluster_status` /
//! `cluster_leave` ops.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use ipnet::IpNet;
use overlayd_cluster::{desired_peers, ClusterError, DnsEntry, Member, MemberService};
use overlayd_proto::{ClusterMemberView, Response, Scope};
use overlayd_state::{Owner, Table};
use tracing::{debug, warn};

use super::PEER_KEEPALIVE_SECS;
use crate::daemon::error::{OpError, OpResult};
use crate::daemon::node::Node;
use crate::daemon::overlay::{parse_endpoint, parse_pubkey};
use crate::daemon::records::{peer_key, DnsRecord, PeerRecord};

fn op_error(e: ClusterError) -> OpError {
    match e {
        ClusterError::Store(_) => OpError::Unavailable(format!(
            "{e}; cluster mode leases subnets from etcd, retry when it is reachable"
        )),
        ClusterError::Taken(m) | ClusterError::Fenced(m) => OpError::Conflict(m),
        ClusterError::ConfigMismatch(_) | ClusterError::Invalid(_) => {
            OpError::Invalid(e.to_string())
        }
        ClusterError::Exhausted(m) => OpError::Conflict(m),
        ClusterError::Local(m) => OpError::State(m),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Node {
    /// Poke cluster mode after a request: what this node publishes may have changed.
    pub fn cluster_changed(&self) {
        if let Some(h) = &self.cluster {
            h.changed.notify_one();
        }
    }

    /// In cluster mode, the node slice leased from etcd (`requested`
    /// exactly when given); `None` in standalone mode.
    pub async fn cluster_slice(
        &self,
        cluster_cidr: &str,
        requested: Option<IpNet>,
    ) -> OpResult<Option<IpNet>> {
        let Some(h) = &self.cluster else {
            return Ok(None);
        };
        let want = &h.cluster.options().config.cluster_cidr;
        if cluster_cidr != want {
            return Err(OpError::Invalid(format!(
                "this node is in cluster mode and the cluster's CIDR is {want}; use --cidr {want}"
            )));
        }
        let avoid: Vec<IpNet> = self
            .used_subnets()
            .into_iter()
            .filter(|(o, _)| *o != Owner::Base.to_string())
            .map(|(_, s)| s)
            .collect();
        h.cluster
            .claim_slice(requested, &avoid)
            .await
            .map(Some)
            .map_err(op_error)
    }

    /// In cluster mode, the subnet of a new cross-node network (`owner`)
    /// leased from etcd; `None` in standalone mode or when it is recorded.
    pub async fn cluster_subnet(&self, owner: &Owner) -> OpResult<Option<IpNet>> {
        let Some(h) = &self.cluster else {
            return Ok(None);
        };
        if self.marker.get(owner).is_some() {
            return Ok(None);
        }
        let avoid: Vec<IpNet> = self.used_subnets().into_iter().map(|(_, s)| s).collect();
        h.cluster
            .claim_subnet(&owner.to_string(), None, &avoid)
            .await
            .map(Some)
            .map_err(op_error)
    }

    /// Give a torn-down network's subnet lease back (best effort).
    pub async fn cluster_release(&self, owner: &Owner) {
        if let Some(h) = &self.cluster {
            if let Err(e) = h.cluster.release_subnet(&owner.to_string()).await {
                warn!(%owner, error = %e, "cannot release the subnet lease; it expires with the claim lease");
            }
        }
    }

    /// The member record this node publishes (None until the base overlay is up).
    pub async fn cluster_member(&self) -> OpResult<Option<Member>> {
        let Some(h) = &self.cluster else {
            return Ok(None);
        };
        let (Some(g), Some(ip)) = (self.global()?, self.node_ip()) else {
            return Ok(None);
        };
        let endpoint = match &h.endpoint {
            Some(e) => e.clone(),
            None => match self.host.uplink().await?.and_then(|u| u.ipv4) {
                Some(a) => format!("{a}:{}", g.wg_port),
                None => {
                    return Err(OpError::Invalid(
                        "no uplink address to advertise; set endpoint in [cluster]".into(),
                    ))
                }
            },
        };
        let services = self
            .marker
            .iter()
            .filter_map(|e| match &e.owner {
                Owner::Service(name) => Some(MemberService {
                    name: name.clone(),
                    public_key: e.wg_public_key.clone()?,
                    port: e.wg_port?,
                    subnet: e.subnet.clone(),
                }),
                _ => None,
            })
            .collect();
        Ok(Some(Member {
            name: h.cluster.options().node_name.clone(),
            public_key: self.overlay.public_base64(),
            endpoint,
            slice: g.slice_cidr,
            overlay_ip: ip.to_string(),
            services,
            updated_unix: 0,
        }))
    }

    /// DNS names registered on this node (published to the cluster).
    pub fn cluster_local_dns(&self) -> OpResult<BTreeMap<String, Vec<String>>> {
        let stored: Vec<(String, DnsRecord)> = self.store.read(|tx| tx.list(Table::Dns))?;
        Ok(stored.into_iter().map(|(n, r)| (n, r.ips)).collect())
    }

    /// Bring cluster-managed peers to what `members` need; peers added by
    /// hand are never touched (a hand peer with the same key wins).
    pub async fn apply_cluster_members(&mut self, members: &[Member]) {
        let local_services: Vec<String> = self
            .marker
            .iter()
            .filter_map(|e| match &e.owner {
                Owner::Service(n) if e.interface.is_some() => Some(n.clone()),
                _ => None,
            })
            .collect();
        let desired = desired_peers(&local_services, members);
        let all: Vec<(String, PeerRecord)> = self
            .store
            .read(|tx| tx.list(Table::Peers))
            .unwrap_or_default();
        let by_key: BTreeMap<String, PeerRecord> = all.into_iter().collect();
        let mut wanted = BTreeSet::new();
        for d in desired {
            let key = peer_key(&d.network, &d.public_key);
            wanted.insert(key.clone());
            let existing = by_key.get(&key);
            if existing.is_some_and(|p| !p.cluster) {
                debug!(peer = %d.public_key, network = %d.network, "peer configured by hand: left alone");
                continue;
            }
            if let Err(e) = self.put_cluster_peer(&d, existing).await {
                warn!(member_key = %d.public_key, network = %d.network, error = %e, "cannot configure the peer of a cluster member");
            }
        }
        for (key, p) in by_key
            .iter()
            .filter(|(k, p)| p.cluster && !wanted.contains(*k))
        {
            debug!(%key, "cluster member gone: removing its peer");
            if let Err(e) = self.remove_cluster_peer(p).await {
                warn!(%key, error = %e, "cannot remove the peer of a departed member");
            }
        }
    }

    async fn put_cluster_peer(
        &mut self,
        d: &overlayd_cluster::DesiredPeer,
        existing: Option<&PeerRecord>,
    ) -> OpResult<()> {
        parse_pubkey(&d.public_key)?;
        let owner = network_owner(&d.network)?;
        let Some(dev) = self.marker.get(&owner).and_then(|e| e.interface.clone()) else {
            return Ok(());
        };
        let ep = parse_endpoint(&d.endpoint).await?;
        let nets: Vec<IpNet> = d
            .allowed_ips
            .iter()
            .map(|c| crate::daemon::plan::parse_cidr(c))
            .collect::<Result<_, _>>()?;
        let rec = PeerRecord {
            network: d.network.clone(),
            public_key: d.public_key.clone(),
            endpoint: ep.to_string(),
            allowed_ips: nets.iter().map(ToString::to_string).collect(),
            persistent_keepalive_secs: PEER_KEEPALIVE_SECS,
            cluster: true,
        };
        if existing == Some(&rec) {
            return Ok(());
        }
        self.put_peer(&owner, &dev, rec, &nets).await
    }

    async fn remove_cluster_peer(&mut self, p: &PeerRecord) -> OpResult<()> {
        let scope = match network_owner(&p.network)? {
            Owner::Service(service) => Scope::Service { service },
            _ => Scope::Global,
        };
        match self.remove_peer(&p.public_key, Some(scope)).await {
            Ok(_) => Ok(()),
            // The device went away with its network: only the record is left.
            Err(OpError::NotFound(_)) => {
                let key = peer_key(&p.network, &p.public_key);
                self.store
                    .write(|tx| tx.remove(Table::Peers, &key).map(|_| ()))?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Serve other members' DNS names here (local names keep their addresses).
    pub fn apply_cluster_dns(&self, records: Vec<DnsEntry>) {
        let Some(h) = &self.cluster else { return };
        let mut new: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in records {
            let Ok(name) = self.records.normalize(&r.name) else {
                continue;
            };
            new.entry(name).or_default().extend(r.ips);
        }
        let local = self.cluster_local_dns().unwrap_or_default();
        let mut remote = h.remote_dns.lock().unwrap_or_else(|e| e.into_inner());
        let names: BTreeSet<String> = remote.keys().chain(new.keys()).cloned().collect();
        for name in names {
            let mut ips: Vec<IpAddr> = local
                .get(&name)
                .into_iter()
                .chain(new.get(&name))
                .flatten()
                .filter_map(|i| i.parse().ok())
                .collect();
            ips.sort();
            ips.dedup();
            let res = if ips.is_empty() {
                self.records.remove(&name).map(|_| ())
            } else {
                self.records.set(&name, ips)
            };
            if let Err(e) = res {
                warn!(%name, error = %e, "cannot serve a cluster DNS name");
            }
        }
        *remote = new;
    }

    /// `cluster_status`.
    pub async fn cluster_status(&self) -> OpResult<Response> {
        let h = self.cluster.as_ref().ok_or_else(|| {
            OpError::NotFound(
                "cluster mode is off: add a [cluster] table with etcd_endpoints to the config"
                    .into(),
            )
        })?;
        let c = &h.cluster;
        let health = c.health().borrow().clone();
        let claims = c.claims().await;
        let now = std::time::Instant::now();
        let unix = now_unix();
        let mut members: Vec<ClusterMemberView> = c
            .known_members()
            .into_iter()
            .map(|k| ClusterMemberView {
                name: k.member.name,
                slice: k.member.slice,
                endpoint: k.member.endpoint,
                public_key: k.member.public_key,
                last_seen: k.gone_since.map_or(unix, |t| {
                    unix.saturating_sub(now.duration_since(t).as_secs())
                }),
                state: if k.gone_since.is_some() {
                    "gone"
                } else {
                    "present"
                }
                .into(),
            })
            .collect();
        let registered = c.registered().await;
        if let (true, Some(m)) = (registered, c.member().await) {
            members.push(ClusterMemberView {
                name: m.name,
                slice: m.slice,
                endpoint: m.endpoint,
                public_key: m.public_key,
                last_seen: unix,
                state: "present".into(),
            });
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::ClusterStatus {
            node_name: c.options().node_name.clone(),
            prefix: c.options().prefix.clone(),
            degraded: health.degraded,
            reason: health.reason,
            registered,
            slice: claims.slice,
            subnets: claims.subnets,
            members,
        })
    }

    /// `cluster_leave`: drop the presence now; keep the slice unless `release`.
    pub async fn cluster_leave(&self, release: bool) -> OpResult<Response> {
        let h = self.cluster.as_ref().ok_or_else(|| {
            OpError::NotFound("cluster mode is off; there is no cluster to leave".into())
        })?;
        h.left.store(true, Ordering::SeqCst);
        h.cluster.leave(release).await.map_err(op_error)?;
        Ok(Response::Ok)
    }
}

/// The owner a peer's network string names.
fn network_owner(network: &str) -> OpResult<Owner> {
    if network == Owner::Base.to_string() {
        return Ok(Owner::Base);
    }
    match network.strip_prefix("service:") {
        Some(s) => Ok(Owner::service(s)?),
        None => Err(OpError::Invalid(format!(
            "{network:?} is not a peer network"
        ))),
    }
}
