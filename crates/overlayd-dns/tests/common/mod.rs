//! Shared helpers for the integration tests: a tiny DNS client and a fake
//! upstream server, both on loopback only.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use overlayd_dns::{DnsConfig, DnsServer, Records};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// Per-query deadline of the test client.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a query message.
pub fn query(name: &str, rtype: RecordType, edns: bool) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        msg.set_edns(e);
    }
    msg
}

/// Sends `msg` over UDP to `server` and waits for the matching reply.
pub async fn send_udp(server: SocketAddr, msg: &Message) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(server).await.unwrap();
    sock.send(&msg.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let len = tokio::time::timeout(CLIENT_TIMEOUT, sock.recv(&mut buf))
        .await
        .expect("no UDP reply before the client deadline")
        .unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.id, msg.metadata.id);
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    reply
}

/// Sends `msg` over TCP to `server` and reads one reply.
pub async fn send_tcp(server: SocketAddr, msg: &Message) -> Message {
    let fut = async {
        let mut stream = TcpStream::connect(server).await.unwrap();
        let bytes = msg.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.unwrap();
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.unwrap();
        Message::from_vec(&body).unwrap()
    };
    let reply = tokio::time::timeout(CLIENT_TIMEOUT, fut)
        .await
        .expect("no TCP reply before the client deadline");
    assert_eq!(reply.metadata.id, msg.metadata.id);
    reply
}

/// UDP query with EDNS.
pub async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    send_udp(server, &query(name, rtype, true)).await
}

/// The addresses in the answer section.
pub fn answer_ips(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

/// Whether the authority section carries the zone SOA.
pub fn has_soa(reply: &Message) -> bool {
    reply
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

/// Starts a server for `overlay.internal` on `listen` (port 0 → free port).
pub async fn start(
    records: &Records,
    listen: &str,
    upstreams: Vec<SocketAddr>,
    upstream_timeout: Duration,
) -> (DnsServer, SocketAddr) {
    let config = DnsConfig {
        upstreams,
        upstream_timeout,
        ..DnsConfig::default()
    };
    let server = DnsServer::start(config, records.clone()).await.unwrap();
    let addr = server.add_listener(listen.parse().unwrap()).await.unwrap();
    (server, addr)
}

/// How the fake upstream behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamMode {
    /// Answers `ext.example.com` A 192.0.2.10, NXDOMAIN otherwise;
    /// `big.example.com` is truncated over UDP and complete over TCP.
    Answer,
    /// Receives and never replies.
    Silent,
    /// Replies SERVFAIL to everything.
    ServFail,
}

/// A fake upstream on a loopback address; stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The records `big.example.com` resolves to over TCP.
pub const BIG_COUNT: u8 = 100;

fn upstream_reply(req: &Message, mode: UpstreamMode, over_tcp: bool) -> Message {
    let mut reply = Message::response(req.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = req.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(req.queries.clone());
    if mode == UpstreamMode::ServFail {
        reply.metadata.response_code = ResponseCode::ServFail;
        return reply;
    }
    let q = &req.queries[0];
    let name = q.name().to_ascii().to_ascii_lowercase();
    match (name.as_str(), q.query_type()) {
        ("ext.example.com.", RecordType::A) => {
            reply.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::A(A::new(192, 0, 2, 10)),
            ));
        }
        ("big.example.com.", RecordType::A) if !over_tcp => {
            reply.metadata.truncation = true;
        }
        ("big.example.com.", RecordType::A) => {
            for i in 0..BIG_COUNT {
                reply.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A::new(198, 51, 100, i)),
                ));
            }
        }
        ("ext.example.com.", _) => {}
        _ => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply
}

impl FakeUpstream {
    /// Starts a fake upstream (UDP and TCP) on `ip`, on a free port.
    pub async fn start(ip: &str, mode: UpstreamMode) -> Self {
        // The free UDP port may be taken for TCP; retry a bounded number of times.
        let mut bound = None;
        for _ in 0..16 {
            let udp = UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), 0))
                .await
                .unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                bound = Some((udp, tcp, addr));
                break;
            }
        }
        let (udp, tcp, addr) = bound.expect("no port free for both UDP and TCP");
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, src)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                if mode == UpstreamMode::Silent {
                    continue;
                }
                let Ok(req) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let reply = upstream_reply(&req, mode, false);
                let _ = udp.send_to(&reply.to_vec().unwrap(), src).await;
            }
        });
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let Ok(req) = Message::from_vec(&body) else {
                        return;
                    };
                    if mode == UpstreamMode::Silent {
                        return;
                    }
                    let bytes = upstream_reply(&req, mode, true).to_vec().unwrap();
                    let _ = stream.write_all(&(bytes.len() as u16).to_be_bytes()).await;
                    let _ = stream.write_all(&bytes).await;
                });
            }
        });
        Self {
            addr,
            tasks: vec![udp_task, tcp_task],
        }
    }
}

/// A loopback UDP port that nothing listens on (bound, read, then closed).
pub fn dead_port(ip: &str) -> SocketAddr {
    let sock = std::net::UdpSocket::bind((ip.parse::<IpAddr>().unwrap(), 0)).unwrap();
    sock.local_addr().unwrap()
}
