//! Bounded resources at the socket, in process: a connection cap (the next
//! client gets a clear `err` and is closed, the ones already served keep
//! working) and an idle timeout that frees silent connections.

mod support;

use std::time::{Duration, Instant};

use overlayd_proto::{
    decode_frame, encode_frame, read_frame, write_frame, Frame, Request, Response,
};
use support::inproc::Instance;
use tokio::net::UnixStream;

/// Connect and send `hello`; the response.
async fn hello(inst: &Instance) -> (UnixStream, Response) {
    let mut s = UnixStream::connect(&inst.cfg.socket).await.unwrap();
    let body = encode_frame(&Frame::Request {
        id: 1,
        request: Request::Hello {
            protocol_version: 1,
        },
    });
    write_frame(&mut s, &body).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
        .await
        .expect("an answer, not silence")
        .unwrap()
        .expect("a frame");
    match decode_frame(&r).unwrap() {
        Frame::Response { response, .. } => (s, response),
        f => panic!("{f:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_clearly_and_idle_connections_are_closed() {
    const CAP: usize = 8;
    let inst = Instance::start_with(|c| {
        c.max_connections = CAP;
        c.idle_timeout_secs = 2;
    })
    .await;
    // Fill the cap (the readiness probe's connection may take a moment to
    // be released, so a refusal here is retried until a deadline).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut held = Vec::new();
    while held.len() < CAP {
        let (s, r) = hello(&inst).await;
        match r {
            Response::Hello { .. } => held.push(s),
            Response::Err { .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            r => panic!("{r:?}"),
        }
    }
    let mut refused = 0;
    for _ in 0..20 {
        let (_, r) = hello(&inst).await;
        match r {
            Response::Err { message, .. } => {
                assert!(message.contains("max_connections"), "{message}");
                refused += 1;
            }
            r => panic!("over the cap must be refused: {r:?}"),
        }
    }
    println!(
        "connection cap {CAP}: {} served, {refused} of 20 extra refused",
        held.len()
    );
    assert_eq!(refused, 20);

    // Idle for longer than the timeout: the daemon closes them (EOF).
    let started = Instant::now();
    for s in &mut held {
        let r = tokio::time::timeout(Duration::from_secs(10), read_frame(s))
            .await
            .expect("idle connection closed by the daemon");
        assert!(matches!(r, Ok(None)), "{r:?}");
    }
    println!("idle connections closed after {:?}", started.elapsed());
    // Freed slots serve new clients again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, r) = hello(&inst).await;
        if matches!(r, Response::Hello { .. }) {
            break;
        }
        assert!(Instant::now() < deadline, "slots never freed: {r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = inst.shutdown().await;
}
