//! TUN → UDP: read a batch of packets from the TUN (a TSO super-packet
//! arrives split into segments), encrypt each for the peer whose allowed IPs
//! hold its destination, and send runs of equal-sized ciphertexts to one
//! endpoint as single UDP GSO sends.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use boringtun::noise::{Tunn, TunnResult};
use tun_rs::{IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::io::{wait, would_block};
use super::peer::{lock, Peer};
use super::udp::UdpSet;
use super::Shared;

/// Largest inner packet (the TUN MTU may be up to 65535).
const MAX_PACKET: usize = 65535;
/// Bytes one GSO send may carry (UDP payload limit, with margin).
const GSO_MAX_BYTES: usize = 64_000;

/// A run of ciphertexts in `out[start..end]` for one endpoint, all
/// `segment` bytes long except possibly the last.
struct Run {
    start: usize,
    end: usize,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the run: nothing more may join it.
    closed: bool,
    to: Option<SocketAddr>,
}

impl Run {
    fn new() -> Run {
        Run {
            start: 0,
            end: 0,
            segment: 0,
            count: 0,
            closed: false,
            to: None,
        }
    }

    fn flush(&mut self, out: &[u8], udp: &UdpSet) {
        if let (Some(to), true) = (self.to, self.count > 0) {
            udp.send_segments(&out[self.start..self.end], self.segment, to);
        }
        self.start = self.end;
        self.count = 0;
        self.closed = false;
        self.to = None;
    }

    /// Whether a datagram of `len` bytes to `to` may join the run.
    fn fits(&self, len: usize, to: SocketAddr, max_segments: usize) -> bool {
        self.count > 0
            && self.to == Some(to)
            && !self.closed
            && len <= self.segment
            && self.count < max_segments
            && self.end - self.start + len <= GSO_MAX_BYTES
    }
}

/// The TUN reading loop of a device.
pub(crate) fn tun_loop(shared: Arc<Shared>) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + MAX_PACKET];
    let mut packets: Vec<Vec<u8>> = (0..IDEAL_BATCH_SIZE)
        .map(|_| vec![0u8; MAX_PACKET])
        .collect();
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut routes: Vec<Option<Arc<Peer>>> = Vec::with_capacity(IDEAL_BATCH_SIZE);
    // Room for one full run plus one packet of the largest size.
    let mut out = vec![0u8; 2 * (MAX_PACKET + 64) + GSO_MAX_BYTES];
    let fd = shared.tun.as_raw_fd();
    loop {
        let n = match shared
            .tun
            .recv_multiple(&mut original, &mut packets, &mut sizes, 0)
        {
            Ok(n) => n,
            Err(e) if would_block(&e) => {
                if !wait(Some(fd), &shared.stop, None) {
                    return;
                }
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EBADFD) => {
                tracing::warn!(device = %shared.name, error = %e, "the TUN device is gone; its loop stops");
                return;
            }
            Err(e) => {
                tracing::trace!(error = %e, "unusable packet from the TUN device");
                continue;
            }
        };
        let (udp, now) = {
            let st = shared.read();
            routes.clear();
            for (p, len) in packets.iter().zip(&sizes).take(n) {
                let peer = Tunn::dst_address(&p[..*len]).and_then(|d| st.route(d));
                routes.push(peer.cloned());
            }
            (st.udp.clone(), st.now_ms())
        };
        let Some(udp) = udp else { continue };
        encrypt_batch(&packets, &sizes, &routes, &udp, &mut out, now);
    }
}

/// Encrypts packets `0..routes.len()` and sends them, runs of one peer's
/// packets under one lock of its Noise state.
fn encrypt_batch(
    packets: &[Vec<u8>],
    sizes: &[usize],
    routes: &[Option<Arc<Peer>>],
    udp: &UdpSet,
    out: &mut [u8],
    now_ms: u64,
) {
    let mut run = Run::new();
    let mut i = 0;
    while i < routes.len() {
        let Some(peer) = routes[i].clone() else {
            i += 1;
            continue;
        };
        let endpoint = peer.endpoint();
        let mut tunn = lock(&peer.tunn);
        let mut sent = 0u64;
        while i < routes.len() && routes[i].as_ref().is_some_and(|p| Arc::ptr_eq(p, &peer)) {
            let packet = &packets[i][..sizes[i]];
            i += 1;
            let (Some(t), Some(to)) = (tunn.as_mut(), endpoint) else {
                continue;
            };
            let max_segments = udp.max_segments(&to);
            if !run.fits(packet.len() + 32, to, max_segments) {
                run.flush(out, udp);
                if run.end + MAX_PACKET + 64 > out.len() - GSO_MAX_BYTES {
                    run.start = 0;
                    run.end = 0;
                }
            }
            let at = run.end;
            let base = out[at..].as_ptr();
            let len = match t.encapsulate(packet, &mut out[at..]) {
                TunnResult::WriteToNetwork(p) if std::ptr::eq(p.as_ptr(), base) => p.len(),
                TunnResult::WriteToNetwork(p) => {
                    // Not where a run continues: send it alone.
                    udp.send(p, to);
                    sent += p.len() as u64;
                    continue;
                }
                _ => continue,
            };
            sent += len as u64;
            if run.count == 0 {
                run.segment = len;
                run.to = Some(to);
            } else if len < run.segment {
                run.closed = true;
            }
            run.count += 1;
            run.end += len;
            if max_segments <= 1 {
                run.flush(out, udp);
            }
        }
        drop(tunn);
        if sent > 0 {
            peer.tx_bytes.fetch_add(sent, Ordering::Relaxed);
            peer.touch(now_ms);
        }
    }
    run.flush(out, udp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_take_equal_segments_and_one_shorter_last() {
        let to: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let other: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let mut r = Run::new();
        assert!(
            !r.fits(100, to, 64),
            "an empty run takes nothing: it starts one"
        );
        r.count = 1;
        r.segment = 100;
        r.end = 100;
        r.to = Some(to);
        assert!(r.fits(100, to, 64));
        assert!(r.fits(60, to, 64));
        assert!(!r.fits(101, to, 64), "longer than the segment");
        assert!(!r.fits(100, other, 64), "another endpoint");
        assert!(!r.fits(100, to, 1), "no GSO");
        r.closed = true;
        assert!(!r.fits(50, to, 64), "after a shorter one");
        r.closed = false;
        r.end = GSO_MAX_BYTES;
        assert!(!r.fits(100, to, 64), "too many bytes");
    }
}
