//! End-to-end: two namespaces joined by a veth underlay, a userspace
//! WireGuard device in each (same name, separate UAPI dirs), ping across,
//! `wg show`, adopt, allowed-IP edits, external `wg set`, delete.

mod common;

use std::time::Duration;

use common::{underlay, wait_for};
use overlayd_wg::{
    format_key, generate_private_key, public_key, select, wgtool, BackendKind, DeviceConfig,
    Disposition, PeerConfig, UserspaceBackend, WgBackend, DEFAULT_MTU,
};

const DEV: &str = "wgtest0";

fn cfg(key: [u8; 32]) -> DeviceConfig {
    DeviceConfig {
        name: DEV.into(),
        private_key: key,
        listen_port: 51820,
        mtu: DEFAULT_MTU,
        fwmark: None,
    }
}

fn wg_show(dir: &std::path::Path) -> String {
    let out = wgtool::wg_command(dir)
        .unwrap()
        .args(["show", DEV])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wg show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_nodes_ping_over_userspace_wireguard() {
    if !common::need_root("two_nodes_ping_over_userspace_wireguard") {
        return;
    }
    let (n1, n2) = underlay();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let k1 = generate_private_key().unwrap();
    let k2 = generate_private_key().unwrap();
    let (p1, p2) = (public_key(&k1), public_key(&k2));
    let b1 = UserspaceBackend::with_netns(d1.path().join("wireguard"), Some(&n1.path())).unwrap();
    let b2 = UserspaceBackend::with_netns(d2.path().join("wireguard"), Some(&n2.path())).unwrap();

    // Same device name in both namespaces: no collision.
    let h1 = b1.create_or_adopt(&cfg(k1)).unwrap();
    let h2 = b2.create_or_adopt(&cfg(k2)).unwrap();
    assert_eq!(h1.disposition, Disposition::Created);
    assert_eq!(h1.public_key, p1);
    assert_eq!(h2.listen_port, 51820);
    assert!(b1.socket_path(DEV).exists() && b2.socket_path(DEV).exists());
    assert!(n1.ip(&["link", "show", "dev", DEV]).contains("mtu 1420"));

    n1.ip(&["addr", "add", "10.99.0.1/24", "dev", DEV]);
    n2.ip(&["addr", "add", "10.99.0.2/24", "dev", DEV]);
    b1.set_peer(
        DEV,
        &PeerConfig {
            public_key: p2,
            endpoint: Some("192.0.2.2:51820".parse().unwrap()),
            allowed_ips: vec!["10.99.0.2/32".parse().unwrap()],
            persistent_keepalive: Some(25),
        },
    )
    .unwrap();
    b2.set_peer(
        DEV,
        &PeerConfig {
            public_key: p1,
            endpoint: Some("192.0.2.1:51820".parse().unwrap()),
            allowed_ips: vec!["10.99.0.1/32".parse().unwrap()],
            persistent_keepalive: None,
        },
    )
    .unwrap();

    let ping =
        |from: &common::Netns, to: &str| from.run(&["ping", "-c1", "-W1", to]).status.success();
    wait_for("ping 10.99.0.2 from n1", Duration::from_secs(15), || {
        ping(&n1, "10.99.0.2")
    });
    assert!(ping(&n2, "10.99.0.1"));

    let st1 = b1.status(DEV).unwrap();
    let peer = st1.peer(&p2).expect("peer p2 configured on n1");
    assert!(peer.last_handshake.is_some());
    assert!(peer.rx_bytes > 0 && peer.tx_bytes > 0);
    assert_eq!(peer.persistent_keepalive, Some(25));
    let age = peer.last_handshake.unwrap().elapsed().unwrap_or_default();
    assert!(age < Duration::from_secs(60), "handshake age {age:?}");

    // wg(8) against each instance's own socket dir lists the other's key.
    let show1 = wg_show(b1.uapi_dir());
    assert!(show1.contains(&format_key(&p1)), "{show1}");
    assert!(show1.contains(&format_key(&p2)), "{show1}");
    assert!(show1.contains("latest handshake"), "{show1}");
    assert!(
        !show1.contains(&format_key(&k1)),
        "private key leaked: {show1}"
    );
    let show2 = wg_show(b2.uapi_dir());
    assert!(show2.contains(&format_key(&p1)), "{show2}");

    // Adopt: same key and port keeps the link (same ifindex), traffic flows.
    let again = b1.create_or_adopt(&cfg(k1)).unwrap();
    assert_eq!(again.disposition, Disposition::Adopted);
    assert_eq!(again.ifindex, h1.ifindex);
    assert!(b1.status(DEV).unwrap().peer(&p2).is_some());
    wait_for("ping after adopt", Duration::from_secs(10), || {
        ping(&n1, "10.99.0.2")
    });

    // Allowed-IP edits on an existing peer (boringtun cannot modify peers in place).
    let extra = "10.99.7.0/24".parse().unwrap();
    b1.add_allowed_ip(DEV, &p2, extra).unwrap();
    b1.add_allowed_ip(DEV, &p2, extra).unwrap();
    let ips = b1
        .status(DEV)
        .unwrap()
        .peer(&p2)
        .unwrap()
        .allowed_ips
        .clone();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(b1.remove_allowed_ip(DEV, &p2, extra).unwrap());
    assert!(!b1.remove_allowed_ip(DEV, &p2, extra).unwrap());
    let peer = b1.status(DEV).unwrap().peer(&p2).cloned().unwrap();
    assert_eq!(peer.allowed_ips, vec!["10.99.0.2/32".parse().unwrap()]);
    assert_eq!(peer.endpoint, Some("192.0.2.2:51820".parse().unwrap()));
    wait_for(
        "ping after allowed-ip edits",
        Duration::from_secs(10),
        || ping(&n1, "10.99.0.2"),
    );

    // An external `wg set` modifying an existing peer goes through the relay.
    let out = wgtool::wg_command(b2.uapi_dir())
        .unwrap()
        .args([
            "set",
            DEV,
            "peer",
            &format_key(&p1),
            "allowed-ips",
            "10.99.0.1/32,10.99.9.0/24",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        b2.status(DEV).unwrap().peer(&p1).unwrap().allowed_ips.len(),
        2
    );

    // Peer removal is idempotent.
    assert!(b2.remove_peer(DEV, &p1).unwrap());
    assert!(!b2.remove_peer(DEV, &p1).unwrap());

    // Delete removes the link and the socket; a second delete is a no-op.
    let sock = b1.socket_path(DEV);
    assert!(b1.delete(DEV).unwrap());
    assert!(!n1.has_link(DEV));
    assert!(!sock.exists());
    assert!(!b1.exists(DEV).unwrap());
    assert!(!b1.delete(DEV).unwrap());
    // The other namespace's same-named device is unaffected.
    assert!(n2.has_link(DEV));
    assert!(b2.exists(DEV).unwrap());

    // Dropping the backend stops its devices.
    drop(b2);
    assert!(!n2.has_link(DEV));
}

#[test]
fn auto_selects_userspace_without_kernel_module_and_refuses_foreign_links() {
    if !common::need_root("auto_selects_userspace") {
        return;
    }
    let ns = common::Netns::new("s");
    let dir = tempfile::tempdir().unwrap();
    let ns_path = ns.path();
    let kind = if overlayd_wg::kernel_available() {
        BackendKind::Kernel
    } else {
        BackendKind::Userspace
    };
    let b = overlayd_wg::select_in(BackendKind::Auto, dir.path(), Some(&ns_path)).unwrap();
    assert_eq!(b.kind(), kind);
    if kind == BackendKind::Userspace {
        // A link of the same name this instance does not run is not adopted.
        ns.ip(&[
            "link", "add", DEV, "type", "veth", "peer", "name", "wgtest0p",
        ]);
        let e = b
            .create_or_adopt(&cfg(generate_private_key().unwrap()))
            .unwrap_err();
        assert!(
            e.to_string().contains("not run by this overlayd instance"),
            "{e}"
        );
        assert!(ns.has_link(DEV), "foreign link must be left alone");
        assert!(!b.exists(DEV).unwrap());
        assert!(!b.delete(DEV).unwrap());
        assert!(ns.has_link(DEV));
    }
    // Selecting the kernel backend explicitly fails clearly when absent.
    if !overlayd_wg::kernel_available() {
        let e = select(BackendKind::Kernel, dir.path()).err().unwrap();
        assert!(
            e.to_string().contains("kernel WireGuard is not available"),
            "{e}"
        );
    }
}
