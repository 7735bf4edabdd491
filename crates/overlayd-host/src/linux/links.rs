//! Link operations over rtnetlink: list, look up, create bridges, change
//! alias/MTU/state, delete; and decoding kernel link messages into [`LinkInfo`].

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec};

use crate::error::{netlink_errno, HostError, Result};
use crate::types::{LinkInfo, LinkKind};

/// Decodes a kernel link message.
pub(crate) fn decode_link(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: LinkKind::Unknown,
        alias: None,
        master: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        mac: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::IfAlias(a) if !a.is_empty() => info.alias = Some(a.clone()),
            LinkAttribute::Controller(m) if *m != 0 => info.master = Some(*m),
            LinkAttribute::Mtu(m) => info.mtu = *m,
            LinkAttribute::Address(a) if a.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(a);
                info.mac = Some(mac);
            }
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let NlLinkInfo::Kind(k) = i {
                        info.kind = match k {
                            InfoKind::Bridge => LinkKind::Bridge,
                            InfoKind::Veth => LinkKind::Veth,
                            InfoKind::Wireguard => LinkKind::Wireguard,
                            InfoKind::Tun => LinkKind::Tun,
                            InfoKind::Other(s) => LinkKind::Other(s.clone()),
                            other => LinkKind::Other(other.to_string()),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    info
}

/// Whether an error means "no such device".
pub(crate) fn is_enodev(err: &rtnetlink::Error) -> bool {
    matches!(netlink_errno(err), Some(libc::ENODEV) | Some(libc::ENOENT))
}

/// All links of the connection's namespace.
pub(crate) async fn dump_links(h: &Handle) -> Result<Vec<LinkInfo>> {
    let msgs: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink("list links", e))?;
    Ok(msgs.iter().map(decode_link).collect())
}

/// One link by name, `None` if absent.
pub(crate) async fn get_by_name(h: &Handle, name: &str) -> Result<Option<LinkInfo>> {
    let mut stream = h.link().get().match_name(name.to_string()).execute();
    match stream.try_next().await {
        Ok(Some(msg)) => Ok(Some(decode_link(&msg))),
        Ok(None) => Ok(None),
        Err(e) if is_enodev(&e) => Ok(None),
        Err(e) => Err(HostError::netlink(format!("get link {name}"), e)),
    }
}

/// One link by index, `None` if absent.
pub(crate) async fn get_by_index(h: &Handle, index: u32) -> Result<Option<LinkInfo>> {
    let mut stream = h.link().get().match_index(index).execute();
    match stream.try_next().await {
        Ok(Some(msg)) => Ok(Some(decode_link(&msg))),
        Ok(None) => Ok(None),
        Err(e) if is_enodev(&e) => Ok(None),
        Err(e) => Err(HostError::netlink(format!("get link #{index}"), e)),
    }
}

/// One link by name, [`HostError::LinkNotFound`] if absent.
pub(crate) async fn require(h: &Handle, name: &str) -> Result<LinkInfo> {
    get_by_name(h, name)
        .await?
        .ok_or_else(|| HostError::LinkNotFound {
            name: name.to_string(),
        })
}

/// Sends a change request (`RTM_NEWLINK` without create) for an existing link.
pub(crate) async fn change(
    h: &Handle,
    msg: LinkMessage,
    op: impl FnOnce() -> String,
) -> Result<()> {
    h.link()
        .change(msg)
        .execute()
        .await
        .map_err(|e| HostError::netlink(op(), e))
}

/// Deletes a link by index; `false` if it was already gone.
pub(crate) async fn delete_index(h: &Handle, index: u32) -> Result<bool> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if is_enodev(&e) => Ok(false),
        Err(e) => Err(HostError::netlink(format!("delete link #{index}"), e)),
    }
}

/// Sets alias, MTU and up/down state of a link in one request (each optional).
pub(crate) async fn set_props(
    h: &Handle,
    index: u32,
    alias: Option<&str>,
    mtu: Option<u32>,
    up: Option<bool>,
    master: Option<u32>,
) -> Result<()> {
    let mut b = LinkUnspec::new_with_index(index);
    if let Some(a) = alias {
        b = b.alias(a);
    }
    if let Some(m) = mtu {
        b = b.mtu(m);
    }
    if let Some(m) = master {
        b = b.controller(m);
    }
    b = match up {
        Some(true) => b.up(),
        Some(false) => b.down(),
        None => b,
    };
    change(h, b.build(), || format!("configure link #{index}")).await
}

/// Turns hairpin mode on or off for a bridge port (`ip link set NAME type
/// bridge_slave hairpin on`): frames may go back out of the port they came
/// in by, which a container reaching its own published port needs when the
/// kernel bridges the DNATed packet (br_netfilter) instead of routing it.
pub(crate) async fn set_hairpin(h: &Handle, index: u32, on: bool) -> Result<()> {
    let msg = LinkBridgePort::new(index).hairpin(on).build();
    change(h, msg, || {
        format!("set hairpin mode on bridge port #{index}")
    })
    .await
}

/// Creates a bridge with `alias`, optional MTU, up. An existing bridge with the
/// same alias is adopted (brought up, MTU set); anything else is refused.
pub(crate) async fn create_bridge(
    h: &Handle,
    name: &str,
    alias: &str,
    mtu: Option<u32>,
) -> Result<LinkInfo> {
    if let Some(existing) = get_by_name(h, name).await? {
        if existing.alias.as_deref() != Some(alias) {
            return Err(HostError::ForeignLink {
                name: name.to_string(),
                alias: existing.alias,
            });
        }
        if existing.kind != LinkKind::Bridge {
            return Err(HostError::WrongLinkKind {
                name: name.to_string(),
                expected: "bridge".into(),
                actual: existing.kind.to_string(),
            });
        }
        let mtu = mtu.filter(|m| *m != existing.mtu);
        if mtu.is_some() || !existing.up {
            set_props(h, existing.index, None, mtu, Some(true), None).await?;
        }
        return require(h, name).await;
    }
    let mut b = LinkBridge::new(name);
    if let Some(m) = mtu {
        b = b.mtu(m);
    }
    h.link()
        .add(b.build())
        .execute()
        .await
        .map_err(|e| HostError::netlink(format!("create bridge {name}"), e))?;
    let created = require(h, name).await?;
    // The kernel ignores IFLA_IFALIAS at creation; tag right after. If tagging
    // fails, remove the untagged bridge rather than leave an anonymous object.
    if let Err(e) = set_props(h, created.index, Some(alias), None, None, None).await {
        let _ = delete_index(h, created.index).await;
        return Err(e);
    }
    // A bridge without an explicitly set address takes the lowest MAC of its
    // ports and changes it when that port leaves, so containers' cached
    // gateway MAC goes stale on every detach. Setting its own (random) MAC
    // explicitly pins it for the bridge's lifetime.
    if let Some(mac) = created.mac {
        let pin = LinkUnspec::new_with_index(created.index)
            .address(mac.to_vec())
            .build();
        if let Err(e) = change(h, pin, || format!("pin the MAC of bridge {name}")).await {
            let _ = delete_index(h, created.index).await;
            return Err(e);
        }
    }
    require(h, name).await
}
