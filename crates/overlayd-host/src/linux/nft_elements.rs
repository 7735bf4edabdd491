//! Sending published-port element batches ([`crate::firewall::elements`])
//! over a `NETLINK_NETFILTER` socket, with no `nft` process.
//!
//! The socket is opened once, on a thread inside the daemon's namespace (a
//! socket belongs to the namespace it was created in, whichever thread uses
//! it later), then reused. The kernel processes a batch inside `sendmsg`, so
//! the acknowledgements are queued by the time it returns; they are read
//! without blocking, with a short poll only as a safety net.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_packet_core::{ErrorBuffer, NetlinkBuffer, NLMSG_ERROR};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::error::{HostError, Result};
use crate::firewall::elements::{element_batch, ElementBatch};
use crate::firewall::PublishedPort;
use crate::linux::netns::run_in_ns;

/// How long to wait for acknowledgements that were not queued at once.
const ACK_WAIT: Duration = Duration::from_secs(2);

fn nft_err(message: String) -> HostError {
    HostError::Nft {
        op: "publish",
        message,
    }
}

fn io_err(what: &str, e: io::Error) -> HostError {
    nft_err(format!("{what}: {e}"))
}

/// An open netfilter socket and the next sequence number.
#[derive(Debug)]
struct Open {
    socket: Socket,
    seq: u32,
}

/// A lazily opened netfilter socket in one namespace.
#[derive(Debug, Clone)]
pub(crate) struct ElementSocket {
    ns: Arc<OwnedFd>,
    open: Arc<Mutex<Option<Open>>>,
}

impl ElementSocket {
    /// A socket for the namespace `ns`, opened on first use.
    pub fn new(ns: Arc<OwnedFd>) -> Self {
        ElementSocket {
            ns,
            open: Arc::new(Mutex::new(None)),
        }
    }

    /// Deletes `remove` and adds `add` in the maps of `table`, atomically.
    pub async fn update(
        &self,
        table: &str,
        add: &[PublishedPort],
        remove: &[PublishedPort],
    ) -> Result<()> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        if self.lock().is_none() {
            let socket = run_in_ns(Some(self.ns.clone()), "nft-socket", open_socket).await?;
            let mut guard = self.lock();
            if guard.is_none() {
                *guard = Some(Open { socket, seq: 1 });
            }
        }
        let mut guard = self.lock();
        let open = guard.as_mut().expect("opened above");
        let batch = element_batch(table, add, remove, open.seq);
        open.seq = open.seq.wrapping_add(batch.messages.len() as u32 + 2);
        let result = exchange(&open.socket, &batch);
        if let Err(HostError::Nft { message, .. }) = &result {
            if message.starts_with("socket:") {
                // A broken socket is reopened next time.
                *guard = None;
            }
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens the socket in the calling thread's namespace.
fn open_socket() -> Result<Socket> {
    let mut socket =
        Socket::new(NETLINK_NETFILTER).map_err(|e| io_err("socket: open NETLINK_NETFILTER", e))?;
    socket
        .bind_auto()
        .map_err(|e| io_err("socket: bind NETLINK_NETFILTER", e))?;
    // Errors need not echo the whole request back.
    let _ = socket.set_cap_ack(true);
    Ok(socket)
}

/// Every queued datagram, read without blocking.
fn drain(socket: &Socket, buf: &mut Vec<u8>, mut each: impl FnMut(&[u8])) -> io::Result<()> {
    loop {
        buf.clear();
        match socket.recv(buf, libc::MSG_DONTWAIT) {
            Ok(_) => each(buf),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `(seq, errno)` of every acknowledgement in a datagram (errno 0 = ok).
fn acks(datagram: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while let Ok(msg) = NetlinkBuffer::new_checked(rest) {
        let len = (msg.length() as usize).next_multiple_of(4);
        if msg.message_type() == NLMSG_ERROR {
            if let Ok(err) = ErrorBuffer::new_checked(msg.payload()) {
                let code = err.code().map_or(0, |c| -c.get());
                out.push((msg.sequence_number(), code));
            }
        }
        if len == 0 || len >= rest.len() {
            break;
        }
        rest = &rest[len..];
    }
    out
}

/// What an errno means for an element update.
fn hint(errno: i32) -> &'static str {
    match errno {
        libc::EEXIST => " (the host port is already published to another destination)",
        libc::ENOENT => " (overlayd's table, a map or the element does not exist)",
        _ => "",
    }
}

/// Netlink refuses a datagram larger than the send buffer (`EMSGSIZE`);
/// a batch of thousands of ports (a long range) can be. Root may raise
/// the limit past `wmem_max` (`SO_SNDBUFFORCE`), others try `SO_SNDBUF`.
fn make_room(socket: &Socket, len: usize) {
    const DEFAULT_ROOM: usize = 128 * 1024;
    if len <= DEFAULT_ROOM {
        return;
    }
    let size = libc::c_int::try_from(len + 4096).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF] {
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Sends the batch and collects the kernel's verdict on every message.
fn exchange(socket: &Socket, batch: &ElementBatch) -> Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    make_room(socket, batch.bytes.len());
    // Anything left from an earlier exchange is stale.
    drain(socket, &mut buf, |_| {}).map_err(|e| io_err("socket: receive", e))?;
    socket
        .send_to(&batch.bytes, &SocketAddr::new(0, 0), 0)
        .map_err(|e| io_err("socket: send batch", e))?;

    let mut pending: Vec<u32> = batch.messages.iter().map(|m| m.seq).collect();
    let mut failures = Vec::new();
    let deadline = Instant::now() + ACK_WAIT;
    loop {
        drain(socket, &mut buf, |d| {
            for (seq, errno) in acks(d) {
                let Some(i) = pending.iter().position(|s| *s == seq) else {
                    continue;
                };
                pending.swap_remove(i);
                if errno != 0 {
                    let what = batch
                        .messages
                        .iter()
                        .find(|m| m.seq == seq)
                        .map_or("element update", |m| m.what.as_str());
                    let os = io::Error::from_raw_os_error(errno);
                    failures.push(format!("{what}: {os}{}", hint(errno)));
                }
            }
        })
        .map_err(|e| io_err("socket: receive", e))?;
        // A failed batch is rolled back whole; the kernel may stop at the
        // first malformed message, so one error is a complete answer.
        if !failures.is_empty() {
            return Err(nft_err(format!(
                "batch rolled back, nothing changed: {}",
                failures.join("; ")
            )));
        }
        if pending.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(nft_err(format!(
                "socket: no answer from the kernel for {} of {} messages",
                pending.len(),
                batch.messages.len()
            )));
        }
        let mut pfd = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as libc::c_int) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(seq: u32, code: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&code.to_ne_bytes());
        // The request's header (NETLINK_CAP_ACK: no payload).
        m.extend_from_slice(&[0u8; 16]);
        m
    }

    #[test]
    fn acks_reads_every_error_message_of_a_datagram() {
        let mut d = ack(7, 0);
        d.extend(ack(8, -libc::EEXIST));
        assert_eq!(acks(&d), vec![(7, 0), (8, libc::EEXIST)]);
        assert!(acks(&[1, 2, 3]).is_empty());
    }
}
