//! A UDP relay standing in for a reordering, lossy underlay (there is no
//! netem here, and nftables cannot reorder): it sits between two WireGuard
//! endpoints, each configured with the relay as its peer's endpoint, and
//! forwards datagrams both ways. Of every datagram it receives it drops a
//! seeded-random few per mille, holds back a few per mille and sends each
//! held one right after the next 1–3 datagrams it forwards (reordering);
//! held datagrams still waiting when the flow goes idle are sent then
//! (delayed, not reordered). The relay's sockets live in the namespace it is
//! given; its threads stop when it is dropped.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a direction may be silent before held datagrams go out.
const IDLE: Duration = Duration::from_millis(20);

/// Receive buffer of each relay socket, so bursts (UDP GSO sends 64
/// datagrams at once) are not dropped by the kernel behind the relay's back.
const RCVBUF: usize = 8 << 20;

/// What the relay does to the datagrams, in per mille of those received.
#[derive(Clone, Copy, Debug)]
pub struct Faults {
    pub drop_per_mille: u64,
    pub hold_per_mille: u64,
    /// Seed of the random choices (each direction derives its own stream).
    pub seed: u64,
}

/// Counts of what the relay did, over both directions.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Sent on in arrival order.
    pub forwarded: u64,
    /// Held back and sent after 1–3 later datagrams.
    pub reordered: u64,
    /// Held back and sent when the flow went idle (late, but in order).
    pub delayed: u64,
    /// Never sent.
    pub dropped: u64,
}

#[derive(Default)]
struct Stats {
    forwarded: AtomicU64,
    reordered: AtomicU64,
    delayed: AtomicU64,
    dropped: AtomicU64,
}

/// A running relay.
pub struct Relay {
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    threads: Vec<JoinHandle<()>>,
}

/// xorshift64*: a small seeded generator for the test's random choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Starts a relay in namespace `ns`: datagrams arriving at `a_bind` go out
/// of `b_bind` to `b_peer`, datagrams arriving at `b_bind` go out of
/// `a_bind` to `a_peer`.
pub fn start(
    ns: PathBuf,
    a_bind: SocketAddr,
    a_peer: SocketAddr,
    b_bind: SocketAddr,
    b_peer: SocketAddr,
    faults: Faults,
) -> Relay {
    let (a, b) = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let bind = |at: SocketAddr| {
            let s = UdpSocket::bind(at).unwrap_or_else(|e| panic!("relay bind {at}: {e}"));
            nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBufForce, &RCVBUF)
                .expect("SO_RCVBUFFORCE");
            s.set_read_timeout(Some(IDLE)).unwrap();
            s
        };
        (bind(a_bind), bind(b_bind))
    })
    .join()
    .expect("relay setup panicked");
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Stats::default());
    let mut threads = Vec::new();
    for (rx, tx, to, seed) in [
        (
            a.try_clone().unwrap(),
            b.try_clone().unwrap(),
            b_peer,
            faults.seed,
        ),
        (b, a, a_peer, faults.seed ^ 0x9e37_79b9_7f4a_7c15),
    ] {
        let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
        threads.push(std::thread::spawn(move || {
            one_way(&rx, &tx, to, faults, Rng::new(seed), &stop, &stats)
        }));
    }
    Relay {
        stop,
        stats,
        threads,
    }
}

fn one_way(
    rx: &UdpSocket,
    tx: &UdpSocket,
    to: SocketAddr,
    faults: Faults,
    mut rng: Rng,
    stop: &AtomicBool,
    stats: &Stats,
) {
    // Held datagrams with how many forwarded datagrams they still wait for.
    let mut held: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let send = |d: &[u8]| {
        // A send can fail (say, buffers full); that is one more loss.
        let _ = tx.send_to(d, to);
    };
    while !stop.load(Ordering::Relaxed) {
        let n = match rx.recv_from(&mut buf) {
            Ok((n, _)) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                for (d, _) in held.drain(..) {
                    send(&d);
                    stats.delayed.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            Err(_) => continue,
        };
        let roll = rng.next() % 1000;
        if roll < faults.drop_per_mille {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if roll < faults.drop_per_mille + faults.hold_per_mille {
            held.push((buf[..n].to_vec(), 1 + rng.next() % 3));
            continue;
        }
        send(&buf[..n]);
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
        for h in held.iter_mut() {
            h.1 -= 1;
            if h.1 == 0 {
                send(&h.0);
                stats.reordered.fetch_add(1, Ordering::Relaxed);
            }
        }
        held.retain(|h| h.1 > 0);
    }
}

impl Relay {
    /// What the relay has done so far.
    pub fn counts(&self) -> Counts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            forwarded: l(&self.stats.forwarded),
            reordered: l(&self.stats.reordered),
            delayed: l(&self.stats.delayed),
            dropped: l(&self.stats.dropped),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
