//! One marker entry: a host-level network overlayd created (SPEC §2, v1 shape).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::owner::Owner;

/// Marker `kind` of a Linux bridge made by overlayd.
pub const KIND_LINUX_BRIDGE: &str = "linux-bridge";
/// Marker `kind` of a Linux WireGuard device (kernel or userspace) made by overlayd.
pub const KIND_LINUX_WIREGUARD: &str = "linux-wireguard";
/// Marker `kind` of a Windows HCN internal network (written on Windows; kept here).
pub const KIND_HCN_INTERNAL: &str = "hcn-internal";

/// Kinds the Linux host backend can create, adopt and delete.
pub const LINUX_KINDS: &[&str] = &[KIND_LINUX_BRIDGE, KIND_LINUX_WIREGUARD];

/// A marker entry. Field names and optionality are the v1 on-disk contract;
/// fields this build does not know are kept in `extra` and written back.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkEntry {
    /// Who the network belongs to; unique within a marker.
    pub owner: Owner,
    /// Backend-specific kind: which API deletes it (`linux-bridge`, `hcn-internal`, …).
    pub kind: String,
    /// Host object name (the interface name on Linux).
    pub name: String,
    /// Host-addressable identity (on Linux a UUID also written into `ifalias`).
    pub id: String,
    /// The network's subnet (CIDR string).
    pub subnet: String,
    /// WireGuard UDP listen port, for overlay devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_port: Option<u16>,
    /// WireGuard private key (base64). Secret: never log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_private_key: Option<String>,
    /// WireGuard public key (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_public_key: Option<String>,
    /// Secondary interface (e.g. the WireGuard device beside a service bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Extension: the IPv6 subnet of a dual-stack network (`subnet` is then
    /// its IPv4 subnet). Omitted for single-stack networks, so their entries
    /// keep the v1 shape; a reader that does not know it keeps it as an
    /// unknown field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_v6: Option<String>,
    /// Unknown fields, preserved across rewrites.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Debug output never shows the private key.
impl std::fmt::Debug for NetworkEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkEntry")
            .field("owner", &self.owner)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("id", &self.id)
            .field("subnet", &self.subnet)
            .field("wg_port", &self.wg_port)
            .field(
                "wg_private_key",
                &self.wg_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("wg_public_key", &self.wg_public_key)
            .field("interface", &self.interface)
            .field("subnet_v6", &self.subnet_v6)
            .field("extra", &self.extra)
            .finish()
    }
}

impl NetworkEntry {
    /// A new entry with only the always-present fields set.
    pub fn new(owner: Owner, kind: &str, name: &str, id: &str, subnet: &str) -> Self {
        NetworkEntry {
            owner,
            kind: kind.to_string(),
            name: name.to_string(),
            id: id.to_string(),
            subnet: subnet.to_string(),
            wg_port: None,
            wg_private_key: None,
            wg_public_key: None,
            interface: None,
            subnet_v6: None,
            extra: Map::new(),
        }
    }

    /// Whether the Linux backend can manage this entry's kind.
    pub fn is_linux_managed(&self) -> bool {
        LINUX_KINDS.contains(&self.kind.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_v6_is_omitted_when_absent_and_round_trips_when_present() {
        let mut e = NetworkEntry::new(
            Owner::isolation("a").unwrap(),
            KIND_LINUX_BRIDGE,
            "b",
            "i",
            "10.0.0.0/24",
        );
        let v1 = serde_json::to_value(&e).unwrap();
        assert!(v1.get("subnet_v6").is_none(), "{v1}");
        e.subnet_v6 = Some("fd42::/64".into());
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["subnet_v6"], "fd42::/64");
        let back: NetworkEntry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert!(back.extra.is_empty());
        // An entry written before the field existed loads without it.
        let old: NetworkEntry = serde_json::from_value(v1).unwrap();
        assert_eq!(old.subnet_v6, None);
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let mut e = NetworkEntry::new(Owner::Base, KIND_LINUX_BRIDGE, "b", "i", "10.0.0.0/24");
        e.wg_private_key = Some("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=".into());
        let d = format!("{e:?}");
        assert!(!d.contains("c2VjcmV0"), "{d}");
        assert!(d.contains("<redacted>"));
    }
}
