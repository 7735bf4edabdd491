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

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

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
        match self.socket.try_send_to(&bytes, self.dst) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                self.socket.send_to(&bytes, self.dst).await?;
            }
            Err(error) => return Err(error.into()),
        }
        Ok(info)
    }
}

/// Serves queries arriving on `socket` until the socket fails or the task is
/// aborted; forwards still in flight are aborted with it.
pub(crate) async fn serve(socket: Arc<UdpSocket>, handler: Handler) -> io::Result<()> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut forwards = JoinSet::new();
    loop {
        while forwards.try_join_next().is_some() {}
        let (len, src) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // An ICMP error from an earlier reply's destination; not ours to fix.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                ) =>
            {
                continue
            }
            Err(error) => return Err(error),
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
            handler
                .respond_error(&request, ResponseCode::ServFail, responder)
                .await;
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
