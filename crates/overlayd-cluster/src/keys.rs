//! Key layout under the cluster prefix and the JSON records stored there.
//!
//! ```text
//! <prefix>/config                 ClusterConfig (no lease; created once)
//! <prefix>/slices/<a.b.c.d_len>   owning node name (claim lease)
//! <prefix>/subnets/<a.b.c.d_len>  "<node>|<network owner>" (claim lease)
//! <prefix>/members/<node>         Member (presence lease)
//! <prefix>/dns/<node>/<name>      DnsEntry (presence lease)
//! ```

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Cluster-wide parameters every member must agree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Cluster CIDR (node slices are carved from it).
    pub cluster_cidr: String,
    /// Prefix length of a node slice.
    pub slice_prefix_len: u8,
    /// Range that cross-node service subnets are carved from.
    pub service_range: String,
    /// Prefix length of a service subnet.
    pub service_prefix_len: u8,
    /// Global WireGuard port of every node.
    pub global_port: u16,
}

impl ClusterConfig {
    /// Why `other` (the stored config) disagrees with this node's, if it does.
    pub fn disagreement(&self, stored: &ClusterConfig) -> Option<String> {
        let mut diffs = Vec::new();
        let mut cmp = |what: &str, mine: String, theirs: String| {
            if mine != theirs {
                diffs.push(format!("{what} is {theirs} in the cluster but {mine} here"));
            }
        };
        cmp(
            "cluster_cidr",
            self.cluster_cidr.clone(),
            stored.cluster_cidr.clone(),
        );
        cmp(
            "slice prefix length",
            self.slice_prefix_len.to_string(),
            stored.slice_prefix_len.to_string(),
        );
        cmp(
            "service range",
            self.service_range.clone(),
            stored.service_range.clone(),
        );
        cmp(
            "service prefix length",
            self.service_prefix_len.to_string(),
            stored.service_prefix_len.to_string(),
        );
        cmp(
            "global WireGuard port",
            self.global_port.to_string(),
            stored.global_port.to_string(),
        );
        (!diffs.is_empty()).then(|| diffs.join("; "))
    }
}

/// A dedicated service as a member advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberService {
    /// Service name.
    pub name: String,
    /// Public key of its WireGuard device.
    pub public_key: String,
    /// Its UDP port.
    pub port: u16,
    /// Its subnet.
    pub subnet: String,
}

/// A member's presence record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node name.
    pub name: String,
    /// Public key of the node's base WireGuard device.
    pub public_key: String,
    /// Underlay `ip:port` other nodes dial.
    pub endpoint: String,
    /// The node's slice.
    pub slice: String,
    /// The node's overlay address.
    pub overlay_ip: String,
    /// Dedicated services on this node.
    #[serde(default)]
    pub services: Vec<MemberService>,
    /// Unix seconds of the last write of this record.
    #[serde(default)]
    pub updated_unix: u64,
}

/// A DNS name a member serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsEntry {
    /// The name.
    pub name: String,
    /// Its addresses.
    pub ips: Vec<String>,
}

/// Keys under one cluster prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// A CIDR as a key segment (`/` is the key separator).
pub fn net_segment(net: &IpNet) -> String {
    net.to_string().replace('/', "_")
}

/// Parse a key segment made by [`net_segment`].
pub fn parse_net_segment(s: &str) -> Option<IpNet> {
    s.replacen('_', "/", 1).parse().ok()
}

impl Keys {
    /// Keys under `prefix` (a trailing `/` is ignored).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    /// The prefix itself, with a trailing `/` (what watches cover).
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The config key.
    pub fn config(&self) -> String {
        format!("{}/config", self.prefix)
    }

    /// Prefix of slice claims.
    pub fn slices(&self) -> String {
        format!("{}/slices/", self.prefix)
    }

    /// A slice claim.
    pub fn slice(&self, net: &IpNet) -> String {
        format!("{}{}", self.slices(), net_segment(net))
    }

    /// Prefix of service subnet claims.
    pub fn subnets(&self) -> String {
        format!("{}/subnets/", self.prefix)
    }

    /// A service subnet claim.
    pub fn subnet(&self, net: &IpNet) -> String {
        format!("{}{}", self.subnets(), net_segment(net))
    }

    /// Prefix of member records.
    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }

    /// A member record.
    pub fn member(&self, node: &str) -> String {
        format!("{}{node}", self.members())
    }

    /// Prefix of DNS records.
    pub fn dns_root(&self) -> String {
        format!("{}/dns/", self.prefix)
    }

    /// Prefix of one node's DNS records.
    pub fn dns_of(&self, node: &str) -> String {
        format!("{}{node}/", self.dns_root())
    }

    /// One DNS record.
    pub fn dns(&self, node: &str, name: &str) -> String {
        format!("{}{name}", self.dns_of(node))
    }

    /// What a key under the prefix is.
    pub fn classify<'a>(&self, key: &'a str) -> KeyKind<'a> {
        let Some(rest) = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return KeyKind::Other;
        };
        if let Some(n) = rest.strip_prefix("members/") {
            return KeyKind::Member(n);
        }
        if let Some(r) = rest.strip_prefix("dns/") {
            if let Some((node, name)) = r.split_once('/') {
                return KeyKind::Dns(node, name);
            }
        }
        KeyKind::Other
    }
}

/// What a key is, for the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind<'a> {
    /// A member record of this node name.
    Member(&'a str),
    /// A DNS record: (node, name).
    Dns(&'a str, &'a str),
    /// Anything else (config, claims).
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_and_segments() {
        let k = Keys::new("/overlayd/v1/default/");
        assert_eq!(k.member("n1"), "/overlayd/v1/default/members/n1");
        assert_eq!(k.classify(&k.member("n1")), KeyKind::Member("n1"));
        assert_eq!(
            k.classify(&k.dns("n1", "web.x")),
            KeyKind::Dns("n1", "web.x")
        );
        assert_eq!(k.classify(&k.config()), KeyKind::Other);
        assert_eq!(k.classify("/other/members/x"), KeyKind::Other);
        let n: IpNet = "10.200.3.0/24".parse().unwrap();
        assert_eq!(k.slice(&n), "/overlayd/v1/default/slices/10.200.3.0_24");
        assert_eq!(parse_net_segment(&net_segment(&n)), Some(n));
    }

    #[test]
    fn disagreement_names_the_field() {
        let a = ClusterConfig {
            cluster_cidr: "10.200.0.0/16".into(),
            slice_prefix_len: 24,
            service_range: "10.202.0.0/16".into(),
            service_prefix_len: 24,
            global_port: 51820,
        };
        assert_eq!(a.disagreement(&a), None);
        let mut b = a.clone();
        b.global_port = 51999;
        let why = a.disagreement(&b).unwrap();
        assert!(
            why.contains("global WireGuard port is 51999 in the cluster but 51820 here"),
            "{why}"
        );
    }
}
