//! The device's packet loops: TUN → encrypt → UDP, UDP → decrypt → TUN, and
//! the timer tick that drives handshakes, rekeys and keepalives. The Noise
//! work is boringtun's [`Tunn`]; this module only moves bytes and decides
//! which peer a packet belongs to.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};

use super::peer::{lock, Peer};
use super::udp::UdpSet;
use super::Shared;

/// Largest datagram or TUN packet handled.
const BUF: usize = 65536 + 64;
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
fn wait(fd: Option<RawFd>, stop: &Stop, timeout: Option<Duration>) -> bool {
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

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Reads packets from the TUN device, encrypts them for the peer whose
/// allowed IPs hold the destination, and sends them.
pub(crate) fn tun_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; BUF];
    let mut out = vec![0u8; BUF + 32];
    let fd = shared.tun.as_raw_fd();
    loop {
        // SAFETY: reads into a live buffer of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if would_block(&e) {
                if !wait(Some(fd), &shared.stop, None) {
                    return;
                }
                continue;
            }
            tracing::warn!(device = %shared.name, error = %e, "reading the TUN device failed; its loop stops");
            return;
        }
        let packet = &buf[..n as usize];
        let Some(dst) = Tunn::dst_address(packet) else {
            continue;
        };
        let (peer, udp, now) = {
            let st = shared.read();
            let Some(peer) = st.route(dst) else { continue };
            let Some(udp) = st.udp.clone() else { continue };
            (Arc::clone(peer), udp, st.now_ms())
        };
        send_through(&peer, &udp, |t, o| t.encapsulate(packet, o), &mut out, now);
    }
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

/// Receives datagrams on one socket of `udp`, decrypts them and writes the
/// inner packets to the TUN device.
pub(crate) fn udp_loop(shared: Arc<Shared>, udp: Arc<UdpSet>, v6: bool) {
    let sock = if v6 { udp.v6.as_ref() } else { Some(&udp.v4) };
    let Some(sock) = sock else { return };
    let mut buf = vec![0u8; BUF];
    let mut out = vec![0u8; BUF];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => handle_datagram(&shared, &udp, &buf[..n], from, &mut out),
            Err(e) if would_block(&e) => {
                if !wait(Some(sock.as_raw_fd()), &udp.stop, None) {
                    return;
                }
            }
            Err(e) => {
                // ICMP errors surface here on unconnected sockets; keep going.
                tracing::trace!(error = %e, "UDP receive error");
            }
        }
    }
}

/// Finds the peer a datagram is for: initiations by the sender's static
/// key (after the cheap mac1 check, answering with a cookie when under
/// load), everything else by our session index.
fn peer_for(shared: &Shared, udp: &UdpSet, data: &[u8], from: SocketAddr) -> Option<Arc<Peer>> {
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

fn handle_datagram(shared: &Shared, udp: &UdpSet, data: &[u8], from: SocketAddr, out: &mut [u8]) {
    let Some(peer) = peer_for(shared, udp, data, from) else {
        return;
    };
    let mut tunn = lock(&peer.tunn);
    let Some(t) = tunn.as_mut() else { return };
    let inner = match t.decapsulate(Some(from.ip()), data, out) {
        TunnResult::Done => None,
        TunnResult::Err(e) => {
            tracing::trace!(error = ?e, "datagram rejected");
            return;
        }
        TunnResult::WriteToNetwork(reply) => {
            udp.send(reply, from);
            // Packets queued while the handshake ran go out now.
            while let TunnResult::WriteToNetwork(p) = t.decapsulate(None, &[], out) {
                udp.send(p, from);
            }
            None
        }
        TunnResult::WriteToTunnelV4(p, src) => Some((p.len(), IpAddr::V4(src))),
        TunnResult::WriteToTunnelV6(p, src) => Some((p.len(), IpAddr::V6(src))),
    };
    drop(tunn);
    // Authenticated: the peer is where this came from (roaming).
    *lock(&peer.endpoint) = Some(from);
    peer.rx_bytes
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    let st = shared.read();
    peer.touch(st.now_ms());
    if let Some((len, src)) = inner {
        // Only sources in the peer's own allowed IPs go in (cryptokey routing).
        if st.route(src).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
            drop(st);
            // SAFETY: writes `len` initialised bytes of `out`.
            let _ = unsafe { libc::write(shared.tun.as_raw_fd(), out.as_ptr().cast(), len) };
        }
    }
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
