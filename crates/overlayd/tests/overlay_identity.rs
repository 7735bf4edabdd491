//! The node identity end to end, as root, inside namespaces this test
//! creates: bad peer input changes nothing, and the node key changes only
//! through `rotate-key` while the daemon is stopped.

mod support;

use overlayd_proto::{Request, Response, Scope};
use support::overlay_nodes::*;
use support::*;

#[test]
fn overlay_bad_input_changes_nothing() {
    if !can_run_root_tests("overlay_bad") {
        return;
    }
    let ns = Netns::new("wb");
    let n = start_node(ns, "192.0.2.1", 3);
    let err = |r: Response| match r {
        Response::Err { message, .. } => message,
        r => panic!("expected err, got {r:?}"),
    };
    let good_key = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";
    let add = |key: &str, ep: &str, allowed: &str, scope: Option<Scope>| {
        n.d.call(Request::AddPeer {
            public_key: key.into(),
            endpoint: ep.into(),
            allowed_ips: allowed.into(),
            persistent_keepalive_secs: 0,
            scope,
        })
    };
    let m = err(add(good_key, "192.0.2.9:51820", "10.200.9.0/24", None));
    assert!(m.contains("global overlay is not set up"), "{m}");
    global_up(&n);
    let marker = std::fs::read(n.d.data_dir.join("agent_network.json")).unwrap();
    assert!(err(add("short", "192.0.2.9:51820", "10.200.9.0/24", None)).contains("32 bytes"));
    assert!(err(add(good_key, "no-port", "10.200.9.0/24", None)).contains("HOST:PORT"));
    assert!(err(add(good_key, "192.0.2.9:51820", "10.200.9.0/33", None)).contains("not a CIDR"));
    assert!(err(add(good_key, "192.0.2.9:51820", "10.200.3.0/24", None)).contains("overlaps"));
    let m = err(add(
        good_key,
        "192.0.2.9:51820",
        "10.200.9.0/24",
        Some(Scope::Service {
            service: "nosuch".into(),
        }),
    ));
    assert!(m.contains("no dedicated overlay"), "{m}");
    assert_eq!(
        std::fs::read(n.d.data_dir.join("agent_network.json")).unwrap(),
        marker,
        "nothing changed"
    );
    match n.d.ok(Request::Status) {
        Response::Status(s) => assert_eq!(s.peer_count, 0),
        r => panic!("{r:?}"),
    }
}

#[test]
fn rotate_key_changes_the_node_identity_only_when_asked() {
    if !can_run_root_tests("rotate") {
        return;
    }
    let ns = Netns::new("wr");
    let mut n = start_node(ns, "192.0.2.1", 4);
    let dev = global_up(&n);
    let old = pubkey(&n);
    n.d.restart();
    assert_eq!(pubkey(&n), old, "a restart keeps the key");

    let refused = n.d.cli(&["rotate-key"]);
    assert!(!refused.status.success(), "refused while the daemon runs");
    assert_eq!(pubkey(&n), old);

    n.d.stop();
    let out = n.d.cli(&["rotate-key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    n.d.start_again();
    let new = pubkey(&n);
    assert_ne!(new, old);
    assert!(printed.contains(&new), "{printed}");
    let show = n.d.cli(&["wg", "show", &dev]);
    let show_text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        show_text.contains(&new),
        "the device runs the new key: {show_text}"
    );
}
