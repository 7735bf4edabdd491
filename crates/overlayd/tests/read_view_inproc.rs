//! Read-only requests never wait behind a mutation (issue 12): while one
//! request is stuck in a slow host operation (the fake host stalls bridge
//! creation), `status` answers in under 50 ms, from the state as of the
//! last completed change (in process, fake host).

mod support;

use std::time::{Duration, Instant};

use overlayd_host::Op;
use overlayd_proto::{Request, Response};
use support::inproc::Instance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_another_request_is_blocked_in_a_slow_host_operation() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(support::requests::iso("a")).await.unwrap();

    inst.host
        .stall_next(Op::CreateBridge, Duration::from_secs(3));
    let mut slow_client = inst.client().await;
    let slow = tokio::spawn(async move {
        let t = Instant::now();
        let r = slow_client.call(support::requests::iso("b")).await.unwrap();
        (r, t.elapsed())
    });
    // Wait until the slow request is inside the host call.
    let deadline = Instant::now() + Duration::from_secs(5);
    while inst.host.stalled() == 0 {
        assert!(Instant::now() < deadline, "the slow request never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let r = c.call(Request::Status).await.unwrap();
        let took = t.elapsed();
        worst = worst.max(took);
        assert!(matches!(r, Response::Status(_)), "{r:?}");
    }
    assert!(!slow.is_finished(), "the slow request is still blocked");
    println!("status answered in at most {worst:?} while a request waited 3 s on the host");
    assert!(
        worst < Duration::from_millis(50),
        "status took {worst:?} behind a blocked mutation"
    );
    let (r, took) = slow.await.unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");
    assert!(
        took >= Duration::from_secs(3),
        "the stall applied: {took:?}"
    );
    let _ = inst.shutdown().await;
}
