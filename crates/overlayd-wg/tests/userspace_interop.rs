//! Interop: our userspace device in one namespace, another WireGuard
//! implementation in the other (wireguard-go from Debian; boringtun-cli when
//! one is installed), joined by a veth underlay. Ping both ways, TCP
//! transfers with checksums both ways, the other end restarted in the
//! middle of a transfer, and the other end moving to a new port (our device
//! roams to it) in the middle of a transfer.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::foreign::{self, Foreign, Impl};
use common::{transfer, underlay, wait_for, Netns};
use overlayd_wg::{
    format_key, generate_private_key, public_key, DeviceConfig, PeerConfig, UserspaceBackend,
    WgBackend, DEFAULT_MTU,
};

const OURS: &str = "wgi0";
const THEIRS: &str = "wgf0";
const MIB: u64 = 1024 * 1024;

fn ping(ns: &Netns, to: &str) -> bool {
    ns.run(&["ping", "-c1", "-W1", to]).status.success()
}

fn interop(test: &str, imp: Impl) {
    let (n1, n2) = underlay();
    let d1 = tempfile::tempdir().unwrap();
    let k1 = generate_private_key().unwrap();
    let k2 = generate_private_key().unwrap();
    let (p1, p2) = (public_key(&k1), public_key(&k2));

    let ours = UserspaceBackend::with_netns(d1.path().join("wireguard"), Some(&n1.path())).unwrap();
    ours.create_or_adopt(&DeviceConfig {
        name: OURS.into(),
        private_key: k1,
        listen_port: 51820,
        mtu: DEFAULT_MTU,
        fwmark: None,
    })
    .unwrap();
    n1.ip(&["addr", "add", "10.99.0.1/24", "dev", OURS]);
    ours.set_peer(
        OURS,
        &PeerConfig {
            public_key: p2,
            endpoint: Some("192.0.2.2:51820".parse().unwrap()),
            allowed_ips: vec!["10.99.0.2/32".parse().unwrap()],
            persistent_keepalive: None,
        },
    )
    .unwrap();

    let mut theirs = Foreign::start(imp, &n2, THEIRS);
    let keyfile = theirs.dir.path().join("key");
    std::fs::write(&keyfile, format!("{}\n", format_key(&k2))).unwrap();
    let p1s = format_key(&p1);
    theirs.set(&[
        "private-key",
        keyfile.to_str().unwrap(),
        "listen-port",
        "51820",
        "peer",
        &p1s,
        "endpoint",
        "192.0.2.1:51820",
        "allowed-ips",
        "10.99.0.1/32",
        "persistent-keepalive",
        "25",
    ]);
    theirs.link_up("10.99.0.2/24");

    // Ping both ways.
    wait_for(
        &format!("{test}: ping them"),
        Duration::from_secs(15),
        || ping(&n1, "10.99.0.2"),
    );
    wait_for(&format!("{test}: ping us"), Duration::from_secs(10), || {
        ping(&n2, "10.99.0.1")
    });
    let show = theirs.wg(&["show", THEIRS]);
    assert!(show.contains(&p1s), "{show}");
    let hs = ours.status(OURS).unwrap().peer(&p2).unwrap().last_handshake;
    assert!(hs.is_some(), "no handshake recorded on our side");

    // TCP with checksums, each direction.
    let to_them: SocketAddr = "10.99.0.2:5201".parse().unwrap();
    let to_us: SocketAddr = "10.99.0.1:5202".parse().unwrap();
    transfer::start(n2.path(), to_them, n1.path(), 16 * MIB).finish();
    transfer::start(n1.path(), to_us, n2.path(), 16 * MIB).finish();
    let peer = ours.status(OURS).unwrap().peer(&p2).cloned().unwrap();
    assert!(
        peer.rx_bytes > 16 * MIB && peer.tx_bytes > 16 * MIB,
        "the transfers went through our device: {peer:?}"
    );

    // The other end restarts (new process, new sessions, same key) in the
    // middle of a transfer: the transfer completes, data intact.
    let t = transfer::start(
        n2.path(),
        "10.99.0.2:5203".parse().unwrap(),
        n1.path(),
        24 * MIB,
    );
    t.wait_for_fraction(0.25, Duration::from_secs(60));
    theirs.restart("10.99.0.2/24");
    println!("{test}: {} restarted mid-transfer", theirs.imp.program);
    t.finish();

    // The other end moves to another port mid-transfer: our device roams
    // to where its authenticated packets now come from.
    let t = transfer::start(
        n1.path(),
        "10.99.0.1:5204".parse().unwrap(),
        n2.path(),
        24 * MIB,
    );
    t.wait_for_fraction(0.25, Duration::from_secs(60));
    theirs.set(&["listen-port", "51899"]);
    t.finish();
    let ep = ours.status(OURS).unwrap().peer(&p2).unwrap().endpoint;
    assert_eq!(
        ep,
        Some("192.0.2.2:51899".parse().unwrap()),
        "roamed endpoint"
    );
    assert!(ping(&n1, "10.99.0.2"));
    assert!(theirs.alive(), "{}", theirs.log());
}

#[test]
fn interop_with_wireguard_go() {
    if !common::need_root("interop_with_wireguard_go")
        || !overlayd_lab::need_tool("interop_with_wireguard_go", "wireguard-go", "--version")
    {
        return;
    }
    interop("wireguard-go", Impl::wireguard_go());
}

/// boringtun-cli is not installed by scripts/setup.sh (its build takes
/// long); this test runs where one is found (`BORINGTUN_CLI`, the PATH, or
/// bench/run.sh's cache) and is skipped elsewhere, even in CI.
#[test]
fn interop_with_boringtun_cli() {
    if !common::need_root("interop_with_boringtun_cli") {
        return;
    }
    let Some(bt) = foreign::find_boringtun_cli() else {
        eprintln!("SKIPPED interop_with_boringtun_cli: no boringtun-cli (set BORINGTUN_CLI)");
        return;
    };
    interop("boringtun-cli", Impl::boringtun_cli(&bt));
}
