//! Published ports in overlayd's nftables table, as values.
//!
//! Every published port is one **element** in one pair of maps, never a rule
//! of its own, so publishing and unpublishing is an element add or delete in
//! one small nfnetlink batch ([`super::elements`]; no table rebuild, no
//! process, no proxy):
//!
//! | maps | key | values |
//! |---|---|---|
//! | `publish4_any` + `publish4_any_port` (and `6`) | `l4proto . port` | container address; container port |
//! | `publish4_addr` + `publish4_addr_port` (and `6`) | `host address . l4proto . port` | container address; container port |
//!
//! (Address and port live in two maps with the same key because nft 1.0.6
//! cannot create a map with concatenated data from JSON.) The maps, with all
//! their elements, are also part of the whole table written by
//! [`super::ruleset::apply_batch`], so a restore brings every mapping back.
//! The fixed rules around them are in [`super::publish_rules`].

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{Map, NfListObject};
use nftables::types::NfFamily;
use serde::{Deserialize, Serialize};

pub use super::publish_rules::{INPUT_CHAIN, OUTPUT_CHAIN, PREROUTING_CHAIN};
use super::ruleset::string;
use crate::error::{HostError, Result};
use crate::types::validate_ifname;

/// Transport protocol of a published port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum L4Proto {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl L4Proto {
    /// The keyword nft uses.
    pub fn as_str(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (`IPPROTO_TCP`, `IPPROTO_UDP`, `IPPROTO_SCTP`):
    /// the one byte an `inet_proto` key field holds.
    pub fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => libc::IPPROTO_TCP as u8,
            L4Proto::Udp => libc::IPPROTO_UDP as u8,
            L4Proto::Sctp => libc::IPPROTO_SCTP as u8,
        }
    }
}

impl fmt::Display for L4Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for L4Proto {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tcp" => Ok(L4Proto::Tcp),
            "udp" => Ok(L4Proto::Udp),
            "sctp" => Ok(L4Proto::Sctp),
            other => Err(HostError::InvalidArgument(format!(
                "unknown protocol {other:?} (expected tcp, udp or sctp)"
            ))),
        }
    }
}

/// One published host port: one element of one map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublishedPort {
    /// `tcp`, `udp` or `sctp`.
    pub protocol: L4Proto,
    /// The host address it answers on; `None` = every local address but loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// Where it goes.
    pub container_ip: IpAddr,
    /// The container port.
    pub container_port: u16,
    /// The bridge the container is on.
    pub bridge: String,
}

impl PublishedPort {
    /// Checks ports, families and the bridge name.
    pub fn validate(&self) -> Result<()> {
        validate_ifname(&self.bridge)?;
        if self.host_port == 0 || self.container_port == 0 {
            return Err(HostError::InvalidArgument(format!(
                "{self}: port 0 cannot be published"
            )));
        }
        if let Some(h) = self.host_ip {
            if h.is_ipv4() != self.container_ip.is_ipv4() {
                return Err(HostError::InvalidArgument(format!(
                    "{self}: host address and container address are of different IP families"
                )));
            }
            if h.is_unspecified() {
                return Err(HostError::InvalidArgument(format!(
                    "{self}: use no host address (not {h}) to publish on every address"
                )));
            }
            if let IpAddr::V6(a) = h {
                if a.is_loopback() {
                    return Err(HostError::InvalidArgument(format!(
                        "{self}: Linux cannot forward ::1 to another interface; publish on 127.0.0.1 or a host address"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether it answers only on a loopback address (and needs `route_localnet`).
    pub fn is_loopback(&self) -> bool {
        self.host_ip.is_some_and(|h| h.is_loopback())
    }

    pub(crate) fn v4(&self) -> bool {
        self.container_ip.is_ipv4()
    }

    /// The map holding this port's element.
    pub fn map_name(&self) -> &'static str {
        match (self.v4(), self.host_ip.is_some()) {
            (true, false) => "publish4_any",
            (true, true) => "publish4_addr",
            (false, false) => "publish6_any",
            (false, true) => "publish6_addr",
        }
    }

    fn key(&self) -> Expression<'static> {
        let mut parts = Vec::with_capacity(3);
        if let Some(h) = self.host_ip {
            parts.push(string(&h.to_string()));
        }
        parts.push(string(self.protocol.as_str()));
        parts.push(Expression::Number(u32::from(self.host_port)));
        Expression::Named(NamedExpression::Concat(parts))
    }

    /// The element of the address map (`port == false`) or the port map.
    fn element(&self, port: bool) -> Expression<'static> {
        let value = if port {
            Expression::Number(u32::from(self.container_port))
        } else {
            string(&self.container_ip.to_string())
        };
        Expression::List(vec![self.key(), value])
    }
}

impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            Some(IpAddr::V4(a)) => write!(f, "{a}:")?,
            None => {}
        }
        match self.container_ip {
            IpAddr::V6(c) => write!(
                f,
                "{}/{} -> [{c}]:{}",
                self.host_port, self.protocol, self.container_port
            ),
            IpAddr::V4(c) => write!(
                f,
                "{}/{} -> {c}:{}",
                self.host_port, self.protocol, self.container_port
            ),
        }
    }
}

/// The maps by name, with (IPv4, keyed by host address).
pub(crate) const MAPS: [(&str, bool, bool); 4] = [
    ("publish4_any", true, false),
    ("publish4_addr", true, true),
    ("publish6_any", false, false),
    ("publish6_addr", false, true),
];

/// The name of the port map that goes with address map `map`.
pub(crate) fn port_map(map: &str) -> String {
    format!("{map}_port")
}

fn map_object(
    table: &str,
    (name, v4, by_addr): (&str, bool, bool),
    port: bool,
    ports: &[PublishedPort],
) -> NfListObject<'static> {
    use nftables::schema::{SetType, SetTypeValue};
    let addr = if v4 {
        SetType::Ipv4Addr
    } else {
        SetType::Ipv6Addr
    };
    let mut key = Vec::new();
    if by_addr {
        key.push(addr);
    }
    key.extend([SetType::InetProto, SetType::InetService]);
    let elems: Vec<Expression<'static>> = ports
        .iter()
        .filter(|p| p.map_name() == name)
        .map(|p| p.element(port))
        .collect();
    NfListObject::Map(Box::new(Map {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(if port {
            port_map(name)
        } else {
            name.to_string()
        }),
        set_type: SetTypeValue::Concatenated(Cow::Owned(key)),
        map: SetTypeValue::Single(if port { SetType::InetService } else { addr }),
        elem: (!elems.is_empty()).then_some(Cow::Owned(elems)),
        ..Map::default()
    }))
}

/// The eight maps with their elements.
pub(crate) fn maps(table: &str, ports: &[PublishedPort]) -> Vec<NfListObject<'static>> {
    MAPS.iter()
        .flat_map(|m| {
            [
                map_object(table, *m, false, ports),
                map_object(table, *m, true, ports),
            ]
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A published port on bridge `br0` (tests of this module and of
    /// `elements`).
    pub(crate) fn port(
        host_ip: Option<&str>,
        proto: L4Proto,
        hp: u16,
        cip: &str,
        cp: u16,
    ) -> PublishedPort {
        PublishedPort {
            protocol: proto,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port: hp,
            container_ip: cip.parse().unwrap(),
            container_port: cp,
            bridge: "br0".into(),
        }
    }

    #[test]
    fn elements_land_in_the_map_of_their_family_and_binding() {
        assert_eq!(
            port(None, L4Proto::Tcp, 80, "10.0.0.2", 80).map_name(),
            "publish4_any"
        );
        assert_eq!(
            port(Some("127.0.0.1"), L4Proto::Tcp, 80, "10.0.0.2", 80).map_name(),
            "publish4_addr"
        );
        assert_eq!(
            port(None, L4Proto::Udp, 53, "fd00::2", 53).map_name(),
            "publish6_any"
        );
        let v = serde_json::to_value(maps("t", &[port(None, L4Proto::Udp, 5353, "10.0.0.2", 53)]))
            .unwrap();
        assert_eq!(v[0]["map"]["name"], "publish4_any");
        assert_eq!(
            v[0]["map"]["elem"],
            json!([[{"concat": ["udp", 5353]}, "10.0.0.2"]])
        );
        assert_eq!(v[1]["map"]["name"], "publish4_any_port");
        assert_eq!(
            v[1]["map"]["elem"],
            json!([[{"concat": ["udp", 5353]}, 53]])
        );
        assert_eq!(v[0]["map"]["type"], json!(["inet_proto", "inet_service"]));
        assert_eq!(
            v[2]["map"]["type"],
            json!(["ipv4_addr", "inet_proto", "inet_service"])
        );
        assert_eq!(v[2]["map"]["map"], json!("ipv4_addr"));
        assert_eq!(v[3]["map"]["map"], json!("inet_service"));
        assert!(
            v[2]["map"].get("elem").is_none(),
            "empty maps list no elements"
        );
    }

    #[test]
    fn validate_refuses_mixed_families_v6_loopback_and_unspecified() {
        let mut p = port(Some("fd00::1"), L4Proto::Tcp, 80, "10.0.0.2", 80);
        assert!(p.validate().is_err());
        p = port(Some("::1"), L4Proto::Tcp, 80, "fd00::2", 80);
        assert!(p.validate().unwrap_err().to_string().contains("::1"));
        p = port(Some("0.0.0.0"), L4Proto::Tcp, 80, "10.0.0.2", 80);
        assert!(p.validate().is_err());
        p = port(Some("127.0.0.1"), L4Proto::Tcp, 80, "10.0.0.2", 80);
        p.validate().unwrap();
        assert!(p.is_loopback());
    }
}
