//! `setup_isolation_network` / `teardown_isolation_network` as plans.
//!
//! Set-up writes the desired record of an internal network *before* the
//! bridge appears (so the firewall applied with it already closes it),
//! ensures the bridge, then writes the final record with the subnets and
//! clears the tombstone. Teardown removes the desired record first (a
//! failure later is finished by a retry or the next start, never undone
//! into a resurrection), then the network.

use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{self, BridgePlan, EnsureBridge, LinkFact};
use super::{IsolationDesired, Plan, Refusal, Step, Teardown};

/// What the daemon gathered for `setup_isolation_network`.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationSetup<'a> {
    /// The network name.
    pub network: String,
    /// Whether the request asks for an internal network.
    pub internal: bool,
    /// The desired record already in the store, if any.
    pub previous: Option<IsolationDesired>,
    /// The bridge: recorded or chosen, the live link, the IPv6 request.
    pub bridge: EnsureBridge<'a>,
}

/// The plan of a set-up and what it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationPlan {
    /// The network's marker entry once done (subnets and bridge name for
    /// the response).
    pub entry: NetworkEntry,
    /// Whether the network is new.
    pub created: bool,
    /// The steps.
    pub plan: Plan,
}

/// Decide `setup_isolation_network`.
pub fn plan_setup(input: IsolationSetup<'_>) -> Result<IsolationPlan, Refusal> {
    let network = input.network;
    let owner = Owner::Isolation(network.clone());
    if let bridge::BridgeFacts::Recorded(_) = &input.bridge.facts {
        let is_internal = input.previous.as_ref().is_some_and(|r| r.internal);
        if is_internal != input.internal {
            let (is, asked) = if input.internal {
                ("not internal", "internal")
            } else {
                ("internal", "not internal")
            };
            return Err(Refusal::Conflict(format!(
                "isolation network {network} exists and is {is}; tear it down first (`overlayd iso down {network}`) to recreate it {asked}"
            )));
        }
    }
    let mut plan = Plan::default();
    if input.internal {
        // Desired state first, so the firewall applied when the bridge
        // appears already treats it as internal.
        let prev = input.previous.clone();
        let record = IsolationDesired {
            subnet: prev.as_ref().map(|r| r.subnet.clone()).unwrap_or_default(),
            internal: true,
            subnet_v6: prev.as_ref().and_then(|r| r.subnet_v6.clone()),
        };
        let undo = match prev {
            None => Step::RemoveIsolation {
                network: network.clone(),
                bury: None,
            },
            Some(p) => Step::PutIsolation {
                network: network.clone(),
                record: p,
                unbury: None,
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
    let BridgePlan {
        entry,
        created,
        plan: bridge_plan,
    } = bridge::plan_ensure(input.bridge)?;
    plan.extend(bridge_plan);
    plan.push(Step::PutIsolation {
        network,
        record: IsolationDesired {
            subnet: entry.subnet.clone(),
            internal: input.internal,
            subnet_v6: entry.subnet_v6.clone(),
        },
        unbury: Some(owner),
    });
    Ok(IsolationPlan {
        entry,
        created,
        plan,
    })
}

/// What the daemon gathered for `teardown_isolation_network`.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationTeardown {
    /// The network name.
    pub network: String,
    /// Whether the store has its desired record.
    pub desired: bool,
    /// Its marker entry, if recorded.
    pub recorded: Option<NetworkEntry>,
    /// The live link holding the recorded bridge's name.
    pub bridge: LinkFact,
    /// Containers attached to it.
    pub attached: usize,
}

/// Decide `teardown_isolation_network`.
pub fn plan_teardown(input: IsolationTeardown) -> Result<Teardown, Refusal> {
    let owner = Owner::Isolation(input.network.clone());
    if !input.desired && input.recorded.is_none() {
        return Ok(Teardown::NotRecorded);
    }
    bridge::refuse_attached(&owner, input.attached)?;
    let mut plan = Plan::default();
    plan.push(Step::RemoveIsolation {
        network: input.network,
        bury: Some(owner),
    });
    if let Some(entry) = &input.recorded {
        plan.extend(bridge::plan_remove(entry, input.bridge, input.attached)?);
    }
    Ok(Teardown::Remove(plan))
}
