//! Read-only requests never wait behind a mutation (issue 12): while one
//! request is stuck in a slow host operation (the fake host stalls bridge
//! creation), `status`, `list_networks`, the listings and the inspects
//! answer in under 50 ms, from the state as of the last completed change
//! (in process, fake host).

mod support;

use std::time::{Duration, Instant};

use overlayd_host::Op;
use overlayd_proto::{Request, Response};
use support::inproc::Instance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_answer_while_another_request_is_blocked_in_a_slow_host_operation() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(support::requests::iso("a")).await.unwrap();
    c.call(support::requests::shared("web")).await.unwrap();
    inst.host
        .add_live_target(overlayd_host::NetnsTarget::Pid(100));
    let attached = c
        .call(support::requests::attach_pid(
            100,
            "web",
            Some("a"),
            Some("w1"),
        ))
        .await
        .unwrap();
    assert!(
        matches!(attached, Response::Attached { .. }),
        "{attached:?}"
    );

    inst.host
        .stall_next(Op::CreateBridge, Duration::from_secs(3));
    let mut slow_client = inst.client().await;
    let slow = tokio::spawn(async move {
        let t = Instant::now();
        let r = slow_client.call(support::requests::iso("b")).await.unwrap();
        (r, t.elapsed())
    });
    // Wait until the slow request is inside the host call.
    inst.until_stalled().await;
    let handle = overlayd_proto::Handle::LinuxPid { pid: 100 };
    let reads = [
        Request::Status,
        Request::ListNetworks,
        Request::ListServices,
        Request::ListAttachments,
        Request::ListDnsRecords,
        Request::InspectAttachment {
            handle: handle.clone(),
        },
        Request::InspectInterface { handle },
    ];
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        for read in &reads {
            let t = Instant::now();
            let r = c.call(read.clone()).await.unwrap();
            let took = t.elapsed();
            worst = worst.max(took);
            assert!(!matches!(r, Response::Err { .. }), "{}: {r:?}", read.op());
            if let Response::Networks { networks } = &r {
                let owners: Vec<&str> = networks.iter().map(|n| n.owner.as_str()).collect();
                assert!(owners.contains(&"iso:a"), "{owners:?}");
                assert!(
                    !owners.contains(&"iso:b"),
                    "a half-done network is never shown: {owners:?}"
                );
            }
        }
    }
    assert!(!slow.is_finished(), "the slow request is still blocked");
    println!("every read answered in at most {worst:?} while a request waited 3 s on the host");
    assert!(
        worst < Duration::from_millis(50),
        "a read took {worst:?} behind a blocked mutation"
    );
    let (r, took) = slow.await.unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");
    assert!(
        took >= Duration::from_secs(3),
        "the stall applied: {took:?}"
    );
    // Once the mutation completed, reads see it.
    let Response::Networks { networks } = c.call(Request::ListNetworks).await.unwrap() else {
        panic!("list_networks");
    };
    assert!(networks.iter().any(|n| n.owner == "iso:b"));
    let _ = inst.shutdown().await;
}
