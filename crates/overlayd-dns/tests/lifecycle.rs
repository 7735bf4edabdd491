//! Listener supervision when the server goes away without `shutdown`.
//!
//! Alone in its own test binary because it installs a process-wide panic
//! hook to see panics inside the server's tasks (Tokio catches those).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use overlayd_dns::Records;

/// Servers started and dropped.
const ROUNDS: usize = 20;

/// Regression: when the UDP loop ended (its runtime stopped with the last
/// handle), the listener's supervisor polled the finished `JoinHandle` a
/// second time and panicked, dropping the TCP side without a clean stop.
#[tokio::test]
async fn dropping_the_server_ends_its_listeners_without_a_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let seen = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    // The race between the UDP runtime stopping and the stop signal
    // reaching the supervisor goes either way; try it a number of times.
    for _ in 0..ROUNDS {
        let records = Records::new("overlay.internal").unwrap();
        let (server, addr) = start(
            &records,
            "127.0.0.1:0",
            vec![dead_port("127.0.0.6")],
            Duration::from_secs(1),
        )
        .await;
        let second = server
            .add_listener("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        for listener in [addr, second] {
            let reply = ask(
                listener,
                "overlay.internal.",
                hickory_proto::rr::RecordType::SOA,
            )
            .await;
            assert_eq!(reply.answers.len(), 1);
        }
        drop(server);

        let deadline = Instant::now() + Duration::from_secs(5);
        for listener in [addr, second] {
            while std::net::UdpSocket::bind(listener).is_err()
                || std::net::TcpListener::bind(listener).is_err()
            {
                assert!(
                    Instant::now() < deadline,
                    "ports of a dropped server were not released"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Let the supervisors run to their end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a server task panicked");
}
