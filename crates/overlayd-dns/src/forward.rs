//! Forwarding of out-of-zone queries to the host's upstream resolvers.
//!
//! Each forwarded query gets a fresh random ID and a fresh random source port
//! (a new connected UDP socket). Replies are accepted only if ID and question
//! match. Upstreams are tried in order with staggered starts: the next one is
//! asked when the previous fails outright or has been silent for its share of
//! the budget, and the first good reply wins. A truncated UDP reply is retried
//! over TCP. The whole operation is bounded by the configured timeout.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at, Instant};

use crate::DnsError;

/// UDP payload size we advertise upstream (the DNS Flag Day 2020 value).
const UPSTREAM_PAYLOAD: u16 = 1232;
/// Largest UDP reply we read.
const RECV_BUF: usize = 4096;

/// Forwards queries to a fixed list of upstreams within a time budget.
#[derive(Debug)]
pub(crate) struct Forwarder {
    upstreams: Arc<[SocketAddr]>,
    timeout: Duration,
}

impl Forwarder {
    pub(crate) fn new(upstreams: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            upstreams: upstreams.into(),
            timeout,
        }
    }

    /// Resolves `query` through the upstreams. `dnssec_ok` and
    /// `checking_disabled` are passed on from the client's request.
    ///
    /// Returns the first upstream reply that is not SERVFAIL/REFUSED; failing
    /// that, the last such reply; failing that, an error (the caller answers
    /// SERVFAIL).
    pub(crate) async fn resolve(
        &self,
        query: &Query,
        dnssec_ok: bool,
        checking_disabled: bool,
    ) -> Result<Message, DnsError> {
        let deadline = Instant::now() + self.timeout;
        let count = self.upstreams.len();
        if count == 0 {
            return Err(DnsError::UpstreamTimeout {
                timeout: self.timeout,
            });
        }
        let stagger = self.timeout / count as u32;
        let mut attempts: JoinSet<Result<Message, DnsError>> = JoinSet::new();
        let mut next = 0;
        let mut next_start = Instant::now();
        let mut fallback: Option<Message> = None;
        let mut last_error: Option<DnsError> = None;

        loop {
            if next < count && (attempts.is_empty() || Instant::now() >= next_start) {
                let request = build_request(query, dnssec_ok, checking_disabled);
                let upstream = self.upstreams[next];
                let question = query.clone();
                attempts.spawn(ask(upstream, request, question, deadline));
                next += 1;
                next_start = Instant::now() + stagger;
            }
            if attempts.is_empty() {
                break;
            }
            tokio::select! {
                joined = attempts.join_next() => match joined {
                    Some(Ok(Ok(reply))) => {
                        if !matches!(reply.metadata.response_code, ResponseCode::ServFail | ResponseCode::Refused) {
                            return Ok(reply);
                        }
                        fallback = Some(reply);
                        next_start = Instant::now();
                    }
                    Some(Ok(Err(error))) => {
                        tracing::debug!(%error, "upstream attempt failed");
                        last_error = Some(error);
                        next_start = Instant::now();
                    }
                    Some(Err(join_error)) => {
                        tracing::warn!(%join_error, "upstream attempt task failed");
                        next_start = Instant::now();
                    }
                    None => {}
                },
                _ = sleep_until(next_start), if next < count && !attempts.is_empty() => {}
                _ = sleep_until(deadline) => break,
            }
        }
        // Dropping `attempts` aborts whatever is still in flight.
        match (fallback, last_error) {
            (Some(reply), _) => Ok(reply),
            (None, Some(error)) if Instant::now() < deadline => Err(error),
            _ => Err(DnsError::UpstreamTimeout {
                timeout: self.timeout,
            }),
        }
    }
}

fn build_request(query: &Query, dnssec_ok: bool, checking_disabled: bool) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = checking_disabled;
    message.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    edns.set_dnssec_ok(dnssec_ok);
    message.set_edns(edns);
    message
}

/// One upstream: UDP, then TCP if the UDP reply was truncated.
async fn ask(
    upstream: SocketAddr,
    request: Message,
    question: Query,
    deadline: Instant,
) -> Result<Message, DnsError> {
    let fail = |reason: String| DnsError::Upstream {
        addr: upstream,
        reason,
    };
    let bytes = request
        .to_vec()
        .map_err(|e| fail(format!("cannot encode query: {e}")))?;
    let id = request.metadata.id;
    let reply = timeout_at(deadline, ask_udp(upstream, &bytes, id, &question))
        .await
        .map_err(|_| fail("no reply over UDP in time".into()))??;
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    timeout_at(deadline, ask_tcp(upstream, &bytes, id, &question))
        .await
        .map_err(|_| fail("no reply over TCP in time".into()))?
}

async fn ask_udp(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    question: &Query,
) -> Result<Message, DnsError> {
    let fail = |reason: String| DnsError::Upstream {
        addr: upstream,
        reason,
    };
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| fail(format!("cannot open a UDP socket: {e}")))?;
    // Connected: the kernel drops datagrams from anyone else and reports
    // ICMP port-unreachable as an error instead of leaving us waiting.
    socket
        .connect(upstream)
        .await
        .map_err(|e| fail(format!("unreachable: {e}")))?;
    socket
        .send(bytes)
        .await
        .map_err(|e| fail(format!("send failed: {e}")))?;
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let len = socket
            .recv(&mut buf)
            .await
            .map_err(|e| fail(format!("unreachable: {e}")))?;
        match Message::from_vec(&buf[..len]) {
            Ok(reply) if is_reply_to(&reply, id, question) => return Ok(reply),
            Ok(_) => tracing::debug!(%upstream, "ignoring a reply that does not match the query"),
            Err(error) => tracing::debug!(%upstream, %error, "ignoring an undecodable reply"),
        }
    }
}

async fn ask_tcp(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    question: &Query,
) -> Result<Message, DnsError> {
    let fail = |reason: String| DnsError::Upstream {
        addr: upstream,
        reason,
    };
    let len = u16::try_from(bytes.len()).map_err(|_| fail("query too large for TCP".into()))?;
    let mut stream = TcpStream::connect(upstream)
        .await
        .map_err(|e| fail(format!("TCP connect failed: {e}")))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| fail(format!("TCP send failed: {e}")))?;
    let mut len_buf = [0u8; 2];
    stream
        .read_exact(&mut len_buf)
        .await
        .map_err(|e| fail(format!("TCP read failed: {e}")))?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len_buf))];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| fail(format!("TCP read failed: {e}")))?;
    let reply = Message::from_vec(&body).map_err(|e| fail(format!("undecodable reply: {e}")))?;
    if !is_reply_to(&reply, id, question) {
        return Err(fail("TCP reply does not match the query".into()));
    }
    Ok(reply)
}

fn is_reply_to(reply: &Message, id: u16, question: &Query) -> bool {
    reply.metadata.id == id
        && reply.metadata.message_type == MessageType::Response
        && match reply.queries.as_slice() {
            [q] => {
                q.name() == question.name()
                    && q.query_type() == question.query_type()
                    && q.query_class() == question.query_class()
            }
            _ => false,
        }
}
