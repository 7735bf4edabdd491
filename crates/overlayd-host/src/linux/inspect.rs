//! Reading a container's interface from inside its network namespace: the
//! link, its addresses and its default gateways (what a CNI `CHECK` and an
//! `ADD` result need). Nothing is changed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::RouteMessageBuilder;

use crate::error::{HostError, Result};
use crate::linux::{addr, links, netns};
use crate::types::{validate_ifname, ContainerInterface, NetnsTarget};

/// The interface `ifname` inside `target`; `None` when the namespace or the
/// interface is gone.
pub(crate) async fn container_interface(
    target: &NetnsTarget,
    ifname: &str,
) -> Result<Option<ContainerInterface>> {
    validate_ifname(ifname)?;
    let ns = match netns::open_target(target) {
        Ok(ns) => ns,
        Err(HostError::NetnsGone { .. }) | Err(HostError::NotANetns { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let conn = netns::connect_in(Some(ns.fd.clone())).await?;
    let h = &conn.handle;
    let Some(link) = links::get_by_name(h, ifname).await? else {
        return Ok(None);
    };
    let addresses = addr::addresses_of(h, link.index).await?;
    let mut gateways = default_gateways(h, link.index, false).await?;
    gateways.extend(default_gateways(h, link.index, true).await?);
    Ok(Some(ContainerInterface {
        name: link.name,
        mac: link.mac,
        up: link.up,
        mtu: link.mtu,
        addresses,
        default_gateways: gateways,
    }))
}

/// Next hops of the default routes out of `oif` (IPv4, or IPv6 with `v6`).
async fn default_gateways(h: &rtnetlink::Handle, oif: u32, v6: bool) -> Result<Vec<IpAddr>> {
    let query = if v6 {
        RouteMessageBuilder::<Ipv6Addr>::new().build()
    } else {
        RouteMessageBuilder::<Ipv4Addr>::new().build()
    };
    let routes: Vec<RouteMessage> = h
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(|e| HostError::netlink("list routes in the container namespace", e))?;
    Ok(routes
        .iter()
        .filter(|r| r.header.destination_prefix_length == 0)
        .filter(|r| r.attributes.contains(&RouteAttribute::Oif(oif)))
        .filter_map(|r| {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => Some(IpAddr::V4(*g)),
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(IpAddr::V6(*g)),
                _ => None,
            })
        })
        .collect())
}
