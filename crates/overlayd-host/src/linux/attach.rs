//! Attaching a container with a veth pair, and detaching it, with rollback.
//!
//! Attach, in order: validate everything that can be checked (names, target
//! namespace, bridge, host name free or ours); create the pair in one request
//! with the host end in the daemon's namespace and the peer created directly in
//! the container's namespace under its final name, the host end carrying a MAC
//! derived from its tag (the kernel ignores `ifalias` at creation); then, through a netlink
//! connection opened inside the container namespace, address the peer (IPv4 and,
//! dual-stack, IPv6), bring up `lo` and the peer and add the default route(s); last, enslave the host end to the
//! bridge, bring it up and turn on hairpin mode on the port (so a container
//! reaches its own published ports through a host address). Once the pair exists, any failure (or cancellation of
//! the call) deletes it again: deleting one end of a veth deletes both.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use ipnet::IpNet;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth};
use tracing::{debug, warn};

use crate::error::{netlink_errno, HostError, Result};
use crate::linux::netns::{self, NsHandle};
use crate::linux::{addr, links};
use crate::types::{LinkInfo, LinkKind, VethAttachment, VethSpec};

/// Deletes the veth pair when dropped while armed, also if the attach future
/// is cancelled half-way.
struct Rollback {
    handle: Handle,
    index: u32,
    name: String,
    armed: bool,
}

impl Rollback {
    async fn run(mut self) {
        self.armed = false;
        match links::delete_index(&self.handle, self.index).await {
            Ok(_) => debug!(ifname = %self.name, "attach rolled back: veth deleted"),
            Err(e) => {
                warn!(ifname = %self.name, error = %e, "attach rollback could not delete veth")
            }
        }
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let handle = self.handle.clone();
            let index = self.index;
            let name = std::mem::take(&mut self.name);
            rt.spawn(async move {
                if let Err(e) = links::delete_index(&handle, index).await {
                    warn!(ifname = %name, error = %e, "cancelled attach: could not delete veth");
                }
            });
        }
    }
}

/// Performs the whole attach; see the module documentation.
pub(crate) async fn attach(
    h: &Handle,
    host_ns: &NsHandle,
    spec: &VethSpec,
) -> Result<VethAttachment> {
    spec.validate()?;
    let target = netns::open_target(&spec.target)?;
    if target.same_ns(host_ns) {
        return Err(HostError::SameNetns {
            target: spec.target.clone(),
        });
    }
    let bridge = links::require(h, &spec.bridge).await?;
    if bridge.kind != LinkKind::Bridge {
        return Err(HostError::WrongLinkKind {
            name: bridge.name,
            expected: "bridge".into(),
            actual: bridge.kind.to_string(),
        });
    }
    if let Some(existing) = links::get_by_name(h, &spec.host_ifname).await? {
        if !spec.owns(&existing) {
            return Err(HostError::ForeignLink {
                name: existing.name,
                alias: existing.alias,
            });
        }
        // A leftover of ours (a crashed or repeated attach): start afresh.
        debug!(ifname = %spec.host_ifname, "replacing stale veth with our tag");
        links::delete_index(h, existing.index).await?;
    }

    let mtu = spec.mtu.unwrap_or(bridge.mtu);
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(spec.container_ifname.clone())
        .mtu(mtu)
        .setns_by_fd(target.fd.as_raw_fd())
        .build();
    // The MAC is set by this very request (the alias cannot be): identity
    // from the first instant, see `veth_mac`.
    let msg = LinkVeth::new(&spec.host_ifname, &spec.container_ifname)
        .mtu(mtu)
        .address(crate::types::veth_mac(&spec.alias).to_vec())
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    if let Err(e) = h.link().add(msg).execute().await {
        return Err(match netlink_errno(&e) {
            Some(libc::EEXIST) => HostError::InvalidArgument(format!(
                "cannot create veth {} / {}: an interface of that name already exists \
                 (in the container namespace {})",
                spec.host_ifname, spec.container_ifname, spec.target
            )),
            _ => HostError::netlink(format!("create veth {}", spec.host_ifname), e),
        });
    }
    let host_end = links::require(h, &spec.host_ifname).await?;
    let guard = Rollback {
        handle: h.clone(),
        index: host_end.index,
        name: spec.host_ifname.clone(),
        armed: true,
    };
    match configure(h, &target, spec, &host_end, &bridge).await {
        Ok(att) => {
            guard.disarm();
            Ok(att)
        }
        Err(e) => {
            guard.run().await;
            Err(e)
        }
    }
}

fn default_route(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        IpAddr::V6(_) => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
    .unwrap_or_default()
}

async fn configure(
    h: &Handle,
    target: &NsHandle,
    spec: &VethSpec,
    host_end: &LinkInfo,
    bridge: &LinkInfo,
) -> Result<VethAttachment> {
    // Tag first: an interrupted attach must leave something recognisable as ours.
    links::set_props(h, host_end.index, Some(&spec.alias), None, None, None).await?;

    let conn = netns::connect_in(Some(target.fd.clone())).await?;
    let ch = &conn.handle;
    let peer = links::require(ch, &spec.container_ifname).await?;
    addr::add_address(ch, peer.index, spec.address).await?;
    if let Some(a6) = spec.address_v6 {
        addr::add_address(ch, peer.index, a6).await?;
    }
    if let Some(lo) = links::get_by_name(ch, "lo").await? {
        if !lo.up {
            links::set_props(ch, lo.index, None, None, Some(true), None).await?;
        }
    }
    links::set_props(ch, peer.index, None, None, Some(true), None).await?;
    if let Some(gw) = spec.gateway {
        addr::replace_route(ch, default_route(gw), peer.index, Some(gw)).await?;
    }
    if let Some(gw6) = spec.gateway_v6 {
        addr::replace_route(ch, default_route(gw6), peer.index, Some(gw6)).await?;
    }
    drop(conn);

    links::set_props(
        h,
        host_end.index,
        None,
        None,
        Some(true),
        Some(bridge.index),
    )
    .await?;
    // Hairpin: a container reaching its own published port through a host
    // address gets its DNATed packet back on the port it came from.
    links::set_hairpin(h, host_end.index, true).await?;
    Ok(VethAttachment {
        host_index: host_end.index,
        host_ifname: spec.host_ifname.clone(),
        container_ifname: spec.container_ifname.clone(),
        container_index: peer.index,
        container_mac: peer.mac,
    })
}

/// Deletes the veth whose host end is `host_ifname`; `false` if absent. Refuses
/// to delete a link that is not a veth.
pub(crate) async fn detach(h: &Handle, host_ifname: &str) -> Result<bool> {
    crate::types::validate_ifname(host_ifname)?;
    let Some(link) = links::get_by_name(h, host_ifname).await? else {
        return Ok(false);
    };
    if link.kind != LinkKind::Veth {
        return Err(HostError::WrongLinkKind {
            name: link.name,
            expected: "veth".into(),
            actual: link.kind.to_string(),
        });
    }
    links::delete_index(h, link.index).await
}
