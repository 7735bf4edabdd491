//! Generic netlink for in-kernel WireGuard: family resolution and the
//! `WG_CMD_SET_DEVICE` / `WG_CMD_GET_DEVICE` messages.
//!
//! A device change is described once, as a [`SetRequest`] (the same value the
//! UAPI client renders), and converted here into a [`WireguardMessage`]; replies
//! are folded back into a [`DeviceStatus`]. Both conversions are pure and
//! unit-tested without a kernel module.

use std::time::{Duration, UNIX_EPOCH};

use ipnet::IpNet;
use netlink_packet_core::NLM_F_DUMP;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::GenlMessage;
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute,
    WireguardCmd, WireguardDeviceFlags, WireguardMessage, WireguardPeer, WireguardPeerAttribute,
    WireguardPeerFlags,
};
use netlink_sys::protocols::NETLINK_GENERIC;

use crate::error::{Result, WgError};
use crate::netlink::NlSocket;
use crate::types::{DeviceStatus, PeerStatus};
use crate::uapi::{PeerUpdate, SetRequest};

/// Name of the WireGuard generic netlink family.
pub const WG_GENL_NAME: &str = "wireguard";

/// A generic netlink socket with the resolved WireGuard family id.
pub(crate) struct WgGenl {
    sock: NlSocket,
    family: u16,
}

impl WgGenl {
    /// Opens a socket and resolves the family; [`WgError::KernelUnavailable`]
    /// when the kernel has no WireGuard support.
    pub(crate) fn open() -> Result<Self> {
        let sock = NlSocket::open(NETLINK_GENERIC)?;
        let family = resolve_family(&sock, WG_GENL_NAME)?.ok_or(WgError::KernelUnavailable)?;
        Ok(WgGenl { sock, family })
    }

    /// Applies a set request to device `name`.
    pub(crate) fn set(&self, name: &str, req: &SetRequest) -> Result<()> {
        let mut msg = GenlMessage::from_payload(build_set(name, req));
        msg.set_resolved_family_id(self.family);
        self.sock.request(msg, 0, "WG_CMD_SET_DEVICE").map(drop)
    }

    /// Reads the state of device `name`.
    pub(crate) fn get(&self, name: &str) -> Result<DeviceStatus> {
        let mut msg = GenlMessage::from_payload(build_get(name));
        msg.set_resolved_family_id(self.family);
        let replies = self.sock.request(msg, NLM_F_DUMP, "WG_CMD_GET_DEVICE")?;
        Ok(parse_device(replies.into_iter().map(|m| m.payload)))
    }
}

/// Whether the kernel in the current netns offers the WireGuard family.
pub(crate) fn kernel_available() -> bool {
    NlSocket::open(NETLINK_GENERIC)
        .and_then(|s| resolve_family(&s, WG_GENL_NAME))
        .map(|f| f.is_some())
        .unwrap_or(false)
}

/// Builds the controller request resolving a family name.
pub(crate) fn build_get_family(name: &str) -> GenlCtrl {
    GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
    }
}

fn resolve_family(sock: &NlSocket, name: &str) -> Result<Option<u16>> {
    let msg = GenlMessage::from_payload(build_get_family(name));
    match sock.request(msg, 0, "resolve genl family") {
        Ok(replies) => Ok(replies.iter().find_map(|r| {
            r.payload.nlas.iter().find_map(|a| match a {
                GenlCtrlAttrs::FamilyId(id) => Some(*id),
                _ => None,
            })
        })),
        Err(WgError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Builds `WG_CMD_GET_DEVICE` for `name`.
pub(crate) fn build_get(name: &str) -> WireguardMessage {
    WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::IfName(name.to_string())],
    }
}

/// Builds `WG_CMD_SET_DEVICE` for `name` from a set request.
pub(crate) fn build_set(name: &str, req: &SetRequest) -> WireguardMessage {
    let mut attrs = vec![WireguardAttribute::IfName(name.to_string())];
    if let Some(k) = req.private_key {
        attrs.push(WireguardAttribute::PrivateKey(k));
    }
    if let Some(p) = req.listen_port {
        attrs.push(WireguardAttribute::ListenPort(p));
    }
    if let Some(m) = req.fwmark {
        attrs.push(WireguardAttribute::Fwmark(m));
    }
    if req.replace_peers {
        attrs.push(WireguardAttribute::Flags(
            WireguardDeviceFlags::ReplacePeers,
        ));
    }
    if !req.peers.is_empty() {
        attrs.push(WireguardAttribute::Peers(
            req.peers.iter().map(build_peer).collect(),
        ));
    }
    WireguardMessage {
        cmd: WireguardCmd::SetDevice,
        attributes: attrs,
    }
}

fn build_peer(p: &PeerUpdate) -> WireguardPeer {
    let mut attrs = vec![WireguardPeerAttribute::PublicKey(p.public_key)];
    let mut flags = WireguardPeerFlags::empty();
    if p.remove {
        flags |= WireguardPeerFlags::RemoveMe;
    }
    if p.update_only {
        flags |= WireguardPeerFlags::UpdateOnly;
    }
    if p.replace_allowed_ips {
        flags |= WireguardPeerFlags::ReplaceAllowedIps;
    }
    if !flags.is_empty() {
        attrs.push(WireguardPeerAttribute::Flags(flags));
    }
    if !p.remove {
        if let Some(e) = p.endpoint {
            attrs.push(WireguardPeerAttribute::Endpoint(e));
        }
        if let Some(k) = p.persistent_keepalive {
            attrs.push(WireguardPeerAttribute::PersistentKeepalive(k));
        }
        if !p.allowed_ips.is_empty() {
            attrs.push(WireguardPeerAttribute::AllowedIps(
                p.allowed_ips
                    .iter()
                    .map(|n| build_allowed_ip(n, false))
                    .collect(),
            ));
        }
    }
    WireguardPeer(attrs)
}

/// Builds one allowed-IP entry; `remove` sets `WGALLOWEDIP_F_REMOVE_ME` (Linux ≥ 6.5).
pub(crate) fn build_allowed_ip(net: &IpNet, remove: bool) -> WireguardAllowedIp {
    let family = match net {
        IpNet::V4(_) => WireguardAddressFamily::Ipv4,
        IpNet::V6(_) => WireguardAddressFamily::Ipv6,
    };
    let mut attrs = vec![
        WireguardAllowedIpAttr::Family(family),
        WireguardAllowedIpAttr::IpAddr(net.addr()),
        WireguardAllowedIpAttr::Cidr(net.prefix_len()),
    ];
    if remove {
        attrs.push(WireguardAllowedIpAttr::Flags(
            netlink_packet_wireguard::WireguardAllowedIpFlags::RemoveMe,
        ));
    }
    WireguardAllowedIp(attrs)
}

/// Folds the (possibly several) dump replies into one status. A peer split
/// across two replies appears at the end of the first and the start of the
/// next with the same key; the parts are merged.
pub(crate) fn parse_device(msgs: impl IntoIterator<Item = WireguardMessage>) -> DeviceStatus {
    let mut dev = DeviceStatus {
        public_key: None,
        listen_port: 0,
        fwmark: None,
        peers: Vec::new(),
    };
    for msg in msgs {
        for a in msg.attributes {
            match a {
                WireguardAttribute::PublicKey(k) => dev.public_key = Some(k),
                WireguardAttribute::ListenPort(p) => dev.listen_port = p,
                WireguardAttribute::Fwmark(m) => dev.fwmark = (m != 0).then_some(m),
                WireguardAttribute::Peers(peers) => {
                    for p in peers {
                        merge_peer(&mut dev.peers, p);
                    }
                }
                _ => {}
            }
        }
    }
    dev
}

fn merge_peer(peers: &mut Vec<PeerStatus>, p: WireguardPeer) {
    let Some(key) = p.0.iter().find_map(|a| match a {
        WireguardPeerAttribute::PublicKey(k) => Some(*k),
        _ => None,
    }) else {
        return;
    };
    if peers.last().map(|l| l.public_key) != Some(key) {
        peers.push(PeerStatus {
            public_key: key,
            endpoint: None,
            allowed_ips: Vec::new(),
            persistent_keepalive: None,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        });
    }
    let Some(out) = peers.last_mut() else {
        return;
    };
    for a in p.0 {
        match a {
            WireguardPeerAttribute::Endpoint(e) => out.endpoint = Some(e),
            WireguardPeerAttribute::PersistentKeepalive(k) => {
                out.persistent_keepalive = (k != 0).then_some(k)
            }
            WireguardPeerAttribute::LastHandshake(t) => {
                out.last_handshake = (t.seconds > 0 || t.nano_seconds > 0)
                    .then(|| {
                        UNIX_EPOCH.checked_add(Duration::new(
                            u64::try_from(t.seconds).unwrap_or(0),
                            u32::try_from(t.nano_seconds.clamp(0, 999_999_999)).unwrap_or(0),
                        ))
                    })
                    .flatten()
            }
            WireguardPeerAttribute::RxBytes(b) => out.rx_bytes = b,
            WireguardPeerAttribute::TxBytes(b) => out.tx_bytes = b,
            WireguardPeerAttribute::AllowedIps(ips) => {
                for ip in ips {
                    let mut addr = None;
                    let mut cidr = None;
                    for a in ip.0 {
                        match a {
                            WireguardAllowedIpAttr::IpAddr(x) => addr = Some(x),
                            WireguardAllowedIpAttr::Cidr(c) => cidr = Some(c),
                            _ => {}
                        }
                    }
                    if let (Some(a), Some(c)) = (addr, cidr) {
                        if let Ok(n) = IpNet::new(a, c) {
                            out.allowed_ips.push(n);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, ParseableParametrized};
    use netlink_packet_generic::GenlHeader;
    use netlink_packet_wireguard::WireguardTimeSpec;

    fn sample_request() -> SetRequest {
        SetRequest {
            private_key: Some([3; 32]),
            listen_port: Some(51820),
            fwmark: Some(0x10),
            replace_peers: false,
            peers: vec![
                PeerUpdate {
                    public_key: [4; 32],
                    endpoint: Some("192.0.2.2:51820".parse().unwrap()),
                    persistent_keepalive: Some(25),
                    replace_allowed_ips: true,
                    allowed_ips: vec![
                        "10.99.0.2/32".parse().unwrap(),
                        "fd00::/64".parse().unwrap(),
                    ],
                    ..Default::default()
                },
                PeerUpdate {
                    public_key: [5; 32],
                    remove: true,
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn set_device_attributes() {
        let msg = build_set("wg-a", &sample_request());
        assert_eq!(msg.cmd, WireguardCmd::SetDevice);
        let a = &msg.attributes;
        assert_eq!(a[0], WireguardAttribute::IfName("wg-a".into()));
        assert_eq!(a[1], WireguardAttribute::PrivateKey([3; 32]));
        assert_eq!(a[2], WireguardAttribute::ListenPort(51820));
        assert_eq!(a[3], WireguardAttribute::Fwmark(0x10));
        let WireguardAttribute::Peers(peers) = &a[4] else {
            panic!("expected peers, got {:?}", a[4]);
        };
        assert_eq!(peers.len(), 2);
        assert_eq!(
            peers[0].0,
            vec![
                WireguardPeerAttribute::PublicKey([4; 32]),
                WireguardPeerAttribute::Flags(WireguardPeerFlags::ReplaceAllowedIps),
                WireguardPeerAttribute::Endpoint("192.0.2.2:51820".parse().unwrap()),
                WireguardPeerAttribute::PersistentKeepalive(25),
                WireguardPeerAttribute::AllowedIps(vec![
                    build_allowed_ip(&"10.99.0.2/32".parse().unwrap(), false),
                    build_allowed_ip(&"fd00::/64".parse().unwrap(), false),
                ]),
            ]
        );
        assert_eq!(
            peers[1].0,
            vec![
                WireguardPeerAttribute::PublicKey([5; 32]),
                WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe),
            ]
        );
        let ip = build_allowed_ip(&"10.0.0.0/8".parse().unwrap(), true);
        assert_eq!(
            ip.0,
            vec![
                WireguardAllowedIpAttr::Family(WireguardAddressFamily::Ipv4),
                WireguardAllowedIpAttr::IpAddr("10.0.0.0".parse().unwrap()),
                WireguardAllowedIpAttr::Cidr(8),
                WireguardAllowedIpAttr::Flags(
                    netlink_packet_wireguard::WireguardAllowedIpFlags::RemoveMe
                ),
            ]
        );
    }

    #[test]
    fn set_device_wire_round_trip() {
        let msg = build_set("wg-a", &sample_request());
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let header = GenlHeader {
            cmd: WireguardCmd::SetDevice.into(),
            version: 1,
        };
        let parsed = WireguardMessage::parse_with_param(&buf[..], header).unwrap();
        assert_eq!(parsed, msg);
    }

    #[test]
    fn replace_peers_flag_and_get() {
        let req = SetRequest {
            replace_peers: true,
            ..Default::default()
        };
        let msg = build_set("x", &req);
        assert_eq!(
            msg.attributes,
            vec![
                WireguardAttribute::IfName("x".into()),
                WireguardAttribute::Flags(WireguardDeviceFlags::ReplacePeers),
            ]
        );
        let get = build_get("x");
        assert_eq!(get.cmd, WireguardCmd::GetDevice);
        assert_eq!(get.attributes, vec![WireguardAttribute::IfName("x".into())]);
        let fam = build_get_family(WG_GENL_NAME);
        assert_eq!(fam.cmd, GenlCtrlCmd::GetFamily);
        assert_eq!(
            fam.nlas,
            vec![GenlCtrlAttrs::FamilyName("wireguard".into())]
        );
    }

    #[test]
    fn parses_split_dump() {
        let peer_part1 = WireguardPeer(vec![
            WireguardPeerAttribute::PublicKey([9; 32]),
            WireguardPeerAttribute::Endpoint("192.0.2.9:1".parse().unwrap()),
            WireguardPeerAttribute::LastHandshake(WireguardTimeSpec {
                seconds: 100,
                nano_seconds: 0,
            }),
            WireguardPeerAttribute::RxBytes(5),
            WireguardPeerAttribute::TxBytes(6),
            WireguardPeerAttribute::AllowedIps(vec![build_allowed_ip(
                &"10.0.0.1/32".parse().unwrap(),
                false,
            )]),
        ]);
        let peer_part2 = WireguardPeer(vec![
            WireguardPeerAttribute::PublicKey([9; 32]),
            WireguardPeerAttribute::AllowedIps(vec![build_allowed_ip(
                &"10.0.1.0/24".parse().unwrap(),
                false,
            )]),
        ]);
        let m1 = WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![
                WireguardAttribute::PublicKey([1; 32]),
                WireguardAttribute::ListenPort(7),
                WireguardAttribute::Fwmark(0),
                WireguardAttribute::Peers(vec![peer_part1]),
            ],
        };
        let m2 = WireguardMessage {
            cmd: WireguardCmd::GetDevice,
            attributes: vec![WireguardAttribute::Peers(vec![peer_part2])],
        };
        let st = parse_device([m1, m2]);
        assert_eq!(st.public_key, Some([1; 32]));
        assert_eq!(st.listen_port, 7);
        assert_eq!(st.fwmark, None);
        assert_eq!(st.peers.len(), 1);
        let p = &st.peers[0];
        assert_eq!(p.allowed_ips.len(), 2);
        assert_eq!(
            p.last_handshake,
            Some(UNIX_EPOCH + Duration::from_secs(100))
        );
        assert_eq!((p.rx_bytes, p.tx_bytes), (5, 6));
    }
}
