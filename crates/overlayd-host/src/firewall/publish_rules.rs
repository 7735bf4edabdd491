//! The fixed rules around the published-port maps of [`super::publish`]
//! (they depend only on which bridges exist, never on the ports):
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

use ipnet::IpNet;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Map as MapExpr, MetaKey, NamedExpression, CT,
};
use nftables::schema::NfListObject;
use nftables::stmt::{NATFamily, Operator, Statement, NAT};

use super::publish::{port_map, MAPS};
use super::ruleset::{cidr, matches, meta, names, payload, rule, string};

/// Name of the nat chain hooked at `prerouting`.
pub const PREROUTING_CHAIN: &str = "prerouting";
/// Name of the nat chain hooked at `output`.
pub const OUTPUT_CHAIN: &str = "output";
/// Name of the filter chain hooked at `input`.
pub const INPUT_CHAIN: &str = "input";

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

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
}
