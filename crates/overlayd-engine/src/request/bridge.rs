//! Bridge networks: confirm a recorded one (re-creating its bridge when it
//! vanished), create and record a new one (adopting a tagged bridge a failed
//! earlier attempt left), or remove one. Shared by every request that needs
//! a bridge: isolation networks, shared NAT, dedicated services, the base
//! overlay.

use ipnet::IpNet;
use overlayd_model::entry::KIND_LINUX_BRIDGE;
use overlayd_model::{NetworkEntry, Owner};

use super::{check_existing_v6, Plan, Refusal, Step, WantV6};
use crate::live::LiveLink;
use crate::tag::parse_tag;

/// What the daemon chose for a network that is not recorded yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBridge {
    /// The owner.
    pub owner: Owner,
    /// The bridge name (from the namer).
    pub name: String,
    /// The primary subnet (from the subnet planner).
    pub subnet: IpNet,
    /// The IPv6 subnet of a dual-stack network (from the planner).
    pub subnet_v6: Option<IpNet>,
    /// A fresh id, used unless a tagged bridge of this owner is adopted.
    pub fresh_id: String,
}

/// The network as the marker has it, or what was chosen for a new one.
#[derive(Debug, Clone, PartialEq)]
pub enum BridgeFacts {
    /// Recorded in the marker.
    Recorded(NetworkEntry),
    /// Not recorded yet.
    New(NewBridge),
}

/// Everything [`plan_ensure`] decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsureBridge<'a> {
    /// The network.
    pub facts: BridgeFacts,
    /// The subnet the caller asked for, if any.
    pub requested: Option<IpNet>,
    /// What the caller asked for in IPv6.
    pub want6: WantV6,
    /// The live link holding the bridge's name, if any.
    pub live: Option<LiveLink>,
    /// This daemon instance's id (links of other instances are not ours).
    pub instance: &'a str,
}

/// The plan of a bridge network and the entry it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgePlan {
    /// The marker entry once the plan is done.
    pub entry: NetworkEntry,
    /// Whether the network is new (not recorded before).
    pub created: bool,
    /// The steps.
    pub plan: Plan,
}

/// A link's lookup, as the daemon gathered it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkFact {
    /// No link has the name.
    Absent,
    /// This link has it.
    Present(LiveLink),
    /// The lookup failed (the message).
    Unreadable(String),
}

/// Decide how to make sure a bridge network exists: a recorded one is
/// confirmed (refused when the request asks for another subnet or IPv6
/// shape) and brought to its recorded shape; a new one is created (or a
/// tagged leftover adopted), configured, recorded and the firewall synced,
/// and undone entirely when a later step fails.
pub fn plan_ensure(input: EnsureBridge<'_>) -> Result<BridgePlan, Refusal> {
    match input.facts {
        BridgeFacts::Recorded(entry) => {
            check_existing_v6(&entry, input.want6)?;
            if let Some(req) = input.requested {
                if entry.subnet != req.to_string() {
                    return Err(Refusal::Conflict(format!(
                        "{} already exists with subnet {}; tear it down first to change it to {req}",
                        entry.owner, entry.subnet
                    )));
                }
            }
            let plan = plan_realize(&entry, input.live.as_ref())?;
            Ok(BridgePlan {
                entry,
                created: false,
                plan,
            })
        }
        BridgeFacts::New(new) => plan_new(new, input.want6, input.live, input.instance),
    }
}

fn plan_new(
    new: NewBridge,
    want6: WantV6,
    live: Option<LiveLink>,
    instance: &str,
) -> Result<BridgePlan, Refusal> {
    let owner = new.owner;
    if want6 != WantV6::No && new.subnet.addr().is_ipv6() {
        return Err(Refusal::Invalid(format!(
            "a dual-stack network needs an IPv4 subnet, not {}",
            new.subnet
        )));
    }
    let name = new.name;
    // A bridge tagged for this owner but unrecorded (left by a failed
    // earlier attempt or a lost marker) is adopted with its own id.
    let mut id = new.fresh_id;
    if let Some(link) = &live {
        let tag = link.tag();
        if tag.as_ref().is_some_and(|t| !t.belongs_to(instance)) {
            return Err(Refusal::Conflict(format!(
                "interface name {name} for {owner} is taken by another overlayd instance in this namespace; give each instance its own interface_prefix"
            )));
        }
        match tag.filter(|t| t.owner() == Some(&owner)) {
            Some(t) => id = t.id().to_string(),
            None => {
                return Err(Refusal::Conflict(format!(
                    "interface name {name} for {owner} is already taken by a link overlayd does not own; remove that link or set a different interface_prefix"
                )))
            }
        }
    }
    let mut entry = NetworkEntry::new(
        owner.clone(),
        KIND_LINUX_BRIDGE,
        &name,
        &id,
        &new.subnet.to_string(),
    );
    entry.subnet_v6 = new.subnet_v6.map(|s| s.to_string());
    let mut plan = Plan::default();
    // Nothing records the bridge until the entry is saved: whether made
    // now or adopted, it goes again when anything before that fails.
    let remove = vec![Step::DeleteBridge { name: name.clone() }];
    match live {
        None => plan.push_undoable(
            Step::CreateBridge {
                entry: entry.clone(),
            },
            remove,
        ),
        Some(_) => plan.push_undoable(Step::AdoptBridge { name: name.clone() }, remove),
    }
    plan.push(Step::ConfigureBridge {
        entry: entry.clone(),
    });
    plan.push_undoable(
        Step::RecordEntry {
            entry: entry.clone(),
        },
        vec![Step::ForgetEntry { owner }, Step::SyncFirewall],
    );
    plan.push(Step::SyncFirewall);
    Ok(BridgePlan {
        entry,
        created: true,
        plan,
    })
}

/// Bring a recorded bridge to its recorded shape: adopt the live link when
/// it carries our tag with this owner and id, create it when none has the
/// name, refuse a link that is not ours. Nothing is undone: the network is
/// recorded and should exist.
pub fn plan_realize(entry: &NetworkEntry, live: Option<&LiveLink>) -> Result<Plan, Refusal> {
    let mut plan = Plan::default();
    match live {
        Some(link) => {
            let ours = link
                .alias
                .as_deref()
                .and_then(parse_tag)
                .is_some_and(|t| t.is_network(&entry.owner, &entry.id));
            if !ours {
                return Err(Refusal::Conflict(format!(
                    "interface {} exists but is not overlayd's {} (its alias is {}); rename or remove it, or change interface_prefix",
                    entry.name,
                    entry.owner,
                    link.alias
                        .as_deref()
                        .map(|a| format!("{a:?}"))
                        .unwrap_or_else(|| "empty".into())
                )));
            }
        }
        None => plan.push(Step::CreateBridge {
            entry: entry.clone(),
        }),
    }
    plan.push(Step::ConfigureBridge {
        entry: entry.clone(),
    });
    Ok(plan)
}

/// The refusal while containers are attached to a network.
pub fn refuse_attached(owner: &Owner, attached: usize) -> Result<(), Refusal> {
    if attached > 0 {
        return Err(Refusal::Conflict(format!(
            "{owner} still has {attached} attached container(s); detach them first"
        )));
    }
    Ok(())
}

/// Decide how to remove a recorded bridge network: refused while
/// containers are attached; otherwise its device and bridge (only a bridge
/// carrying its tag) are each tried, and only when both are gone is the
/// entry forgotten, its port released, its leases dropped and the firewall
/// synced. A failure leaves the entry recorded so a retry finishes it.
pub fn plan_remove(
    entry: &NetworkEntry,
    bridge: LinkFact,
    attached: usize,
) -> Result<Plan, Refusal> {
    refuse_attached(&entry.owner, attached)?;
    let mut plan = Plan::default();
    if let Some(dev) = &entry.interface {
        plan.push_best_effort(Step::DeleteDevice { name: dev.clone() });
    }
    match bridge {
        LinkFact::Present(link)
            if link
                .alias
                .as_deref()
                .and_then(parse_tag)
                .is_some_and(|t| t.is_network(&entry.owner, &entry.id)) =>
        {
            plan.push_best_effort(Step::DeleteBridge {
                name: entry.name.clone(),
            })
        }
        LinkFact::Present(_) | LinkFact::Absent => {}
        LinkFact::Unreadable(error) => plan.push_best_effort(Step::Unreadable {
            what: format!("bridge {}", entry.name),
            error,
        }),
    }
    plan.push(Step::RequireAllRemoved {
        owner: entry.owner.clone(),
    });
    plan.push(Step::ForgetEntry {
        owner: entry.owner.clone(),
    });
    if let Some(port) = entry.wg_port {
        plan.push(Step::ReleasePort { port });
    }
    plan.push(Step::DropLeases {
        network: entry.owner.to_string(),
    });
    plan.push(Step::SyncFirewall);
    Ok(plan)
}
