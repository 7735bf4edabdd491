//! Addresses, routes and the uplink over rtnetlink.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::error::{netlink_errno, HostError, Result};
use crate::linux::links;
use crate::types::Uplink;

fn decode_addr(msg: &AddressMessage) -> Option<IpNet> {
    let mut address = None;
    let mut local = None;
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface's own address (IFA_ADDRESS is the
    // peer on point-to-point links); IPv6 only has IFA_ADDRESS.
    let ip = local.or(address)?;
    IpNet::new(ip, msg.header.prefix_len).ok()
}

/// Addresses on the link with this index.
pub(crate) async fn addresses_of(h: &Handle, index: u32) -> Result<Vec<IpNet>> {
    let msgs: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink(format!("list addresses of #{index}"), e))?;
    Ok(msgs
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(decode_addr)
        .collect())
}

/// Adds an address; an identical address already present is success.
///
/// IPv6 addresses are added with `IFA_F_NODAD`: overlayd hands every
/// address out itself (no duplicate can exist on its bridges), and an
/// address still tentative during duplicate address detection cannot be
/// bound — the DNS listener on a gateway would fail with `EADDRNOTAVAIL`
/// and a container's first packets would leave without a source.
pub(crate) async fn add_address(h: &Handle, index: u32, addr: IpNet) -> Result<()> {
    let mut req = h.address().add(index, addr.addr(), addr.prefix_len());
    if addr.addr().is_ipv6() {
        let msg = req.message_mut();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(HostError::netlink(
            format!("add address {addr} to #{index}"),
            e,
        )),
    }
}

/// Removes an address; `false` if it was not on the link.
pub(crate) async fn delete_address(h: &Handle, index: u32, addr: IpNet) -> Result<bool> {
    let msgs: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink(format!("list addresses of #{index}"), e))?;
    let Some(msg) = msgs
        .into_iter()
        .find(|m| m.header.index == index && decode_addr(m) == Some(addr))
    else {
        return Ok(false);
    };
    match h.address().del(msg).execute().await {
        Ok(()) => Ok(true),
        Err(e) if netlink_errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(false),
        Err(e) => Err(HostError::netlink(format!("delete address {addr}"), e)),
    }
}

fn route_msg(dest: IpNet, oif: Option<u32>, gateway: Option<IpAddr>) -> Result<RouteMessage> {
    let dest = dest.trunc();
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dest.addr(), dest.prefix_len())
        .map_err(|e| HostError::InvalidArgument(format!("route to {dest}: {e}")))?;
    if let Some(gw) = gateway {
        b = b
            .gateway(gw)
            .map_err(|e| HostError::InvalidArgument(format!("route to {dest}: {e}")))?;
    }
    if let Some(oif) = oif {
        b = b.output_interface(oif);
    }
    Ok(b.build())
}

/// Installs or replaces a route to `dest` out of the link `oif`, optionally via
/// a gateway. Replacing makes the call idempotent.
pub(crate) async fn replace_route(
    h: &Handle,
    dest: IpNet,
    oif: u32,
    gateway: Option<IpAddr>,
) -> Result<()> {
    let msg = route_msg(dest, Some(oif), gateway)?;
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| HostError::netlink(format!("add route {dest} dev #{oif}"), e))
}

/// Creates a route to `dest` out of the link `oif` without replacing any
/// (`NLM_F_CREATE | NLM_F_EXCL`). A route to the same destination out of the
/// same link already there is fine (idempotent); one out of another link —
/// a route overlayd did not add — is refused and left alone.
pub(crate) async fn create_route(h: &Handle, dest: IpNet, oif: u32) -> Result<()> {
    let msg = route_msg(dest, Some(oif), None)?;
    match h.route().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if netlink_errno(&e) == Some(libc::EEXIST) => match main_route_oif(h, dest).await? {
            Some(Some(o)) if o == oif => Ok(()),
            other => {
                let via = match other {
                    Some(Some(o)) => match links::get_by_index(h, o).await? {
                        Some(l) => format!("dev {}", l.name),
                        None => format!("dev #{o}"),
                    },
                    _ => "another path".to_string(),
                };
                Err(HostError::InvalidArgument(format!(
                        "a route to {dest} already exists ({via}) that overlayd did not add; refusing to replace it"
                    )))
            }
        },
        Err(e) => Err(HostError::netlink(
            format!("add route {dest} dev #{oif}"),
            e,
        )),
    }
}

/// The output link of the main-table route to exactly `dest`: `None` when
/// there is no such route, `Some(None)` when it has no single output link.
async fn main_route_oif(h: &Handle, dest: IpNet) -> Result<Option<Option<u32>>> {
    let query = match dest {
        IpNet::V4(_) => RouteMessageBuilder::<Ipv4Addr>::new().build(),
        IpNet::V6(_) => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    };
    let routes: Vec<RouteMessage> = h
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink("list routes", e))?;
    for r in &routes {
        if r.header.destination_prefix_length != dest.prefix_len()
            || route_table(r) != u32::from(RouteHeader::RT_TABLE_MAIN)
        {
            continue;
        }
        let mut d = None;
        let mut oif = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(v4)) => d = Some(IpAddr::V4(*v4)),
                RouteAttribute::Destination(RouteAddress::Inet6(v6)) => d = Some(IpAddr::V6(*v6)),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        let d = d.unwrap_or(match dest {
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        });
        if d == dest.addr() {
            return Ok(Some(oif));
        }
    }
    Ok(None)
}

/// Deletes the route to `dest` out of `oif`; `false` if it did not exist.
pub(crate) async fn delete_route(h: &Handle, dest: IpNet, oif: u32) -> Result<bool> {
    let msg = route_msg(dest, Some(oif), None)?;
    match h.route().del(msg).execute().await {
        Ok(()) => Ok(true),
        Err(e) if netlink_errno(&e) == Some(libc::ESRCH) => Ok(false),
        Err(e) => Err(HostError::netlink(format!("delete route {dest}"), e)),
    }
}

fn route_table(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

/// The link of the IPv4 default route in the main table (lowest metric wins).
pub(crate) async fn uplink(h: &Handle) -> Result<Option<Uplink>> {
    let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let routes: Vec<RouteMessage> = h
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink("list routes", e))?;
    let mut best: Option<(u32, u32, Option<IpAddr>)> = None; // (metric, oif, gw)
    for r in &routes {
        if r.header.destination_prefix_length != 0
            || route_table(r) != u32::from(RouteHeader::RT_TABLE_MAIN)
        {
            continue;
        }
        let mut oif = None;
        let mut metric = 0;
        let mut gw = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => metric = *p,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(IpAddr::V4(*g)),
                RouteAttribute::MultiPath(hops) => {
                    if let Some(first) = hops.first() {
                        oif = oif.or(Some(first.interface_index));
                    }
                }
                _ => {}
            }
        }
        let Some(oif) = oif else { continue };
        if best.map(|(m, _, _)| metric < m).unwrap_or(true) {
            best = Some((metric, oif, gw));
        }
    }
    let Some((_, oif, gateway)) = best else {
        return Ok(None);
    };
    let Some(link) = links::get_by_index(h, oif).await? else {
        return Ok(None);
    };
    let ipv4 = addresses_of(h, oif)
        .await?
        .into_iter()
        .find_map(|n| match n {
            IpNet::V4(v4) => Some(v4.addr()),
            IpNet::V6(_) => None,
        });
    Ok(Some(Uplink {
        name: link.name,
        index: link.index,
        mtu: link.mtu,
        ipv4,
        gateway,
    }))
}
