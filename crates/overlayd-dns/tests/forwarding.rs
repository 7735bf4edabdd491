//! Forwarding of out-of-zone names to fake upstreams on loopback addresses.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use overlayd_dns::Records;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn forwarded_answer_comes_back() {
    let upstream = FakeUpstream::start("127.0.0.2", UpstreamMode::Answer).await;
    let records = Records::new("overlay.internal").unwrap();
    records.add("web", ip("10.200.1.5")).unwrap();
    let (server, addr) = start(
        &records,
        "127.0.0.1:0",
        vec![upstream.addr],
        Duration::from_secs(2),
    )
    .await;

    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_ips(&reply), vec![ip("192.0.2.10")]);
    assert!(reply.metadata.recursion_available);
    assert!(
        !reply.metadata.authoritative,
        "forwarded answers are not AA"
    );

    // Upstream NXDOMAIN and NODATA pass through.
    let reply = ask(addr, "nothing.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    let reply = ask(addr, "ext.example.com.", RecordType::AAAA).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());

    // In-zone names never reach the upstream and stay authoritative.
    let reply = ask(addr, "web.overlay.internal.", RecordType::A).await;
    assert!(reply.metadata.authoritative && reply.metadata.recursion_available);
    assert_eq!(answer_ips(&reply), vec![ip("10.200.1.5")]);
    server.shutdown().await;
}

#[tokio::test]
async fn truncated_upstream_reply_is_retried_over_tcp() {
    let upstream = FakeUpstream::start("127.0.0.2", UpstreamMode::Answer).await;
    let records = Records::new("overlay.internal").unwrap();
    let (server, addr) = start(
        &records,
        "127.0.0.1:0",
        vec![upstream.addr],
        Duration::from_secs(2),
    )
    .await;
    // Client over TCP gets the whole set the upstream only gave over TCP.
    let reply = send_tcp(addr, &query("big.example.com.", RecordType::A, false)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(reply.answers.len(), usize::from(BIG_COUNT));
    // A UDP client without EDNS gets what fits, flagged TC.
    let reply = send_udp(addr, &query("big.example.com.", RecordType::A, false)).await;
    assert!(reply.metadata.truncation);
    server.shutdown().await;
}

#[tokio::test]
async fn stopped_upstream_gives_servfail_fast() {
    let upstream = FakeUpstream::start("127.0.0.2", UpstreamMode::Answer).await;
    let upstream_addr = upstream.addr;
    let records = Records::new("overlay.internal").unwrap();
    let timeout = Duration::from_secs(2);
    let (server, addr) = start(&records, "127.0.0.1:0", vec![upstream_addr], timeout).await;

    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    assert_eq!(answer_ips(&reply), vec![ip("192.0.2.10")]);

    drop(upstream);
    // Wait (bounded) until the aborted upstream task has released its port.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind(upstream_addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "fake upstream never released its port"
        );
        tokio::task::yield_now().await;
    }

    let started = Instant::now();
    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(reply.answers.is_empty(), "SERVFAIL, not an empty answer");
    assert!(
        took <= timeout + Duration::from_millis(500),
        "took {took:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn nothing_listening_gives_servfail() {
    let records = Records::new("overlay.internal").unwrap();
    let timeout = Duration::from_secs(2);
    let (server, addr) = start(
        &records,
        "127.0.0.1:0",
        vec![dead_port("127.0.0.6")],
        timeout,
    )
    .await;
    let started = Instant::now();
    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() <= timeout + Duration::from_millis(500));
    server.shutdown().await;
}

#[tokio::test]
async fn silent_upstream_gives_servfail_within_the_timeout() {
    let upstream = FakeUpstream::start("127.0.0.2", UpstreamMode::Silent).await;
    let records = Records::new("overlay.internal").unwrap();
    let timeout = Duration::from_millis(800);
    let (server, addr) = start(&records, "127.0.0.1:0", vec![upstream.addr], timeout).await;

    let started = Instant::now();
    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= timeout - Duration::from_millis(50),
        "gave up early: {took:?}"
    );
    assert!(
        took <= timeout + Duration::from_millis(700),
        "too slow: {took:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn silent_or_failing_first_upstream_falls_over_to_the_next() {
    let silent = FakeUpstream::start("127.0.0.2", UpstreamMode::Silent).await;
    let failing = FakeUpstream::start("127.0.0.7", UpstreamMode::ServFail).await;
    let good = FakeUpstream::start("127.0.0.8", UpstreamMode::Answer).await;
    let records = Records::new("overlay.internal").unwrap();
    let timeout = Duration::from_secs(3);
    let (server, addr) = start(
        &records,
        "127.0.0.1:0",
        vec![silent.addr, failing.addr, good.addr],
        timeout,
    )
    .await;
    let started = Instant::now();
    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_ips(&reply), vec![ip("192.0.2.10")]);
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());

    // Only SERVFAIL-ing upstreams: the client sees SERVFAIL.
    let (server2, addr2) = start(&records, "127.0.0.1:0", vec![failing.addr], timeout).await;
    let reply = ask(addr2, "ext.example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    server.shutdown().await;
    server2.shutdown().await;
}

/// How long a local-zone answer may take once an upstream has failed: the
/// listener must answer at once, not after some recovery.
const PROMPT: Duration = Duration::from_secs(1);

/// Asks for `web.overlay.internal` over UDP `times` times, each within [`PROMPT`].
async fn local_answers_promptly(addr: std::net::SocketAddr, times: usize, when: &str) {
    for attempt in 0..times {
        let reply = tokio::time::timeout(PROMPT, ask(addr, "web.overlay.internal.", RecordType::A))
            .await
            .unwrap_or_else(|_| {
                panic!("{when}: local query {attempt} not answered within {PROMPT:?}")
            });
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{when}"
        );
        assert_eq!(answer_ips(&reply), vec![ip("10.200.1.5")], "{when}");
    }
}

/// Regression: after a forwarded query failed because the upstream died
/// (its port answers ICMP port unreachable), the listener kept no longer
/// answering anything, not even names of its own zone.
#[tokio::test]
async fn dead_upstream_does_not_stop_the_listener() {
    let upstream = FakeUpstream::start("127.0.0.2", UpstreamMode::Answer).await;
    let upstream_addr = upstream.addr;
    let records = Records::new("overlay.internal").unwrap();
    records.add("web", ip("10.200.1.5")).unwrap();
    let timeout = Duration::from_secs(2);
    let (server, addr) = start(&records, "127.0.0.1:0", vec![upstream_addr], timeout).await;

    let reply = ask(addr, "ext.example.com.", RecordType::A).await;
    assert_eq!(answer_ips(&reply), vec![ip("192.0.2.10")]);
    local_answers_promptly(addr, 3, "before the upstream died").await;

    drop(upstream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind(upstream_addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "fake upstream never released its port"
        );
        tokio::task::yield_now().await;
    }

    for round in 0..3 {
        let reply = ask(addr, "ext.example.com.", RecordType::A).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::ServFail,
            "round {round}"
        );
        local_answers_promptly(addr, 10, &format!("after SERVFAIL round {round}")).await;
    }
    // Names added after the failure are served too, over UDP and TCP.
    records.add("late", ip("10.200.1.77")).unwrap();
    let reply = tokio::time::timeout(PROMPT, ask(addr, "late.overlay.internal.", RecordType::A))
        .await
        .expect("late name not answered over UDP in time");
    assert_eq!(answer_ips(&reply), vec![ip("10.200.1.77")]);
    let reply = send_tcp(addr, &query("late.overlay.internal.", RecordType::A, true)).await;
    assert_eq!(answer_ips(&reply), vec![ip("10.200.1.77")]);
    server.shutdown().await;
}

/// Forwards failing with ICMP port unreachable while they overlap with
/// local queries, and clients that vanish before their reply arrives (so
/// the listener's own replies draw ICMP errors), leave the listener serving.
#[tokio::test]
async fn icmp_errors_from_upstreams_and_clients_do_not_stop_the_listener() {
    let records = Records::new("overlay.internal").unwrap();
    records.add("web", ip("10.200.1.5")).unwrap();
    let timeout = Duration::from_secs(2);
    let (server, addr) = start(
        &records,
        "127.0.0.1:0",
        vec![dead_port("127.0.0.6")],
        timeout,
    )
    .await;

    // Overlapping forwards to the dead upstream, interleaved with local queries.
    let forwards: Vec<_> = (0..8)
        .map(|_| tokio::spawn(ask(addr, "ext.example.com.", RecordType::A)))
        .collect();
    local_answers_promptly(addr, 5, "while forwards fail").await;
    for forward in forwards {
        let reply = forward.await.unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }

    // Clients that send a query and close their socket at once: the replies
    // go to closed ports on loopback and come back as ICMP port unreachable.
    let bytes = query("web.overlay.internal.", RecordType::A, true)
        .to_vec()
        .unwrap();
    for _ in 0..20 {
        let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        gone.send_to(&bytes, addr).unwrap();
    }
    let bytes = query("ext.example.com.", RecordType::A, true)
        .to_vec()
        .unwrap();
    for _ in 0..5 {
        let gone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        gone.send_to(&bytes, addr).unwrap();
    }
    local_answers_promptly(addr, 10, "after replies to vanished clients").await;
    // Still after the vanished clients' forwards have failed too.
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    local_answers_promptly(addr, 10, "after all forwards ended").await;
    server.shutdown().await;
}
