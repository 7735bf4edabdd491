//! Compares a live table, as printed by `nft -j list table inet NAME`, with the
//! table a [`FirewallSpec`] describes. Pure: the listing is passed in as text.
//!
//! Both sides are reduced to the same shape: the chains (name, type, hook,
//! priority, policy) and the ordered rules of each chain (expressions and
//! comment), ignoring handles and counter values and the order of anonymous set
//! elements. A flushed, deleted or edited table therefore does not match.

use serde_json::Value;

use super::ruleset::desired_objects;
use super::FirewallSpec;

/// A table reduced to what matters for equality.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    chains: Vec<Value>,
    rules: Vec<Value>,
    maps: Vec<Value>,
    others: usize,
}

fn normalize_expr(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, val) in map {
                let nv = if k == "counter" {
                    Value::Null
                } else if k == "set" {
                    match val {
                        Value::Array(items) => {
                            let mut items: Vec<Value> = items.iter().map(normalize_expr).collect();
                            items.sort_by_key(|i| i.to_string());
                            Value::Array(items)
                        }
                        other => normalize_expr(other),
                    }
                } else {
                    normalize_expr(val)
                };
                out.insert(k.clone(), nv);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize_expr).collect()),
        other => other.clone(),
    }
}

fn pick(obj: &Value, keys: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for k in keys {
        out.insert(
            (*k).to_string(),
            obj.get(*k).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(out)
}

/// Reduces a list of nftables JSON objects (`{"table": …}`, `{"chain": …}`, …)
/// belonging to one table. Returns `None` when the table itself is absent.
fn shape<'a>(objects: impl Iterator<Item = &'a Value>) -> Option<Shape> {
    let mut has_table = false;
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    let mut maps = Vec::new();
    let mut others = 0;
    for obj in objects {
        let Some(map) = obj.as_object() else {
            others += 1;
            continue;
        };
        for (kind, body) in map {
            match kind.as_str() {
                "metainfo" => {}
                "table" => has_table = true,
                "chain" => chains.push(pick(body, &["name", "type", "hook", "prio", "policy"])),
                "rule" => {
                    let mut r = pick(body, &["chain", "comment"]);
                    let expr = body.get("expr").map(normalize_expr).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut r {
                        m.insert("expr".to_string(), expr);
                    }
                    rules.push(r);
                }
                "map" => {
                    // Elements are compared as a set: nft lists them in
                    // its own order.
                    let mut m = pick(body, &["name", "type", "map"]);
                    let mut elems: Vec<Value> = body
                        .get("elem")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(normalize_expr).collect())
                        .unwrap_or_default();
                    elems.sort_by_key(|e| e.to_string());
                    if let Value::Object(o) = &mut m {
                        o.insert("elem".to_string(), Value::Array(elems));
                    }
                    maps.push(m);
                }
                _ => others += 1,
            }
        }
    }
    if !has_table {
        return None;
    }
    chains.sort_by_key(|c| c.to_string());
    // Rules keep their order within a chain; chains are independent, so group
    // stably by chain name.
    rules.sort_by_key(|r| r["chain"].to_string());
    maps.sort_by_key(|m| m["name"].to_string());
    Some(Shape {
        chains,
        rules,
        maps,
        others,
    })
}

/// Whether `live_json` (the output of `nft -j list table inet <table>`) is
/// exactly the table `spec` describes. Unparseable output counts as a mismatch.
pub fn live_table_matches(table: &str, spec: &FirewallSpec, live_json: &str) -> bool {
    let Ok(live) = serde_json::from_str::<Value>(live_json) else {
        return false;
    };
    let Some(live_objs) = live.get("nftables").and_then(Value::as_array) else {
        return false;
    };
    let desired: Vec<Value> = desired_objects(table, spec)
        .into_iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    let want = shape(desired.iter());
    let have = shape(live_objs.iter());
    match (want, have) {
        (Some(w), Some(h)) => w == h,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::MasqueradeNet;
    use serde_json::json;

    fn spec() -> FirewallSpec {
        FirewallSpec {
            masquerade: vec![MasqueradeNet {
                subnet: "10.89.0.0/24".parse().unwrap(),
                bridge: "nat0".into(),
                exclude: vec![],
            }],
            isolation_bridges: vec!["a".into(), "b".into(), "c".into()],
            accept_bridges: vec!["nat0".into()],
            ..Default::default()
        }
    }

    /// What nft prints back for a table we applied: metainfo, handles, live
    /// counters, set elements in its own order.
    fn as_listed(spec: &FirewallSpec) -> Value {
        let mut objs = vec![json!({"metainfo": {"version": "1.0.6", "json_schema_version": 1}})];
        for (i, o) in desired_objects("overlayd", spec).into_iter().enumerate() {
            let mut v = serde_json::to_value(o).unwrap();
            let (_, body) = v.as_object_mut().unwrap().iter_mut().next().unwrap();
            body["handle"] = json!(i + 1);
            if let Some(expr) = body.get_mut("expr").and_then(Value::as_array_mut) {
                for st in expr.iter_mut() {
                    if st.get("counter").is_some() {
                        *st = json!({"counter": {"packets": 7, "bytes": 420}});
                    }
                    if let Some(set) = st
                        .pointer_mut("/match/right/set")
                        .and_then(Value::as_array_mut)
                    {
                        set.reverse();
                    }
                }
            }
            objs.push(v);
        }
        json!({ "nftables": objs })
    }

    #[test]
    fn listing_of_applied_table_matches() {
        let live = as_listed(&spec()).to_string();
        assert!(live_table_matches("overlayd", &spec(), &live));
    }

    #[test]
    fn flushed_table_does_not_match() {
        let mut live = as_listed(&spec());
        live["nftables"]
            .as_array_mut()
            .unwrap()
            .retain(|o| o.get("rule").is_none());
        assert!(!live_table_matches("overlayd", &spec(), &live.to_string()));
    }

    #[test]
    fn empty_spec_matches_its_empty_chains_only() {
        let empty = FirewallSpec::default();
        let live = as_listed(&empty).to_string();
        assert!(live_table_matches("overlayd", &empty, &live));
        assert!(!live_table_matches("overlayd", &spec(), &live));
    }

    #[test]
    fn edited_rule_or_extra_rule_or_policy_change_does_not_match() {
        let base = as_listed(&spec());

        let mut edited = base.clone();
        let objs = edited["nftables"].as_array_mut().unwrap();
        let r = objs.iter_mut().find(|o| o.get("rule").is_some()).unwrap();
        r["rule"]["expr"][3] = json!({"accept": null});
        assert!(!live_table_matches(
            "overlayd",
            &spec(),
            &edited.to_string()
        ));

        let mut extra = base.clone();
        extra["nftables"]
            .as_array_mut()
            .unwrap()
            .push(json!({"rule": {
            "family": "inet", "table": "overlayd", "chain": "forward", "handle": 99,
            "expr": [{"accept": null}]}}));
        assert!(!live_table_matches("overlayd", &spec(), &extra.to_string()));

        let mut policy = base.clone();
        let objs = policy["nftables"].as_array_mut().unwrap();
        let c = objs.iter_mut().find(|o| o.get("chain").is_some()).unwrap();
        c["chain"]["policy"] = json!("drop");
        assert!(!live_table_matches(
            "overlayd",
            &spec(),
            &policy.to_string()
        ));

        let mut set = base;
        set["nftables"].as_array_mut().unwrap().push(json!({"set": {
            "family": "inet", "table": "overlayd", "name": "x", "type": "ipv4_addr"}}));
        assert!(!live_table_matches("overlayd", &spec(), &set.to_string()));
    }

    #[test]
    fn missing_table_or_garbage_does_not_match() {
        assert!(!live_table_matches(
            "overlayd",
            &spec(),
            r#"{"nftables": []}"#
        ));
        assert!(!live_table_matches("overlayd", &spec(), "not json"));
    }

    #[test]
    fn rule_order_within_chain_matters() {
        let mut swapped = as_listed(&spec());
        let objs = swapped["nftables"].as_array_mut().unwrap();
        let idx: Vec<usize> = objs
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                o.get("rule")
                    .map(|r| r["chain"] == "forward")
                    .unwrap_or(false)
            })
            .map(|(i, _)| i)
            .collect();
        objs.swap(idx[0], idx[idx.len() - 1]);
        assert!(!live_table_matches(
            "overlayd",
            &spec(),
            &swapped.to_string()
        ));
    }
}
