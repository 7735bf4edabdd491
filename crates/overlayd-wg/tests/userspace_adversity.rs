//! Our userspace device at both ends of a veth underlay, under the two
//! adversities `userspace_robustness` does not cover:
//!
//! * an underlay that reorders and drops datagrams: a UDP relay in the
//!   middle (`common::relay`; no netem here, nftables cannot reorder) holds
//!   back 5% of the datagrams behind the next 1–3 and drops 1%, with a
//!   seeded generator (`OVERLAYD_RELAY_SEED` to replay another run), and TCP
//!   transfers through the tunnel must arrive intact;
//! * a flood of handshake initiations with valid MAC1s (from a stranger's
//!   key, made by boringtun's `Tunn`) at the device's port, more per second
//!   than the device verifies before it goes under load: the device answers
//!   with cookie replies, and the legitimate peer keeps moving data and can
//!   even complete a fresh handshake in the middle of the flood.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use common::pair::{count_messages, counter, pair, pair_on, peer_cfg, ping, DEV};
use common::relay::{self, Faults};
use common::{transfer, underlay, wait_for, Netns};
use overlayd_wg::{generate_private_key, KeyBytes, WgBackend};

const MIB: u64 = 1024 * 1024;

/// `Udp: ... RcvbufErrors` of `ns`: datagrams the kernel dropped there
/// because a socket's receive queue was full (losses beyond the relay's).
fn rcvbuf_errors(ns: &Netns) -> u64 {
    let out = ns.run(&["cat", "/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap_or(""), udp.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn transfers_complete_through_a_reordering_lossy_relay() {
    if !common::need_root("transfers_complete_through_a_reordering_lossy_relay") {
        return;
    }
    let seed = std::env::var("OVERLAYD_RELAY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x17b_5eed);
    let faults = Faults {
        drop_per_mille: 10,
        hold_per_mille: 50,
        seed,
    };
    let (n1, n2) = underlay();
    // The relay lives in n1: the device there reaches its peer at
    // 192.0.2.1:40001, the device in n2 reaches its peer at 192.0.2.1:40002.
    let (to_2, to_1): (SocketAddr, SocketAddr) = (
        "192.0.2.1:40001".parse().unwrap(),
        "192.0.2.1:40002".parse().unwrap(),
    );
    let relay = relay::start(
        n1.path(),
        to_2,
        "192.0.2.1:51820".parse().unwrap(),
        to_1,
        "192.0.2.2:51820".parse().unwrap(),
        faults,
    );
    let p = pair_on(n1, n2, &to_2.to_string(), &to_1.to_string());
    transfer::start(
        p.n2.path(),
        "10.99.0.2:5311".parse().unwrap(),
        p.n1.path(),
        24 * MIB,
    )
    .finish();
    transfer::start(
        p.n1.path(),
        "10.99.0.1:5312".parse().unwrap(),
        p.n2.path(),
        8 * MIB,
    )
    .finish();
    let c = relay.counts();
    let seen = c.forwarded + c.reordered + c.delayed + c.dropped;
    println!(
        "relay (seed {seed}): {seen} datagrams, {} reordered, {} delayed to idle, {} dropped, {} forwarded in order; kernel receive-queue drops (n1, n2): ({}, {})",
        c.reordered,
        c.delayed,
        c.dropped,
        c.forwarded,
        rcvbuf_errors(&p.n1),
        rcvbuf_errors(&p.n2)
    );
    // Everything went through the relay: each side still has it as the
    // endpoint (no roaming past it).
    let ep = |b: &overlayd_wg::UserspaceBackend, k: &KeyBytes| {
        b.status(DEV).unwrap().peer(k).unwrap().endpoint
    };
    assert_eq!(ep(&p.b1, &p.p2), Some(to_2));
    assert_eq!(ep(&p.b2, &p.p1), Some(to_1));
    // The faults happened, at about the rates asked for.
    assert!(seen > 10_000, "too few datagrams through the relay: {c:?}");
    assert!(
        c.reordered * 1000 > seen * 20,
        "too little reordering: {c:?}"
    );
    assert!(c.dropped * 1000 > seen * 5, "too few drops: {c:?}");
}

/// Handshake initiations with valid MAC1s flooding one port from one
/// socket, and a count of the cookie replies that come back.
struct Flood {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    cookies: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

/// Initiations sent per second: many times what the device verifies per
/// second before it answers with cookies (100, `DEVICE_HANDSHAKE_LIMIT` in
/// src/device/peer.rs).
const FLOOD_PER_SECOND: u64 = 2000;
/// Sends are paced in slices of this length.
const SLICE: Duration = Duration::from_millis(10);

impl Flood {
    /// Starts flooding `to` (a device with public key `target`) from a
    /// socket in namespace `ns` bound to `from`.
    fn start(ns: &Netns, from: SocketAddr, to: SocketAddr, target: KeyBytes) -> Flood {
        // 256 distinct initiations from a key the target does not know,
        // each with a fresh ephemeral and the MAC1 the target checks first.
        let stranger = StaticSecret::from(generate_private_key().unwrap());
        let inits: Vec<Vec<u8>> = (0..256u32)
            .map(|i| {
                let mut t = Tunn::new(
                    stranger.clone(),
                    PublicKey::from(target),
                    None,
                    None,
                    i,
                    None,
                );
                let mut buf = [0u8; 256];
                match t.format_handshake_initiation(&mut buf, true) {
                    TunnResult::WriteToNetwork(p) => p.to_vec(),
                    _ => panic!("no initiation from boringtun"),
                }
            })
            .collect();
        let path = ns.path();
        let sock = std::thread::spawn(move || {
            let f = std::fs::File::open(path).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            UdpSocket::bind(from).unwrap()
        })
        .join()
        .unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let cookies = Arc::new(AtomicU64::new(0));
        let rx = sock.try_clone().unwrap();
        let (stop_r, cookies_r) = (Arc::clone(&stop), Arc::clone(&cookies));
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop_r.load(Ordering::Relaxed) {
                // A cookie reply: type 3, 64 bytes.
                if let Ok(n) = rx.recv(&mut buf) {
                    if n == 64 && buf[..4] == [3, 0, 0, 0] {
                        cookies_r.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        let (stop_s, sent_s) = (Arc::clone(&stop), Arc::clone(&sent));
        let sender = std::thread::spawn(move || {
            let per_slice = FLOOD_PER_SECOND * SLICE.as_millis() as u64 / 1000;
            let mut next = Instant::now();
            let mut i = 0usize;
            while !stop_s.load(Ordering::Relaxed) {
                for _ in 0..per_slice {
                    if sock.send_to(&inits[i % inits.len()], to).is_ok() {
                        sent_s.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
                next += SLICE;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Flood {
            stop,
            sent,
            cookies,
            threads: vec![receiver, sender],
        }
    }

    fn cookies(&self) -> u64 {
        self.cookies.load(Ordering::Relaxed)
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn a_handshake_flood_gets_cookies_and_the_peer_keeps_working() {
    if !common::need_root("a_handshake_flood_gets_cookies_and_the_peer_keeps_working") {
        return;
    }
    let p = pair();
    // Cookie replies reaching the legitimate device in n1.
    count_messages(&p.n1, "cookies", 3);
    let flood = Flood::start(
        &p.n1,
        "192.0.2.1:0".parse().unwrap(),
        "192.0.2.2:51820".parse().unwrap(),
        p.p2,
    );
    wait_for(
        "cookie replies to the flood",
        Duration::from_secs(15),
        || flood.cookies() > 0,
    );

    // The established session carries a transfer through the flood.
    transfer::start(
        p.n2.path(),
        "10.99.0.2:5313".parse().unwrap(),
        p.n1.path(),
        16 * MIB,
    )
    .finish();

    // A fresh session in the middle of the flood: n1 forgets its peer, so
    // its next packet starts a handshake with the device under load (its
    // initiation is answered with a cookie unless it lands among the first
    // 100 of a second; boringtun's initiator retries with MAC2 then).
    let hs_before =
        p.b2.status(DEV)
            .unwrap()
            .peer(&p.p1)
            .unwrap()
            .last_handshake;
    let cookies_before = flood.cookies();
    let legit_before = counter(&p.n1, "cookies");
    assert!(p.b1.remove_peer(DEV, &p.p2).unwrap());
    p.b1.set_peer(
        DEV,
        &peer_cfg(p.p2, "192.0.2.2:51820", &["10.99.0.2/32"], None),
    )
    .unwrap();
    let t0 = Instant::now();
    wait_for(
        "ping through a new handshake during the flood",
        Duration::from_secs(40),
        || ping(&p.n1, "10.99.0.2"),
    );
    let rehandshake = t0.elapsed();
    let hs_after =
        p.b2.status(DEV)
            .unwrap()
            .peer(&p.p1)
            .unwrap()
            .last_handshake;
    let (sent, cookies) = (flood.sent(), flood.cookies());
    let legit = counter(&p.n1, "cookies") - legit_before;
    drop(flood);
    println!(
        "flood: {sent} initiations sent, {cookies} cookie replies to the flooder ({cookies_before} before the re-handshake); \
         legitimate peer: {legit} cookie replies, new session after {rehandshake:?}"
    );
    assert!(
        cookies > cookies_before,
        "the device was no longer under load during the re-handshake"
    );
    assert!(
        hs_after > hs_before,
        "no new handshake: {hs_before:?} → {hs_after:?}"
    );
}
