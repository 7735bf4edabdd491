//! Robustness of the userspace device, our device at both ends of a veth
//! underlay: configuration edits in the middle of a transfer cost no
//! handshake, a transfer completes over an underlay that drops 1% of the
//! tunnel's packets as the input hook sees them (nftables `numgen random`;
//! with UDP GRO those are bursts of datagrams; reordering, which nftables
//! cannot do, is in `userspace_adversity.rs` with a relay), 10,000 junk
//! datagrams to the port do not stop traffic, and IPv6 works inside the
//! tunnel and as the underlay (with roaming). Handshake initiations and
//! drops are counted with nftables counters in the test's namespaces (the
//! device pair and the counters are in `common::pair`).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::pair::{count_messages, counter, nft, pair, peer_cfg, DEV};
use common::{transfer, wait_for};
use overlayd_wg::{format_key, wgtool, WgBackend};

const MIB: u64 = 1024 * 1024;

#[test]
fn allowed_ip_edits_during_a_transfer_cause_no_handshake() {
    if !common::need_root("allowed_ip_edits_during_a_transfer_cause_no_handshake") {
        return;
    }
    let p = pair();
    count_messages(&p.n1, "hs", 1);
    count_messages(&p.n2, "hs", 1);
    let t = transfer::start(
        p.n2.path(),
        "10.99.0.2:5301".parse().unwrap(),
        p.n1.path(),
        64 * MIB,
    );
    t.wait_for_fraction(0.1, Duration::from_secs(60));
    let hs_before = (counter(&p.n1, "hs"), counter(&p.n2, "hs"));
    let when_before =
        p.b1.status(DEV)
            .unwrap()
            .peer(&p.p2)
            .unwrap()
            .last_handshake;
    let at_edit = t.received();

    // Every kind of edit, on both ends, while data flows.
    let extra = "10.99.7.0/24".parse().unwrap();
    for _ in 0..5 {
        p.b1.add_allowed_ip(DEV, &p.p2, extra).unwrap();
        p.b1.remove_allowed_ip(DEV, &p.p2, extra).unwrap();
        p.b2.set_peer(
            DEV,
            &peer_cfg(
                p.p1,
                "192.0.2.1:51820",
                &["10.99.0.1/32", "10.99.8.0/24"],
                Some(25),
            ),
        )
        .unwrap();
        p.b2.set_peer(
            DEV,
            &peer_cfg(p.p1, "192.0.2.1:51820", &["10.99.0.1/32"], None),
        )
        .unwrap();
        let out = wgtool::wg_command(p.b1.uapi_dir())
            .unwrap()
            .args([
                "set",
                DEV,
                "peer",
                &format_key(&p.p2),
                "allowed-ips",
                "10.99.0.2/32,10.99.9.0/24",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        t.received() < 64 * MIB,
        "the edits happened during the transfer"
    );
    t.finish();
    let hs_after = (counter(&p.n1, "hs"), counter(&p.n2, "hs"));
    let when_after =
        p.b1.status(DEV)
            .unwrap()
            .peer(&p.p2)
            .unwrap()
            .last_handshake;
    println!(
        "initiations received (n1, n2): {hs_before:?} before the edits (at {at_edit} bytes), {hs_after:?} after"
    );
    assert_eq!(hs_before, hs_after, "an edit caused a new handshake");
    // Handshake times are derived from the session's age: equal to the millisecond.
    let (a, b) = (when_before.unwrap(), when_after.unwrap());
    let skew = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap();
    assert!(
        skew < Duration::from_millis(5),
        "the session was replaced ({skew:?})"
    );
    let ips =
        p.b1.status(DEV)
            .unwrap()
            .peer(&p.p2)
            .unwrap()
            .allowed_ips
            .clone();
    assert_eq!(ips.len(), 2, "{ips:?}");

    // The counter does see handshakes: removing and re-adding the peer
    // starts a new session, and n2 receives an initiation.
    assert!(p.b1.remove_peer(DEV, &p.p2).unwrap());
    p.b1.set_peer(
        DEV,
        &peer_cfg(p.p2, "192.0.2.2:51820", &["10.99.0.2/32"], None),
    )
    .unwrap();
    wait_for(
        "ping after re-adding the peer",
        Duration::from_secs(15),
        || {
            p.n1.run(&["ping", "-c1", "-W1", "10.99.0.2"])
                .status
                .success()
        },
    );
    assert!(
        counter(&p.n2, "hs") > hs_after.1,
        "no initiation counted after a re-add"
    );
}

#[test]
fn transfer_completes_over_an_underlay_dropping_one_percent() {
    if !common::need_root("transfer_completes_over_an_underlay_dropping_one_percent") {
        return;
    }
    let p = pair();
    for ns in [&p.n1, &p.n2] {
        nft(ns, "add table inet owgt");
        nft(ns, "add counter inet owgt dropped");
        nft(
            ns,
            "add chain inet owgt in { type filter hook input priority 0 ; }",
        );
        nft(
            ns,
            "add rule inet owgt in iifname \"ul0\" udp dport 51820 numgen random mod 100 < 1 counter name dropped drop",
        );
    }
    transfer::start(
        p.n2.path(),
        "10.99.0.2:5302".parse().unwrap(),
        p.n1.path(),
        48 * MIB,
    )
    .finish();
    transfer::start(
        p.n1.path(),
        "10.99.0.1:5303".parse().unwrap(),
        p.n2.path(),
        48 * MIB,
    )
    .finish();
    let dropped = (counter(&p.n1, "dropped"), counter(&p.n2, "dropped"));
    println!("tunnel packets dropped by the underlay (n1, n2): {dropped:?}");
    // With UDP GSO/GRO the hook sees super-packets of up to 64 datagrams,
    // so 1% of them is a handful, each losing a burst.
    assert!(
        dropped.0 + dropped.1 >= 5,
        "the drop rule dropped: {dropped:?}"
    );
}

#[test]
fn junk_datagrams_do_not_stop_traffic() {
    if !common::need_root("junk_datagrams_do_not_stop_traffic") {
        return;
    }
    let p = pair();
    let t = transfer::start(
        p.n2.path(),
        "10.99.0.2:5304".parse().unwrap(),
        p.n1.path(),
        24 * MIB,
    );
    t.wait_for_fraction(0.1, Duration::from_secs(60));
    // 10,000 datagrams from n1 to n2's port: random bytes, and random
    // bodies behind each WireGuard message type at its exact size.
    let ns = p.n1.path();
    let sent = std::thread::spawn(move || {
        let f = std::fs::File::open(ns).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let s = UdpSocket::bind("192.0.2.1:0").unwrap();
        let to: SocketAddr = "192.0.2.2:51820".parse().unwrap();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut sent = 0;
        for i in 0..10_000u32 {
            let (kind, len) = match i % 5 {
                0 => (1u8, 148),
                1 => (2, 92),
                2 => (3, 64),
                3 => (4, 32 + (i as usize % 1400)),
                _ => (0, 1 + (i as usize % 1500)),
            };
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if kind != 0 {
                buf[..4].copy_from_slice(&[kind, 0, 0, 0]);
            }
            if s.send_to(&buf, to).is_ok() {
                sent += 1;
            }
        }
        sent
    })
    .join()
    .unwrap();
    assert_eq!(sent, 10_000);
    t.finish();
    wait_for("ping after the junk", Duration::from_secs(10), || {
        p.n1.run(&["ping", "-c1", "-W1", "10.99.0.2"])
            .status
            .success()
    });
    assert!(p
        .b2
        .status(DEV)
        .unwrap()
        .peer(&p.p1)
        .unwrap()
        .last_handshake
        .is_some());
    let _ = p.p2;
}

#[test]
fn ipv6_inside_the_tunnel() {
    if !common::need_root("ipv6_inside_the_tunnel") {
        return;
    }
    let p = pair();
    wait_for("ping fd99::2", Duration::from_secs(10), || {
        p.n1.run(&["ping", "-6", "-c1", "-W1", "fd99::2"])
            .status
            .success()
    });
    transfer::start(
        p.n2.path(),
        "[fd99::2]:5305".parse().unwrap(),
        p.n1.path(),
        16 * MIB,
    )
    .finish();
    transfer::start(
        p.n1.path(),
        "[fd99::1]:5306".parse().unwrap(),
        p.n2.path(),
        16 * MIB,
    )
    .finish();

    // An IPv6 underlay: n1 moves its side to an IPv6 endpoint (the device's
    // IPv6-only socket), n2 roams to it.
    p.n1.ip(&["addr", "add", "2001:db8::1/64", "dev", "ul0", "nodad"]);
    p.n2.ip(&["addr", "add", "2001:db8::2/64", "dev", "ul0", "nodad"]);
    p.b1.set_peer(
        DEV,
        &peer_cfg(
            p.p2,
            "[2001:db8::2]:51820",
            &["10.99.0.2/32", "fd99::2/128"],
            None,
        ),
    )
    .unwrap();
    transfer::start(
        p.n2.path(),
        "10.99.0.2:5307".parse().unwrap(),
        p.n1.path(),
        16 * MIB,
    )
    .finish();
    let ep = p.b2.status(DEV).unwrap().peer(&p.p1).unwrap().endpoint;
    assert_eq!(
        ep,
        Some("[2001:db8::1]:51820".parse().unwrap()),
        "roamed to IPv6"
    );
}
