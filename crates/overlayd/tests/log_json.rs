//! `--log-json` as a log shipper reads it: every line of a daemon's life
//! (start, base and dedicated overlays, a peer, an attach and detach, a
//! restart, a clean stop) is one JSON object whose fields are plain values,
//! never Rust Debug text (`None`, `Some(…)`, `Os { code: … }`), and carries
//! no colour codes. The daemon runs inside a namespace this test makes.

mod support;

use overlayd_proto::{Handle, Request, Response, Scope, ServiceMode};
use serde_json::Value;
use support::*;

/// Debug-looking text inside a string field, as `?field` or a `{:?}`
/// produces it.
fn debug_text(s: &str) -> Option<&'static str> {
    const MARKS: [&str; 7] = ["None", "Some(", "Ok(", "Err(", "Os {", " { code:", "[\""];
    if s == "None" {
        return Some("None");
    }
    MARKS[1..].iter().copied().find(|m| s.contains(m))
}

/// Every field of `v` (recursively) that looks like Debug output, as
/// `(path, value)`.
fn debug_fields(path: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        // The human message may quote Rust text on purpose; fields may not.
        Value::String(s) if path != "message" && debug_text(s).is_some() => {
            out.push((path.to_string(), s.clone()));
        }
        Value::Object(m) => {
            for (k, x) in m {
                debug_fields(k, x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| debug_fields(path, x, out)),
        _ => {}
    }
}

#[test]
fn log_json_lines_carry_only_structured_fields() {
    if !can_run_root_tests("log_json") {
        return;
    }
    let (ns, peer_ns) = (Netns::new("lj"), Netns::new("lp"));
    link_pair(&ns, "lj0", "192.0.2.1/24", &peer_ns, "lp0", "192.0.2.2/24");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(&cfg, "dns_port = 5353\nwg_backend = \"userspace\"\n").unwrap();
    let mut d = Daemon::start(
        &ns,
        dir.path(),
        &["--log-json", "--config", cfg.to_str().unwrap()],
    );
    d.ok(Request::SetLocalNodeId { node_id: 1 });
    d.ok(Request::SetupGlobalOverlay {
        deployment: "t".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: Some("10.200.1.0/24".into()),
        wg_port: 51820,
        nat_enabled: true,
    });
    d.ok(Request::AddPeer {
        public_key: "mF7jDLKR3aw9VmhoNBvlo1aTqpxyNNaEz6TspJ+gCyQ=".into(),
        endpoint: "192.0.2.2:51820".into(),
        allowed_ips: "10.200.2.0/24".into(),
        persistent_keepalive_secs: 5,
        scope: Some(Scope::Global),
    });
    d.ok(Request::SetupServiceOverlay {
        service: "db".into(),
        mode: ServiceMode::Dedicated,
        recreate: false,
    });
    let c = Container::new();
    let handle = Handle::LinuxPid { pid: c.pid() };
    match d.ok(Request::AttachContainer {
        handle: handle.clone(),
        service: "db".into(),
        join_global: true,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: Some("db1".into()),
        publish: Vec::new(),
    }) {
        Response::Attached { .. } => {}
        r => panic!("{r:?}"),
    }
    d.ok(Request::DetachContainer { handle });
    d.restart();
    d.stop();

    let log = d.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 10, "the daemon logged its life:\n{log}");
    let mut bad = Vec::new();
    let mut netns_seen = false;
    for l in &lines {
        assert!(!l.contains('\u{1b}'), "no colour codes in JSON lines: {l}");
        let v: Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"));
        assert!(v.is_object(), "{l}");
        for key in ["timestamp", "level", "message"] {
            assert!(v.get(key).is_some(), "{key} missing: {l}");
        }
        netns_seen |= v.get("netns").is_some();
        let mut found = Vec::new();
        debug_fields("", &v, &mut found);
        bad.extend(found.into_iter().map(|(k, s)| format!("{k}={s} in {l}")));
    }
    assert!(bad.is_empty(), "Debug text in fields:\n{}", bad.join("\n"));
    // The daemon runs in its own namespace with no `netns` option: a netns
    // field must be absent, never "None".
    assert!(!netns_seen || !log.contains("\"netns\":\"None\""));

    // Human lines to a file (not a terminal) carry no colour either.
    let plain_dir = tempfile::tempdir().unwrap();
    let mut plain = Daemon::start(&ns, plain_dir.path(), &["--config", cfg.to_str().unwrap()]);
    plain.stop();
    let log = plain.log();
    assert!(log.contains("INFO"), "human lines:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes off a terminal:\n{log}"
    );
}

#[test]
fn debug_text_is_recognised() {
    assert_eq!(debug_text("None"), Some("None"));
    assert_eq!(debug_text("Some(\"/run/netns/x\")"), Some("Some("));
    assert!(debug_text("Os { code: 77, kind: Other }").is_some());
    assert_eq!(debug_text("/run/netns/x"), None);
    assert_eq!(debug_text("Nonesuch"), None);
    let mut out = Vec::new();
    debug_fields(
        "",
        &serde_json::json!({"message": "None of it", "netns": "None", "n": 1}),
        &mut out,
    );
    assert_eq!(out, vec![("netns".to_string(), "None".to_string())]);
}
