//! The daemon's side of the address plan (docs/architecture.md, "Address
//! plan"): gathering what a derived subnet must avoid, asking the engine for
//! the node slice and dedicated service subnets, and recording the slice so
//! it never changes afterwards. The derivation itself is pure logic in
//! `overlayd_engine::ipam::plan`.

use ipnet::IpNet;
use overlayd_engine::ipam::plan::{self as address, Avoid, NodeIdentity};
use overlayd_engine::request::relocate::{self, MoveFacts, MoveRequest};
use overlayd_engine::request::IsolationDesired;
use overlayd_proto::Response;
use overlayd_state::{Owner, Table};
use tracing::info;

use super::error::{OpError, OpResult};
use super::node::{Core, Node};
use super::plan;
use super::records::{IsolationRecord, META_NODE_ID};

/// Meta key prefix of a derived node slice, per cluster CIDR.
const META_PLANNED_SLICE: &str = "plan_slice|";

/// Prefix length of slices of an IPv6 cluster CIDR.
const IPV6_SLICE_PREFIX: u8 = 64;

impl Node {
    /// Who this node is for the plan: the orchestrator's node id when set,
    /// else the node's WireGuard public key.
    pub fn plan_identity(&self) -> OpResult<NodeIdentity> {
        let node_id: Option<u64> = self.store.read(|tx| tx.get(Table::Meta, META_NODE_ID))?;
        Ok(NodeIdentity::of(node_id, &self.overlay.public_key()))
    }

    /// The slice this node uses inside `cluster` when the caller names none:
    /// the one recorded for this cluster CIDR, else the current global
    /// overlay's slice when it lies in the same cluster, else one derived
    /// from the node identity — recorded before it is returned, so it stays
    /// the same across restarts, `global down`/`up` and a later
    /// `set_local_node_id`.
    pub fn planned_slice(&self, cluster: &str) -> OpResult<String> {
        let cluster = plan::parse_cidr(cluster)?;
        let key = format!("{META_PLANNED_SLICE}{cluster}");
        if let Some(s) = self.store.read(|tx| tx.get::<String>(Table::Meta, &key))? {
            return Ok(s);
        }
        let current = self
            .global()?
            .filter(|g| g.cluster_cidr.parse::<IpNet>().ok() == Some(cluster))
            .map(|g| g.slice_cidr);
        let slice = match current {
            Some(s) => s,
            None => {
                let prefix = if cluster.addr().is_ipv4() {
                    self.cfg.slice_prefix_len
                } else {
                    IPV6_SLICE_PREFIX
                };
                let avoid = self.plan_avoid(&Owner::Base)?;
                address::derive_slice(cluster, prefix, &self.plan_identity()?, &avoid)
                    .map_err(|e| {
                        OpError::Conflict(format!(
                            "cannot derive this node's slice of {cluster}: {e}; give one explicitly (`overlayd global up --slice CIDR`)"
                        ))
                    })?
                    .to_string()
            }
        };
        self.store.write(|tx| tx.put(Table::Meta, &key, &slice))?;
        info!(%cluster, %slice, "node slice chosen by the address plan");
        Ok(slice)
    }

    /// The subnet a new dedicated network of `service` gets on this node,
    /// derived from (service, node identity) inside `service_range`.
    pub fn planned_service_subnet(&self, service: &str) -> OpResult<IpNet> {
        let range: IpNet = self.cfg.service_range.parse().map_err(|_| {
            OpError::Invalid(format!(
                "service_range {:?} is not a CIDR",
                self.cfg.service_range
            ))
        })?;
        let owner = Owner::service(service)?;
        let mut avoid = self.plan_avoid(&owner)?;
        if let Some(current) = self
            .marker
            .get(&owner)
            .and_then(|e| e.subnet.parse::<IpNet>().ok())
        {
            // Only a move asks again for a recorded network: it wants another block.
            avoid = avoid.reserved(current, "its current subnet");
        }
        address::derive_service_subnet(
            range,
            self.cfg.service_prefix_len,
            service,
            &self.plan_identity()?,
            &avoid,
        )
        .map_err(|e| {
            OpError::Conflict(format!(
                "cannot derive a subnet for dedicated service {service} in service_range {range}: {e}"
            ))
        })
    }

    /// What a derived subnet for `owner` must not overlap: every other
    /// recorded network, the global overlay's CIDRs (for anything but the
    /// base network) and every peer's allowed IPs.
    fn plan_avoid(&self, owner: &Owner) -> OpResult<Avoid> {
        let mut avoid = Avoid::default();
        for (o, s) in self.used_subnets() {
            if o != owner.to_string() {
                avoid = avoid.used(s, o);
            }
        }
        if *owner != Owner::Base {
            if let Some(g) = self.global()? {
                for (c, why) in [
                    (&g.cluster_cidr, "cluster CIDR"),
                    (&g.slice_cidr, "node slice"),
                ] {
                    if let Ok(n) = c.parse::<IpNet>() {
                        avoid = avoid.reserved(n, why);
                    }
                }
            }
        }
        for (network, net) in self.peer_cidrs() {
            avoid = avoid.reserved(net, format!("allowed IPs of a peer on {network}"));
        }
        Ok(avoid)
    }
}

impl Core {
    /// Recorded networks whose subnet overlaps a recorded peer's allowed IPs:
    /// the symptom of two nodes that picked the same subnet. Each item is
    /// (this node's owner, its subnet, the peer's network, the peer's key,
    /// the overlapping allowed IP).
    pub fn subnet_collisions(&self) -> Vec<SubnetCollision> {
        let peers: Vec<(String, super::records::PeerRecord)> = self
            .store
            .read(|tx| tx.list(Table::Peers))
            .unwrap_or_default();
        let mut out = Vec::new();
        for (owner, subnet) in self.used_subnets() {
            for (_, p) in &peers {
                for c in &p.allowed_ips {
                    let Ok(n) = c.parse::<IpNet>() else { continue };
                    if overlayd_engine::ipam::overlaps(&n, &subnet) {
                        out.push(SubnetCollision {
                            owner: owner.clone(),
                            subnet,
                            peer_network: p.network.clone(),
                            peer: p.public_key.clone(),
                            allowed_ip: n,
                        });
                    }
                }
            }
        }
        out
    }
}

impl Node {
    /// `move_network` (ext): give a recorded network another subnet — the
    /// one explicit way a recorded subnet changes, e.g. after two nodes
    /// picked the same one. Refused while containers are attached; keeps
    /// the network's name, id, key and port. Gather → engine plan
    /// (`request::relocate`) → execute; a failure half-way undoes what was
    /// done, so the network stays as it was.
    pub async fn move_network(
        &mut self,
        network: &str,
        subnet: Option<&str>,
    ) -> OpResult<Response> {
        let owner: Owner = network
            .parse()
            .map_err(|e| OpError::Invalid(format!("{e}")))?;
        let entry = self.marker.get(&owner).cloned();
        let attached = match &entry {
            Some(_) if owner != Owner::Base => self.members_of(&owner)?,
            _ => 0,
        };
        let peer_cidrs = self.peer_cidrs();
        let target = relocate::check_move(MoveRequest {
            owner: owner.clone(),
            entry,
            attached,
            requested: subnet,
            peer_cidrs: &peer_cidrs,
        })?;
        let new = match target.requested {
            Some(req) => self.plan_subnet(&owner, Some(req))?,
            None => match &owner {
                Owner::Service(service) => self.planned_service_subnet(service)?,
                _ => self.plan_local_move(&owner, target.old)?,
            },
        };
        let bridge = self.live_link(&target.entry.name).await?;
        let isolation = match &owner {
            Owner::Isolation(net) => self
                .store
                .read(|tx| tx.get::<IsolationRecord>(Table::Isolation, net))?
                .map(|r| IsolationDesired::from(&r)),
            _ => None,
        };
        let old = target.old;
        let moved = relocate::plan_move(MoveFacts {
            entry: target.entry,
            subnet: new,
            bridge,
            isolation,
        })?;
        self.execute_plan(moved.plan).await?;
        info!(%owner, from = %old, to = %new, "network moved to another subnet");
        let Response::Networks { networks } = self.list_networks().await? else {
            return Err(OpError::State("list_networks answered oddly".into()));
        };
        Ok(Response::Networks {
            networks: networks
                .into_iter()
                .filter(|n| n.owner == owner.to_string())
                .collect(),
        })
    }

    /// A new subnet for a node-local network from `local_pool`, other than `old`.
    fn plan_local_move(&self, owner: &Owner, old: IpNet) -> OpResult<IpNet> {
        let pool: IpNet = plan::parse_cidr(&self.cfg.local_pool)?;
        let mut used = self.used_subnets();
        used.retain(|(o, _)| *o != owner.to_string());
        used.push((format!("{owner} (its current subnet)"), old));
        for (net, p) in self.peer_cidrs() {
            used.push((format!("a peer on {net}"), p));
        }
        let mut reserved = Vec::new();
        if let Some(g) = self.global()? {
            reserved.extend(g.cluster_cidr.parse::<IpNet>().ok());
            reserved.extend(g.slice_cidr.parse::<IpNet>().ok());
        }
        reserved.extend(self.cfg.service_range.parse::<IpNet>().ok());
        plan::pick_subnet(
            owner,
            pool,
            self.cfg.local_prefix_len,
            None,
            &used,
            &reserved,
        )
    }
}

/// One of this node's networks overlapping a peer's allowed IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetCollision {
    /// This node's network.
    pub owner: String,
    /// Its subnet.
    pub subnet: IpNet,
    /// The network the peer is on.
    pub peer_network: String,
    /// The peer's public key.
    pub peer: String,
    /// The peer's allowed IP that overlaps.
    pub allowed_ip: IpNet,
}

impl SubnetCollision {
    /// What the operator reads: both networks and the fix.
    pub fn describe(&self) -> String {
        collision_message(&self.allowed_ip, &self.peer, &self.owner, &self.subnet)
    }
}

/// The message of a peer overlapping one of this node's networks (decided
/// in the engine, shared with `doctor`).
pub use overlayd_engine::request::peers::collision_message;
