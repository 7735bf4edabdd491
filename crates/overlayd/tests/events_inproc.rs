//! A subscriber that goes away is let go at once (in process): the daemon
//! closes its side of the connection without waiting for the next event.

mod support;

use std::time::Duration;

use overlayd_proto::{decode_frame, encode_frame, read_frame, write_frame, Frame, Request};
use support::inproc::Instance;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_disconnected_subscriber_is_dropped_without_waiting_for_an_event() {
    let inst = Instance::start().await;
    let mut s = tokio::net::UnixStream::connect(&inst.cfg.socket)
        .await
        .unwrap();
    let req = encode_frame(&Frame::Request {
        id: 1,
        request: Request::SubscribeEvents,
    });
    write_frame(&mut s, &req).await.unwrap();
    let body = read_frame(&mut s).await.unwrap().expect("a response");
    assert!(matches!(
        decode_frame(&body),
        Ok(Frame::Response { id: 1, .. })
    ));
    // The client is done: it closes its sending side. No event follows.
    s.shutdown().await.unwrap();
    let eof = tokio::time::timeout(Duration::from_secs(3), read_frame(&mut s)).await;
    assert!(
        matches!(eof, Ok(Ok(None))),
        "the daemon closed the connection promptly: {eof:?}"
    );
    let _ = inst.shutdown().await;
}
