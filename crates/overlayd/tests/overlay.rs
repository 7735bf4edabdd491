//! WireGuard overlays end to end, as root, inside namespaces this test
//! creates: two node namespaces joined by a veth underlay (TEST-NET
//! addresses), one daemon per node (userspace WireGuard here), containers
//! as `unshare -n` processes.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use overlayd_proto::{Request, Response, Scope, ServiceMode};
use support::overlay_nodes::*;
use support::*;

fn wg_show(uapi_dir: &Path, dev: &str) -> String {
    let mut cmd = overlayd_wg::wgtool::wg_command(uapi_dir).expect("wg command");
    let out = cmd.args(["show", dev]).output().expect("wg show");
    assert!(
        out.status.success(),
        "wg show {dev}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `overlayd wg show` resolves `base`, a bare service name and an owner
/// key to the right device and reads it itself (no wg(8) involved).
fn cli_wg_show_resolves_names(n: &Node, base_dev: &str, db_dev: &str, k2: &str, db2_key: &str) {
    let run = |args: &[&str]| {
        let out = n.d.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for target in ["db", "service:db", db_dev] {
        let (code, text, err) = run(&["wg", "show", target]);
        assert_eq!(code, Some(0), "wg show {target}: {err}");
        assert!(
            text.starts_with(&format!("interface: {db_dev}\n")),
            "{text}"
        );
        assert!(text.contains("  overlay: service:db"), "{text}");
        assert!(text.contains(&format!("peer: {db2_key}")), "{text}");
        assert!(!text.contains(k2), "only the db device: {text}");
        assert!(text.contains("latest handshake: "), "{text}");
    }
    let (code, text, err) = run(&["wg", "show", "base"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.starts_with(&format!("interface: {base_dev}\n")),
        "{text}"
    );
    assert!(text.contains(&format!("peer: {k2}")), "{text}");

    // No argument: every device of this instance, each once.
    let (code, text, err) = run(&["wg", "show"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(text.matches("interface: ").count(), 2, "{text}");
    assert!(text.contains(&format!("interface: {base_dev}")) && text.contains(db_dev));
    let (_, names, _) = run(&["wg", "show", "interfaces"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    let mut want = vec![base_dev, db_dev];
    want.sort_unstable();
    assert_eq!(names, want);

    let (code, json, err) = run(&["--json", "wg", "show", "db"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    let d = &v["devices"][0];
    assert_eq!(d["interface"], db_dev);
    assert_eq!(d["owner"], "service:db");
    assert_eq!(d["peers"][0]["public_key"], db2_key);
    assert!(
        d["peers"][0]["latest_handshake_unix_secs"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Unknown names: not found (4) with a suggestion; a shared service
    // points at the base overlay.
    let (code, _, err) = run(&["wg", "show", "dbb"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("did you mean"), "{err}");
    let (code, _, err) = run(&["wg", "show", "web"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("wg show base"), "{err}");
}

fn underlay_probe(ns: &Netns, dev: &str) {
    ns.exec(&["nft", "add", "table", "netdev", "probe"]);
    ns.exec(&[
        "nft",
        "add",
        "chain",
        "netdev",
        "probe",
        "in",
        &format!("{{ type filter hook ingress device \"{dev}\" priority 0; }}"),
    ]);
    ns.exec(&[
        "nft",
        "add",
        "rule",
        "netdev",
        "probe",
        "in",
        "ip",
        "saddr",
        "10.0.0.0/8",
        "counter",
    ]);
    ns.exec(&[
        "nft",
        "add",
        "rule",
        "netdev",
        "probe",
        "in",
        "udp",
        "dport",
        "51820-52076",
        "counter",
    ]);
}

fn probe_counts(ns: &Netns) -> (u64, u64) {
    let rules = ns.output(&["nft", "list", "chain", "netdev", "probe", "in"]);
    let c: Vec<u64> = rules
        .lines()
        .filter_map(|l| l.split("packets ").nth(1))
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect();
    (c[0], c[1])
}

#[test]
fn two_nodes_base_and_dedicated_overlays_survive_restart_kill_and_purge() {
    if !can_run_root_tests("overlay") {
        return;
    }
    let (ns1, ns2) = (Netns::new("w1"), Netns::new("w2"));
    link_pair(&ns1, "und1", "192.0.2.1/24", &ns2, "und2", "192.0.2.2/24");
    let mut n1 = start_node(ns1, "192.0.2.1", 1);
    let n2 = start_node(ns2, "192.0.2.2", 2);

    // Base overlay and peering.
    let dev1 = global_up(&n1);
    let dev2 = global_up(&n2);
    assert_ne!(dev2, "");
    assert_eq!(global_up(&n1), dev1, "idempotent");
    let (k1, k2) = (pubkey(&n1), pubkey(&n2));
    peer(&n1, &n2, &k2, 51820, &n2.slice, Scope::Global);
    peer(&n2, &n1, &k1, 51820, &n1.slice, Scope::Global);
    for n in [&n1, &n2] {
        n.d.ok(Request::SetupServiceOverlay {
            service: "web".into(),
            mode: ServiceMode::Shared,
            recreate: false,
        });
    }
    let (c1, c2) = (Container::new(), Container::new());
    let ip1 = attach(&n1, &c1, "web", true);
    let ip2 = attach(&n2, &c2, "web", true);
    assert!(ip1.starts_with("10.200.1."), "{ip1}");
    assert!(ip2.starts_with("10.200.2."), "{ip2}");
    underlay_probe(&n2.ns, "und2");
    wait_for(
        "c1 reaches c2 over the base overlay",
        Duration::from_secs(20),
        || c1.ping(&ip2),
    );
    assert!(c2.ping(&ip1));
    let (plain, wg) = probe_counts(&n2.ns);
    assert_eq!(plain, 0, "no plain overlay packet crossed the underlay");
    assert!(wg > 0, "WireGuard UDP crossed the underlay");

    // Dedicated service `db` with its own port and key on each node.
    let db1 = dedicated(&n1, "db");
    let db2 = dedicated(&n2, "db");
    assert!((51821..=52076).contains(&db1.port), "{}", db1.port);
    assert_ne!(db1.key, k1);
    peer(
        &n1,
        &n2,
        &db2.key,
        db2.port,
        &db2.subnet,
        Scope::Service {
            service: "db".into(),
        },
    );
    peer(
        &n2,
        &n1,
        &db1.key,
        db1.port,
        &db1.subnet,
        Scope::Service {
            service: "db".into(),
        },
    );
    let (d1, d2) = (Container::new(), Container::new());
    let _dip1 = attach(&n1, &d1, "db", false);
    let dip2 = attach(&n2, &d2, "db", false);
    wait_for(
        "d1 reaches d2 over the db overlay",
        Duration::from_secs(20),
        || d1.ping(&dip2),
    );
    let status = |n: &Node| match n.d.ok(Request::Status) {
        Response::Status(s) => s,
        r => panic!("{r:?}"),
    };
    let svc1 = status(&n1).dedicated_services.unwrap();
    assert_eq!(svc1.len(), 1);
    let db_dev1 = svc1[0].interface.clone();
    let uapi1 = n1.d.socket.parent().unwrap().join("wireguard");
    let uapi2 = n2.d.socket.parent().unwrap().join("wireguard");
    assert!(
        wg_show(&uapi1, &db_dev1).contains(&db2.key),
        "wg show lists node 2's db key"
    );
    let db_dev2 = status(&n2).dedicated_services.unwrap()[0].interface.clone();
    assert!(wg_show(&uapi2, &db_dev2).contains(&db1.key));
    assert!(wg_show(&uapi1, &dev1).contains(&k2));
    cli_wg_show_resolves_names(&n1, &dev1, &db_dev1, &k2, &db2.key);
    let st = status(&n1);
    assert_eq!(st.peer_count, 1);
    assert!(st.peers.unwrap()[0].last_handshake_unix_secs > 0);

    // Restart node 1: same identity; measure the interruption.
    let before = (
        pubkey(&n1),
        dedicated(&n1, "db").port,
        status(&n1).interface,
        db_dev1.clone(),
    );
    let marker = std::fs::read(n1.d.data_dir.join("agent_network.json")).unwrap();
    let t = Instant::now();
    n1.d.restart();
    wait_for(
        "traffic recovers after restart",
        Duration::from_secs(30),
        || c1.ping(&ip2) && d1.ping(&dip2),
    );
    eprintln!(
        "overlay traffic interrupted by the restart (stop, start, recover) for at most {:?}",
        t.elapsed()
    );
    let after_svc = status(&n1).dedicated_services.unwrap();
    assert_eq!(
        (
            pubkey(&n1),
            after_svc[0].listen_port,
            status(&n1).interface,
            after_svc[0].interface.clone()
        ),
        before
    );
    assert_eq!(
        std::fs::read(n1.d.data_dir.join("agent_network.json")).unwrap(),
        marker,
        "marker unchanged by a restart"
    );

    // kill -9: same result, no duplicates.
    n1.d.kill();
    n1.d.start_again();
    wait_for(
        "traffic recovers after kill -9",
        Duration::from_secs(30),
        || c1.ping(&ip2) && d1.ping(&dip2),
    );
    let links = n1.ns.links();
    let wg_devs: Vec<_> = links
        .iter()
        .filter(|l| l.as_str() == dev1 || **l == db_dev1)
        .collect();
    assert_eq!(wg_devs.len(), 2, "one base and one db device: {links:?}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(n1.d.data_dir.join("agent_network.json")).unwrap())
            .unwrap();
    let owners: Vec<&str> = m["networks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["owner"].as_str().unwrap())
        .collect();
    let mut dedup = owners.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(owners.len(), dedup.len(), "no duplicate marker entries");

    // A corrupt marker: quarantined, rebuilt from tags plus the store, with
    // the same dedicated key and port and the base bridge kept.
    let base_bridge = n1
        .ns
        .links()
        .into_iter()
        .find(|l| {
            l.starts_with("ovl-b")
                && n1
                    .ns
                    .output(&["ip", "-d", "link", "show", l])
                    .contains("owner=base")
        })
        .expect("base bridge");
    let base_index = n1.ns.ifindex(&base_bridge);
    n1.d.stop();
    std::fs::write(
        n1.d.data_dir.join("agent_network.json"),
        b"{\"version\":1,\"netw",
    )
    .unwrap();
    n1.d.start_again();
    wait_for(
        "traffic recovers after a rebuild",
        Duration::from_secs(30),
        || c1.ping(&ip2) && d1.ping(&dip2),
    );
    assert_eq!(n1.ns.ifindex(&base_bridge), base_index, "base bridge kept");
    let rebuilt = status(&n1).dedicated_services.unwrap();
    assert_eq!(
        (rebuilt[0].public_key.clone(), rebuilt[0].listen_port),
        (db1.key.clone(), db1.port),
        "same dedicated identity after a rebuild"
    );

    // Purge both: nothing of overlayd left, no stale UAPI socket.
    let out = n1.d.cli(&["uninstall", "--purge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = n1.d.proc.child.take().expect("daemon running");
    wait_for(
        "the daemon exits after uninstall",
        Duration::from_secs(30),
        || matches!(child.try_wait(), Ok(Some(_))),
    );
    let mut left = n1.ns.links();
    left.sort();
    assert_eq!(left, vec!["lo".to_string(), "und1".to_string()]);
    let socks = std::fs::read_dir(&uapi1).map(|d| d.count()).unwrap_or(0);
    assert_eq!(socks, 0, "no UAPI socket left");
    let out = n2.d.cli(&["uninstall", "--purge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut left = n2.ns.links();
    left.sort();
    assert_eq!(left, vec!["lo".to_string(), "und2".to_string()]);
    assert_eq!(std::fs::read_dir(&uapi2).map(|d| d.count()).unwrap_or(0), 0);
}
