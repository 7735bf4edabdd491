//! The opt-in Prometheus endpoint, as root in a namespace this test makes:
//! the daemon serves `/metrics` on `metrics_listen`; a scrape from inside
//! the namespace parses as Prometheus text and counts an attach, the
//! network, the lease, a DNS query and the store commits.

mod support;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::*;

/// GET `path` from `addr` inside the namespace `ns` (a thread of our own
/// enters it, so nothing is reached outside the namespace).
fn http_get(ns: &Netns, addr: &str, path: &str) -> (u16, String) {
    let ns_path = ns.path();
    let addr = addr.to_string();
    let path = path.to_string();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns_path).expect("netns file");
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut s = std::net::TcpStream::connect(&addr).expect("connect to metrics");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP response");
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        (status, body.to_string())
    })
    .join()
    .expect("scrape thread")
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, label: Option<(&str, &str)>) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn metrics_are_served_and_parse() {
    if !can_run_root_tests("metrics") {
        return;
    }
    let ns = Netns::new("mt");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(
        &cfg,
        "metrics_listen = \"127.0.0.1:9469\"\ndns_port = 53\ndns_upstreams = []\n",
    )
    .unwrap();
    let d = Daemon::start(&ns, dir.path(), &["--config", cfg.to_str().unwrap()]);
    d.ok(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    });
    let c = Container::new();
    let ip = match d.ok(Request::AttachContainer {
        handle: Handle::LinuxPid { pid: c.pid() },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: Some("c1".into()),
        publish: vec![],
    }) {
        Response::Attached { ip, .. } => ip,
        r => panic!("{r:?}"),
    };
    // A failed request is counted as an error.
    let _ = d.call(Request::TeardownServiceOverlay {
        service: "web".into(),
    });
    // One DNS query answered from the zone, through the gateway.
    let gw = format!("{}.1", ip.rsplit_once('.').unwrap().0);
    let dig = c.output(&[
        "dig",
        "+short",
        "+time=2",
        &format!("@{gw}"),
        "c1.overlay.internal",
    ]);
    assert_eq!(dig.trim(), ip, "dig answered");

    let (status, body) = http_get(&ns, "127.0.0.1:9469", "/metrics");
    assert_eq!(status, 200, "{body}");
    let scrape =
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let ok_attach = value(
        &scrape,
        "overlayd_requests_total",
        Some(("op", "attach_container")),
    );
    assert_eq!(ok_attach, 1.0, "one attach counted:\n{body}");
    assert!(
        value(&scrape, "overlayd_requests_total", Some(("result", "err"))) >= 1.0,
        "the refused teardown is counted as an error:\n{body}"
    );
    assert!(
        value(
            &scrape,
            "overlayd_request_duration_seconds_count",
            Some(("op", "attach_container"))
        ) >= 1.0,
        "attach latency observed:\n{body}"
    );
    assert_eq!(value(&scrape, "overlayd_attachments", None), 1.0, "{body}");
    assert_eq!(
        value(&scrape, "overlayd_networks", Some(("kind", "shared-nat"))),
        1.0,
        "{body}"
    );
    assert_eq!(
        value(&scrape, "overlayd_leases", Some(("network", "shared-nat"))),
        1.0,
        "{body}"
    );
    assert!(
        value(&scrape, "overlayd_dns_queries_total", None) >= 1.0,
        "{body}"
    );
    assert!(
        value(&scrape, "overlayd_dns_answers_total", None) >= 1.0,
        "{body}"
    );
    assert!(
        value(
            &scrape,
            "overlayd_store_commit_duration_seconds_count",
            None
        ) >= 1.0,
        "{body}"
    );
    assert!(
        value(&scrape, "overlayd_reconcile_actions_total", None) >= 0.0
            && body.contains("overlayd_reconcile_actions_total"),
        "{body}"
    );

    // Anything but GET /metrics is refused.
    let (status, _) = http_get(&ns, "127.0.0.1:9469", "/");
    assert_eq!(status, 404);
}
