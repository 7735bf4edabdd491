//! Cluster scenario 7, as root, inside namespaces this test creates: two
//! nodes start at the same moment preferring the same slice (both data
//! directories remember it, as after cloning a node's disk) and then set up
//! the same dedicated service at the same moment preferring the same
//! subnet. Each time exactly one node wins the claim in etcd; the other
//! takes the next free subnet, says so in its log, and the two still mesh.

mod support;

use std::time::Duration;

use overlayd_proto::{Request, Response, ServiceMode};
use support::cluster::*;
use support::*;

const SLICE: &str = "10.200.77.0/24";
const DB_SUBNET: &str = "10.210.7.0/24";
const PREFIX: &str = "/overlayd/v1/default";

/// `(key, value)` pairs under `prefix` in etcd.
fn etcd_pairs(lan: &Lan, prefix: &str) -> Vec<(String, String)> {
    let (ok, out) = etcdctl(lan, &["get", "--prefix", prefix]);
    assert!(ok, "etcdctl get {prefix}");
    let lines: Vec<&str> = out.lines().collect();
    lines
        .chunks(2)
        .map(|c| (c[0].to_string(), c.get(1).unwrap_or(&"").to_string()))
        .collect()
}

fn db_subnet(n: &Node) -> String {
    match n.d.ok(Request::Status) {
        Response::Status(s) => s
            .dedicated_services
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.service == "db")
            .map(|d| d.subnet)
            .expect("db is dedicated here"),
        r => panic!("{r:?}"),
    }
}

#[test]
fn two_nodes_racing_for_one_subnet_get_exactly_one_owner() {
    if !can_run("cluster_race") {
        return;
    }
    let (mut lan, _etcd) = lan_with_etcd();
    let prepared: Vec<Prepared> = ["ra", "rb"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let p = prepare_node(&mut lan, name, &format!("192.0.2.{}", 11 + i));
            let claims = serde_json::json!({
                "slice": SLICE,
                "subnets": { "service:db": DB_SUBNET },
            });
            std::fs::write(p.data_dir().join("cluster.json"), claims.to_string()).unwrap();
            p
        })
        .collect();

    // Both daemons start at once and race for the remembered slice.
    let nodes: Vec<Node> = std::thread::scope(|s| {
        let started: Vec<_> = prepared
            .into_iter()
            .map(|p| s.spawn(move || p.start()))
            .collect();
        started.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for n in &nodes {
        wait_node(n, "is registered with a slice", 30, || {
            let v = cluster_status(n);
            v.registered && v.slice.is_some()
        });
    }
    let slices: Vec<String> = nodes
        .iter()
        .map(|n| cluster_status(n).slice.unwrap())
        .collect();
    let winners: Vec<usize> = (0..2).filter(|i| slices[*i] == SLICE).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one node holds {SLICE}: {slices:?}"
    );
    let (win, lose) = (winners[0], 1 - winners[0]);
    assert_ne!(slices[lose], slices[win], "never two owners");
    let claims = etcd_pairs(&lan, &format!("{PREFIX}/slices/"));
    let holders: Vec<&str> = claims
        .iter()
        .filter(|(k, _)| k.ends_with("10.200.77.0_24"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(holders.len(), 1, "one claim key for {SLICE}: {claims:?}");
    assert!(
        holders[0].contains(&nodes[win].name),
        "the claim names the winner: {claims:?}"
    );
    assert_eq!(claims.len(), 2, "one slice claim per node: {claims:?}");
    assert!(
        nodes[lose].d.log().contains("taken by another node"),
        "the loser says why its slice moved:\n{}",
        nodes[lose].d.log()
    );

    // Both set up the dedicated service `db` at once, both remembering the
    // same subnet for it.
    std::thread::scope(|s| {
        for n in &nodes {
            s.spawn(move || {
                match n.d.ok(Request::SetupServiceOverlay {
                    service: "db".into(),
                    mode: ServiceMode::Dedicated,
                    recreate: false,
                }) {
                    Response::ServiceOverlay { .. } => {}
                    r => panic!("{r:?}"),
                }
            });
        }
    });
    let subnets: Vec<String> = nodes.iter().map(db_subnet).collect();
    let db_winners = subnets.iter().filter(|s| *s == DB_SUBNET).count();
    assert_eq!(
        db_winners, 1,
        "exactly one node holds {DB_SUBNET}: {subnets:?}"
    );
    assert_ne!(subnets[0], subnets[1], "never two owners");
    let subnet_claims = etcd_pairs(&lan, &format!("{PREFIX}/subnets/"));
    assert_eq!(
        subnet_claims
            .iter()
            .filter(|(k, _)| k.ends_with("10.210.7.0_24"))
            .count(),
        1,
        "{subnet_claims:?}"
    );

    // The two still mesh: base overlay and the db overlay.
    for n in &nodes {
        wait_node(n, "has its peer on base and db", 30, || {
            base_peers(n).len() == 1 && service_peer_count(n, "db") == 1
        });
    }
    let (c0, c1) = (Container::new(), Container::new());
    let _ip0 = attach(&nodes[0], &c0, "db", true);
    let ip1 = attach(&nodes[1], &c1, "db", true);
    wait_for(
        "db containers ping across the two racers",
        Duration::from_secs(20),
        || c0.ping(&ip1),
    );
}
