//! The daemon's thin adapter over `overlayd-engine`: names, tags, subnets,
//! addresses and the firewall spec, with engine errors turned into
//! operation errors. Decisions live in the engine; this file only wires them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use overlayd_engine::ipam::{AddressPicker, Reserved, SubnetPlanner, UsedSubnet};
use overlayd_engine::naming::{NamePrefix, Namer as EngineNamer};
use overlayd_engine::tag::Tag;
use overlayd_host::{FirewallSpec, MasqueradeNet};
use overlayd_state::{Marker, Owner};

use super::error::{OpError, OpResult};

/// Interface names of this instance (a thin wrapper returning `String`s).
#[derive(Debug, Clone)]
pub struct Namer(EngineNamer);

impl Namer {
    /// The bridge of a network.
    pub fn bridge(&self, owner: &Owner) -> String {
        self.0.bridge(owner).as_str().to_string()
    }

    /// The WireGuard device of a network.
    pub fn wireguard(&self, owner: &Owner) -> String {
        self.0.wireguard(owner).as_str().to_string()
    }

    /// The host end of an attachment's veth.
    pub fn veth(&self, handle_key: &str) -> String {
        self.0.veth(handle_key).as_str().to_string()
    }

    /// The engine namer.
    pub fn engine(&self) -> &EngineNamer {
        &self.0
    }
}

/// A namer for a validated prefix (the config validates it at start; an
/// invalid one falls back to the default).
pub fn namer(prefix: &str) -> Namer {
    let p = prefix
        .parse::<NamePrefix>()
        .unwrap_or_else(|_| NamePrefix::default());
    Namer(EngineNamer::new(p))
}

/// Parse a CIDR argument with a clear error.
pub fn parse_cidr(s: &str) -> OpResult<IpNet> {
    Ok(overlayd_engine::request::parse_subnet(s)?)
}

/// The gateway of a subnet (its first host address) with the subnet's prefix.
pub fn gateway_cidr(subnet: IpNet) -> OpResult<IpNet> {
    Ok(overlayd_engine::request::gateway_cidr(subnet)?)
}

/// The lowest free address of a subnet given what is leased.
pub fn pick_address(subnet: IpNet, leased: &BTreeSet<IpAddr>) -> OpResult<IpAddr> {
    AddressPicker::new(subnet)
        .and_then(|p| p.pick(leased))
        .map_err(|e| OpError::Conflict(e.to_string()))
}

/// Choose a subnet for `owner`: the requested one after overlap checks, or
/// the lowest free one of the pool.
pub fn pick_subnet(
    owner: &Owner,
    pool: IpNet,
    prefix_len: u8,
    requested: Option<IpNet>,
    used: &[(String, IpNet)],
    reserved: &[IpNet],
) -> OpResult<IpNet> {
    let planner =
        SubnetPlanner::new(pool, prefix_len).map_err(|e| OpError::Invalid(e.to_string()))?;
    let used: Vec<UsedSubnet> = used
        .iter()
        .map(|(o, s)| UsedSubnet::new(*s, o.clone()))
        .collect();
    let reserved: Vec<Reserved> = reserved.iter().map(|r| Reserved::cluster(*r)).collect();
    match requested {
        Some(r) => planner
            .check_requested(r, &owner.to_string(), &used, &reserved)
            .map_err(|e| OpError::Conflict(e.to_string())),
        None => planner
            .allocate(&used, &reserved)
            .map_err(|e| OpError::Conflict(e.to_string())),
    }
}

/// The id of the daemon instance using `data_dir`: a stable digest of the
/// directory's canonical path (10 hex digits). Two daemons in one namespace
/// need two data directories (the instance lock), so their ids differ; the
/// same directory gives the same id across restarts, upgrades and a lost
/// marker, and purge computes it without the daemon.
pub fn instance_id(data_dir: &std::path::Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let h = overlayd_engine::hash::stable_hash(
        "overlayd-instance-v1",
        &[path.as_os_str().as_encoded_bytes()],
    );
    overlayd_engine::hash::hex64(h)[..10].to_string()
}

/// The ifalias tag of a network link made by instance `inst`.
pub fn network_tag(owner: &Owner, id: &str, inst: &str) -> String {
    Tag::network(owner, id)
        .and_then(|t| t.in_instance(inst))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| format!("{} owner={owner}", overlayd_engine::tag::TAG_PREFIX))
}

/// The ifalias tag of an attachment's veth made by instance `inst`.
pub fn attach_tag(key: &str, id: &str, inst: &str) -> String {
    Tag::attachment(key, id)
        .and_then(|t| t.in_instance(inst))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| overlayd_engine::tag::TAG_PREFIX.to_string())
}

/// Whether a link's alias is a tag of another daemon instance than `inst`
/// (such links are invisible to this one: never adopted, collected or
/// purged).
pub fn is_foreign_instance(alias: Option<&str>, inst: &str) -> bool {
    alias
        .and_then(parse_tag)
        .is_some_and(|t| !t.belongs_to(inst))
}

/// Parse an ifalias as an overlayd tag.
pub fn parse_tag(alias: &str) -> Option<Tag> {
    overlayd_engine::tag::parse_tag(alias)
}

/// Whether an alias is our tag for exactly this owner and id.
pub fn tag_matches(alias: Option<&str>, owner: &Owner, id: &str) -> bool {
    alias
        .and_then(parse_tag)
        .is_some_and(|t| t.is_network(owner, id))
}

/// Whether an alias is our tag for this attachment.
pub fn attach_tag_matches(alias: Option<&str>, key: &str, id: &str) -> bool {
    alias
        .and_then(parse_tag)
        .is_some_and(|t| t.is_attachment(key, Some(id)))
}

/// Whether an alias is any overlayd tag naming this owner.
pub fn tag_names_owner(alias: Option<&str>, owner: &Owner) -> bool {
    alias
        .and_then(parse_tag)
        .is_some_and(|t| t.owner() == Some(owner))
}

/// The nftables intent for the networks recorded now: every bridge network
/// (both subnets of a dual-stack one) is forwarded and masqueraded on its way out (the base network only with
/// NAT enabled, never towards the cluster; overlay networks never towards
/// their peers); isolation bridges may not talk to each other.
pub fn firewall_spec(
    marker: &Marker,
    global: Option<&super::records::GlobalRecord>,
    peer_cidrs: &[(String, IpNet)],
) -> FirewallSpec {
    let mut spec = FirewallSpec::default();
    for e in marker.iter().filter(|e| e.is_linux_managed()) {
        if e.kind != overlayd_state::entry::KIND_LINUX_BRIDGE {
            continue;
        }
        let Ok(subnet) = e.subnet.parse::<IpNet>() else {
            continue;
        };
        let owner_s = e.owner.to_string();
        let mut exclude: Vec<IpNet> = peer_cidrs
            .iter()
            .filter(|(o, _)| *o == owner_s)
            .map(|(_, n)| n.trunc())
            .collect();
        let masquerade = match (&e.owner, global) {
            (Owner::Base, Some(g)) => {
                exclude.extend(g.cluster_cidr.parse::<IpNet>().ok().map(|n| n.trunc()));
                g.nat_enabled
            }
            (Owner::Base, None) => false,
            _ => true,
        };
        if masquerade {
            // A dual-stack network is masqueraded in both families (the
            // ruleset keeps each exclusion to its own family).
            let v6 = e.subnet_v6.as_deref().and_then(|s| s.parse::<IpNet>().ok());
            for net in std::iter::once(subnet).chain(v6) {
                spec.masquerade.push(MasqueradeNet {
                    subnet: net.trunc(),
                    bridge: e.name.clone(),
                    exclude: exclude.clone(),
                });
            }
        }
        spec.accept_bridges.push(e.name.clone());
        if let Some(dev) = &e.interface {
            spec.accept_bridges.push(dev.clone());
        }
        if matches!(e.owner, Owner::Isolation(_)) {
            spec.isolation_bridges.push(e.name.clone());
        }
    }
    spec.normalized()
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlayd_state::entry::KIND_LINUX_BRIDGE;
    use overlayd_state::NetworkEntry;

    #[test]
    fn a_dual_stack_network_is_masqueraded_in_both_families_and_needs_v6_forwarding() {
        let mut marker = Marker::new();
        let mut e = NetworkEntry::new(
            Owner::isolation("ds").unwrap(),
            KIND_LINUX_BRIDGE,
            "br-ds",
            "id",
            "10.201.1.0/24",
        );
        e.subnet_v6 = Some("fd42:6f76:6c64::/64".into());
        marker.upsert(e);
        marker.upsert(NetworkEntry::new(
            Owner::isolation("v4").unwrap(),
            KIND_LINUX_BRIDGE,
            "br-v4",
            "id2",
            "10.201.2.0/24",
        ));
        let spec = firewall_spec(&marker, None, &[]);
        let masq: Vec<(String, String)> = spec
            .masquerade
            .iter()
            .map(|m| (m.bridge.clone(), m.subnet.to_string()))
            .collect();
        assert_eq!(
            masq,
            vec![
                ("br-ds".to_string(), "10.201.1.0/24".to_string()),
                ("br-v4".to_string(), "10.201.2.0/24".to_string()),
                ("br-ds".to_string(), "fd42:6f76:6c64::/64".to_string()),
            ]
        );
        // IPv6 forwarding follows from the v6 masquerade, and only from it.
        assert_eq!(
            super::super::forwarding::needed(&spec),
            overlayd_host::Forwarding {
                ipv4: Some(true),
                ipv6: Some(true)
            }
        );
        let mut v4_only = spec.clone();
        v4_only.masquerade.retain(|m| m.bridge != "br-ds");
        assert_eq!(super::super::forwarding::needed(&v4_only).ipv6, None);
    }
}
