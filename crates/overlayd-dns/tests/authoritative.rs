//! Authoritative answers over real sockets on loopback (127.0.0.0/8 only).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, RData, RecordType};
use overlayd_dns::{DnsConfig, DnsError, DnsServer, Records};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const NO_UPSTREAM: Duration = Duration::from_secs(2);

#[tokio::test]
async fn registered_name_resolves_with_aa() {
    let records = Records::new("overlay.internal").unwrap();
    records.add("web", ip("10.200.1.5")).unwrap();
    records.add("web.overlay.internal.", ip("fd00::5")).unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;

    let reply = ask(addr, "web.overlay.internal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative, "AA bit must be set");
    assert_eq!(answer_ips(&reply), vec![ip("10.200.1.5")]);
    assert_eq!(reply.answers[0].ttl, overlayd_dns::DEFAULT_TTL);

    let reply = ask(addr, "WEB.Overlay.Internal.", RecordType::AAAA).await;
    assert!(reply.metadata.authoritative);
    assert_eq!(answer_ips(&reply), vec![ip("fd00::5")]);

    let reply = ask(addr, "web.overlay.internal.", RecordType::ANY).await;
    assert_eq!(answer_ips(&reply), vec![ip("10.200.1.5"), ip("fd00::5")]);

    // Same answers over TCP.
    let reply = send_tcp(addr, &query("web.overlay.internal.", RecordType::A, false)).await;
    assert!(reply.metadata.authoritative);
    assert_eq!(answer_ips(&reply), vec![ip("10.200.1.5")]);
    server.shutdown().await;
}

#[tokio::test]
async fn updates_and_removal_are_visible_immediately() {
    let records = Records::new("overlay.internal").unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;

    let reply = ask(addr, "db.overlay.internal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);

    records.set("db", [ip("10.200.2.7")]).unwrap();
    let reply = ask(addr, "db.overlay.internal.", RecordType::A).await;
    assert_eq!(answer_ips(&reply), vec![ip("10.200.2.7")]);

    records
        .set("db", [ip("10.200.2.8"), ip("10.200.2.9")])
        .unwrap();
    let reply = ask(addr, "db.overlay.internal.", RecordType::A).await;
    assert_eq!(answer_ips(&reply), vec![ip("10.200.2.8"), ip("10.200.2.9")]);

    assert!(records.remove("db.overlay.internal").unwrap());
    let reply = ask(addr, "db.overlay.internal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert!(reply.metadata.authoritative);
    assert!(has_soa(&reply), "NXDOMAIN carries the SOA in authority");
    assert!(reply.answers.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn nodata_apex_and_empty_non_terminal() {
    let records = Records::new("overlay.internal").unwrap();
    records.add("v4only", ip("10.200.3.1")).unwrap();
    records
        .add("a.b.overlay.internal", ip("10.200.3.2"))
        .unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;

    // Existing name, no record of that type: NOERROR, empty, SOA.
    let reply = ask(addr, "v4only.overlay.internal.", RecordType::AAAA).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    assert!(has_soa(&reply));
    let reply = ask(addr, "v4only.overlay.internal.", RecordType::MX).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());

    // Empty non-terminal: NOERROR, not NXDOMAIN.
    let reply = ask(addr, "b.overlay.internal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    // Below an existing leaf: NXDOMAIN.
    let reply = ask(addr, "x.v4only.overlay.internal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);

    // Apex SOA and NS.
    let reply = ask(addr, "overlay.internal.", RecordType::SOA).await;
    assert!(reply.metadata.authoritative);
    let serial = match &reply.answers[..] {
        [r] => match &r.data {
            RData::SOA(soa) => soa.serial,
            other => panic!("expected SOA, got {other:?}"),
        },
        other => panic!("expected one SOA, got {other:?}"),
    };
    let reply = ask(addr, "overlay.internal.", RecordType::NS).await;
    assert!(
        matches!(&reply.answers[..], [r] if matches!(&r.data, RData::NS(ns) if ns.0.to_ascii() == "ns.overlay.internal."))
    );
    let reply = ask(addr, "overlay.internal.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty() && has_soa(&reply));

    // The SOA serial moves with every change.
    records.add("new", ip("10.200.3.3")).unwrap();
    let reply = ask(addr, "overlay.internal.", RecordType::SOA).await;
    match &reply.answers[0].data {
        RData::SOA(soa) => assert_ne!(soa.serial, serial),
        other => panic!("expected SOA, got {other:?}"),
    }

    // Zone transfers are refused.
    let reply = send_tcp(addr, &query("overlay.internal.", RecordType::AXFR, false)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);

    // Another class in the zone is refused.
    let mut chaos = query("web.overlay.internal.", RecordType::A, true);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let reply = send_udp(addr, &chaos).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    server.shutdown().await;
}

#[tokio::test]
async fn large_answers_truncate_on_udp_and_complete_on_tcp() {
    let records = Records::new("overlay.internal").unwrap();
    let many: Vec<IpAddr> = (1..=60u8).map(|i| IpAddr::from([10, 200, 4, i])).collect();
    records.set("many", many.clone()).unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;

    // No EDNS: 512-byte limit, so the answer is truncated with TC set.
    let reply = send_udp(addr, &query("many.overlay.internal.", RecordType::A, false)).await;
    assert!(reply.metadata.truncation, "TC must be set");
    assert!(reply.answers.len() < many.len());

    let reply = send_tcp(addr, &query("many.overlay.internal.", RecordType::A, false)).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(answer_ips(&reply), many);
    server.shutdown().await;
}

#[tokio::test]
async fn out_of_zone_without_upstreams_is_refused() {
    let records = Records::new("overlay.internal").unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;
    let reply = ask(addr, "example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(!reply.metadata.recursion_available);
    server.shutdown().await;
}

#[tokio::test]
async fn listeners_come_and_go_at_runtime() {
    let records = Records::new("overlay.internal").unwrap();
    records.add("svc", ip("10.200.5.1")).unwrap();
    let (server, first) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;

    let second = server
        .add_listener("127.0.0.3:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(second.ip(), ip("127.0.0.3"));
    let reply = ask(second, "svc.overlay.internal.", RecordType::A).await;
    assert_eq!(answer_ips(&reply), vec![ip("10.200.5.1")]);
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(server.listeners(), want);

    assert!(matches!(
        server.add_listener(second).await,
        Err(DnsError::ListenerExists { .. })
    ));

    assert!(server.remove_listener(second).await);
    assert!(!server.remove_listener(second).await);
    // Its sockets are closed: both ports can be bound again right away.
    std::net::UdpSocket::bind(second).expect("UDP port released");
    std::net::TcpListener::bind(second).expect("TCP port released");
    // The other listener keeps answering.
    let reply = ask(first, "svc.overlay.internal.", RecordType::A).await;
    assert_eq!(answer_ips(&reply), vec![ip("10.200.5.1")]);

    server.shutdown().await;
    assert!(server.listeners().is_empty());
    std::net::UdpSocket::bind(first).expect("UDP port released after shutdown");
    assert!(matches!(
        server.add_listener("127.0.0.1:0".parse().unwrap()).await,
        Err(DnsError::ShutDown)
    ));
}

#[tokio::test]
async fn start_rejects_zone_mismatch_and_busy_address() {
    let records = Records::new("other.internal").unwrap();
    let err = DnsServer::start(DnsConfig::default(), records)
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::ZoneMismatch { .. }), "{err}");

    let busy = std::net::UdpSocket::bind("127.0.0.4:0").unwrap();
    let config = DnsConfig {
        listen: vec![busy.local_addr().unwrap()],
        ..DnsConfig::default()
    };
    let err = DnsServer::start(config, Records::new("overlay.internal").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, DnsError::Bind { proto: "udp", .. }), "{err}");
}

#[tokio::test]
async fn dig_interoperates() {
    if !overlayd_lab::need_tool("dig_interoperates", "dig", "-v") {
        return;
    }
    let records = Records::new("overlay.internal").unwrap();
    records.add("web", ip("10.200.6.1")).unwrap();
    let (server, addr) = start(&records, "127.0.0.5:0", vec![], NO_UPSTREAM).await;
    let dig = |name: &'static str, tcp: bool, addr: SocketAddr| async move {
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new("dig");
            cmd.arg(format!("@{}", addr.ip()))
                .arg("-p")
                .arg(addr.port().to_string())
                .args(["+time=2", "+tries=1", name, "A"]);
            if tcp {
                cmd.arg("+tcp");
            }
            let out = cmd.output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .await
        .unwrap()
    };
    let out = dig("web.overlay.internal", false, addr).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa rd"), "{out}");
    assert!(out.contains("10.200.6.1"), "{out}");
    let out = dig("web.overlay.internal", true, addr).await;
    assert!(out.contains("10.200.6.1"), "{out}");
    let out = dig("gone.overlay.internal", false, addr).await;
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unsupported_requests() {
    use hickory_proto::op::{MessageType, OpCode};
    let records = Records::new("overlay.internal").unwrap();
    records.add("web", ip("10.200.7.1")).unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut recv = async |sock: &tokio::net::UdpSocket| {
        let len = tokio::time::timeout(CLIENT_TIMEOUT, sock.recv(&mut buf))
            .await
            .expect("reply before deadline")
            .unwrap();
        hickory_proto::op::Message::from_vec(&buf[..len]).unwrap()
    };

    // A header claiming one question, followed by garbage: FORMERR.
    let garbage = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    sock.send(&garbage).await.unwrap();
    let reply = recv(&sock).await;
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);

    // A datagram that is itself a response is never answered (no reflection
    // loops): the next reply on this socket belongs to the query sent after it.
    let mut response = query("web.overlay.internal.", RecordType::A, false);
    response.metadata.message_type = MessageType::Response;
    response.metadata.id = 0x0bad;
    sock.send(&response.to_vec().unwrap()).await.unwrap();
    let follow_up = query("web.overlay.internal.", RecordType::A, false);
    sock.send(&follow_up.to_vec().unwrap()).await.unwrap();
    let reply = recv(&sock).await;
    assert_eq!(reply.metadata.id, follow_up.metadata.id);
    assert_eq!(answer_ips(&reply), vec![ip("10.200.7.1")]);

    // Non-query opcodes are not implemented.
    let mut update = query("web.overlay.internal.", RecordType::A, false);
    update.metadata.op_code = OpCode::Update;
    let reply = send_udp(addr, &update).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);

    // Two questions in one message: FORMERR.
    let mut two = query("web.overlay.internal.", RecordType::A, false);
    two.add_query(two.queries[0].clone());
    let reply = send_udp(addr, &two).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_the_server_releases_its_ports() {
    let records = Records::new("overlay.internal").unwrap();
    let (server, addr) = start(&records, "127.0.0.1:0", vec![], NO_UPSTREAM).await;
    drop(server);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ports of a dropped server were not released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
