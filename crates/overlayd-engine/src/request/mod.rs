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
//! - [`peers`]: `add_peer` / `remove_peer` / allowed-IP changes.
//!
//! Nothing here touches the host, the store or a clock; every decision is
//! unit-tested in memory (`request/tests_*.rs`).

pub mod bridge;
pub mod global;
pub mod isolation;
pub mod peers;
pub mod service;

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

/// One thing to do. Steps are plain values: the daemon's executor maps each
/// to one host, store or marker operation. `Debug` never shows a private
/// key (marker entries redact theirs).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write the desired record of an isolation network; with `unbury`,
    /// clear the owner's tombstone in the same store transaction.
    PutIsolation {
        /// The network name.
        network: String,
        /// The record.
        record: IsolationDesired,
        /// Owner whose tombstone goes (it exists again).
        unbury: Option<Owner>,
    },
    /// Remove the desired record of an isolation network; with `bury`,
    /// leave a tombstone in the same transaction.
    RemoveIsolation {
        /// The network name.
        network: String,
        /// Owner to bury.
        bury: Option<Owner>,
    },
    /// Write the desired record of a service (and clear its tombstone).
    PutService {
        /// The service name.
        service: String,
        /// The record.
        record: ServiceDesired,
        /// Owner whose tombstone goes.
        unbury: Option<Owner>,
    },
    /// Remove the desired record of a service (and leave a tombstone).
    RemoveService {
        /// The service name.
        service: String,
        /// Owner to bury.
        bury: Option<Owner>,
    },
    /// Write the desired base overlay.
    PutGlobal {
        /// The record.
        record: global::GlobalDesired,
    },
    /// Remove the desired base overlay; `with_peers` also forgets the
    /// peers recorded for the base device (same transaction).
    RemoveGlobal {
        /// Also forget the base peers.
        with_peers: bool,
    },
    /// Move the dedicated port band above this global port.
    SetGlobalPort {
        /// The node's WireGuard port.
        port: u16,
    },
    /// Record (add or replace) a peer.
    PutPeer {
        /// The record.
        record: peers::PeerDesired,
    },
    /// Forget a recorded peer.
    RemovePeerRecord {
        /// The network whose device carries it.
        network: String,
        /// Its public key.
        public_key: String,
    },
    /// Program a peer on a device (endpoint, keepalive, allowed IPs as
    /// given) and a route per allowed IP into the device.
    ProgramPeer {
        /// The device.
        device: String,
        /// The peer.
        record: peers::PeerDesired,
    },
    /// Take a peer off a device (nothing when it is not there).
    RemoveDevicePeer {
        /// The device.
        device: String,
        /// Its public key.
        public_key: String,
    },
    /// Take one allowed IP off a peer on a device.
    RemoveAllowedIp {
        /// The device.
        device: String,
        /// The peer's public key.
        public_key: String,
        /// The allowed IP.
        net: IpNet,
    },
    /// Delete the routes of these CIDRs into a device; a route already
    /// gone is not a failure.
    DeleteRoutes {
        /// The device.
        device: String,
        /// The CIDRs.
        nets: Vec<IpNet>,
    },
    /// Create the bridge of `entry`, tagged with its owner and id.
    CreateBridge {
        /// The network.
        entry: NetworkEntry,
    },
    /// Take over a live bridge tagged for this network (nothing to do on
    /// the host; it exists so its undo can delete what nothing records).
    AdoptBridge {
        /// The bridge.
        name: String,
    },
    /// Put the gateway address(es) of `entry` on its bridge and set it up.
    ConfigureBridge {
        /// The network.
        entry: NetworkEntry,
    },
    /// Delete a bridge (or any link) by name.
    DeleteBridge {
        /// The link.
        name: String,
    },
    /// Record (or replace) a marker entry and save the marker.
    RecordEntry {
        /// The entry.
        entry: NetworkEntry,
    },
    /// Forget a marker entry and save the marker.
    ForgetEntry {
        /// Whose entry.
        owner: Owner,
    },
    /// Apply the firewall for what is recorded now; a failure is logged,
    /// never fails the request (the periodic check applies it again).
    SyncFirewall,
    /// Apply the firewall for what is recorded now; a failure fails the
    /// request (the base overlay is not up without it).
    ApplyFirewall,
    /// Hold a port of the dedicated band.
    ReservePort {
        /// The port.
        port: u16,
    },
    /// Give a port of the dedicated band back.
    ReleasePort {
        /// The port.
        port: u16,
    },
    /// Create or adopt the WireGuard device of a recorded network (same
    /// name, key, port), address it and re-apply its recorded peers.
    RealizeDevice {
        /// The network.
        entry: NetworkEntry,
    },
    /// Delete a WireGuard device.
    DeleteDevice {
        /// The device.
        name: String,
    },
    /// Report a fact that could not be read (a failed link lookup) as this
    /// step's failure.
    Unreadable {
        /// What could not be read (`bridge ovl-b-…`).
        what: String,
        /// Why.
        error: String,
    },
    /// Fail when any best-effort step before it failed: the network stays
    /// recorded so a retry finishes the removal.
    RequireAllRemoved {
        /// The network being removed.
        owner: Owner,
    },
    /// Drop every address lease of a network.
    DropLeases {
        /// The network (owner string).
        network: String,
    },
    /// Forget the peers recorded for a network's device.
    ForgetPeers {
        /// The network.
        owner: Owner,
    },
    /// Give a cross-node network's subnet lease back (cluster mode; best
    /// effort).
    ReleaseClusterSubnet {
        /// The network.
        owner: Owner,
    },
}

impl Step {
    /// How a best-effort failure of this step is named in the report.
    pub fn subject(&self) -> String {
        match self {
            Step::DeleteDevice { name } => format!("WireGuard device {name}"),
            Step::DeleteBridge { name } | Step::AdoptBridge { name } => format!("bridge {name}"),
            Step::CreateBridge { entry } | Step::ConfigureBridge { entry } => {
                format!("bridge {}", entry.name)
            }
            Step::Unreadable { what, .. } => what.clone(),
            other => format!("{other:?}"),
        }
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
mod tests_global;
#[cfg(test)]
mod tests_peers;
#[cfg(test)]
mod tests_service;
