//! End to end, as root, inside network namespaces this test creates: the
//! real daemon binary runs in a "node" namespace linked to an "outside"
//! namespace; containers are `unshare -n` processes attached by PID. This
//! file: traffic, isolation, restart, a lost marker and kill -9 during
//! attaches; `host_lifecycle.rs` has bad input, uninstall, drift and repair.

mod support;

use std::time::Duration;

use overlayd_proto::{Handle, Request, Response};
use support::node_lab::{ping_until, Lab};
use support::*;

#[test]
fn shared_nat_containers_talk_and_egress_is_masqueraded() {
    if !can_run_root_tests("shared_nat") {
        return;
    }
    let lab = Lab::new(&[]);
    lab.service("web");
    let (c1, c2) = (Container::new(), Container::new());
    let ip1 = lab.attach(&c1, "web", None);
    let ip2 = lab.attach(&c2, "web", None);
    assert_ne!(ip1, ip2);
    ping_until(&c1, &ip2);
    ping_until(&c2, &ip1);

    // The outside counts who it hears from.
    lab.outside.exec(&["nft", "add", "table", "inet", "probe"]);
    lab.outside.exec(&[
        "nft",
        "add",
        "chain",
        "inet",
        "probe",
        "in",
        "{ type filter hook input priority 0; }",
    ]);
    lab.outside.exec(&[
        "nft",
        "add",
        "rule",
        "inet",
        "probe",
        "in",
        "ip",
        "saddr",
        NODE_UPLINK,
        "icmp",
        "type",
        "echo-request",
        "counter",
    ]);
    lab.outside.exec(&[
        "nft", "add", "rule", "inet", "probe", "in", "ip", "saddr", &ip1, "counter",
    ]);
    ping_until(&c1, OUTSIDE);
    let rules = lab
        .outside
        .output(&["nft", "list", "chain", "inet", "probe", "in"]);
    let counts: Vec<u64> = rules
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 2, "{rules}");
    assert!(
        counts[0] > 0,
        "outside saw the node's uplink address: {rules}"
    );
    assert_eq!(
        counts[1], 0,
        "outside never saw the container address: {rules}"
    );

    // Detach is idempotent and leaves no veth; the bridge keeps its MAC
    // when the port with the lowest MAC leaves (an unpinned bridge would
    // take the next port's and strand every container's ARP cache).
    let mac = |link: &str| {
        lab.node
            .output(&["cat", &format!("/sys/class/net/{link}/address")])
    };
    let bridge = lab
        .tagged_links()
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.starts_with("ovl-b"))
        .unwrap();
    let bridge_mac = mac(&bridge);
    let ports: Vec<String> = lab
        .tagged_links()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.starts_with("ovl-v"))
        .collect();
    let lowest = ports.iter().min_by_key(|p| mac(p)).unwrap().clone();
    let alias = lab
        .node
        .output(&["cat", &format!("/sys/class/net/{lowest}/ifalias")]);
    let (leaving, staying) = if alias.contains(&format!("pid:{}", c1.pid())) {
        (&c1, &c2)
    } else {
        (&c2, &c1)
    };
    let before = lab.tagged_links().len();
    for _ in 0..2 {
        lab.daemon.ok(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: leaving.pid() },
        });
    }
    assert_eq!(lab.tagged_links().len(), before - 1);
    assert_eq!(mac(&bridge), bridge_mac, "bridge MAC pinned");
    ping_until(staying, OUTSIDE);
}

#[test]
fn isolation_networks_are_isolated_from_each_other() {
    if !can_run_root_tests("isolation") {
        return;
    }
    let lab = Lab::new(&[]);
    lab.iso("a");
    lab.iso("b");
    let (a1, a2, b1) = (Container::new(), Container::new(), Container::new());
    lab.service("svc");
    let ip_a1 = lab.attach(&a1, "svc", Some("a"));
    let ip_a2 = lab.attach(&a2, "svc", Some("a"));
    let ip_b1 = lab.attach(&b1, "svc", Some("b"));
    ping_until(&a1, &ip_a2);
    ping_until(&a1, OUTSIDE);
    ping_until(&b1, OUTSIDE);
    // The node itself is reachable (its gateway on the other bridge would be
    // routing, which isolation forbids, so check our own gateway).
    assert!(!a1.ping(&ip_b1), "iso:a reached iso:b");
    assert!(!b1.ping(&ip_a1), "iso:b reached iso:a");
}

#[test]
fn restart_adopts_everything_and_traffic_keeps_flowing() {
    if !can_run_root_tests("restart") {
        return;
    }
    let mut lab = Lab::new(&[]);
    lab.service("web");
    lab.iso("a");
    let (c1, c2) = (Container::new(), Container::new());
    let _ip1 = lab.attach(&c1, "web", None);
    let ip2 = lab.attach(&c2, "web", None);
    ping_until(&c1, &ip2);
    let links = lab.tagged_links();
    let marker = lab.marker();

    // A ping stream across the restart.
    let pid = c1.pid().to_string();
    let pinger = std::process::Command::new("nsenter")
        .args([
            "-t", &pid, "-n", "ping", "-i", "0.1", "-c", "40", "-W", "1", &ip2,
        ])
        .output();
    let restarter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        lab.daemon.restart();
        lab
    });
    let out = pinger.expect("ping");
    let lab = restarter.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0% packet loss"),
        "ping lost packets across the restart: {text}"
    );
    assert_eq!(lab.tagged_links(), links, "same links, same ifindexes");
    assert_eq!(lab.marker(), marker, "marker byte-identical");
    assert!(lab.daemon.log().contains("adopted recorded network"));
}

#[test]
fn lost_or_corrupt_marker_is_rebuilt_from_tags() {
    if !can_run_root_tests("rebuild") {
        return;
    }
    let (mut lab, c1, links) = Lab::with_web_member(&[]);
    let path = lab.daemon.data_dir.join("agent_network.json");
    let original: serde_json::Value = serde_json::from_slice(&lab.marker()).unwrap();

    for damage in ["delete", "corrupt"] {
        lab.daemon.stop();
        match damage {
            "delete" => std::fs::remove_file(&path).unwrap(),
            _ => std::fs::write(&path, b"{\"version\":1,\"networks\":[{\"owner\"").unwrap(),
        }
        lab.daemon.start_again();
        assert_eq!(lab.tagged_links(), links, "{damage}: nothing recreated");
        let rebuilt: serde_json::Value = serde_json::from_slice(&lab.marker()).unwrap();
        let owners = |v: &serde_json::Value| {
            let mut o: Vec<String> = v["networks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| format!("{} {} {} {}", e["owner"], e["name"], e["id"], e["subnet"]))
                .collect();
            o.sort();
            o
        };
        assert_eq!(
            owners(&rebuilt),
            owners(&original),
            "{damage}: entries rebuilt"
        );
    }
    let q = lab.daemon.data_dir.join("quarantine");
    assert_eq!(
        std::fs::read_dir(q).unwrap().count(),
        1,
        "corrupt marker quarantined"
    );
    // Containers still reach each other after the rebuild.
    let c2 = Container::new();
    let ip2 = lab.attach(&c2, "web", None);
    ping_until(&c1, &ip2);
}

#[test]
fn kill_during_attaches_leaves_consistent_state() {
    if !can_run_root_tests("kill9") {
        return;
    }
    let mut lab = Lab::new(&[]);
    lab.service("web");
    let containers: Vec<Container> = (0..12).map(|_| Container::new()).collect();
    let pids: Vec<u32> = containers.iter().map(Container::pid).collect();
    for round in 0..3 {
        let sock = lab.daemon.socket.clone();
        let batch: Vec<u32> = pids.clone();
        // Fire attaches from another thread and kill the daemon mid-way.
        let worker = std::thread::spawn(move || {
            block_on(async move {
                for pid in batch {
                    let Ok(mut c) = overlayd_client::Client::connect(&sock).await else {
                        return;
                    };
                    let _ = c
                        .call(Request::AttachContainer {
                            handle: Handle::LinuxPid { pid },
                            service: "web".into(),
                            join_global: false,
                            dns_server: None,
                            dns_domain: None,
                            isolation: None,
                            name: None,
                            publish: vec![],
                        })
                        .await;
                }
            })
        });
        std::thread::sleep(Duration::from_millis(60 + 90 * round));
        lab.daemon.kill();
        let _ = worker.join();
        lab.daemon.start_again();
        // Detach a few so the next round re-attaches them (one the kill
        // interrupted before its record was written is not attached).
        for pid in pids.iter().step_by(3) {
            match lab.daemon.call(Request::DetachContainer {
                handle: Handle::LinuxPid { pid: *pid },
            }) {
                Response::Ok
                | Response::Err {
                    code: Some(overlayd_proto::ErrorCode::NotFound),
                    ..
                } => {}
                r => panic!("detach pid {pid}: {r:?}"),
            }
        }
    }
    lab.daemon.stop();
    let store = overlayd_state::Store::open(&lab.daemon.data_dir).unwrap();
    let atts: Vec<(String, serde_json::Value)> = store
        .read(|tx| tx.list(overlayd_state::Table::Attachments))
        .unwrap();
    let leases: Vec<(String, serde_json::Value)> = store
        .read(|tx| tx.list(overlayd_state::Table::Leases))
        .unwrap();
    drop(store);
    // Every attachment holds exactly the lease of its address, and no two
    // live attachments share an address — read from the records and from
    // the containers themselves (lease keys alone are unique by design).
    let mut by_addr: std::collections::HashMap<(String, String), String> = Default::default();
    for (key, a) in &atts {
        let (net, ip) = (
            a["network"].as_str().unwrap().to_string(),
            a["ip"].as_str().unwrap().to_string(),
        );
        let holders: Vec<&str> = leases
            .iter()
            .filter(|(_, l)| l["ip"] == ip.as_str() && l["network"] == net.as_str())
            .map(|(_, l)| l["holder"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            holders,
            vec![key.as_str()],
            "lease of {net} {ip} has one holder: {key}"
        );
        if let Some(other) = by_addr.insert((net.clone(), ip.clone()), key.clone()) {
            panic!("{other} and {key} are both recorded with {ip} on {net}");
        }
    }
    let mut live: Vec<String> = containers
        .iter()
        .flat_map(|c| {
            c.output(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .map(str::to_string)
        })
        .collect();
    let n = live.len();
    live.sort();
    live.dedup();
    assert_eq!(
        live.len(),
        n,
        "no two containers carry the same address: {live:?}"
    );
    let veths: Vec<String> = lab
        .tagged_links()
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| atts.iter().any(|(_, a)| a["host_ifname"] == n.as_str()) || !n.contains("-b"))
        .collect();
    for (_, a) in &atts {
        let name = a["host_ifname"].as_str().unwrap();
        assert!(
            veths.iter().any(|v| v == name),
            "attachment {a} has its veth"
        );
    }
    let tagged_veths: Vec<String> = lab
        .node
        .output(&["ip", "-o", "link", "show", "type", "veth"])
        .lines()
        .filter(|l| l.contains("alias overlayd:"))
        .map(|l| {
            l.split(':')
                .nth(1)
                .unwrap()
                .trim()
                .split('@')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for v in &tagged_veths {
        assert!(
            atts.iter().any(|(_, a)| a["host_ifname"] == v.as_str()),
            "veth {v} has an attachment record"
        );
    }
    assert_eq!(tagged_veths.len(), atts.len());
    assert!(leases.len() >= atts.len(), "every attachment holds a lease");
}
