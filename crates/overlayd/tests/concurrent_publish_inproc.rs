//! Published ports of an attach in flight (issue 12's split container
//! requests): between its begin and its finish, an attach's ports are
//! reserved but not live, so a whole-table firewall apply meanwhile must not
//! publish them (a failed attach would leave them to the next holder of its
//! address) and the periodic check must not take their absence for drift
//! (in process, fake host).

mod support;

use std::time::{Duration, Instant};

use overlayd_host::{NetnsTarget, Op};
use overlayd_proto::{Request, Response};
use support::inproc::Instance;

/// An attach of `pid` to service `web` on isolation network `a`,
/// publishing `ports`.
fn attach(pid: u32, ports: &[&str]) -> Request {
    support::requests::attach_pid_publishing(pid, "web", Some("a"), ports)
}

/// An attach publishing 8080 is in the kernel when another request applies
/// the whole firewall (here: creating another network); the container dies,
/// so the attach fails and is rolled back. Its port must not stay
/// published — least of all to its address, which the next container on
/// the network is given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attach_leaves_no_published_port_after_a_firewall_apply_meanwhile() {
    let inst = Instance::start().await;
    inst.ok_all([
        support::requests::iso("a"),
        support::requests::shared("web"),
    ])
    .await;
    let mut c = inst.client().await;
    for pid in [100, 101] {
        inst.host.add_live_target(NetnsTarget::Pid(pid));
    }
    inst.host
        .stall_next(Op::AttachVeth, Duration::from_millis(1500));
    let slow = inst.spawn_call(attach(100, &["8080:80"])).await;
    inst.until_stalled().await;
    // Any request that applies the whole table while the attach is in flight.
    let r = c.call(support::requests::iso("b")).await.unwrap();
    assert!(!matches!(r, Response::Err { .. }), "{r:?}");
    // The container exits before its veth is made.
    inst.host.kill_target(&NetnsTarget::Pid(100));
    let r = slow.await.unwrap();
    assert!(
        matches!(r, Response::Err { .. }),
        "the attach failed: {r:?}"
    );

    let published = inst
        .host
        .firewall()
        .map(|f| f.published)
        .unwrap_or_default();
    // The next container gets the freed address...
    let next = c.call(attach(101, &[])).await.unwrap();
    let Response::Attached { ip, .. } = next else {
        panic!("{next:?}");
    };
    assert!(
        published.is_empty(),
        "a failed attach left published ports in the firewall: {published:?}; \
         the next container on the network got {ip}, so host port 8080 now reaches a \
         container that never published it"
    );
    let _ = inst.shutdown().await;
}

/// Two periodic checks run while an attach publishing `publish` is stalled
/// in the kernel: neither may take the firewall for tampered with and
/// re-apply it — nobody touched it; the attach has not published yet.
async fn no_drift_while_an_attach_is_in_flight(publish: &[&str]) {
    use overlayd_host::fake::Call;
    let inst = Instance::start_with(|c| c.check_interval_secs = 1).await;
    inst.ok_all([
        support::requests::iso("a"),
        support::requests::shared("web"),
    ])
    .await;
    inst.host.add_live_target(NetnsTarget::Pid(100));
    inst.host.stall_next(Op::AttachVeth, Duration::from_secs(4));
    let slow = inst.spawn_call(attach(100, publish)).await;
    inst.until_stalled().await;
    inst.host.clear_calls();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let calls = inst.host.calls();
        assert!(
            !calls.iter().any(|c| matches!(c, Call::ApplyFirewall(_))),
            "the periodic check re-applied an untouched firewall (took an in-flight attach's ports {publish:?} for drift)"
        );
        let checks = calls
            .iter()
            .filter(|c| matches!(c, Call::FirewallMatches(_)))
            .count();
        if checks >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no periodic check ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = slow.await.unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_sees_no_drift_while_an_attach_with_ports_is_in_flight() {
    no_drift_while_an_attach_is_in_flight(&["8080:80"]).await;
}

/// The same without published ports (the control of the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_sees_no_drift_while_an_attach_without_ports_is_in_flight() {
    no_drift_while_an_attach_is_in_flight(&[]).await;
}
