//! The address plan end to end, as root, in namespaces this test creates:
//! two nodes on **default configuration** pick different slices and
//! dedicated subnets by themselves, peer with the values they report, and
//! containers ping across; and ZLayer's own call sequence (no slice,
//! `join_global` attaches, scoped and scope-less peers) works over the raw
//! protocol.

mod support;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{json, Value};
use support::*;

const CLUSTER: &str = "10.200.0.0/16";

/// Write a fixed node key before the first start, so the identities (and
/// so the derived subnets) are the same on every run: the test never
/// depends on the 1-in-256 luck of two random keys.
fn seed_node_key(dir: &Path, seed: u8) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut private = [0u8; 32];
    for (i, b) in private.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    let kp = overlayd_state::KeyPair::from_private_base64(&base64_encode(&private)).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(data.join("node.key"))
        .unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", kp.private_base64()).as_bytes()).unwrap();
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Run a CLI verb with `--json` and parse what it printed.
fn cli_json(d: &Daemon, args: &[&str]) -> Value {
    let mut v = vec!["--json"];
    v.extend_from_slice(args);
    let out = d.cli(&v);
    assert!(
        out.status.success(),
        "overlayd {args:?} failed: {}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "overlayd {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("no string {k} in {v}"))
        .to_string()
}

fn net(v: &str) -> IpNet {
    v.parse().unwrap()
}

#[test]
fn two_default_nodes_pick_unique_subnets_and_ping_across() {
    if !can_run_root_tests("address_plan") {
        return;
    }
    let (ns1, ns2) = (Netns::new("ap1"), Netns::new("ap2"));
    link_pair(&ns1, "apu1", "192.0.2.1/24", &ns2, "apu2", "192.0.2.2/24");
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    seed_node_key(dir1.path(), 1);
    seed_node_key(dir2.path(), 2);
    // No config file at all: every value is the default.
    let mut d1 = Daemon::start(&ns1, dir1.path(), &[]);
    let d2 = Daemon::start(&ns2, dir2.path(), &[]);

    for d in [&d1, &d2] {
        d.cli_ok(&["global", "up", "--cidr", CLUSTER]);
    }
    let st1 = cli_json(&d1, &["status"]);
    let st2 = cli_json(&d2, &["status"]);
    let (slice1, slice2) = (s(&st1, "slice_cidr"), s(&st2, "slice_cidr"));
    assert_ne!(slice1, slice2, "the two nodes derived different slices");
    for sl in [&slice1, &slice2] {
        assert!(net(CLUSTER).contains(&net(sl)), "{sl} inside {CLUSTER}");
        assert_eq!(net(sl).prefix_len(), 24, "{sl}");
    }

    // The slice is recorded: global down/up, a restart and a later node
    // id leave it as it is.
    d1.cli_ok(&["global", "down"]);
    d1.cli_ok(&["global", "up", "--cidr", CLUSTER]);
    d1.ok(overlayd_proto::Request::SetLocalNodeId { node_id: 77 });
    d1.restart();
    d1.cli_ok(&["global", "up", "--cidr", CLUSTER]);
    assert_eq!(s(&cli_json(&d1, &["status"]), "slice_cidr"), slice1);

    // A dedicated `db` on both, default config: different subnets.
    let db1 = cli_json(&d1, &["service", "up", "db", "--mode", "dedicated"]);
    let db2 = cli_json(&d2, &["service", "up", "db", "--mode", "dedicated"]);
    assert_eq!(s(&db1, "result"), "service_overlay");
    let (sub1, sub2) = (s(&db1, "subnet"), s(&db2, "subnet"));
    assert_ne!(sub1, sub2, "the halves of db got different subnets");
    for sb in [&sub1, &sub2] {
        assert!(
            net("10.208.0.0/12").contains(&net(sb)),
            "{sb} in service_range"
        );
    }
    // `name` is the bridge the service's containers attach to (as upstream).
    assert!(
        ns1.links().contains(&s(&db1, "name")),
        "service_overlay.name {} is a link on node 1: {:?}",
        s(&db1, "name"),
        ns1.links()
    );

    // Peer with what each node reports.
    let (k1, k2) = (s(&st1, "public_key"), s(&st2, "public_key"));
    let (a, b) = ((&d1, "192.0.2.1"), (&d2, "192.0.2.2"));
    for ((d, _), (_, other_ip), key, slice, db) in
        [(a, b, &k2, &slice2, &db2), (b, a, &k1, &slice1, &db1)]
    {
        d.cli_ok(&[
            "peer",
            "add",
            "--pubkey",
            key,
            "--endpoint",
            &format!("{other_ip}:51820"),
            "--allowed-ips",
            slice,
            "--keepalive",
            "5",
        ]);
        d.cli_ok(&[
            "peer",
            "add",
            "--service",
            "db",
            "--pubkey",
            &s(db, "wg_public_key"),
            "--endpoint",
            &format!("{other_ip}:{}", db["wg_port"]),
            "--allowed-ips",
            &s(db, "subnet"),
            "--keepalive",
            "5",
        ]);
    }
    for d in [&d1, &d2] {
        d.cli_ok(&["service", "up", "web"]);
    }

    let (w1, w2, x1, x2) = (
        Container::new(),
        Container::new(),
        Container::new(),
        Container::new(),
    );
    let attach = |d: &Daemon, c: &Container, svc: &str, global: bool| {
        let pid = c.pid().to_string();
        let mut args = vec!["attach", "--pid", &pid, "--service", svc];
        if global {
            args.push("--join-global");
        }
        s(&cli_json(d, &args), "ip")
    };
    let ip_w1 = attach(&d1, &w1, "web", true);
    let ip_w2 = attach(&d2, &w2, "web", true);
    let ip_x1 = attach(&d1, &x1, "db", false);
    let ip_x2 = attach(&d2, &x2, "db", false);
    assert!(net(&slice1).contains(&ip_w1.parse::<std::net::IpAddr>().unwrap()));
    assert!(net(&sub2).contains(&ip_x2.parse::<std::net::IpAddr>().unwrap()));
    wait_for(
        "containers ping across the base overlay",
        Duration::from_secs(30),
        || w1.ping(&ip_w2) && w2.ping(&ip_w1),
    );
    wait_for(
        "containers ping across the db overlay",
        Duration::from_secs(30),
        || x1.ping(&ip_x2) && x2.ping(&ip_x1),
    );

    // A collision is named, never silent: offering node 2 a peer whose
    // allowed IPs include node 2's own db subnet is refused, naming
    // service:db, the subnet and the fix.
    let out = d2.cli(&[
        "peer",
        "add",
        "--pubkey",
        &k1,
        "--endpoint",
        "192.0.2.1:51820",
        "--allowed-ips",
        &format!("{slice1},{sub2}"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("service:db") && err.contains(&sub2) && err.contains("network move"),
        "the error names both networks and the fix: {err}"
    );
}

/// One frame over the raw socket, as any client in any language sends it.
fn raw_call(sock: &Path, id: u64, request: Value) -> Value {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(sock).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = serde_json::to_vec(&json!({"frame":"request","id":id,"request":request})).unwrap();
    c.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
    c.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    c.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
    c.read_exact(&mut buf).unwrap();
    let v: Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(v["id"], id, "{v}");
    v["response"].clone()
}

fn raw_ok(d: &Daemon, id: u64, request: Value) -> Value {
    let r = raw_call(&d.socket, id, request.clone());
    assert_ne!(
        r["result"],
        "err",
        "{request} failed: {r}\nlog:\n{}",
        d.log()
    );
    r
}

#[test]
fn zlayer_call_sequence_over_the_raw_protocol() {
    if !can_run_root_tests("address_plan zlayer") {
        return;
    }
    let (ns1, ns2) = (Netns::new("zl1"), Netns::new("zl2"));
    link_pair(&ns1, "zlu1", "192.0.2.1/24", &ns2, "zlu2", "192.0.2.2/24");
    let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let d1 = Daemon::start(&ns1, dir1.path(), &[]);
    let d2 = Daemon::start(&ns2, dir2.path(), &[]);
    let nodes = [(&d1, "192.0.2.1", 1u64), (&d2, "192.0.2.2", 2u64)];

    // What the ZLayer daemon sends at start: node id, its key, then the
    // global overlay exactly as it builds the request (no slice_cidr).
    let mut info = Vec::new();
    for (d, _, id) in nodes {
        raw_ok(d, 1, json!({"op":"set_local_node_id","node_id":id}));
        raw_ok(
            d,
            2,
            json!({"op":"set_local_wg_pubkey","pubkey":"UWQcH8fcA8F7VHIpLeQ555Lw6LjjX/zonsJpLeCUnmQ="}),
        );
        let g = raw_ok(
            d,
            3,
            json!({"op":"setup_global_overlay","deployment":"zlayer","instance_id":format!("node-{id}"),"cluster_cidr":CLUSTER,"wg_port":51420,"nat_enabled":true}),
        );
        assert_eq!(g["result"], "bridge_name", "{g}");
        let api = raw_ok(
            d,
            4,
            json!({"op":"setup_service_overlay","service":"api","mode":"auto"}),
        );
        assert_eq!(api["mode"], "shared");
        let db = raw_ok(
            d,
            5,
            json!({"op":"setup_service_overlay","service":"db","mode":"dedicated"}),
        );
        assert_eq!(db["mode"], "dedicated");
        let st = raw_ok(d, 6, json!({"op":"status"}));
        assert_eq!(st["result"], "status");
        info.push((st, db));
    }
    let slice = |i: usize| s(&info[i].0, "slice_cidr");
    assert_ne!(
        slice(0),
        slice(1),
        "node ids 1 and 2 derive different slices"
    );
    assert_ne!(s(&info[0].1, "subnet"), s(&info[1].1, "subnet"));

    // Peers as ZLayer adds them: a scope-less add_peer with the other
    // node's overlay address, then add_allowed_ip for its slice; and a
    // service-scoped peer for the dedicated db overlay.
    for (i, (d, _, _)) in nodes.iter().enumerate() {
        let o = 1 - i;
        let (ost, odb) = &info[o];
        let other_ip = nodes[o].1;
        raw_ok(
            d,
            10,
            json!({"op":"add_peer","public_key":s(ost,"public_key"),"endpoint":format!("{other_ip}:51420"),"allowed_ips":format!("{}/32", s(ost,"node_ip")),"persistent_keepalive_secs":5}),
        );
        raw_ok(
            d,
            11,
            json!({"op":"add_allowed_ip","pubkey":s(ost,"public_key"),"cidr":s(ost,"slice_cidr")}),
        );
        raw_ok(
            d,
            12,
            json!({"op":"add_peer","public_key":s(odb,"wg_public_key"),"endpoint":format!("{other_ip}:{}", odb["wg_port"]),"allowed_ips":s(odb,"subnet"),"persistent_keepalive_secs":5,"scope":{"scope":"service","service":"db"}}),
        );
    }

    // Every container attached as ZLayer does: join_global true.
    let containers: Vec<(Container, Container)> = (0..2)
        .map(|_| (Container::new(), Container::new()))
        .collect();
    let mut ips = Vec::new();
    for (i, (d, _, _)) in nodes.iter().enumerate() {
        let (api_c, db_c) = &containers[i];
        let a = raw_ok(
            d,
            20,
            json!({"op":"attach_container","handle":{"platform":"linux_pid","pid":api_c.pid()},"service":"api","join_global":true}),
        );
        assert_eq!(a["result"], "attached", "{a}");
        let b = raw_ok(
            d,
            21,
            json!({"op":"attach_container","handle":{"platform":"linux_pid","pid":db_c.pid()},"service":"db","join_global":true}),
        );
        ips.push((s(&a, "ip"), s(&b, "ip")));
    }
    let addr = |v: &str| v.parse::<std::net::IpAddr>().unwrap();
    assert!(net(&slice(0)).contains(&addr(&ips[0].0)), "{ips:?}");
    wait_for(
        "api containers ping across nodes over the base overlay",
        Duration::from_secs(30),
        || containers[0].0.ping(&ips[1].0) && containers[1].0.ping(&ips[0].0),
    );
    wait_for(
        "db containers ping across nodes over the dedicated overlay",
        Duration::from_secs(30),
        || containers[0].1.ping(&ips[1].1) && containers[1].1.ping(&ips[0].1),
    );

    // Status as ZLayer reads it.
    let st = raw_ok(&d1, 30, json!({"op":"status"}));
    assert_eq!(st["peer_count"], 1, "{st}");
    assert_eq!(st["dedicated_services"][0]["peer_count"], 1, "{st}");

    // A guest's config names the node's real global port.
    let g = raw_ok(
        &d1,
        31,
        json!({"op":"attach_container","handle":{"platform":"guest_managed","id":"vm-1"},"service":"api","join_global":true}),
    );
    assert_eq!(g["result"], "guest_config", "{g}");
    assert_eq!(g["listen_port"], 51420, "{g}");
}
