//! The UDP driver: receives queries, answers in-zone ones inline and hands
//! out-of-zone ones to a task that forwards them.
//!
//! hickory-server's own UDP loop spawns a task per datagram and routes every
//! reply through a channel back to the receiving task. For a local
//! authoritative server whose answers need no I/O that doubles the cost of a
//! query, so UDP is driven here: each datagram is decoded into a hickory
//! [`Request`] and passed to the same [`Handler`] (a hickory
//! [`RequestHandler`]) as TCP, with a [`ResponseHandler`] that encodes and
//! sends straight on the socket. TCP stays on hickory's `Server`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::handler::Handler;

/// Largest datagram we accept (EDNS allows up to 64 KiB; nobody sends more
/// than a few hundred bytes of query).
const MAX_DATAGRAM: usize = 4096;
/// Replies without EDNS are limited to 512 bytes (RFC 1035 §4.2.1).
const CLASSIC_UDP_LIMIT: u16 = 512;
/// Forwarded queries one UDP listener keeps in flight; past this, clients
/// get SERVFAIL at once instead of piling up sockets and tasks.
const MAX_FORWARDS_IN_FLIGHT: usize = 1024;

/// Sends one response datagram straight on the listening socket.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let limit = response
            .edns()
            .map_or(CLASSIC_UDP_LIMIT, |edns| edns.max_payload());
        let id = response.metadata().id;
        let op_code = response.metadata().op_code;
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(%error, "cannot encode DNS response; answering SERVFAIL");
                bytes.clear();
                let mut metadata = Metadata::new(id, MessageType::Response, op_code);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                header.emit(&mut BinEncoder::new(&mut bytes))?;
                ResponseInfo::from(header)
            }
        };
        send_datagram(&self.socket, &bytes, self.dst).await?;
        Ok(info)
    }
}

/// Sends one datagram without waiting unless the socket buffer is full.
///
/// A pending ICMP report about some other peer may surface from this send
/// instead of a receive; that consumes it, so the send is tried once more
/// rather than losing this reply.
async fn send_datagram(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) -> io::Result<()> {
    let mut retried = false;
    loop {
        match socket.try_send_to(bytes, dst) {
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                return socket.send_to(bytes, dst).await.map(drop);
            }
            Err(error) if is_icmp_report(&error) && !retried => retried = true,
            Err(error) => return Err(error),
        }
    }
}

/// Serves queries arriving on `socket` until the task is aborted.
///
/// Never returns on its own: nothing an upstream, a client or the kernel
/// does may end a listener. Socket errors are logged and retried with a
/// short backoff, and should the loop itself ever panic it is logged and
/// started again on the same socket. Forwards in flight are aborted with
/// the task.
pub(crate) async fn serve(socket: Arc<UdpSocket>, handler: Handler) {
    let addr = socket.local_addr().ok();
    loop {
        // The loop runs inside this future (not as a separate task), so
        // dropping `serve` (listener removed) drops the loop and its socket
        // at once; a panic is caught and the loop started again.
        let run = std::panic::AssertUnwindSafe(receive_loop(socket.clone(), handler.clone()));
        match futures::FutureExt::catch_unwind(run).await {
            Err(_) => {
                tracing::error!(
                    addr = addr.map(tracing::field::display),
                    "DNS UDP loop panicked; restarting it on the same socket"
                );
                tokio::time::sleep(RESTART_DELAY).await;
            }
            Ok(never) => match never {},
        }
    }
}

/// Pause before the UDP loop is started again after a panic.
const RESTART_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between retries while `recv_from` keeps failing.
const MAX_RECV_BACKOFF: Duration = Duration::from_secs(1);
/// First pause after a `recv_from` failure that is not an ICMP report.
const MIN_RECV_BACKOFF: Duration = Duration::from_millis(10);

/// Receives datagrams forever, answering in-zone queries inline and
/// spawning a task per forwarded one.
async fn receive_loop(socket: Arc<UdpSocket>, handler: Handler) -> Infallible {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut forwards = JoinSet::new();
    let mut backoff = MIN_RECV_BACKOFF;
    loop {
        while forwards.try_join_next().is_some() {}
        let (len, src) = match socket.recv_from(&mut buf).await {
            Ok(received) => {
                backoff = MIN_RECV_BACKOFF;
                received
            }
            // An ICMP error (port/host unreachable) about an earlier reply's
            // destination; it says nothing about this socket's health.
            Err(error) if is_icmp_report(&error) => {
                tracing::debug!(%error, "ignoring an ICMP error reported on the DNS UDP socket");
                continue;
            }
            Err(error) => {
                // Out of buffers and the like: keep serving, but do not spin.
                tracing::warn!(%error, retry_in = ?backoff, "DNS UDP receive failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RECV_BACKOFF);
                continue;
            }
        };
        if src.port() == 0 || src.ip().is_unspecified() {
            continue;
        }
        let request = match Request::from_bytes(buf[..len].to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%src, %error, "dropping undecodable DNS datagram");
                reply_formerr(&socket, &buf[..len], src);
                continue;
            }
        };
        if request.metadata.message_type != MessageType::Query {
            // Never answer responses: that is how reflection loops start.
            continue;
        }
        let responder = UdpResponder {
            socket: socket.clone(),
            dst: src,
        };
        if handler.answers_locally(&request) {
            handler
                .handle_request::<_, TokioTime>(&request, responder)
                .await;
        } else if forwards.len() >= MAX_FORWARDS_IN_FLIGHT {
            tracing::debug!(%src, "too many forwarded queries in flight; answering SERVFAIL");
            let info = handler
                .respond_error(&request, ResponseCode::ServFail, responder)
                .await;
            handler.stats().record(&info);
        } else {
            let handler = handler.clone();
            forwards.spawn(async move {
                handler
                    .handle_request::<_, TokioTime>(&request, responder)
                    .await;
            });
        }
    }
}

/// Whether `error` is an ICMP report queued on the socket (Linux returns
/// these from the next receive or send call) rather than a socket failure.
fn is_icmp_report(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Best-effort FORMERR for a datagram whose header parsed but whose body did not.
fn reply_formerr(socket: &UdpSocket, raw: &[u8], src: SocketAddr) {
    if raw.len() < 12 || raw[2] & 0x80 != 0 {
        return;
    }
    let id = u16::from_be_bytes([raw[0], raw[1]]);
    let op_code = OpCode::from_u8((raw[2] >> 3) & 0x0f);
    let mut metadata = Metadata::new(id, MessageType::Response, op_code);
    metadata.response_code = ResponseCode::FormErr;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(12);
    if header.emit(&mut BinEncoder::new(&mut bytes)).is_ok() {
        let _ = socket.try_send_to(&bytes, src);
    }
}
