//! Backend-independent decisions: which [`SetRequest`] realises a trait call,
//! given the device's current status. Pure functions, unit-tested in memory;
//! the kernel backend sends the result over generic netlink, the userspace
//! backend over its UAPI socket.

use ipnet::IpNet;

use crate::error::{Result, WgError};
use crate::key::{self, KeyBytes};
use crate::types::{DeviceConfig, DeviceStatus, PeerConfig};
use crate::uapi::{PeerUpdate, SetRequest};

/// The request bringing a device to `cfg`, and whether its identity (key or
/// port) changes. On a `fresh` device everything is set; on an adopted one
/// only what differs, so an adopted device with the same key and port keeps
/// its sockets, sessions and peers.
pub(crate) fn device_update(
    cfg: &DeviceConfig,
    current: &DeviceStatus,
    fresh: bool,
) -> (SetRequest, bool) {
    let key_differs = current.public_key != Some(cfg.public_key());
    let port_differs = cfg.listen_port != 0 && cfg.listen_port != current.listen_port;
    let want_mark = cfg.fwmark.unwrap_or(0);
    let mark_differs = want_mark != current.fwmark.unwrap_or(0);
    let req = SetRequest {
        private_key: (fresh || key_differs).then_some(cfg.private_key),
        listen_port: (fresh || port_differs).then_some(cfg.listen_port),
        fwmark: (mark_differs || (fresh && cfg.fwmark.is_some())).then_some(want_mark),
        replace_peers: false,
        peers: Vec::new(),
    };
    (req, key_differs || port_differs)
}

/// Adds or fully replaces a peer (allowed IPs replaced, keepalive 0 when unset).
pub(crate) fn peer_update(peer: &PeerConfig) -> SetRequest {
    SetRequest {
        peers: vec![PeerUpdate {
            public_key: peer.public_key,
            endpoint: peer.endpoint,
            persistent_keepalive: Some(peer.persistent_keepalive.unwrap_or(0)),
            replace_allowed_ips: true,
            allowed_ips: peer.allowed_ips.clone(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Removes a peer.
pub(crate) fn peer_removal(public_key: &KeyBytes) -> SetRequest {
    SetRequest {
        peers: vec![PeerUpdate {
            public_key: *public_key,
            remove: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn no_peer(device: &str, public_key: &KeyBytes) -> WgError {
    WgError::NoSuchPeer {
        device: device.to_string(),
        public_key: key::format_key(public_key),
    }
}

/// Appends `net` to a peer's allowed IPs; `None` when already present.
pub(crate) fn allowed_ip_add(
    device: &str,
    st: &DeviceStatus,
    public_key: &KeyBytes,
    net: IpNet,
) -> Result<Option<SetRequest>> {
    let peer = st
        .peer(public_key)
        .ok_or_else(|| no_peer(device, public_key))?;
    if peer.allowed_ips.contains(&net) {
        return Ok(None);
    }
    Ok(Some(SetRequest {
        peers: vec![PeerUpdate {
            public_key: *public_key,
            update_only: true,
            allowed_ips: vec![net],
            ..Default::default()
        }],
        ..Default::default()
    }))
}

/// Drops `net` from a peer's allowed IPs (by replacing the list with the
/// rest); `None` when it was not there.
pub(crate) fn allowed_ip_removal(
    device: &str,
    st: &DeviceStatus,
    public_key: &KeyBytes,
    net: IpNet,
) -> Result<Option<SetRequest>> {
    let peer = st
        .peer(public_key)
        .ok_or_else(|| no_peer(device, public_key))?;
    if !peer.allowed_ips.contains(&net) {
        return Ok(None);
    }
    Ok(Some(SetRequest {
        peers: vec![PeerUpdate {
            public_key: *public_key,
            update_only: true,
            replace_allowed_ips: true,
            allowed_ips: peer
                .allowed_ips
                .iter()
                .copied()
                .filter(|n| *n != net)
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PeerStatus;

    fn cfg() -> DeviceConfig {
        DeviceConfig {
            name: "wg0".into(),
            private_key: [0x21; 32],
            listen_port: 51820,
            mtu: 1420,
            fwmark: None,
        }
    }

    fn status(c: &DeviceConfig) -> DeviceStatus {
        DeviceStatus {
            public_key: Some(c.public_key()),
            listen_port: c.listen_port,
            fwmark: None,
            peers: vec![PeerStatus {
                public_key: [1; 32],
                endpoint: None,
                allowed_ips: vec!["10.0.0.1/32".parse().unwrap()],
                persistent_keepalive: None,
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            }],
        }
    }

    #[test]
    fn adopt_same_identity_changes_nothing() {
        let c = cfg();
        let (req, changed) = device_update(&c, &status(&c), false);
        assert!(req.is_empty(), "{req:?}");
        assert!(!changed);
    }

    #[test]
    fn fresh_device_gets_everything() {
        let c = DeviceConfig {
            fwmark: Some(5),
            ..cfg()
        };
        let empty = DeviceStatus {
            public_key: None,
            listen_port: 40000,
            fwmark: None,
            peers: vec![],
        };
        let (req, changed) = device_update(&c, &empty, true);
        assert_eq!(req.private_key, Some(c.private_key));
        assert_eq!(req.listen_port, Some(51820));
        assert_eq!(req.fwmark, Some(5));
        assert!(changed);
    }

    #[test]
    fn adopt_with_other_port_or_mark() {
        let c = cfg();
        let mut st = status(&c);
        st.listen_port = 1;
        st.fwmark = Some(9);
        let (req, changed) = device_update(&c, &st, false);
        assert_eq!(req.private_key, None);
        assert_eq!(req.listen_port, Some(51820));
        assert_eq!(req.fwmark, Some(0));
        assert!(changed);
    }

    #[test]
    fn peer_requests() {
        let p = PeerConfig {
            public_key: [2; 32],
            endpoint: Some("192.0.2.1:1".parse().unwrap()),
            allowed_ips: vec!["10.0.0.2/32".parse().unwrap()],
            persistent_keepalive: None,
        };
        let r = peer_update(&p);
        assert!(r.peers[0].replace_allowed_ips);
        assert_eq!(r.peers[0].persistent_keepalive, Some(0));
        assert!(peer_removal(&[2; 32]).peers[0].remove);
    }

    #[test]
    fn allowed_ip_edits() {
        let c = cfg();
        let st = status(&c);
        let net: IpNet = "10.0.1.0/24".parse().unwrap();
        let have: IpNet = "10.0.0.1/32".parse().unwrap();
        let add = allowed_ip_add("wg0", &st, &[1; 32], net).unwrap().unwrap();
        assert!(add.peers[0].update_only);
        assert!(!add.peers[0].replace_allowed_ips);
        assert_eq!(add.peers[0].allowed_ips, vec![net]);
        assert!(allowed_ip_add("wg0", &st, &[1; 32], have)
            .unwrap()
            .is_none());
        let rm = allowed_ip_removal("wg0", &st, &[1; 32], have)
            .unwrap()
            .unwrap();
        assert!(rm.peers[0].replace_allowed_ips);
        assert!(rm.peers[0].allowed_ips.is_empty());
        assert!(allowed_ip_removal("wg0", &st, &[1; 32], net)
            .unwrap()
            .is_none());
        let e = allowed_ip_add("wg0", &st, &[7; 32], net).unwrap_err();
        assert!(matches!(e, WgError::NoSuchPeer { .. }));
    }
}
