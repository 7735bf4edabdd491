//! Pure construction of overlayd's nftables table from a [`FirewallSpec`].
//!
//! One table, `inet <name>`, holds two base chains:
//! - `forward` (filter, hook forward, priority 0, policy accept): first one drop
//!   rule per isolation bridge towards every *other* isolation bridge, then an
//!   accept rule in and out of every accepted bridge;
//! - `postrouting` (nat, hook postrouting, priority 100, policy accept): one
//!   masquerade rule per masqueraded network, for packets from its subnet that do
//!   not leave through its own bridge (and are not headed to an excluded CIDR).
//!
//! Applying is one atomic batch: `add table` (so the delete cannot fail), `delete
//! table`, then the whole table again. Tables that are not ours are never named.

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, SetItem,
};
use nftables::schema::{Chain, NfListObject, Nftables, Rule, Table};
use nftables::stmt::{Counter, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::{publish, publish_rules, FirewallSpec};

/// Name of the filter chain hooked at `forward`.
pub const FORWARD_CHAIN: &str = "forward";
/// Name of the NAT chain hooked at `postrouting`.
pub const POSTROUTING_CHAIN: &str = "postrouting";

/// Priority of the forward filter chain (`filter`).
const FILTER_PRIO: i32 = 0;
/// Priority of the postrouting NAT chain (`srcnat`).
const SRCNAT_PRIO: i32 = 100;
/// Priority of the prerouting and output NAT chains (`dstnat`).
const DSTNAT_PRIO: i32 = -100;

fn table_obj(table: &str) -> Table<'static> {
    Table {
        family: NfFamily::INet,
        name: Cow::Owned(table.to_string()),
        handle: None,
    }
}

fn base_chain(table: &str, name: &str, ty: NfChainType, hook: NfHook, prio: i32) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        name: Cow::Owned(name.to_string()),
        _type: Some(ty),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

pub(super) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub(super) fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

pub(super) fn string(s: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(s.to_string()))
}

/// A CIDR as nft prints it back: a bare address for host routes, else a prefix.
pub(super) fn cidr(net: &IpNet) -> Expression<'static> {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        string(&net.addr().to_string())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(string(&net.network().to_string())),
            len: u32::from(net.prefix_len()),
        }))
    }
}

/// A set of interface names, or the bare name when there is only one (that is
/// how nft lists a one-element set back).
pub(super) fn names(list: &[&String]) -> Expression<'static> {
    match list {
        [one] => string(one),
        many => Expression::Named(NamedExpression::Set(
            many.iter().map(|n| SetItem::Element(string(n))).collect(),
        )),
    }
}

pub(super) fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn counter() -> Statement<'static> {
    Statement::Counter(Counter::Anonymous(None))
}

pub(super) fn rule(
    table: &str,
    chain: &str,
    comment: String,
    expr: Vec<Statement<'static>>,
) -> Rule<'static> {
    Rule {
        family: NfFamily::INet,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Owned(chain.to_string()),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: Some(Cow::Owned(comment)),
    }
}

fn ip_proto(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "ip"
    } else {
        "ip6"
    }
}

/// The table, its chains and its rules, in the order they must be added.
pub fn desired_objects(table: &str, spec: &FirewallSpec) -> Vec<NfListObject<'static>> {
    let spec = spec.normalized();
    let mut out = vec![
        NfListObject::Table(table_obj(table)),
        NfListObject::Chain(base_chain(
            table,
            FORWARD_CHAIN,
            NfChainType::Filter,
            NfHook::Forward,
            FILTER_PRIO,
        )),
        NfListObject::Chain(base_chain(
            table,
            POSTROUTING_CHAIN,
            NfChainType::NAT,
            NfHook::Postrouting,
            SRCNAT_PRIO,
        )),
        NfListObject::Chain(base_chain(
            table,
            publish_rules::PREROUTING_CHAIN,
            NfChainType::NAT,
            NfHook::Prerouting,
            DSTNAT_PRIO,
        )),
        NfListObject::Chain(base_chain(
            table,
            publish_rules::OUTPUT_CHAIN,
            NfChainType::NAT,
            NfHook::Output,
            DSTNAT_PRIO,
        )),
        NfListObject::Chain(base_chain(
            table,
            publish_rules::INPUT_CHAIN,
            NfChainType::Filter,
            NfHook::Input,
            FILTER_PRIO,
        )),
    ];
    out.extend(publish::maps(table, &spec.published));

    // Internal networks first: nothing crosses between them and any other
    // interface, whatever the rules below would accept.
    for bridge in &spec.internal_bridges {
        for (key, other, dir) in [
            (MetaKey::Iifname, MetaKey::Oifname, "out of"),
            (MetaKey::Oifname, MetaKey::Iifname, "into"),
        ] {
            out.push(NfListObject::Rule(rule(
                table,
                FORWARD_CHAIN,
                format!("overlayd: internal, nothing {dir} {bridge}"),
                vec![
                    matches(meta(key), Operator::EQ, string(bridge)),
                    matches(meta(other), Operator::NEQ, string(bridge)),
                    counter(),
                    Statement::Drop(None),
                ],
            )));
        }
    }

    for bridge in &spec.isolation_bridges {
        let others: Vec<&String> = spec
            .isolation_bridges
            .iter()
            .filter(|b| *b != bridge)
            .collect();
        if others.is_empty() {
            continue;
        }
        out.push(NfListObject::Rule(rule(
            table,
            FORWARD_CHAIN,
            format!("overlayd: isolate {bridge}"),
            vec![
                matches(meta(MetaKey::Iifname), Operator::EQ, string(bridge)),
                matches(meta(MetaKey::Oifname), Operator::EQ, names(&others)),
                counter(),
                Statement::Drop(None),
            ],
        )));
    }

    for bridge in &spec.accept_bridges {
        for (key, dir) in [(MetaKey::Iifname, "from"), (MetaKey::Oifname, "to")] {
            out.push(NfListObject::Rule(rule(
                table,
                FORWARD_CHAIN,
                format!("overlayd: accept {dir} {bridge}"),
                vec![
                    matches(meta(key), Operator::EQ, string(bridge)),
                    counter(),
                    Statement::Accept(None),
                ],
            )));
        }
    }

    for m in &spec.masquerade {
        let proto = ip_proto(m.subnet.addr());
        let mut expr = vec![matches(
            payload(proto, "saddr"),
            Operator::EQ,
            cidr(&m.subnet),
        )];
        for ex in m
            .exclude
            .iter()
            .filter(|e| e.addr().is_ipv4() == m.subnet.addr().is_ipv4())
        {
            expr.push(matches(payload(proto, "daddr"), Operator::NEQ, cidr(ex)));
        }
        expr.push(matches(
            meta(MetaKey::Oifname),
            Operator::NEQ,
            string(&m.bridge),
        ));
        expr.push(counter());
        expr.push(Statement::Masquerade(None));
        out.push(NfListObject::Rule(rule(
            table,
            POSTROUTING_CHAIN,
            format!("overlayd: masquerade {} via {}", m.subnet, m.bridge),
            expr,
        )));
    }
    // The published-port rules depend only on which bridges exist; the
    // ports themselves are map elements.
    if !spec.publish_bridges.is_empty() {
        let hairpin: Vec<(String, ipnet::IpNet)> = spec
            .masquerade
            .iter()
            .filter(|m| spec.publish_bridges.contains(&m.bridge))
            .map(|m| (m.bridge.clone(), m.subnet))
            .collect();
        out.extend(publish_rules::masquerade_rules(
            table,
            POSTROUTING_CHAIN,
            &hairpin,
        ));
        out.extend(publish_rules::dnat_rules(
            table,
            publish_rules::PREROUTING_CHAIN,
        ));
        out.extend(publish_rules::dnat_rules(
            table,
            publish_rules::OUTPUT_CHAIN,
        ));
        out.extend(publish_rules::input_rules(table, &spec.publish_bridges));
    }
    out
}

/// The batch that atomically replaces table `inet <table>` with the spec's rules.
pub fn apply_batch(table: &str, spec: &FirewallSpec) -> Nftables<'static> {
    let mut batch = Batch::new();
    // `add table` is a no-op when it exists and makes the `delete` valid when it
    // does not: the whole replace is one transaction either way.
    batch.add(NfListObject::Table(table_obj(table)));
    batch.delete(NfListObject::Table(table_obj(table)));
    for obj in desired_objects(table, spec) {
        batch.add(obj);
    }
    batch.to_nftables()
}

/// The batch that deletes table `inet <table>` whether or not it exists.
pub fn remove_batch(table: &str) -> Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table_obj(table)));
    batch.delete(NfListObject::Table(table_obj(table)));
    batch.to_nftables()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::MasqueradeNet;
    use serde_json::{json, Value};

    fn spec() -> FirewallSpec {
        FirewallSpec {
            masquerade: vec![MasqueradeNet {
                subnet: "10.89.0.0/24".parse().unwrap(),
                bridge: "ovl-nat".into(),
                exclude: vec!["10.200.0.0/16".parse().unwrap()],
            }],
            isolation_bridges: vec!["iso-b".into(), "iso-a".into(), "iso-c".into()],
            accept_bridges: vec!["ovl-nat".into()],
            ..Default::default()
        }
    }

    fn rules(v: &Value) -> Vec<&Value> {
        v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("add").and_then(|a| a.get("rule")))
            .collect()
    }

    #[test]
    fn batch_starts_with_add_delete_add_table_and_names_only_our_table() {
        let v = serde_json::to_value(apply_batch("overlayd", &spec())).unwrap();
        let objs = v["nftables"].as_array().unwrap();
        assert_eq!(
            objs[0],
            json!({"add": {"table": {"family": "inet", "name": "overlayd"}}})
        );
        assert_eq!(
            objs[1],
            json!({"delete": {"table": {"family": "inet", "name": "overlayd"}}})
        );
        assert_eq!(
            objs[2],
            json!({"add": {"table": {"family": "inet", "name": "overlayd"}}})
        );
        for o in objs {
            let inner = o.as_object().unwrap().values().next().unwrap();
            let inner = inner.as_object().unwrap().values().next().unwrap();
            let table = inner.get("table").or_else(|| inner.get("name")).unwrap();
            assert_eq!(table, "overlayd", "every object names our table: {o}");
        }
    }

    #[test]
    fn chains_are_forward_filter_and_postrouting_nat() {
        let v = serde_json::to_value(apply_batch("t", &FirewallSpec::default())).unwrap();
        let chains: Vec<&Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("add").and_then(|a| a.get("chain")))
            .collect();
        assert_eq!(chains.len(), 5);
        assert_eq!(chains[0]["hook"], "forward");
        assert_eq!(chains[0]["type"], "filter");
        assert_eq!(chains[0]["prio"], 0);
        assert_eq!(chains[0]["policy"], "accept");
        assert_eq!(chains[1]["hook"], "postrouting");
        assert_eq!(chains[1]["type"], "nat");
        assert_eq!(chains[1]["prio"], 100);
        let hooks: Vec<(&Value, &Value, &Value)> = chains[2..]
            .iter()
            .map(|c| (&c["hook"], &c["type"], &c["prio"]))
            .collect();
        assert_eq!(
            hooks,
            vec![
                (&json!("prerouting"), &json!("nat"), &json!(-100)),
                (&json!("output"), &json!("nat"), &json!(-100)),
                (&json!("input"), &json!("filter"), &json!(0)),
            ]
        );
        assert!(rules(&v).is_empty());
    }

    #[test]
    fn isolation_drops_each_bridge_towards_all_others() {
        let v = serde_json::to_value(apply_batch("t", &spec())).unwrap();
        let rules = rules(&v);
        let iso: Vec<&&Value> = rules
            .iter()
            .filter(|r| r["comment"].as_str().unwrap().contains("isolate"))
            .collect();
        assert_eq!(iso.len(), 3);
        // sorted: iso-a first; it drops towards iso-b and iso-c.
        let a = &iso[0]["expr"];
        assert_eq!(a[0]["match"]["right"], "iso-a");
        assert_eq!(a[0]["match"]["left"], json!({"meta": {"key": "iifname"}}));
        assert_eq!(a[1]["match"]["left"], json!({"meta": {"key": "oifname"}}));
        assert_eq!(a[1]["match"]["right"], json!({"set": ["iso-b", "iso-c"]}));
        assert_eq!(a[3], json!({"drop": null}));
        // Drops come before any accept in the chain.
        let first_accept = rules
            .iter()
            .position(|r| r["comment"].as_str().unwrap().contains("accept"))
            .unwrap();
        assert!(first_accept >= 3);
    }

    #[test]
    fn two_isolation_bridges_use_bare_names_and_one_is_a_no_op() {
        let two = FirewallSpec {
            isolation_bridges: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        let v = serde_json::to_value(apply_batch("t", &two)).unwrap();
        let r = rules(&v);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0]["expr"][1]["match"]["right"], "b");
        assert_eq!(r[1]["expr"][1]["match"]["right"], "a");
        let one = FirewallSpec {
            isolation_bridges: vec!["a".into()],
            ..Default::default()
        };
        let v = serde_json::to_value(apply_batch("t", &one)).unwrap();
        assert!(rules(&v).is_empty());
    }

    #[test]
    fn masquerade_rule_shape() {
        let v = serde_json::to_value(apply_batch("t", &spec())).unwrap();
        let m = rules(&v)
            .into_iter()
            .find(|r| r["chain"] == "postrouting")
            .unwrap();
        let e = &m["expr"];
        assert_eq!(
            e[0]["match"],
            json!({"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"prefix": {"addr": "10.89.0.0", "len": 24}}})
        );
        assert_eq!(e[1]["match"]["op"], "!=");
        assert_eq!(e[1]["match"]["right"]["prefix"]["addr"], "10.200.0.0");
        assert_eq!(e[2]["match"]["op"], "!=");
        assert_eq!(e[2]["match"]["right"], "ovl-nat");
        assert_eq!(e[4], json!({"masquerade": null}));
    }

    #[test]
    fn ipv6_masquerade_uses_ip6_and_skips_v4_excludes() {
        let s = FirewallSpec {
            masquerade: vec![MasqueradeNet {
                subnet: "fd00:1::/64".parse().unwrap(),
                bridge: "br6".into(),
                exclude: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/16".parse().unwrap()],
            }],
            ..Default::default()
        };
        let v = serde_json::to_value(apply_batch("t", &s)).unwrap();
        let e = &rules(&v)[0]["expr"];
        assert_eq!(e[0]["match"]["left"]["payload"]["protocol"], "ip6");
        assert_eq!(e[1]["match"]["right"]["prefix"]["addr"], "fd00::");
        assert_eq!(e[2]["match"]["right"], "br6");
    }

    #[test]
    fn host_cidr_is_a_bare_address() {
        assert_eq!(
            serde_json::to_value(cidr(&"10.0.0.1/32".parse().unwrap())).unwrap(),
            json!("10.0.0.1")
        );
    }

    #[test]
    fn remove_batch_only_names_our_table() {
        let v = serde_json::to_value(remove_batch("overlayd")).unwrap();
        assert_eq!(
            v,
            json!({"nftables": [
                {"add": {"table": {"family": "inet", "name": "overlayd"}}},
                {"delete": {"table": {"family": "inet", "name": "overlayd"}}}
            ]})
        );
    }
}
