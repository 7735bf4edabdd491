//! `setup_service_overlay` / `teardown_service_overlay` as plans.
//!
//! A set-up is at most two plans, each decided on facts gathered just
//! before it: [`plan_change`] removes a dedicated network the request
//! replaces (a mode change or `recreate`; the new network's subnet, port
//! and bridge are chosen only once the old one is gone), then
//! [`plan_shared`] or [`plan_dedicated`] makes the network the service's
//! containers join and records the service.

use std::fmt;

use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{self, BridgePlan, EnsureBridge, LinkFact};
use super::{Plan, Refusal, ServiceDesired, ServiceKind, Step, Teardown};

impl ServiceKind {
    /// Wire name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Shared => "shared",
            ServiceKind::Dedicated => "dedicated",
        }
    }

    /// The network a service of this kind joins.
    pub fn network(self, service: &str) -> Owner {
        match self {
            ServiceKind::Shared => Owner::SharedNat,
            ServiceKind::Dedicated => Owner::Service(service.to_string()),
        }
    }
}

/// What the daemon gathered before a set-up, about the service as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceChange {
    /// The service name.
    pub service: String,
    /// The mode the request leads to (already resolved against the
    /// recorded one).
    pub kind: ServiceKind,
    /// The mode on record (or implied by a recorded dedicated network).
    pub recorded: Option<ServiceKind>,
    /// Whether the caller asked for a new identity.
    pub recreate: bool,
    /// The network of each attachment of this service (needed only when
    /// [`changes_mode`]).
    pub attachments: Vec<String>,
    /// The service's dedicated network, if recorded.
    pub dedicated: Option<NetworkEntry>,
    /// The live link holding the dedicated bridge's name (needed only when
    /// [`replaces_dedicated`]).
    pub dedicated_bridge: LinkFact,
    /// Containers attached to the dedicated network, any service (needed
    /// only when [`replaces_dedicated`]).
    pub dedicated_attached: usize,
}

/// Whether a set-up changes (or recreates) the recorded mode: only then do
/// the service's attachments matter ([`ServiceChange::attachments`]).
pub fn changes_mode(kind: ServiceKind, recorded: Option<ServiceKind>, recreate: bool) -> bool {
    recorded.is_some_and(|prev| prev != kind || recreate)
}

/// Whether a set-up replaces a recorded dedicated network: only then does
/// its live bridge and attachments matter.
pub fn replaces_dedicated(kind: ServiceKind, recreate: bool) -> bool {
    recreate || kind != ServiceKind::Dedicated
}

/// Decide what must go before a set-up: refused when the mode changes (or
/// is recreated) under attached containers; the dedicated network (with
/// its identity and peers) removed when it is replaced. Empty otherwise.
pub fn plan_change(input: ServiceChange) -> Result<Plan, Refusal> {
    let service = &input.service;
    let changing = changes_mode(input.kind, input.recorded, input.recreate);
    if let (Some(prev), true) = (input.recorded, changing) {
        let on = prev.network(service).to_string();
        if input.attachments.contains(&on) {
            return Err(Refusal::Conflict(format!(
                "service {service} is {} with attached containers; detach them before changing its mode to {} or recreating it",
                prev.as_str(),
                input.kind.as_str()
            )));
        }
    }
    let mut plan = Plan::default();
    if let (true, Some(entry)) = (
        replaces_dedicated(input.kind, input.recreate),
        &input.dedicated,
    ) {
        plan.extend(bridge::plan_remove(
            entry,
            input.dedicated_bridge,
            input.dedicated_attached,
        )?);
        plan.push(Step::ForgetPeers {
            owner: entry.owner.clone(),
        });
    }
    Ok(plan)
}

/// A set-up's plan and the network entry its answer describes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePlan {
    /// The network the service's containers join, once done.
    pub entry: NetworkEntry,
    /// Whether that network is new.
    pub created: bool,
    /// The steps.
    pub plan: Plan,
}

/// The record of a service after its set-up, written only when it differs
/// from the one in the store (a repeated set-up writes nothing).
fn put_record(
    plan: &mut Plan,
    service: &str,
    record: ServiceDesired,
    existing: Option<&ServiceDesired>,
) {
    if existing != Some(&record) {
        plan.push(Step::PutService {
            service: service.to_string(),
            record,
            unbury: Some(Owner::Service(service.to_string())),
        });
    }
}

/// Decide a shared service's set-up: the shared NAT network, then its record.
pub fn plan_shared(
    service: &str,
    shared_nat: EnsureBridge<'_>,
    existing: Option<&ServiceDesired>,
) -> Result<ServicePlan, Refusal> {
    let BridgePlan {
        entry,
        created,
        mut plan,
    } = bridge::plan_ensure(shared_nat)?;
    let record = ServiceDesired {
        kind: ServiceKind::Shared,
        wg_port: None,
        wg_private_key: None,
    };
    put_record(&mut plan, service, record, existing);
    Ok(ServicePlan {
        entry,
        created,
        plan,
    })
}

/// A keypair minted for a dedicated overlay that may need one. `Debug`
/// never shows the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct FreshIdentity {
    /// Private key, base64 (secret).
    pub private_key: String,
    /// Public key, base64.
    pub public_key: String,
}

impl fmt::Debug for FreshIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreshIdentity")
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .finish()
    }
}

/// What the daemon gathered for a dedicated service's set-up.
#[derive(Debug, Clone, PartialEq)]
pub struct DedicatedSetup<'a> {
    /// The service name.
    pub service: String,
    /// Its bridge (recorded, or chosen: subnet from the address plan or
    /// the cluster lease).
    pub bridge: EnsureBridge<'a>,
    /// The lowest free band port, when the recorded entry has none.
    pub new_port: Option<u16>,
    /// A fresh keypair, given when the recorded entry (if any) has no
    /// port or no key yet.
    pub identity: Option<FreshIdentity>,
    /// The WireGuard device's name (from the namer).
    pub device: String,
    /// The service's record in the store, if any.
    pub existing: Option<ServiceDesired>,
}

/// Decide a dedicated service's set-up: hold a port, ensure the bridge,
/// record an identity (port, keypair, device name) the entry lacks, bring
/// the device up, record the service. A recorded identity is kept; a new
/// network is removed entirely (device, entry, bridge, port) when a later
/// step fails.
pub fn plan_dedicated(input: DedicatedSetup<'_>) -> Result<ServicePlan, Refusal> {
    let mut plan = Plan::default();
    if let Some(port) = input.new_port {
        // The port comes first: an exhausted band refused the request
        // before anything was planned.
        plan.push_undoable(Step::ReservePort { port }, vec![Step::ReleasePort { port }]);
    }
    let BridgePlan {
        entry: bridged,
        created,
        plan: bridge_plan,
    } = bridge::plan_ensure(input.bridge)?;
    plan.extend(bridge_plan);
    let mut entry = bridged.clone();
    let new_identity = entry.wg_port.is_none() || entry.wg_private_key.is_none();
    if new_identity {
        entry.wg_port = entry.wg_port.or(input.new_port);
        let (Some(_), Some(identity)) = (entry.wg_port, input.identity) else {
            return Err(Refusal::State(format!(
                "{} has no WireGuard identity and none was minted",
                entry.owner
            )));
        };
        entry.wg_private_key = Some(identity.private_key);
        entry.wg_public_key = Some(identity.public_key);
        entry.interface = Some(input.device);
        // A new network's entry goes with the bridge's undo; a recorded
        // one gets its previous entry back.
        let undo = if created {
            Vec::new()
        } else {
            vec![Step::RecordEntry { entry: bridged }]
        };
        plan.push_undoable(
            Step::RecordEntry {
                entry: entry.clone(),
            },
            undo,
        );
    }
    // A new network's device goes when anything fails, its own set-up
    // included (it may exist untagged or unaddressed); a recorded one's stays.
    let undo = match (&entry.interface, created) {
        (Some(dev), true) => vec![Step::DeleteDevice { name: dev.clone() }],
        _ => Vec::new(),
    };
    plan.push_partial(
        Step::RealizeDevice {
            entry: entry.clone(),
        },
        undo,
    );
    // The bridge's sync above ran before the device was recorded: a device
    // recorded now is let through the firewall at once, not at the next
    // periodic check (a repeated set-up, nothing new, syncs nothing).
    if created || new_identity {
        plan.push(Step::SyncFirewall);
    }
    let record = ServiceDesired {
        kind: ServiceKind::Dedicated,
        wg_port: entry.wg_port,
        wg_private_key: entry.wg_private_key.clone(),
    };
    put_record(&mut plan, &input.service, record, input.existing.as_ref());
    Ok(ServicePlan {
        entry,
        created,
        plan,
    })
}

/// What the daemon gathered for `teardown_service_overlay`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTeardown {
    /// The service name.
    pub service: String,
    /// The mode on record in the store, if any.
    pub desired: Option<ServiceKind>,
    /// Its dedicated network, if recorded (also one an interrupted mode
    /// change left behind).
    pub dedicated: Option<NetworkEntry>,
    /// The network of each attachment of this service.
    pub attachments: Vec<String>,
    /// The live link holding the dedicated bridge's name.
    pub dedicated_bridge: LinkFact,
    /// Containers attached to the dedicated network (any service).
    pub dedicated_attached: usize,
}

/// Decide `teardown_service_overlay`: refused while the service has
/// containers on its network; the record goes first, then a dedicated
/// network with its peers and cluster subnet lease.
pub fn plan_teardown(input: ServiceTeardown) -> Result<Teardown, Refusal> {
    let service = &input.service;
    let owner = Owner::Service(service.clone());
    if input.desired.is_none() && input.dedicated.is_none() {
        return Ok(Teardown::NotRecorded);
    }
    let kind = input.desired.unwrap_or(if input.dedicated.is_some() {
        ServiceKind::Dedicated
    } else {
        ServiceKind::Shared
    });
    let network = kind.network(service).to_string();
    let attached = input.attachments.iter().filter(|n| **n == network).count();
    if attached > 0 {
        return Err(Refusal::Conflict(format!(
            "service {service} still has {attached} attached container(s); detach them first"
        )));
    }
    let mut plan = Plan::default();
    plan.push(Step::RemoveService {
        service: service.clone(),
        bury: Some(owner.clone()),
    });
    if let Some(entry) = &input.dedicated {
        plan.extend(bridge::plan_remove(
            entry,
            input.dedicated_bridge,
            input.dedicated_attached,
        )?);
        plan.push(Step::ForgetPeers {
            owner: owner.clone(),
        });
        plan.push(Step::ReleaseClusterSubnet { owner });
    }
    Ok(Teardown::Remove(plan))
}
