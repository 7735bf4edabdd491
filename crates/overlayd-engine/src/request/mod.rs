//! Request plans — "decide, then do" for the network requests. The daemon
//! gathers what a request needs to know (the recorded marker entry, the
//! desired record from the store, the subnet its planner chose, a fresh id
//! and key, the live link holding the name, how many containers are
//! attached), and a function here turns that into a [`Plan`]: an ordered
//! list of typed [`Step`]s, each with the steps that undo it, or a
//! [`Refusal`]. The daemon's executor carries the plan out and, when a step
//! fails, runs the undo of the steps already done in reverse order.
//!
//! - [`bridge`]: create, adopt, confirm or remove a bridge network;
//! - [`isolation`]: `setup_isolation_network` / `teardown_isolation_network`;
//! - [`service`]: `setup_service_overlay` / `teardown_service_overlay`;
//! - [`global`]: `setup_global_overlay` / `teardown_global_overlay`;
//! - [`peers`]: `add_peer` / `remove_peer` / allowed-IP changes;
//! - [`relocate`]: `move_network` (a recorded network's new subnet);
//! - [`dns`]: `register_dns` / `unregister_dns`.
//!
//! Nothing here touches the host, the store or a clock; every decision is
//! unit-tested in memory (`request/tests_*.rs`).

pub mod bridge;
pub mod dns;
pub mod global;
pub mod isolation;
pub mod peers;
pub mod relocate;
pub mod service;
mod step;

pub use step::Step;

use std::fmt;

use ipnet::IpNet;
use overlayd_model::{NetworkEntry, Owner};

/// Why a request is refused before anything is done. The message reaches
/// the caller verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A name, subnet or identity is taken or recorded differently.
    #[error("{0}")]
    Conflict(String),
    /// The request's arguments cannot be satisfied as given.
    #[error("{0}")]
    Invalid(String),
    /// Recorded state contradicts itself.
    #[error("{0}")]
    State(String),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request does not apply to this kind of thing.
    #[error("{0}")]
    Unsupported(String),
}

/// A subnet as a request gives it: a CIDR without host bits.
pub fn parse_subnet(s: &str) -> Result<IpNet, Refusal> {
    let net: IpNet = s.trim().parse().map_err(|_| {
        Refusal::Invalid(format!("{s:?} is not a CIDR (expected e.g. 10.201.3.0/24)"))
    })?;
    if net.trunc() != net {
        return Err(Refusal::Invalid(format!(
            "{s} has host bits set; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// The gateway of a subnet (its first host address) with the subnet's
/// prefix, as a bridge carries it.
pub fn gateway_cidr(subnet: IpNet) -> Result<IpNet, Refusal> {
    let picker =
        crate::ipam::AddressPicker::new(subnet).map_err(|e| Refusal::Invalid(e.to_string()))?;
    IpNet::new(picker.gateway(), subnet.prefix_len()).map_err(|e| Refusal::Invalid(e.to_string()))
}

/// What a network set-up asks for in IPv6, besides its primary subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WantV6 {
    /// Single-stack: no second subnet.
    #[default]
    No,
    /// Dual-stack with an IPv6 subnet from `local_pool6`.
    Auto,
    /// Dual-stack with this IPv6 subnet.
    Subnet(IpNet),
}

/// Whether a recorded network already is what `want` asks for in IPv6, or
/// why not: a recorded network is confirmed or refused, never changed.
pub fn check_existing_v6(entry: &NetworkEntry, want: WantV6) -> Result<(), Refusal> {
    let have = entry.subnet_v6.as_deref();
    let down = match &entry.owner {
        Owner::Isolation(n) => format!("tear it down first (`overlayd iso down {n}`)"),
        _ => "tear it down first".to_string(),
    };
    match (want, have) {
        (WantV6::No, _) | (WantV6::Auto, Some(_)) => Ok(()),
        (WantV6::Auto, None) => Err(Refusal::Conflict(format!(
            "{} exists without an IPv6 subnet; {down} to recreate it dual-stack",
            entry.owner
        ))),
        (WantV6::Subnet(s), Some(h)) if h == s.to_string() => Ok(()),
        (WantV6::Subnet(s), h) => Err(Refusal::Conflict(format!(
            "{} exists with IPv6 subnet {}; {down} to change it to {s}",
            entry.owner,
            h.unwrap_or("none")
        ))),
    }
}

/// The desired state of an isolation network (`Table::Isolation`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IsolationDesired {
    /// Its subnet (empty until the network is created).
    pub subnet: String,
    /// No route or NAT to outside the host.
    pub internal: bool,
    /// Dual-stack: its IPv6 subnet.
    pub subnet_v6: Option<String>,
}

/// How a service's containers are connected (a resolved mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// On the node's shared NAT network.
    Shared,
    /// On the service's own bridge with its own WireGuard device.
    Dedicated,
}

/// The desired state of a service (`Table::Services`). `Debug` never shows
/// the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceDesired {
    /// Its resolved mode.
    pub kind: ServiceKind,
    /// A dedicated overlay's port.
    pub wg_port: Option<u16>,
    /// A dedicated overlay's private key (secret).
    pub wg_private_key: Option<String>,
}

impl fmt::Debug for ServiceDesired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceDesired")
            .field("kind", &self.kind)
            .field("wg_port", &self.wg_port)
            .field(
                "wg_private_key",
                &self.wg_private_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The decision of a teardown.
#[derive(Debug, Clone, PartialEq)]
pub enum Teardown {
    /// Neither desired nor recorded: `ok` if it was removed before,
    /// `not_found` otherwise (the daemon asks its tombstones).
    NotRecorded,
    /// Carry this plan out.
    Remove(Plan),
}

/// A step of a plan with what undoes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// What to do.
    pub step: Step,
    /// What undoes it, run in this order when a later step fails (empty:
    /// nothing to undo, e.g. a network that is recorded stays).
    pub undo: Vec<Step>,
    /// A failure is collected and the plan goes on (teardown: every object
    /// is tried); a later [`Step::RequireAllRemoved`] reports them.
    pub best_effort: bool,
    /// The step may be half done when it fails (several host calls), so
    /// its own undo runs too, before the undo of the steps done before it.
    pub undo_if_failed: bool,
}

/// An ordered list of steps; see the module documentation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Planned>,
}

impl Plan {
    /// A step with nothing to undo.
    pub fn push(&mut self, step: Step) {
        self.steps.push(Planned {
            step,
            undo: Vec::new(),
            best_effort: false,
            undo_if_failed: false,
        });
    }

    /// A step and the steps that undo it.
    pub fn push_undoable(&mut self, step: Step, undo: Vec<Step>) {
        self.steps.push(Planned {
            step,
            undo,
            best_effort: false,
            undo_if_failed: false,
        });
    }

    /// A step that may be half done when it fails, and the steps that undo
    /// it (whole or in part): they run on its own failure too.
    pub fn push_partial(&mut self, step: Step, undo: Vec<Step>) {
        self.steps.push(Planned {
            step,
            undo,
            best_effort: false,
            undo_if_failed: true,
        });
    }

    /// A best-effort step (teardown): its failure is collected.
    pub fn push_best_effort(&mut self, step: Step) {
        self.steps.push(Planned {
            step,
            undo: Vec::new(),
            best_effort: true,
            undo_if_failed: false,
        });
    }

    /// Append another plan's steps.
    pub fn extend(&mut self, other: Plan) {
        self.steps.extend(other.steps);
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The steps alone, in order (for tests and logs).
    pub fn step_list(&self) -> Vec<&Step> {
        self.steps.iter().map(|p| &p.step).collect()
    }

    /// What a failure after the last step would undo, in the order it would
    /// run: the undo of the last undoable step first.
    pub fn rollback_order(&self) -> Vec<&Step> {
        self.steps
            .iter()
            .rev()
            .flat_map(|p| p.undo.iter())
            .collect()
    }
}

#[cfg(test)]
mod tests_bridge;
#[cfg(test)]
mod tests_dns;
#[cfg(test)]
mod tests_global;
#[cfg(test)]
mod tests_peers;
#[cfg(test)]
mod tests_relocate;
#[cfg(test)]
mod tests_service;
