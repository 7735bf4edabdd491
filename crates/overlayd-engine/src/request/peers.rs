//! `add_peer` / `remove_peer` / `add_allowed_ip` / `remove_allowed_ip` as
//! plans, on the base overlay's device or a dedicated service's.
//!
//! Allowed IPs are checked against this node's networks and the device's
//! other peers here ([`check_allowed`]); the host's own networks are checked
//! while the daemon gathers. A new or replaced peer is recorded first (a
//! crash after that is finished by the next start, which programs every
//! recorded peer), then programmed; a failure puts the record, the device
//! and the routes back as they were, so a refused request changes nothing.

use ipnet::IpNet;
use overlayd_model::Owner;

use super::{Plan, Refusal, Step};
use crate::ipam::overlaps;

/// A recorded peer (`Table::Peers`, key `<network>|<public key>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDesired {
    /// Network owner whose device carries the peer.
    pub network: String,
    /// Base64 public key.
    pub public_key: String,
    /// `ip:port`.
    pub endpoint: String,
    /// Allowed CIDRs.
    pub allowed_ips: Vec<String>,
    /// Keepalive seconds (0 = off).
    pub persistent_keepalive_secs: u64,
    /// Configured by cluster mode's watcher.
    pub cluster: bool,
}

impl PeerDesired {
    /// Its allowed IPs that parse.
    pub fn nets(&self) -> Vec<IpNet> {
        self.allowed_ips
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect()
    }
}

/// The message of a peer whose allowed IP overlaps one of this node's
/// networks: both nodes use the same subnet, and how to fix it.
pub fn collision_message(allowed: &IpNet, peer: &str, owner: &str, subnet: &IpNet) -> String {
    let fix = if owner == Owner::Base.to_string() {
        "give this node another slice (`overlayd global up --cidr CLUSTER --slice CIDR`, with no container on the base network) or move the other node's network".to_string()
    } else {
        format!(
            "move one of them explicitly: `overlayd network move {owner}` here (no container may be attached), or the same on the peer's node"
        )
    };
    format!(
        "allowed IP {allowed} of peer {peer} overlaps this node's network {owner} ({subnet}): the two nodes use the same subnet; {fix}"
    )
}

/// Refuse allowed IPs that overlap one of this node's networks (`used`:
/// owner and subnet) or an allowed IP of another peer on the same device.
pub fn check_allowed(
    public_key: &str,
    nets: &[IpNet],
    used: &[(String, IpNet)],
    device_peers: &[PeerDesired],
) -> Result<(), Refusal> {
    for (o, s) in used {
        if let Some(n) = nets.iter().find(|n| overlaps(n, s)) {
            return Err(Refusal::Conflict(collision_message(
                n,
                public_key.trim(),
                o,
                s,
            )));
        }
    }
    for p in device_peers.iter().filter(|p| p.public_key != public_key) {
        for existing in p.nets() {
            if let Some(n) = nets.iter().find(|n| overlaps(n, &existing)) {
                return Err(Refusal::Invalid(format!(
                    "allowed IP {n} overlaps {existing} of peer {}",
                    p.public_key
                )));
            }
        }
    }
    Ok(())
}

/// Refuse a peer that is the device's own key, then check its allowed IPs.
pub fn check_put(
    owner: &Owner,
    own_key: Option<&str>,
    rec: &PeerDesired,
    used: &[(String, IpNet)],
    device_peers: &[PeerDesired],
) -> Result<(), Refusal> {
    if own_key == Some(rec.public_key.as_str()) {
        return Err(Refusal::Invalid(format!(
            "public key {} is {owner}'s own key; a device cannot be its own peer — give the other node's key",
            rec.public_key
        )));
    }
    check_allowed(&rec.public_key, &rec.nets(), used, device_peers)
}

/// How a peer is put back on the device when a change of it is undone: as
/// it was, or taken off when it was not there.
fn restore(device: &str, rec: &PeerDesired, old: Option<&PeerDesired>) -> Step {
    match old {
        Some(o) => Step::ProgramPeer {
            device: device.to_string(),
            record: o.clone(),
        },
        None => Step::RemoveDevicePeer {
            device: device.to_string(),
            public_key: rec.public_key.clone(),
        },
    }
}

/// Decide adding or replacing a peer (checked by [`check_put`] first).
pub fn plan_put(device: &str, rec: PeerDesired, old: Option<PeerDesired>) -> Plan {
    let mut plan = Plan::default();
    let undo_record = match &old {
        Some(o) => Step::PutPeer { record: o.clone() },
        None => Step::RemovePeerRecord {
            network: rec.network.clone(),
            public_key: rec.public_key.clone(),
        },
    };
    plan.push_undoable(
        Step::PutPeer {
            record: rec.clone(),
        },
        vec![undo_record],
    );
    // Programming is several calls (the peer, then a route per allowed
    // IP): its undo also runs when it fails half-way.
    plan.push_partial(
        Step::ProgramPeer {
            device: device.to_string(),
            record: rec.clone(),
        },
        vec![
            Step::DeleteRoutes {
                device: device.to_string(),
                nets: rec.nets(),
            },
            restore(device, &rec, old.as_ref()),
        ],
    );
    if let Some(o) = &old {
        let keep = rec.nets();
        let gone: Vec<IpNet> = o.nets().into_iter().filter(|n| !keep.contains(n)).collect();
        if !gone.is_empty() {
            plan.push(Step::DeleteRoutes {
                device: device.to_string(),
                nets: gone,
            });
        }
    }
    plan.push(Step::SyncFirewall);
    plan
}

/// Decide `remove_peer`: the peer is taken off the device even without a
/// record (one left by an interrupted `add_peer` can always be removed); a
/// peer neither recorded nor on the device is not found.
pub fn plan_remove(
    owner: &Owner,
    device: &str,
    public_key: &str,
    rec: Option<PeerDesired>,
    on_device: bool,
) -> Result<Plan, Refusal> {
    if rec.is_none() && !on_device {
        return Err(Refusal::NotFound(format!(
            "no peer {public_key} on {owner}; see `overlayd wg show` for the peers there"
        )));
    }
    let mut plan = Plan::default();
    plan.push(Step::RemoveDevicePeer {
        device: device.to_string(),
        public_key: public_key.to_string(),
    });
    if let Some(rec) = rec {
        plan.push(Step::DeleteRoutes {
            device: device.to_string(),
            nets: rec.nets(),
        });
        plan.push(Step::RemovePeerRecord {
            network: rec.network,
            public_key: rec.public_key,
        });
        plan.push(Step::SyncFirewall);
    }
    Ok(plan)
}

/// What [`plan_allowed_ip`] decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedIpChange<'a> {
    /// The network whose device carries the peer.
    pub owner: &'a Owner,
    /// Its device.
    pub device: &'a str,
    /// The key as the caller gave it (named in a not-found answer).
    pub given_key: &'a str,
    /// The recorded peer.
    pub rec: Option<PeerDesired>,
    /// The allowed IP to add or remove.
    pub net: IpNet,
    /// Add (or remove).
    pub add: bool,
    /// This node's networks (owner, subnet).
    pub used: &'a [(String, IpNet)],
    /// The device's recorded peers.
    pub device_peers: &'a [PeerDesired],
}

/// Decide `add_allowed_ip` / `remove_allowed_ip`: an allowed IP already
/// there (or already gone) changes nothing; a peer's last one is not
/// removed (remove the peer); the device is programmed first and the record
/// written last, and a failure programs the peer back as it was.
pub fn plan_allowed_ip(input: AllowedIpChange<'_>) -> Result<Plan, Refusal> {
    let Some(old) = input.rec else {
        return Err(Refusal::NotFound(format!(
            "no peer {} on {}; add it with add_peer first",
            input.given_key, input.owner
        )));
    };
    let s = input.net.to_string();
    let device = input.device.to_string();
    let mut rec = old.clone();
    let mut plan = Plan::default();
    if input.add {
        if old.allowed_ips.contains(&s) {
            return Ok(plan);
        }
        check_allowed(
            &old.public_key,
            &[input.net],
            input.used,
            input.device_peers,
        )?;
        rec.allowed_ips.push(s);
        plan.push_partial(
            Step::ProgramPeer {
                device: device.clone(),
                record: rec.clone(),
            },
            vec![
                Step::DeleteRoutes {
                    device: device.clone(),
                    nets: vec![input.net],
                },
                Step::ProgramPeer {
                    device,
                    record: old,
                },
            ],
        );
    } else {
        if !old.allowed_ips.contains(&s) {
            return Ok(plan);
        }
        if old.allowed_ips.len() == 1 {
            return Err(Refusal::Invalid(format!(
                "{s} is the peer's last allowed IP; remove the peer instead"
            )));
        }
        rec.allowed_ips.retain(|c| *c != s);
        plan.push_partial(
            Step::ProgramPeer {
                device: device.clone(),
                record: rec.clone(),
            },
            vec![Step::ProgramPeer {
                device: device.clone(),
                record: old,
            }],
        );
        plan.push(Step::RemoveAllowedIp {
            device: device.clone(),
            public_key: rec.public_key.clone(),
            net: input.net,
        });
        plan.push(Step::DeleteRoutes {
            device,
            nets: vec![input.net],
        });
    }
    plan.push(Step::PutPeer { record: rec });
    plan.push(Step::SyncFirewall);
    Ok(plan)
}
