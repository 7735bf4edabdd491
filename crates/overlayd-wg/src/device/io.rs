//! What the packet loops share (the stop descriptor, waiting, finding the
//! peer of a datagram) and the timer tick that drives handshakes, rekeys
//! and keepalives. The loops themselves are `tx` (TUN → UDP) and `rx`
//! (UDP → TUN); the Noise work is boringtun's [`Tunn`].

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};

use super::peer::{lock, Peer};
use super::udp::UdpSet;
use super::Shared;

/// Timer resolution (the WireGuard timers are in seconds).
const TICK: Duration = Duration::from_millis(250);

/// An eventfd that tells threads blocked in [`wait`] to exit.
pub(crate) struct Stop(OwnedFd);

impl Stop {
    /// A fresh, unsignalled stop descriptor.
    pub fn new() -> io::Result<Stop> {
        // SAFETY: plain syscall; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor owned by nobody else.
        Ok(Stop(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes every waiter, now and later.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        let _ = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// Waits until `fd` is readable (`true`) or `stop` is signalled or the
/// timeout passes (`false` for a stop; a timeout is `true` too, so callers
/// re-check their work).
pub(crate) fn wait(fd: Option<RawFd>, stop: &Stop, timeout: Option<Duration>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: stop.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: fd.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.map_or(-1, |d| i32::try_from(d.as_millis()).unwrap_or(i32::MAX));
    // SAFETY: `fds` is a valid array of two pollfd for the call's duration.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    !(n > 0 && fds[0].revents != 0)
}

pub(crate) fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Runs `f` on the peer's Noise state and sends what it produced to the
/// peer's endpoint.
fn send_through(
    peer: &Peer,
    udp: &UdpSet,
    f: impl for<'a> FnOnce(&mut Tunn, &'a mut [u8]) -> TunnResult<'a>,
    out: &mut [u8],
    now_ms: u64,
) {
    let mut tunn = lock(&peer.tunn);
    let Some(t) = tunn.as_mut() else { return };
    if let TunnResult::WriteToNetwork(p) = f(t, out) {
        if let Some(ep) = peer.endpoint() {
            udp.send(p, ep);
            peer.tx_bytes.fetch_add(p.len() as u64, Ordering::Relaxed);
            peer.touch(now_ms);
        }
    }
}

/// Finds the peer a datagram is for: initiations by the sender's static
/// key (after the cheap mac1 check, answering with a cookie when under
/// load), everything else by our session index.
pub(crate) fn peer_for(
    shared: &Shared,
    udp: &UdpSet,
    data: &[u8],
    from: SocketAddr,
) -> Option<Arc<Peer>> {
    let packet = Tunn::parse_incoming_packet(data).ok()?;
    let st = shared.read();
    let index = match &packet {
        Packet::HandshakeInit(init) => {
            let limiter = st.limiter.as_ref()?;
            let mut cookie = [0u8; 64];
            match limiter.verify_packet(Some(from.ip()), data, &mut cookie) {
                Ok(_) => {}
                Err(TunnResult::WriteToNetwork(reply)) => {
                    udp.send(reply, from);
                    return None;
                }
                Err(_) => return None,
            }
            let (secret, public) = st.secret.as_ref()?;
            let half = parse_handshake_anon(secret, public, init).ok()?;
            return st.peers.get(&half.peer_static_public).cloned();
        }
        Packet::HandshakeResponse(p) => p.receiver_idx,
        Packet::PacketCookieReply(p) => p.receiver_idx,
        Packet::PacketData(p) => p.receiver_idx,
    };
    st.by_index.get(&(index >> 8)).cloned()
}

/// Every [`TICK`]: boringtun's timers for each peer (handshake retry,
/// rekey, session expiry, keepalive after receive), the persistent
/// keepalive kept by the device, and the device rate limiter's reset.
pub(crate) fn timer_loop(shared: Arc<Shared>) {
    let mut out = vec![0u8; 256];
    while wait(None, &shared.stop, Some(TICK)) {
        let (peers, udp, now) = {
            let st = shared.read();
            if let Some(l) = &st.limiter {
                l.reset_count();
            }
            let peers: Vec<Arc<Peer>> = st.peers.values().cloned().collect();
            (peers, st.udp.clone(), st.now_ms())
        };
        let Some(udp) = udp else { continue };
        for peer in peers {
            send_through(&peer, &udp, |t, o| t.update_timers(o), &mut out, now);
            let every = u64::from(peer.keepalive.load(Ordering::Relaxed)) * 1000;
            let last = peer.last_traffic_ms.load(Ordering::Relaxed);
            let due = last == u64::MAX || now.saturating_sub(last) >= every;
            if every > 0 && due && peer.endpoint().is_some() {
                send_through(&peer, &udp, |t, o| t.encapsulate(&[], o), &mut out, now);
            }
        }
    }
}
