//! Published ports in overlayd's nftables table, as values.
//!
//! Every published port is one **element** in one pair of maps, never a rule
//! of its own, so publishing and unpublishing is an element add or delete in
//! one small batch (no table rebuild, no proxy process):
//!
//! | maps | key | values |
//! |---|---|---|
//! | `publish4_any` + `publish4_any_port` (and `6`) | `l4proto . port` | container address; container port |
//! | `publish4_addr` + `publish4_addr_port` (and `6`) | `host address . l4proto . port` | container address; container port |
//!
//! (Address and port live in two maps with the same key because nft 1.0.6
//! cannot create a map with concatenated data from JSON.)
//!
//! The rules around the maps are fixed (they depend only on which bridges
//! exist):
//! - `prerouting` (nat, dstnat): DNAT for packets from other hosts and from
//!   containers to a local address — never for a loopback destination, so a
//!   `127.0.0.1` publish cannot be reached from the wire (moby#45610);
//! - `output` (nat, dstnat): the same for connections the host itself opens;
//!   only an explicit `127.0.0.1` publish answers on loopback;
//! - `postrouting` (nat, srcnat): hairpin masquerade when a DNATed packet
//!   from a bridge's subnet leaves through that bridge, and masquerade of DNATed
//!   connections from `127.0.0.0/8` (which needs `route_localnet` on that
//!   bridge, set only where a loopback publish lives);
//! - `input` (filter): new connections from a bridge to `127.0.0.0/8` are
//!   dropped, so `route_localnet` never exposes the host's loopback services
//!   to containers.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Map as MapExpr, MetaKey, NamedExpression, CT,
};
use nftables::schema::{Element, Map, NfListObject, Nftables};
use nftables::stmt::{NATFamily, Operator, Statement, NAT};
use nftables::types::NfFamily;
use serde::{Deserialize, Serialize};

use super::ruleset::{cidr, matches, meta, names, payload, rule, string};
use crate::error::{HostError, Result};
use crate::types::validate_ifname;

/// Name of the nat chain hooked at `prerouting`.
pub const PREROUTING_CHAIN: &str = "prerouting";
/// Name of the nat chain hooked at `output`.
pub const OUTPUT_CHAIN: &str = "output";
/// Name of the filter chain hooked at `input`.
pub const INPUT_CHAIN: &str = "input";

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

    fn v4(&self) -> bool {
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

const MAPS: [(&str, bool, bool); 4] = [
    ("publish4_any", true, false),
    ("publish4_addr", true, true),
    ("publish6_any", false, false),
    ("publish6_addr", false, true),
];

fn port_map(map: &str) -> String {
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

fn fib_local() -> Statement<'static> {
    matches(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags: [FibFlag::Daddr].into_iter().collect(),
        })),
        Operator::EQ,
        string("local"),
    )
}

fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

fn dnat_map(v4: bool, by_addr: bool, map: &str) -> Statement<'static> {
    let proto = if v4 { "ip" } else { "ip6" };
    let mut key = Vec::new();
    if by_addr {
        key.push(payload(proto, "daddr"));
    }
    key.push(meta(MetaKey::L4proto));
    key.push(payload("th", "dport"));
    let lookup = |map: String| {
        Expression::Named(NamedExpression::Map(Box::new(MapExpr {
            key: Expression::Named(NamedExpression::Concat(key.clone())),
            data: string(&format!("@{map}")),
        })))
    };
    Statement::DNAT(Some(NAT {
        addr: Some(lookup(map.to_string())),
        family: Some(if v4 { NATFamily::IP } else { NATFamily::IP6 }),
        port: Some(lookup(port_map(map))),
        flags: None,
    }))
}

fn loopback(v4: bool) -> IpNet {
    if v4 {
        "127.0.0.0/8".parse().expect("constant CIDR")
    } else {
        "::1/128".parse().expect("constant CIDR")
    }
}

/// The DNAT rules of one nat chain (`prerouting` or `output`).
pub(crate) fn dnat_rules(table: &str, chain: &str) -> Vec<NfListObject<'static>> {
    let from_host = chain == OUTPUT_CHAIN;
    let mut out = Vec::new();
    for (map, v4, by_addr) in MAPS {
        let proto = if v4 { "ip" } else { "ip6" };
        let mut expr = vec![fib_local()];
        // Loopback destinations are DNATed only for the host itself, and
        // only when a loopback address was published explicitly.
        if !(from_host && by_addr) {
            expr.push(matches(
                payload(proto, "daddr"),
                Operator::NEQ,
                cidr(&loopback(v4)),
            ));
        }
        expr.push(dnat_map(v4, by_addr, map));
        out.push(NfListObject::Rule(rule(
            table,
            chain,
            format!("overlayd: published ports ({map})"),
            expr,
        )));
    }
    out
}

/// Hairpin and loopback masquerade rules for the `postrouting` chain.
pub(crate) fn masquerade_rules(
    table: &str,
    chain: &str,
    nets: &[(String, IpNet)],
) -> Vec<NfListObject<'static>> {
    let dnat = || matches(ct("status"), Operator::IN, string("dnat"));
    // `iifname` is unknown at postrouting: a packet from the bridge's own
    // subnet, DNATed and leaving through that bridge, is the hairpin.
    let mut out: Vec<NfListObject<'static>> = nets
        .iter()
        .map(|(b, subnet)| {
            let proto = if subnet.addr().is_ipv4() { "ip" } else { "ip6" };
            NfListObject::Rule(rule(
                table,
                chain,
                format!("overlayd: hairpin via {b}"),
                vec![
                    matches(payload(proto, "saddr"), Operator::EQ, cidr(subnet)),
                    matches(meta(MetaKey::Oifname), Operator::EQ, string(b)),
                    dnat(),
                    Statement::Masquerade(None),
                ],
            ))
        })
        .collect();
    out.push(NfListObject::Rule(rule(
        table,
        chain,
        "overlayd: published on loopback".to_string(),
        vec![
            matches(payload("ip", "saddr"), Operator::EQ, cidr(&loopback(true))),
            dnat(),
            Statement::Masquerade(None),
        ],
    )));
    out
}

/// The `input` rule keeping containers away from the host's loopback.
pub(crate) fn input_rules(table: &str, bridges: &[String]) -> Vec<NfListObject<'static>> {
    if bridges.is_empty() {
        return Vec::new();
    }
    let list: Vec<&String> = bridges.iter().collect();
    vec![NfListObject::Rule(rule(
        table,
        INPUT_CHAIN,
        "overlayd: containers never reach the host's loopback".to_string(),
        vec![
            matches(meta(MetaKey::Iifname), Operator::EQ, names(&list)),
            matches(payload("ip", "daddr"), Operator::EQ, cidr(&loopback(true))),
            matches(ct("direction"), Operator::EQ, string("original")),
            Statement::Drop(None),
        ],
    ))]
}

fn element_object(table: &str, map: &str, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(map.to_string()),
        elem: Cow::Owned(elem),
    })
}

/// The batch that adds `add` and deletes `remove` as map elements, without
/// touching anything else of the table. Deleting comes first so a port can
/// move in one batch.
pub fn update_batch(
    table: &str,
    add: &[PublishedPort],
    remove: &[PublishedPort],
) -> Nftables<'static> {
    let mut batch = Batch::new();
    for (map, _, _) in MAPS {
        let keys: Vec<Expression<'static>> = remove
            .iter()
            .filter(|p| p.map_name() == map)
            .map(|p| p.key())
            .collect();
        if !keys.is_empty() {
            batch.delete(element_object(table, &port_map(map), keys.clone()));
            batch.delete(element_object(table, map, keys));
        }
    }
    for (map, _, _) in MAPS {
        for port in [false, true] {
            let elems: Vec<Expression<'static>> = add
                .iter()
                .filter(|p| p.map_name() == map)
                .map(|p| p.element(port))
                .collect();
            if !elems.is_empty() {
                let name = if port { port_map(map) } else { map.to_string() };
                batch.add(element_object(table, &name, elems));
            }
        }
    }
    batch.to_nftables()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn port(host_ip: Option<&str>, proto: L4Proto, hp: u16, cip: &str, cp: u16) -> PublishedPort {
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

    #[test]
    fn prerouting_never_dnats_loopback_output_only_explicitly() {
        let pre = serde_json::to_value(dnat_rules("t", PREROUTING_CHAIN)).unwrap();
        for r in pre.as_array().unwrap() {
            let e = &r["rule"]["expr"];
            assert_eq!(e[1]["match"]["op"], "!=", "{r}");
        }
        let out = serde_json::to_value(dnat_rules("t", OUTPUT_CHAIN)).unwrap();
        let by_addr: Vec<&Value> = out
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["rule"]["comment"].as_str().unwrap().contains("_addr"))
            .collect();
        assert_eq!(by_addr.len(), 2);
        for r in by_addr {
            assert!(r["rule"]["expr"][1].get("dnat").is_some(), "{r}");
        }
    }

    #[test]
    fn update_batch_deletes_keys_then_adds_elements() {
        let a = port(None, L4Proto::Tcp, 8080, "10.0.0.2", 80);
        let b = port(Some("127.0.0.1"), L4Proto::Udp, 5353, "10.0.0.3", 53);
        let v = serde_json::to_value(update_batch("t", &[a], &[b])).unwrap();
        let objs = v["nftables"].as_array().unwrap();
        assert_eq!(objs.len(), 4);
        assert_eq!(
            objs[0]["delete"]["element"]["elem"],
            json!([{"concat": ["127.0.0.1", "udp", 5353]}])
        );
        assert_eq!(objs[0]["delete"]["element"]["name"], "publish4_addr_port");
        assert_eq!(objs[1]["delete"]["element"]["name"], "publish4_addr");
        assert_eq!(
            objs[2]["add"]["element"]["elem"],
            json!([[{"concat": ["tcp", 8080]}, "10.0.0.2"]])
        );
        assert_eq!(
            objs[3]["add"]["element"]["elem"],
            json!([[{"concat": ["tcp", 8080]}, 80]])
        );
        assert_eq!(objs[3]["add"]["element"]["name"], "publish4_any_port");
        assert_eq!(objs[2]["add"]["element"]["table"], "t");
    }
}
