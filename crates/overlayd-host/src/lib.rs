//! overlayd-host: the boundary between overlayd and the Linux kernel.
//!
//! Every kernel call overlayd makes for links, addresses, routes, network
//! namespace moves, sysctls and the firewall goes through the [`Host`] trait.
//! [`LinuxHost`] implements it with rtnetlink (no `ip` is spawned) and nftables
//! (one `nft -j -f -` per whole-table write; published-port map elements over
//! a netfilter socket, no process); [`FakeHost`] implements it in memory,
//! records typed calls and injects failures, for fast tests of the daemon.
//!
//! This crate deals only in names, indexes, alias strings and CIDRs; it knows
//! nothing about overlayd's owners, markers or protocol. WireGuard devices live
//! in `overlayd-wg`.

pub mod error;
pub mod fake;
pub mod firewall;
pub mod host;
pub mod linux;
pub mod types;

pub use error::{HostError, Result};
pub use fake::{Call, ContainerIface, FakeHost, Op};
pub use firewall::{
    FirewallBackend, FirewallSpec, L4Proto, MasqueradeNet, PublishedPort, DEFAULT_TABLE,
};
pub use host::Host;
pub use linux::{LinuxHost, LinuxHostConfig};
pub use types::{
    format_mac, validate_ifname, veth_mac, ContainerInterface, Forwarding, LinkInfo, LinkKind,
    NetnsId, NetnsTarget, Uplink, VethAttachment, VethSpec,
};
