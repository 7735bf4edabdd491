//! IP address management as pure functions over sets (SPEC §6): carving
//! per-network subnets that never overlap each other, the node slices or the
//! node's own address ([`subnet`]), and picking the lowest free host
//! address inside a subnet ([`address`]). The daemon runs these inside a
//! store transaction so two callers never get the same answer.

pub mod address;
pub mod plan;
pub mod subnet;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{EngineError, Result};

pub use address::AddressPicker;
pub use subnet::{check_slice, Reserved, SubnetPlanner, UsedSubnet};

/// Default cluster CIDR the node slices are carved from.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.200.0.0/16";
/// Default pool for node-local networks (shared NAT, isolation and service bridges).
pub const DEFAULT_LOCAL_POOL: &str = "10.201.0.0/16";
/// Default prefix length of a node-local network subnet.
pub const DEFAULT_SUBNET_PREFIX: u8 = 24;

/// The address as an unsigned integer (IPv4 in the low 32 bits).
pub(crate) fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The integer `v` as an address of the same family as `like`. For IPv4,
/// `v` must fit in 32 bits (callers stay inside a v4 network).
pub(crate) fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// Bit width of the network's family.
pub(crate) fn family_bits(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    }
}

/// First and last address of `net` as integers.
pub(crate) fn bounds(net: &IpNet) -> (u128, u128) {
    (to_u128(net.network()), to_u128(net.broadcast()))
}

/// Whether two networks share any address (never across families).
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    if family_bits(a) != family_bits(b) {
        return false;
    }
    let (a0, a1) = bounds(a);
    let (b0, b1) = bounds(b);
    a0 <= b1 && b0 <= a1
}

/// Reject CIDRs with host bits set, naming the network they truncate to.
pub(crate) fn require_network(net: IpNet) -> Result<()> {
    let t = net.trunc();
    if t != net {
        return Err(EngineError::HostBitsSet {
            given: net,
            network: t,
        });
    }
    Ok(())
}

/// Longest prefix that still leaves room for a gateway and one lease:
/// /30 for IPv4 (network and broadcast excluded), /126 for IPv6.
pub(crate) fn max_usable_prefix(net: &IpNet) -> u8 {
    family_bits(net) - 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn overlap_table() {
        let cases = [
            ("10.0.0.0/24", "10.0.0.0/16", true),
            ("10.0.0.0/24", "10.0.1.0/24", false),
            ("10.0.0.0/24", "10.0.0.255/32", true),
            ("10.0.0.0/24", "fd00::/8", false),
            ("fd00::/64", "fd00::1/128", true),
            ("fd00::/64", "fd00:0:0:1::/64", false),
            ("0.0.0.0/0", "192.0.2.0/24", true),
        ];
        for (a, b, want) in cases {
            assert_eq!(overlaps(&n(a), &n(b)), want, "{a} vs {b}");
            assert_eq!(overlaps(&n(b), &n(a)), want, "{b} vs {a}");
        }
    }

    #[test]
    fn defaults_parse() {
        assert!(DEFAULT_CLUSTER_CIDR.parse::<IpNet>().is_ok());
        assert!(DEFAULT_LOCAL_POOL.parse::<IpNet>().is_ok());
        assert!(!overlaps(&n(DEFAULT_CLUSTER_CIDR), &n(DEFAULT_LOCAL_POOL)));
    }

    #[test]
    fn host_bits_are_reported() {
        let e = require_network(n("10.0.0.5/24")).unwrap_err();
        assert_eq!(
            e,
            EngineError::HostBitsSet {
                given: n("10.0.0.5/24"),
                network: n("10.0.0.0/24")
            }
        );
        assert!(require_network(n("10.0.0.0/24")).is_ok());
    }
}
