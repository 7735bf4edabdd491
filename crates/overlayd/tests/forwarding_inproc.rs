//! Forwarding sysctls (issue 10, item 5): an IPv4-only network turns on
//! IPv4 forwarding and leaves IPv6 forwarding alone, and purge puts back
//! the values the host had before overlayd changed them (in process, fake
//! host).

mod support;

use std::sync::Arc;

use overlayd_host::{Forwarding, Host};
use overlayd_proto::Response;
use support::inproc::Instance;

fn f(ipv4: bool, ipv6: bool) -> Forwarding {
    Forwarding {
        ipv4: Some(ipv4),
        ipv6: Some(ipv6),
    }
}

async fn iso_up(inst: &Instance, name: &str) {
    let mut c = inst.client().await;
    let r = c.call(support::requests::iso(name)).await.unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");
}

async fn purge(inst: Instance) -> overlayd::daemon::purge::PurgeReport {
    let cfg = inst.cfg.clone();
    let host: Arc<dyn Host> = inst.host.clone();
    let dir = inst.shutdown().await;
    let lock = overlayd_state::InstanceLock::acquire(&cfg.data_dir).unwrap();
    let report = overlayd::daemon::purge::purge(&cfg, host, lock).await;
    drop(dir);
    report
}

#[tokio::test]
async fn ipv4_networks_leave_ipv6_forwarding_alone_and_purge_restores_the_host_values() {
    let inst = Instance::start().await;
    let host = inst.host.clone();
    assert_eq!(host.forwarding_now(), f(false, false));
    iso_up(&inst, "a").await;
    assert_eq!(
        host.forwarding_now(),
        f(true, false),
        "IPv4 forwarding on for a NAT network, IPv6 forwarding untouched"
    );
    let report = purge(inst).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        report
            .lines
            .iter()
            .any(|l| l.contains("restored") && l.contains("net.ipv4.ip_forward=0")),
        "{:?}",
        report.lines
    );
    assert_eq!(host.forwarding_now(), f(false, false), "purge restored it");
}

#[tokio::test]
async fn forwarding_the_host_had_on_stays_on_after_purge() {
    let inst = Instance::start().await;
    let host = inst.host.clone();
    host.set_forwarding_now(f(true, true));
    iso_up(&inst, "a").await;
    assert_eq!(host.forwarding_now(), f(true, true));
    let report = purge(inst).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(
        !report.lines.iter().any(|l| l.contains("forwarding")),
        "nothing was changed, nothing to restore: {:?}",
        report.lines
    );
    assert_eq!(host.forwarding_now(), f(true, true));
}
