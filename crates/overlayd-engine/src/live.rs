//! The engine's own read-only view of live host links, filled in by the
//! host layer from a netlink dump. Kept minimal so the engine never depends
//! on the host crate.

use ipnet::IpNet;

use crate::tag::{is_overlayd_alias, parse_tag, Tag};

/// Link kind of a Linux bridge (`IFLA_INFO_KIND`).
pub const LINK_KIND_BRIDGE: &str = "bridge";
/// Link kind of a kernel WireGuard device.
pub const LINK_KIND_WIREGUARD: &str = "wireguard";
/// Link kind of a TUN device (userspace WireGuard).
pub const LINK_KIND_TUN: &str = "tun";
/// Link kind of a veth end.
pub const LINK_KIND_VETH: &str = "veth";

/// One live link as seen in a dump of the daemon's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLink {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// `IFLA_INFO_KIND` (`bridge`, `wireguard`, `tun`, `veth`, …); empty if none.
    pub kind: String,
    /// `ifalias`, if set.
    pub alias: Option<String>,
    /// Addresses configured on the link (used to rebuild subnets).
    pub addresses: Vec<IpNet>,
}

impl LiveLink {
    /// A link without addresses.
    pub fn new(name: &str, index: u32, kind: &str, alias: Option<&str>) -> Self {
        LiveLink {
            name: name.to_string(),
            index,
            kind: kind.to_string(),
            alias: alias.map(str::to_string),
            addresses: Vec::new(),
        }
    }

    /// The parsed ownership tag, if the alias is a v1 overlayd tag.
    pub fn tag(&self) -> Option<Tag> {
        self.alias.as_deref().and_then(parse_tag)
    }

    /// Whether the alias belongs to overlayd's tag family (any version).
    pub fn has_overlayd_alias(&self) -> bool {
        self.alias.as_deref().is_some_and(is_overlayd_alias)
    }

    /// A short reference to this link for plans.
    pub fn link_ref(&self) -> LinkRef {
        LinkRef {
            name: self.name.clone(),
            index: self.index,
        }
    }
}

/// A live link named in a plan: its name and the index it had when the
/// plan was made (so the executor can refuse if the link was replaced).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkRef {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
}

/// Whether a live link kind can implement a marker entry kind.
pub fn kind_matches(entry_kind: &str, link_kind: &str) -> bool {
    use overlayd_model::entry::{KIND_LINUX_BRIDGE, KIND_LINUX_WIREGUARD};
    match entry_kind {
        KIND_LINUX_BRIDGE => link_kind == LINK_KIND_BRIDGE,
        KIND_LINUX_WIREGUARD => link_kind == LINK_KIND_WIREGUARD || link_kind == LINK_KIND_TUN,
        _ => false,
    }
}

/// The marker entry kind implemented by a live link kind, if any.
pub fn entry_kind_for(link_kind: &str) -> Option<&'static str> {
    use overlayd_model::entry::{KIND_LINUX_BRIDGE, KIND_LINUX_WIREGUARD};
    match link_kind {
        LINK_KIND_BRIDGE => Some(KIND_LINUX_BRIDGE),
        LINK_KIND_WIREGUARD | LINK_KIND_TUN => Some(KIND_LINUX_WIREGUARD),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert!(kind_matches("linux-bridge", "bridge"));
        assert!(kind_matches("linux-wireguard", "wireguard"));
        assert!(kind_matches("linux-wireguard", "tun"));
        assert!(!kind_matches("linux-bridge", "veth"));
        assert!(!kind_matches("hcn-internal", "bridge"));
        assert_eq!(entry_kind_for("tun"), Some("linux-wireguard"));
        assert_eq!(entry_kind_for("dummy"), None);
    }

    #[test]
    fn tag_accessors() {
        let l = LiveLink::new("x", 3, "bridge", Some("overlayd:v1 owner=base id=a1"));
        assert!(l.tag().is_some());
        assert!(l.has_overlayd_alias());
        let l = LiveLink::new("x", 3, "bridge", Some("overlayd:v9 something"));
        assert!(l.tag().is_none());
        assert!(l.has_overlayd_alias());
        assert_eq!(
            l.link_ref(),
            LinkRef {
                name: "x".into(),
                index: 3
            }
        );
    }
}
