//! Carving per-network subnets out of a pool: the lowest free aligned block
//! that overlaps no used subnet and no reserved range, or a check that an
//! explicitly requested subnet is free (naming whoever it collides with).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{bounds, family_bits, from_u128, max_usable_prefix, overlaps, require_network};
use crate::error::{EngineError, Result};

/// A subnet already used by a network, with who uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedSubnet {
    /// The subnet.
    pub subnet: IpNet,
    /// Its owner (marker owner string), named in conflict errors.
    pub owner: String,
}

impl UsedSubnet {
    /// A used subnet of `owner`.
    pub fn new(subnet: IpNet, owner: impl Into<String>) -> Self {
        UsedSubnet {
            subnet,
            owner: owner.into(),
        }
    }
}

/// A range no network subnet may overlap, with what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    /// The reserved range.
    pub net: IpNet,
    /// What it is (named in conflict errors).
    pub why: String,
}

impl Reserved {
    /// The cluster CIDR (all node slices live inside it).
    pub fn cluster(net: IpNet) -> Self {
        Reserved {
            net,
            why: "cluster CIDR".to_string(),
        }
    }

    /// A node's slice of the cluster CIDR.
    pub fn slice(net: IpNet, node: impl fmt::Display) -> Self {
        Reserved {
            net,
            why: format!("slice of node {node}"),
        }
    }

    /// One of the node's own addresses.
    pub fn node_address(addr: IpAddr) -> Self {
        Reserved {
            net: IpNet::from(addr),
            why: "node address".to_string(),
        }
    }

    /// Any other range, with a free-form reason.
    pub fn other(net: IpNet, why: impl Into<String>) -> Self {
        Reserved {
            net,
            why: why.into(),
        }
    }
}

/// Check that `slice` is a network address inside `cluster`.
pub fn check_slice(cluster: IpNet, slice: IpNet) -> Result<()> {
    require_network(cluster)?;
    require_network(slice)?;
    if !cluster.contains(&slice) {
        return Err(EngineError::SliceOutsideCluster { slice, cluster });
    }
    Ok(())
}

/// Hands out subnets of one size from one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetPlanner {
    pool: IpNet,
    prefix_len: u8,
}

impl Default for SubnetPlanner {
    /// `10.201.0.0/16` carved into `/24`s.
    fn default() -> Self {
        SubnetPlanner {
            pool: IpNet::V4(ipnet::Ipv4Net::new_assert(
                std::net::Ipv4Addr::new(10, 201, 0, 0),
                16,
            )),
            prefix_len: super::DEFAULT_SUBNET_PREFIX,
        }
    }
}

impl SubnetPlanner {
    /// A planner carving `/prefix_len` subnets out of `pool`.
    pub fn new(pool: IpNet, prefix_len: u8) -> Result<Self> {
        require_network(pool)?;
        let bad = |why| {
            Err(EngineError::InvalidPrefixLen {
                pool,
                prefix_len,
                why,
            })
        };
        if prefix_len < pool.prefix_len() {
            return bad("subnets must not be larger than the pool");
        }
        if prefix_len > max_usable_prefix(&pool) {
            return bad("subnets this small leave no address to lease");
        }
        if prefix_len == 0 {
            return bad("a subnet cannot span the whole address space");
        }
        Ok(SubnetPlanner { pool, prefix_len })
    }

    /// The pool subnets are carved from.
    pub fn pool(&self) -> IpNet {
        self.pool
    }

    /// The prefix length of every subnet handed out.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The lowest aligned `/prefix_len` in the pool overlapping nothing in
    /// `used` or `reserved`. Runs in O((used + reserved)²), independent of
    /// the pool size.
    pub fn allocate(&self, used: &[UsedSubnet], reserved: &[Reserved]) -> Result<IpNet> {
        let (pool_start, pool_end) = bounds(&self.pool);
        self.first_free(pool_start, pool_end, used, reserved)?
            .ok_or_else(|| self.exhausted())
    }

    /// How many aligned `/prefix_len` blocks the pool holds (saturating at
    /// `u128::MAX`).
    pub fn slots(&self) -> u128 {
        let bits = u32::from(self.prefix_len - self.pool.prefix_len());
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// The aligned block number `slot` of the pool.
    pub fn slot(&self, slot: u128) -> Option<IpNet> {
        let size = self.block_size();
        let (pool_start, pool_end) = bounds(&self.pool);
        let start = slot.checked_mul(size)?.checked_add(pool_start)?;
        if start > pool_end {
            return None;
        }
        IpNet::new(from_u128(start, self.pool.network()), self.prefix_len).ok()
    }

    /// The first free block at or after block number `slot`, wrapping around
    /// to the start of the pool once: the search a deterministic plan uses
    /// when its preferred block is taken.
    pub fn allocate_from(
        &self,
        slot: u128,
        used: &[UsedSubnet],
        reserved: &[Reserved],
    ) -> Result<IpNet> {
        let (pool_start, pool_end) = bounds(&self.pool);
        let slot = slot % self.slots().max(1);
        let from = pool_start + slot * self.block_size();
        if let Some(n) = self.first_free(from, pool_end, used, reserved)? {
            return Ok(n);
        }
        if from > pool_start {
            if let Some(n) = self.first_free(pool_start, from - 1, used, reserved)? {
                return Ok(n);
            }
        }
        Err(self.exhausted())
    }

    fn block_size(&self) -> u128 {
        let host_bits = family_bits(&self.pool) - self.prefix_len;
        1u128.checked_shl(u32::from(host_bits)).unwrap_or(0)
    }

    fn exhausted(&self) -> EngineError {
        EngineError::PoolExhausted {
            pool: self.pool,
            prefix_len: self.prefix_len,
        }
    }

    /// The lowest aligned block inside `[lo, hi]` (integers; `lo` aligned)
    /// overlapping nothing in `used` or `reserved`, in O((used + reserved)²).
    fn first_free(
        &self,
        lo: u128,
        hi: u128,
        used: &[UsedSubnet],
        reserved: &[Reserved],
    ) -> Result<Option<IpNet>> {
        let size = self.block_size();
        let conflicts: Vec<IpNet> = used
            .iter()
            .map(|u| u.subnet)
            .chain(reserved.iter().map(|r| r.net))
            .filter(|n| family_bits(n) == family_bits(&self.pool))
            .collect();
        let mut start = lo;
        loop {
            let Some(end) = start.checked_add(size - 1) else {
                return Ok(None);
            };
            if end > hi {
                return Ok(None);
            }
            let blocking_end = conflicts
                .iter()
                .map(bounds)
                .filter(|&(c0, c1)| c0 <= end && start <= c1)
                .map(|(_, c1)| c1)
                .max();
            match blocking_end {
                None => {
                    let addr = from_u128(start, self.pool.network());
                    return IpNet::new(addr, self.prefix_len)
                        .map(Some)
                        .map_err(|_| self.exhausted());
                }
                Some(c1) => {
                    // Jump past the blocking range, to the next aligned block.
                    let Some(next) = c1.checked_add(1) else {
                        return Ok(None);
                    };
                    match next.checked_add(size - 1) {
                        Some(v) => start = v & !(size - 1),
                        None => return Ok(None),
                    }
                }
            }
        }
    }

    /// Check an explicitly requested subnet: a network address, big enough
    /// to hold a gateway and a lease, overlapping no subnet used by another
    /// owner (entries of `for_owner` itself are ignored, so re-requesting is
    /// idempotent) and no reserved range. It need not lie inside the pool.
    pub fn check_requested(
        &self,
        requested: IpNet,
        for_owner: &str,
        used: &[UsedSubnet],
        reserved: &[Reserved],
    ) -> Result<IpNet> {
        require_network(requested)?;
        if requested.prefix_len() > max_usable_prefix(&requested) {
            return Err(EngineError::InvalidPrefixLen {
                pool: requested,
                prefix_len: requested.prefix_len(),
                why: "subnets this small leave no address to lease",
            });
        }
        if let Some(u) = used
            .iter()
            .filter(|u| u.owner != for_owner)
            .find(|u| overlaps(&u.subnet, &requested))
        {
            return Err(EngineError::SubnetInUse {
                requested,
                existing: u.subnet,
                owner: u.owner.clone(),
            });
        }
        if let Some(r) = reserved.iter().find(|r| overlaps(&r.net, &requested)) {
            return Err(EngineError::SubnetReserved {
                requested,
                reserved: r.net,
                why: r.why.clone(),
            });
        }
        Ok(requested)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn used(list: &[(&str, &str)]) -> Vec<UsedSubnet> {
        list.iter()
            .map(|(s, o)| UsedSubnet::new(n(s), *o))
            .collect()
    }

    #[test]
    fn lowest_free_table() {
        let p = SubnetPlanner::default();
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "10.201.0.0/24"),
            (&[("10.201.0.0/24", "shared-nat")], "10.201.1.0/24"),
            (&[("10.201.1.0/24", "iso:a")], "10.201.0.0/24"),
            (
                &[("10.201.0.0/24", "a"), ("10.201.1.0/24", "b")],
                "10.201.2.0/24",
            ),
            (&[("10.201.0.0/23", "big")], "10.201.2.0/24"),
            (&[("10.201.0.7/32", "host")], "10.201.1.0/24"),
            (&[("10.0.0.0/8", "everything")], "EXHAUSTED"),
            (&[("fd00::/8", "v6 ignored")], "10.201.0.0/24"),
        ];
        for (u, want) in cases {
            let got = p.allocate(&used(u), &[]);
            if *want == "EXHAUSTED" {
                assert!(
                    matches!(got, Err(EngineError::PoolExhausted { .. })),
                    "{got:?}"
                );
            } else {
                assert_eq!(got.unwrap(), n(want), "used {u:?}");
            }
        }
    }

    #[test]
    fn avoids_reserved_cluster_slices_and_node_address() {
        // A pool that overlaps the cluster CIDR still never hands out a slice of it.
        let p = SubnetPlanner::new(n("10.200.0.0/15"), 24).unwrap();
        let reserved = vec![
            Reserved::cluster(n("10.200.0.0/16")),
            Reserved::node_address("10.201.0.1".parse().unwrap()),
        ];
        assert_eq!(p.allocate(&[], &reserved).unwrap(), n("10.201.1.0/24"));
        let reserved = vec![Reserved::slice(n("10.200.0.0/24"), "n1")];
        assert_eq!(p.allocate(&[], &reserved).unwrap(), n("10.200.1.0/24"));
    }

    #[test]
    fn exhaustion_names_pool() {
        let p = SubnetPlanner::new(n("10.9.0.0/23"), 24).unwrap();
        let u = used(&[("10.9.0.0/24", "a"), ("10.9.1.0/24", "b")]);
        let e = p.allocate(&u, &[]).unwrap_err();
        assert!(e.to_string().contains("10.9.0.0/23"), "{e}");
        assert!(e.to_string().contains("/24"), "{e}");
    }

    #[test]
    fn ipv6_pool() {
        let p = SubnetPlanner::new(n("fd00:1::/48"), 64).unwrap();
        let u = used(&[("fd00:1::/64", "a")]);
        assert_eq!(p.allocate(&u, &[]).unwrap(), n("fd00:1:0:1::/64"));
        // Large pools are not scanned linearly: block the first 2^15 /64s at once.
        let u = used(&[("fd00:1::/49", "a")]);
        assert_eq!(p.allocate(&u, &[]).unwrap(), n("fd00:1:0:8000::/64"));
        // Top of the address space does not overflow.
        let p = SubnetPlanner::new(n("ffff:ffff:ffff:ffff::/64"), 64).unwrap();
        let u = used(&[("ffff:ffff:ffff:ffff::/64", "a")]);
        assert!(matches!(
            p.allocate(&u, &[]),
            Err(EngineError::PoolExhausted { .. })
        ));
    }

    #[test]
    fn planner_validation() {
        assert!(SubnetPlanner::new(n("10.201.0.1/16"), 24).is_err());
        assert!(SubnetPlanner::new(n("10.201.0.0/16"), 8).is_err());
        assert!(SubnetPlanner::new(n("10.201.0.0/16"), 31).is_err());
        assert!(SubnetPlanner::new(n("10.201.0.0/16"), 30).is_ok());
        assert!(SubnetPlanner::new(n("::/0"), 0).is_err());
        assert!(SubnetPlanner::new(n("fd00::/8"), 127).is_err());
        let p = SubnetPlanner::default();
        assert_eq!(p.pool(), n(super::super::DEFAULT_LOCAL_POOL));
        assert_eq!(p.prefix_len(), 24);
    }

    #[test]
    fn requested_subnet_checks() {
        let p = SubnetPlanner::default();
        let u = used(&[("10.201.0.0/24", "shared-nat"), ("10.50.0.0/24", "iso:a")]);
        let r = vec![Reserved::cluster(n("10.200.0.0/16"))];
        assert_eq!(
            p.check_requested(n("10.201.5.0/24"), "iso:b", &u, &r)
                .unwrap(),
            n("10.201.5.0/24")
        );
        let e = p
            .check_requested(n("10.201.0.0/16"), "iso:b", &u, &r)
            .unwrap_err();
        assert!(
            matches!(&e, EngineError::SubnetInUse { owner, .. } if owner == "shared-nat"),
            "{e:?}"
        );
        assert!(e.to_string().contains("shared-nat"));
        // Own subnet is not a conflict.
        assert!(p
            .check_requested(n("10.50.0.0/24"), "iso:a", &u, &r)
            .is_ok());
        let e = p
            .check_requested(n("10.200.3.0/24"), "iso:b", &u, &r)
            .unwrap_err();
        assert!(e.to_string().contains("cluster CIDR"), "{e}");
        assert!(matches!(
            p.check_requested(n("10.201.9.1/24"), "iso:b", &u, &r),
            Err(EngineError::HostBitsSet { .. })
        ));
        assert!(p
            .check_requested(n("10.201.9.0/31"), "iso:b", &u, &r)
            .is_err());
    }

    #[test]
    fn slices() {
        assert!(check_slice(n("10.200.0.0/16"), n("10.200.1.0/24")).is_ok());
        assert!(matches!(
            check_slice(n("10.200.0.0/16"), n("10.201.1.0/24")),
            Err(EngineError::SliceOutsideCluster { .. })
        ));
        assert!(check_slice(n("10.200.0.0/16"), n("10.200.1.1/24")).is_err());
    }

    fn arb_v4_net() -> impl Strategy<Value = IpNet> {
        (0u32..64, 20u8..=28).prop_map(|(i, len)| {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 | (i << 8));
            IpNet::new(IpAddr::V4(addr), len).unwrap().trunc()
        })
    }

    proptest! {
        #[test]
        fn allocation_never_overlaps_and_is_lowest(
            nets in proptest::collection::vec(arb_v4_net(), 0..12),
            split in 0usize..12,
            prefix_len in 22u8..=26,
        ) {
            let p = SubnetPlanner::new(n("10.0.0.0/18"), prefix_len).unwrap();
            let split = split.min(nets.len());
            let u: Vec<UsedSubnet> = nets[..split]
                .iter()
                .map(|s| UsedSubnet::new(*s, "x"))
                .collect();
            let r: Vec<Reserved> = nets[split..]
                .iter()
                .map(|s| Reserved::other(*s, "r"))
                .collect();
            let free = |c: &IpNet| !nets.iter().any(|x| overlaps(x, c));
            let candidates: Vec<IpNet> = p.pool().subnets(prefix_len).unwrap().collect();
            match p.allocate(&u, &r) {
                Ok(got) => {
                    prop_assert!(p.pool().contains(&got));
                    prop_assert_eq!(got.prefix_len(), prefix_len);
                    prop_assert!(free(&got));
                    let first = candidates.iter().find(|c| free(c)).copied();
                    prop_assert_eq!(Some(got), first);
                    // Accepted as an explicit request too.
                    prop_assert!(p.check_requested(got, "y", &u, &r).is_ok());
                }
                Err(_) => prop_assert!(candidates.iter().all(|c| !free(c))),
            }
        }

        #[test]
        fn successive_allocations_are_disjoint(count in 1usize..40) {
            let p = SubnetPlanner::new(n("10.201.0.0/20"), 26).unwrap();
            let mut u: Vec<UsedSubnet> = Vec::new();
            for i in 0..count {
                let s = p.allocate(&u, &[]).unwrap();
                prop_assert!(!u.iter().any(|x| overlaps(&x.subnet, &s)));
                u.push(UsedSubnet::new(s, format!("iso:{i}")));
            }
        }
    }
}
