//! What the fake host records and can fail: the [`Op`]s, the typed [`Call`] log, and
//! the container interfaces attach created.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::firewall::{FirewallSpec, PublishedPort};
#[cfg(doc)]
use crate::host::Host;
use crate::types::{Forwarding, NetnsTarget, VethSpec};

/// An operation of the [`Host`] trait, used to inject failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Host::links`].
    Links,
    /// [`Host::link`].
    Link,
    /// [`Host::create_bridge`].
    CreateBridge,
    /// [`Host::delete_link`].
    DeleteLink,
    /// [`Host::set_alias`].
    SetAlias,
    /// [`Host::set_mtu`].
    SetMtu,
    /// [`Host::set_up`].
    SetUp,
    /// [`Host::add_address`].
    AddAddress,
    /// [`Host::delete_address`].
    DeleteAddress,
    /// [`Host::addresses`].
    Addresses,
    /// [`Host::add_route`].
    AddRoute,
    /// [`Host::delete_route`].
    DeleteRoute,
    /// [`Host::uplink`].
    Uplink,
    /// [`Host::set_forwarding`].
    SetForwarding,
    /// [`Host::attach_veth`], failing before anything is created.
    AttachVeth,
    /// [`Host::attach_veth`], failing after the veth pair exists (exercises rollback).
    AttachConfigure,
    /// [`Host::detach_veth`].
    DetachVeth,
    /// [`Host::netns_alive`].
    NetnsAlive,
    /// [`Host::container_interface`].
    ContainerInterface,
    /// [`Host::apply_firewall`].
    ApplyFirewall,
    /// [`Host::firewall_matches`].
    FirewallMatches,
    /// [`Host::remove_firewall`].
    RemoveFirewall,
    /// [`Host::update_published`].
    UpdatePublished,
    /// [`Host::set_route_localnet`].
    SetRouteLocalnet,
}

/// One recorded call with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Call {
    Links,
    Link(String),
    CreateBridge {
        name: String,
        alias: String,
        mtu: Option<u32>,
    },
    DeleteLink(String),
    SetAlias {
        name: String,
        alias: String,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetUp {
        name: String,
        up: bool,
    },
    AddAddress {
        name: String,
        addr: IpNet,
    },
    DeleteAddress {
        name: String,
        addr: IpNet,
    },
    Addresses(String),
    AddRoute {
        dest: IpNet,
        dev: String,
    },
    DeleteRoute {
        dest: IpNet,
        dev: String,
    },
    Uplink,
    SetForwarding(Forwarding),
    AttachVeth(VethSpec),
    DetachVeth(String),
    NetnsAlive(NetnsTarget),
    ContainerInterface {
        target: NetnsTarget,
        ifname: String,
    },
    ApplyFirewall(FirewallSpec),
    FirewallMatches(FirewallSpec),
    RemoveFirewall,
    UpdatePublished {
        add: Vec<PublishedPort>,
        remove: Vec<PublishedPort>,
    },
    SetRouteLocalnet {
        name: String,
        on: bool,
    },
}

impl Call {
    /// Whether this call changes host state (reads are `false`).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Call::Links
                | Call::Link(_)
                | Call::Addresses(_)
                | Call::Uplink
                | Call::NetnsAlive(_)
                | Call::ContainerInterface { .. }
                | Call::FirewallMatches(_)
        )
    }
}

/// A container-side interface created by an attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIface {
    /// Interface name inside the container namespace.
    pub ifname: String,
    /// Host end of the pair.
    pub host_ifname: String,
    /// Address with prefix length.
    pub address: IpNet,
    /// Default gateway, if one was installed.
    pub gateway: Option<IpAddr>,
    /// Dual-stack: the IPv6 address with prefix length.
    pub address_v6: Option<IpNet>,
    /// IPv6 default gateway, if one was installed.
    pub gateway_v6: Option<IpAddr>,
    /// MTU of both ends.
    pub mtu: u32,
}
