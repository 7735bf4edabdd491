//! UDP → TUN: receive batches of datagrams (`recvmmsg`, UDP GRO coalescing
//! a flow's datagrams into one buffer), decrypt each with its peer's Noise
//! state, keep the inner packets whose source is in that peer's allowed
//! IPs, and write them to the TUN in one batch (TCP segments coalesced into
//! super-packets by `tun-rs`, GRO in our loop).

use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use boringtun::noise::TunnResult;
use quinn_udp::{RecvMeta, BATCH_SIZE};
use tun_rs::{GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

use super::io::{peer_for, wait, would_block};
use super::peer::lock;
use super::udp::UdpSet;
use super::Shared;

/// Bytes of one underlay datagram, at most (for sizing GRO buffers).
const MAX_DATAGRAM: usize = 1536;

/// Decrypted packets waiting for one batched TUN write.
struct TunBatch {
    bufs: Vec<Vec<u8>>,
    len: usize,
    gro: GROTable,
}

impl TunBatch {
    fn new() -> TunBatch {
        TunBatch {
            bufs: Vec::with_capacity(IDEAL_BATCH_SIZE),
            len: 0,
            gro: GROTable::new(),
        }
    }

    /// A buffer with room for the virtio header and `n` bytes behind it.
    fn next(&mut self, n: usize) -> &mut Vec<u8> {
        if self.bufs.len() == self.len {
            self.bufs
                .push(Vec::with_capacity(VIRTIO_NET_HDR_LEN + 65536));
        }
        let b = &mut self.bufs[self.len];
        b.clear();
        b.resize(VIRTIO_NET_HDR_LEN + n, 0);
        b
    }

    fn flush(&mut self, shared: &Shared) {
        if self.len == 0 {
            return;
        }
        let n = self.len;
        self.len = 0;
        if let Err(e) =
            shared
                .tun
                .send_multiple(&mut self.gro, &mut self.bufs[..n], VIRTIO_NET_HDR_LEN)
        {
            tracing::trace!(error = %e, "writing to the TUN device failed");
        }
    }
}

/// The receive loop of one socket (`v6`: the IPv6 one) of `udp`.
pub(crate) fn udp_loop(shared: Arc<Shared>, udp: Arc<UdpSet>, v6: bool) {
    let (sock, state) = if v6 {
        match (&udp.v6, &udp.state6) {
            (Some(s), Some(st)) => (s, st),
            _ => return,
        }
    } else {
        (&udp.v4, &udp.state4)
    };
    let size = (state.gro_segments().max(1) * MAX_DATAGRAM).max(65536);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH_SIZE).map(|_| vec![0u8; size]).collect();
    let mut meta = vec![RecvMeta::default(); BATCH_SIZE];
    let mut batch = TunBatch::new();
    loop {
        let n = {
            let mut iovs: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            state.recv(sock.into(), &mut iovs, &mut meta)
        };
        let n = match n {
            Ok(n) => n,
            Err(e) if would_block(&e) => {
                if !wait(Some(sock.as_raw_fd()), &udp.stop, None) {
                    return;
                }
                continue;
            }
            Err(e) => {
                // ICMP errors surface here on unconnected sockets; keep going.
                tracing::trace!(error = %e, "UDP receive error");
                continue;
            }
        };
        for (m, buf) in meta.iter().zip(&bufs).take(n) {
            let stride = if m.stride == 0 { m.len } else { m.stride };
            for d in buf[..m.len].chunks(stride.max(1)) {
                handle_datagram(&shared, &udp, d, m.addr, &mut batch);
            }
        }
        batch.flush(&shared);
    }
}

fn handle_datagram(
    shared: &Shared,
    udp: &UdpSet,
    data: &[u8],
    from: SocketAddr,
    batch: &mut TunBatch,
) {
    let Some(peer) = peer_for(shared, udp, data, from) else {
        return;
    };
    let mut tunn = lock(&peer.tunn);
    let Some(t) = tunn.as_mut() else { return };
    let buf = batch.next(data.len());
    let inner = match t.decapsulate(Some(from.ip()), data, &mut buf[VIRTIO_NET_HDR_LEN..]) {
        TunnResult::Done => None,
        TunnResult::Err(e) => {
            tracing::trace!(error = ?e, "datagram rejected");
            return;
        }
        TunnResult::WriteToNetwork(reply) => {
            udp.send(reply, from);
            // Packets queued while the handshake ran go out now.
            let mut scratch = vec![0u8; 65536 + 64];
            while let TunnResult::WriteToNetwork(p) = t.decapsulate(None, &[], &mut scratch) {
                udp.send(p, from);
            }
            None
        }
        TunnResult::WriteToTunnelV4(p, src) => Some((p.len(), IpAddr::V4(src))),
        TunnResult::WriteToTunnelV6(p, src) => Some((p.len(), IpAddr::V6(src))),
    };
    drop(tunn);
    // Authenticated: the peer is where this came from (roaming).
    {
        let mut ep = lock(&peer.endpoint);
        if *ep != Some(from) {
            *ep = Some(from);
        }
    }
    peer.rx_bytes
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    let st = shared.read();
    peer.touch(st.now_ms());
    if let Some((len, src)) = inner {
        // Only sources in the peer's own allowed IPs go in (cryptokey routing).
        if st.route(src).is_some_and(|p| Arc::ptr_eq(p, &peer)) {
            drop(st);
            batch.bufs[batch.len].truncate(VIRTIO_NET_HDR_LEN + len);
            batch.len += 1;
            if batch.len == IDEAL_BATCH_SIZE {
                batch.flush(shared);
            }
        }
    }
}
