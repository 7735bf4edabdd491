//! `move_network`: give a recorded network another subnet — the one
//! explicit way a recorded subnet changes (e.g. after two nodes picked the
//! same one). Two decisions: [`check_move`] refuses what cannot be moved
//! (the base network, an unknown or foreign network, one with attached
//! containers, a requested subnet that is malformed, unchanged or on a
//! peer's allowed IPs) before the daemon asks its planner for the new
//! subnet; [`plan_move`] turns the chosen subnet into a plan that moves the
//! marker entry, the desired record and the gateway addresses, each undone
//! when a later step fails, so a failed move leaves the network as it was.

use ipnet::IpNet;
use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{plan_realize, refuse_attached};
use super::{gateway_cidr, parse_subnet, IsolationDesired, Plan, Refusal, Step};
use crate::ipam::overlaps;
use crate::live::LiveLink;

/// What [`check_move`] decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveRequest<'a> {
    /// The network to move.
    pub owner: Owner,
    /// Its marker entry, if it is recorded.
    pub entry: Option<NetworkEntry>,
    /// How many containers are attached to it.
    pub attached: usize,
    /// The subnet the caller asked for, as given.
    pub requested: Option<&'a str>,
    /// Every recorded peer's allowed IPs, with the network of the peer.
    pub peer_cidrs: &'a [(String, IpNet)],
}

/// A network that may move, and where to.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveTarget {
    /// Its marker entry.
    pub entry: NetworkEntry,
    /// Its current subnet.
    pub old: IpNet,
    /// The subnet asked for (none: the daemon's planner chooses).
    pub requested: Option<IpNet>,
}

/// Refuse a move that cannot be done, in the order the request is read:
/// the base network (its subnet is the node slice), a network not
/// recorded, one another platform manages, one with attached containers,
/// then a requested subnet that is malformed, the current one, or
/// overlapping a peer's allowed IPs.
pub fn check_move(req: MoveRequest<'_>) -> Result<MoveTarget, Refusal> {
    let owner = req.owner;
    if owner == Owner::Base {
        return Err(Refusal::Invalid(
            "the base network is the node slice: change it with `overlayd global up --cidr CLUSTER --slice CIDR` (setup_global_overlay with slice_cidr)".into(),
        ));
    }
    let entry = req
        .entry
        .ok_or_else(|| Refusal::NotFound(format!("no network {owner} is recorded on this node")))?;
    if !entry.is_linux_managed() {
        return Err(Refusal::Unsupported(format!(
            "{owner} is a {} network, managed by another platform",
            entry.kind
        )));
    }
    refuse_attached(&owner, req.attached)?;
    let old = parse_subnet(&entry.subnet)?;
    let requested = match req.requested {
        None => None,
        Some(s) => {
            let want = parse_subnet(s)?;
            if want == old {
                return Err(Refusal::Invalid(format!("{owner} already uses {old}")));
            }
            if let Some((net, p)) = req.peer_cidrs.iter().find(|(_, p)| overlaps(&want, p)) {
                return Err(Refusal::Conflict(format!(
                    "subnet {want} overlaps {p}, allowed IPs of a peer on {net}; choose another subnet"
                )));
            }
            Some(want)
        }
    };
    Ok(MoveTarget {
        entry,
        old,
        requested,
    })
}

/// What [`plan_move`] decides on, gathered after [`check_move`].
#[derive(Debug, Clone, PartialEq)]
pub struct MoveFacts {
    /// The network's marker entry as recorded.
    pub entry: NetworkEntry,
    /// The subnet its planner chose.
    pub subnet: IpNet,
    /// The live link holding the bridge's name, if any.
    pub bridge: Option<LiveLink>,
    /// An isolation network's desired record (none when the store has none).
    pub isolation: Option<IsolationDesired>,
}

/// The plan of a move and the entry it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct MovePlan {
    /// The marker entry once the plan is done.
    pub entry: NetworkEntry,
    /// The steps.
    pub plan: Plan,
}

/// Decide how to move a network: record the moved entry (and an isolation
/// network's desired record), take the old gateway off the bridge and put
/// the new one on (creating the bridge when it vanished; a link holding
/// its name that is not ours is refused), then the same for the gateway
/// address of its WireGuard device, then apply the firewall and follow
/// with the DNS listeners. Name, id, key and port stay. Each step is undone
/// when a later one fails: the records go back, the new addresses come off
/// and the old ones back on.
pub fn plan_move(facts: MoveFacts) -> Result<MovePlan, Refusal> {
    let entry = facts.entry;
    let old_gw = gateway_cidr(parse_subnet(&entry.subnet)?)?;
    let new_gw = gateway_cidr(facts.subnet)?;
    let mut moved = entry.clone();
    moved.subnet = facts.subnet.to_string();
    let realize = plan_realize(&moved, facts.bridge.as_ref())?;

    let mut plan = Plan::default();
    plan.push_undoable(
        Step::RecordEntry {
            entry: moved.clone(),
        },
        vec![Step::RecordEntry {
            entry: entry.clone(),
        }],
    );
    if let Owner::Isolation(network) = &entry.owner {
        let mut record = facts.isolation.clone().unwrap_or_default();
        record.subnet = moved.subnet.clone();
        let undo = match facts.isolation {
            Some(old) => Step::PutIsolation {
                network: network.clone(),
                record: old,
                unbury: None,
            },
            None => Step::RemoveIsolation {
                network: network.clone(),
                bury: None,
            },
        };
        plan.push_undoable(
            Step::PutIsolation {
                network: network.clone(),
                record,
                unbury: None,
            },
            vec![undo],
        );
    }
    let bridge = entry.name.clone();
    plan.push_undoable(
        Step::DeleteAddress {
            link: bridge.clone(),
            addr: old_gw,
        },
        vec![Step::AddAddress {
            link: bridge.clone(),
            addr: old_gw,
        }],
    );
    for planned in realize.steps {
        match planned.step {
            // Several host calls: the new gateway comes off again.
            step @ Step::ConfigureBridge { .. } => plan.push_partial(
                step,
                vec![Step::DeleteAddress {
                    link: bridge.clone(),
                    addr: new_gw,
                }],
            ),
            // A recorded network's bridge made again stays.
            step => plan.push(step),
        }
    }
    if let Some(device) = &entry.interface {
        let (old_dev, new_dev) = (host_route(old_gw)?, host_route(new_gw)?);
        plan.push_undoable(
            Step::DeleteAddress {
                link: device.clone(),
                addr: old_dev,
            },
            vec![Step::AddAddress {
                link: device.clone(),
                addr: old_dev,
            }],
        );
        plan.push_partial(
            Step::RealizeDevice {
                entry: moved.clone(),
            },
            vec![Step::DeleteAddress {
                link: device.clone(),
                addr: new_dev,
            }],
        );
    }
    plan.push(Step::SyncFirewall);
    plan.push(Step::SyncDnsListeners);
    Ok(MovePlan { entry: moved, plan })
}

/// A gateway as a WireGuard device carries it: the address alone.
fn host_route(gateway: IpNet) -> Result<IpNet, Refusal> {
    let len = if gateway.addr().is_ipv4() { 32 } else { 128 };
    IpNet::new(gateway.addr(), len).map_err(|e| Refusal::State(e.to_string()))
}
