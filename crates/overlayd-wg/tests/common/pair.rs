//! Two of our userspace devices, one in each namespace of a veth underlay,
//! with a session up between them; plus the nftables counters the
//! robustness tests read. Each side's peer endpoint is configurable so a
//! test can put something (a relay) between the two.

#![allow(dead_code)]

use std::time::Duration;

use overlayd_wg::{
    generate_private_key, public_key, DeviceConfig, KeyBytes, PeerConfig, UserspaceBackend,
    WgBackend, DEFAULT_MTU,
};

use super::{underlay, wait_for, Netns};

/// The device's name in both namespaces.
pub const DEV: &str = "wgr0";

/// Our device at 10.99.0.1 / fd99::1 in `n1` and 10.99.0.2 / fd99::2 in `n2`.
pub struct Pair {
    pub n1: Netns,
    pub n2: Netns,
    pub b1: UserspaceBackend,
    pub b2: UserspaceBackend,
    /// Public key of the device in `n1`.
    pub p1: KeyBytes,
    /// Public key of the device in `n2`.
    pub p2: KeyBytes,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// A peer with `key` at `endpoint`, routing `allowed`.
pub fn peer_cfg(
    key: KeyBytes,
    endpoint: &str,
    allowed: &[&str],
    keepalive: Option<u16>,
) -> PeerConfig {
    PeerConfig {
        public_key: key,
        endpoint: Some(endpoint.parse().unwrap()),
        allowed_ips: allowed.iter().map(|a| a.parse().unwrap()).collect(),
        persistent_keepalive: keepalive,
    }
}

/// Two devices on a fresh underlay, each the other's peer directly
/// (192.0.2.1:51820 and 192.0.2.2:51820), pinging.
pub fn pair() -> Pair {
    let (n1, n2) = underlay();
    pair_on(n1, n2, "192.0.2.2:51820", "192.0.2.1:51820")
}

/// Two devices in `n1` and `n2` (joined by [`underlay`]): the device in
/// `n1` reaches its peer at `ep_of_2`, the device in `n2` at `ep_of_1`.
/// Returns once a ping goes through.
pub fn pair_on(n1: Netns, n2: Netns, ep_of_2: &str, ep_of_1: &str) -> Pair {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (k1, k2) = (
        generate_private_key().unwrap(),
        generate_private_key().unwrap(),
    );
    let (p1, p2) = (public_key(&k1), public_key(&k2));
    let b1 = UserspaceBackend::with_netns(d1.path().join("wireguard"), Some(&n1.path())).unwrap();
    let b2 = UserspaceBackend::with_netns(d2.path().join("wireguard"), Some(&n2.path())).unwrap();
    for (b, k, ns, addr) in [
        (&b1, k1, &n1, "10.99.0.1/24"),
        (&b2, k2, &n2, "10.99.0.2/24"),
    ] {
        b.create_or_adopt(&DeviceConfig {
            name: DEV.into(),
            private_key: k,
            listen_port: 51820,
            mtu: DEFAULT_MTU,
            fwmark: None,
        })
        .unwrap();
        ns.ip(&["addr", "add", addr, "dev", DEV]);
        let v6 = addr.replace("10.99.0.", "fd99::").replace("/24", "/64");
        ns.ip(&["addr", "add", &v6, "dev", DEV, "nodad"]);
    }
    b1.set_peer(
        DEV,
        &peer_cfg(p2, ep_of_2, &["10.99.0.2/32", "fd99::2/128"], None),
    )
    .unwrap();
    b2.set_peer(
        DEV,
        &peer_cfg(p1, ep_of_1, &["10.99.0.1/32", "fd99::1/128"], None),
    )
    .unwrap();
    wait_for("ping over the pair", Duration::from_secs(15), || {
        ping(&n1, "10.99.0.2")
    });
    Pair {
        n1,
        n2,
        b1,
        b2,
        p1,
        p2,
        _dirs: (d1, d2),
    }
}

/// One ping from `ns` to `to` with a one-second wait: answered or not.
pub fn ping(ns: &Netns, to: &str) -> bool {
    ns.run(&["ping", "-c1", "-W1", to]).status.success()
}

/// Runs one `nft` command in `ns`, panicking on failure.
pub fn nft(ns: &Netns, script: &str) {
    let out = ns.run(&["nft", script]);
    assert!(
        out.status.success(),
        "nft {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Packets counted by named counter `name` of table `inet owgt`.
pub fn counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.run(&["nft", "list", "counter", "inet", "owgt", name]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {text:?}"))
}

/// Adds counter `name` to table `inet owgt` of `ns` (created with its input
/// chain when missing), counting datagrams to the WireGuard port whose
/// message type (the first payload byte) is `kind`: 1 initiation, 2
/// response, 3 cookie reply, 4 data.
pub fn count_messages(ns: &Netns, name: &str, kind: u8) {
    nft(ns, "add table inet owgt");
    nft(ns, &format!("add counter inet owgt {name}"));
    nft(
        ns,
        "add chain inet owgt in { type filter hook input priority 0 ; }",
    );
    nft(
        ns,
        &format!("add rule inet owgt in udp dport 51820 @th,64,8 {kind} counter name {name}"),
    );
}
