//! A small synchronous netlink request/response helper and the rtnetlink
//! link operations the backends need (look up, create `wireguard` links,
//! set MTU and up, delete).
//!
//! Messages are built by pure functions so their attributes are unit-tested
//! without sending them; sockets are created on the calling thread and so
//! belong to its network namespace.

use std::fmt::Debug;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols, Socket, SocketAddr};

use crate::error::{Result, WgError};

static SEQ: AtomicU32 = AtomicU32::new(1);

/// A connected netlink socket of one protocol.
pub(crate) struct NlSocket {
    sock: Socket,
}

impl NlSocket {
    /// Opens a socket of `protocol` (e.g. `NETLINK_ROUTE`) in the current thread's netns.
    pub(crate) fn open(protocol: isize) -> Result<Self> {
        let err = |source| WgError::Netlink {
            op: "socket",
            source,
        };
        let mut sock = Socket::new(protocol).map_err(err)?;
        sock.bind_auto().map_err(err)?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(err)?;
        // Extended acks give better error text where supported; ignore if not.
        let _ = sock.set_ext_ack(true);
        Ok(NlSocket { sock })
    }

    /// Opens a `NETLINK_ROUTE` socket.
    pub(crate) fn route() -> Result<Self> {
        Self::open(protocols::NETLINK_ROUTE)
    }

    /// Sends `msg` and collects the replies. With `NLM_F_DUMP` in `flags`
    /// the replies run until `NLMSG_DONE`; otherwise an ACK is requested and
    /// awaited. A kernel error becomes [`WgError::Netlink`].
    pub(crate) fn request<I>(&self, msg: I, flags: u16, op: &'static str) -> Result<Vec<I>>
    where
        I: NetlinkSerializable + NetlinkDeserializable + Debug,
    {
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock
            .send(&buf, 0)
            .map_err(|source| WgError::Netlink { op, source })?;

        let mut out = Vec::new();
        loop {
            let (data, _) = self
                .sock
                .recv_from_full()
                .map_err(|source| WgError::Netlink { op, source })?;
            let mut off = 0usize;
            while off < data.len() {
                let reply = NetlinkMessage::<I>::deserialize(&data[off..]).map_err(|e| {
                    WgError::NetlinkDecode {
                        op,
                        detail: e.to_string(),
                    }
                })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    return Err(WgError::NetlinkDecode {
                        op,
                        detail: "zero-length message".into(),
                    });
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => {
                            return Err(WgError::Netlink {
                                op,
                                source: io::Error::from_raw_os_error(-code.get()),
                            })
                        }
                        None => return Ok(out),
                    },
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
            }
        }
    }
}

/// The facts about an existing link the backends care about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkFacts {
    /// Interface index.
    pub index: u32,
    /// `IFLA_INFO_KIND`, if the link reports one (`"wireguard"`, `"tun"`, …).
    pub kind: Option<String>,
    /// Current MTU.
    pub mtu: Option<u32>,
    /// Whether `IFF_UP` is set.
    pub up: bool,
}

/// Builds `RTM_GETLINK` for the link called `name`.
pub(crate) fn build_get_link(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

/// Builds `RTM_NEWLINK` creating a `wireguard` link.
pub(crate) fn build_new_wireguard_link(name: &str, mtu: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Wireguard,
        )]));
    m
}

/// Builds `RTM_NEWLINK` on an existing index that sets the MTU and brings it up.
pub(crate) fn build_set_mtu_up(index: u32, mtu: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    m.attributes.push(LinkAttribute::Mtu(mtu));
    m
}

/// Builds `RTM_DELLINK` for an index.
pub(crate) fn build_del_link(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

fn facts(msg: &LinkMessage) -> LinkFacts {
    let mut f = LinkFacts {
        index: msg.header.index,
        kind: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::Mtu(m) => f.mtu = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        f.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    f
}

/// Looks a link up by name in the current netns; `None` when absent.
pub(crate) fn link_by_name(nl: &NlSocket, name: &str) -> Result<Option<LinkFacts>> {
    let msg = RouteNetlinkMessage::GetLink(build_get_link(name));
    match nl.request(msg, 0, "get link") {
        Ok(replies) => Ok(replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(facts(l)),
            _ => None,
        })),
        Err(WgError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Creates a kernel `wireguard` link.
pub(crate) fn create_wireguard_link(nl: &NlSocket, name: &str, mtu: u32) -> Result<()> {
    let msg = RouteNetlinkMessage::NewLink(build_new_wireguard_link(name, mtu));
    nl.request(msg, NLM_F_CREATE | NLM_F_EXCL, "create wireguard link")
        .map(drop)
}

/// Sets a link's MTU and brings it up.
pub(crate) fn set_mtu_up(nl: &NlSocket, index: u32, mtu: u32) -> Result<()> {
    let msg = RouteNetlinkMessage::NewLink(build_set_mtu_up(index, mtu));
    nl.request(msg, 0, "set link mtu/up").map(drop)
}

/// Deletes a link; `Ok(false)` when it was already gone.
pub(crate) fn delete_link(nl: &NlSocket, index: u32) -> Result<bool> {
    let msg = RouteNetlinkMessage::DelLink(build_del_link(index));
    match nl.request(msg, 0, "delete link") {
        Ok(_) => Ok(true),
        Err(WgError::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    #[test]
    fn new_wireguard_link_attributes() {
        let m = build_new_wireguard_link("wg-a", 1420);
        assert_eq!(m.header.index, 0);
        assert_eq!(
            m.attributes,
            vec![
                LinkAttribute::IfName("wg-a".into()),
                LinkAttribute::Mtu(1420),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Wireguard)]),
            ]
        );
        // The kind string on the wire is exactly "wireguard".
        let mut buf = vec![0u8; m.buffer_len()];
        m.emit(&mut buf);
        assert!(buf.windows(9).any(|w| w == b"wireguard"));
    }

    #[test]
    fn set_mtu_up_and_delete() {
        let m = build_set_mtu_up(7, 1380);
        assert_eq!(m.header.index, 7);
        assert!(m.header.flags.contains(LinkFlags::Up));
        assert!(m.header.change_mask.contains(LinkFlags::Up));
        assert_eq!(m.attributes, vec![LinkAttribute::Mtu(1380)]);
        assert_eq!(build_del_link(9).header.index, 9);
        assert_eq!(
            build_get_link("x").attributes,
            vec![LinkAttribute::IfName("x".into())]
        );
    }

    #[test]
    fn facts_from_message() {
        let mut m = build_new_wireguard_link("wg-a", 1400);
        m.header.index = 3;
        m.header.flags = LinkFlags::Up;
        let f = facts(&m);
        assert_eq!(
            f,
            LinkFacts {
                index: 3,
                kind: Some("wireguard".into()),
                mtu: Some(1400),
                up: true
            }
        );
    }
}
