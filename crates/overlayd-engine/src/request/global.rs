//! `setup_global_overlay` / `teardown_global_overlay` as plans.
//!
//! A set-up is checked ([`check`]) before anything is gathered from the
//! host, then is at most two plans: [`plan_slice_change`] removes the base
//! network of a previous slice (the new one's bridge is decided once the
//! old one is gone), and [`plan_base`] writes the desired record, moves the
//! port band, ensures the base bridge on the slice, records the device's
//! port, name and public key, brings the device up and applies the
//! firewall. When the second plan fails after its undo, the daemon brings
//! the previous overlay back with another [`plan_base`] decided on what is
//! left (as before plans, a restore never runs on stale facts).

use ipnet::IpNet;
use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{self, BridgePlan, EnsureBridge, LinkFact};
use super::{Plan, Refusal, Step};
use crate::ipam::{check_slice, overlaps};

/// The desired base overlay (`Table::Global`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalDesired {
    /// Deployment name.
    pub deployment: String,
    /// Instance id.
    pub instance_id: String,
    /// Cluster CIDR.
    pub cluster_cidr: String,
    /// This node's slice.
    pub slice_cidr: String,
    /// WireGuard port.
    pub wg_port: u16,
    /// Masquerade outbound traffic.
    pub nat_enabled: bool,
}

/// What [`check`] decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalCheck<'a> {
    /// The cluster CIDR asked for.
    pub cluster: IpNet,
    /// The node slice asked for.
    pub slice: IpNet,
    /// The port asked for.
    pub wg_port: u16,
    /// Every recorded network.
    pub networks: &'a [NetworkEntry],
    /// The configured `local_pool` (named in the advice).
    pub local_pool: &'a str,
}

/// Refuse a set-up whose slice is outside its cluster CIDR, whose port is
/// 0 or a dedicated overlay's, or whose cluster CIDR overlaps another
/// network of this node.
pub fn check(input: GlobalCheck<'_>) -> Result<(), Refusal> {
    check_slice(input.cluster, input.slice).map_err(|e| Refusal::Invalid(e.to_string()))?;
    if input.wg_port == 0 {
        return Err(Refusal::Invalid("wg_port must not be 0".into()));
    }
    if let Some(e) = input
        .networks
        .iter()
        .find(|e| e.wg_port == Some(input.wg_port) && e.owner != Owner::Base)
    {
        return Err(Refusal::Conflict(format!(
            "port {} is used by the dedicated overlay of {}; choose another wg_port",
            input.wg_port, e.owner
        )));
    }
    let cluster = input.cluster;
    for e in input.networks.iter().filter(|e| e.owner != Owner::Base) {
        let subnets = std::iter::once(&e.subnet).chain(e.subnet_v6.as_ref());
        for s in subnets.filter_map(|s| s.parse::<IpNet>().ok()) {
            if overlaps(&s, &cluster) {
                return Err(Refusal::Conflict(format!(
                    "cluster CIDR {cluster} overlaps {}'s subnet {s}; choose a cluster CIDR outside local_pool ({})",
                    e.owner, input.local_pool
                )));
            }
        }
    }
    Ok(())
}

/// What [`plan_slice_change`] decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceChange<'a> {
    /// The desired overlay on record.
    pub previous: Option<&'a GlobalDesired>,
    /// The one asked for.
    pub rec: &'a GlobalDesired,
    /// The recorded base network.
    pub base: Option<NetworkEntry>,
    /// The live link holding its bridge's name.
    pub base_bridge: LinkFact,
    /// Containers attached to it.
    pub base_attached: usize,
}

/// A changed slice removes the base network first (refused while
/// containers are on it); an unchanged one needs nothing.
pub fn plan_slice_change(input: SliceChange<'_>) -> Result<Plan, Refusal> {
    let Some(prev) = input.previous else {
        return Ok(Plan::default());
    };
    if prev.slice_cidr == input.rec.slice_cidr {
        return Ok(Plan::default());
    }
    if input.base_attached > 0 {
        return Err(Refusal::Conflict(format!(
            "the node slice is {} with attached containers; detach them before changing it to {}",
            prev.slice_cidr, input.rec.slice_cidr
        )));
    }
    match &input.base {
        Some(base) => bridge::plan_remove(base, input.base_bridge, input.base_attached),
        None => Ok(Plan::default()),
    }
}

/// What [`plan_base`] decides on.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseSetup<'a> {
    /// The overlay to set up.
    pub rec: GlobalDesired,
    /// The one on record (put back by the undo).
    pub previous: Option<GlobalDesired>,
    /// The port band's global port now (put back by the undo).
    pub band_port: u16,
    /// The base bridge on the slice.
    pub bridge: EnsureBridge<'a>,
    /// The device's name (from the namer).
    pub device: String,
    /// The node's public key.
    pub public_key: String,
}

/// Decide the base overlay's set-up. Its entry is rewritten only when the
/// port, device name or key changed.
pub fn plan_base(input: BaseSetup<'_>) -> Result<bridge::BridgePlan, Refusal> {
    let mut plan = Plan::default();
    let restore = match input.previous {
        Some(p) => Step::PutGlobal { record: p },
        None => Step::RemoveGlobal { with_peers: false },
    };
    plan.push_undoable(
        Step::PutGlobal {
            record: input.rec.clone(),
        },
        vec![restore],
    );
    plan.push_undoable(
        Step::SetGlobalPort {
            port: input.rec.wg_port,
        },
        vec![Step::SetGlobalPort {
            port: input.band_port,
        }],
    );
    let BridgePlan {
        entry: bridged,
        created,
        plan: bridge_plan,
    } = bridge::plan_ensure(input.bridge)?;
    plan.extend(bridge_plan);
    let mut entry = bridged.clone();
    let changed = entry.wg_port != Some(input.rec.wg_port)
        || entry.interface.as_deref() != Some(input.device.as_str())
        || entry.wg_public_key.as_deref() != Some(input.public_key.as_str());
    if changed {
        entry.wg_port = Some(input.rec.wg_port);
        entry.interface = Some(input.device.clone());
        entry.wg_public_key = Some(input.public_key);
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
    let undo = if created {
        vec![Step::DeleteDevice { name: input.device }]
    } else {
        Vec::new()
    };
    plan.push_partial(
        Step::RealizeDevice {
            entry: entry.clone(),
        },
        undo,
    );
    plan.push(Step::ApplyFirewall);
    Ok(BridgePlan {
        entry,
        created,
        plan,
    })
}

/// Decide `teardown_global_overlay`: refused while containers are on the
/// base network; the desired record and the base peers go first, the band
/// moves back to the configured port, then the base network goes.
pub fn plan_teardown(
    base: Option<&NetworkEntry>,
    base_bridge: LinkFact,
    base_attached: usize,
    configured_port: u16,
) -> Result<Plan, Refusal> {
    bridge::refuse_attached(&Owner::Base, base_attached)?;
    let mut plan = Plan::default();
    plan.push(Step::RemoveGlobal { with_peers: true });
    plan.push(Step::SetGlobalPort {
        port: configured_port,
    });
    if let Some(base) = base {
        plan.extend(bridge::plan_remove(base, base_bridge, base_attached)?);
    }
    Ok(plan)
}
