//! Picking host addresses inside one subnet: the lowest address that is not
//! the network address, the IPv4 broadcast, the gateway, or already leased.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{bounds, from_u128, max_usable_prefix, require_network, to_u128};
use crate::error::{EngineError, Result};

/// Hands out host addresses of one subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPicker {
    subnet: IpNet,
    gateway: IpAddr,
}

impl AddressPicker {
    /// A picker for `subnet` whose gateway is its first host address.
    pub fn new(subnet: IpNet) -> Result<Self> {
        Self::validate_subnet(subnet)?;
        let (start, _) = bounds(&subnet);
        let gateway = from_u128(start + 1, subnet.network());
        Ok(AddressPicker { subnet, gateway })
    }

    /// A picker for `subnet` with an explicit gateway address.
    pub fn with_gateway(subnet: IpNet, gateway: IpAddr) -> Result<Self> {
        Self::validate_subnet(subnet)?;
        let p = AddressPicker { subnet, gateway };
        p.check_host(gateway)?;
        Ok(p)
    }

    fn validate_subnet(subnet: IpNet) -> Result<()> {
        require_network(subnet)?;
        if subnet.prefix_len() > max_usable_prefix(&subnet) {
            return Err(EngineError::InvalidPrefixLen {
                pool: subnet,
                prefix_len: subnet.prefix_len(),
                why: "subnets this small leave no address to lease",
            });
        }
        Ok(())
    }

    /// The subnet.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// The gateway address (never leased).
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    /// First and last host address as integers (network and, for IPv4,
    /// broadcast excluded).
    fn host_range(&self) -> (u128, u128) {
        let (start, end) = bounds(&self.subnet);
        match self.subnet {
            IpNet::V4(_) => (start + 1, end - 1),
            IpNet::V6(_) => (start + 1, end),
        }
    }

    /// How many addresses can be leased (host addresses minus the gateway).
    pub fn capacity(&self) -> u128 {
        let (first, last) = self.host_range();
        last - first
    }

    /// Check that `addr` is a host address of the subnet (not network or
    /// broadcast); says which special address it is otherwise.
    fn check_host(&self, addr: IpAddr) -> Result<()> {
        if !self.subnet.contains(&addr) {
            return Err(EngineError::AddressOutsideSubnet {
                addr,
                subnet: self.subnet,
            });
        }
        let (first, last) = self.host_range();
        let v = to_u128(addr);
        if v < first {
            return Err(EngineError::AddressReserved {
                addr,
                subnet: self.subnet,
                what: "network address",
            });
        }
        if v > last {
            return Err(EngineError::AddressReserved {
                addr,
                subnet: self.subnet,
                what: "broadcast address",
            });
        }
        Ok(())
    }

    /// Check an explicitly requested address: inside the subnet, not a
    /// special address, not the gateway, not leased.
    pub fn check(&self, addr: IpAddr, leased: &BTreeSet<IpAddr>) -> Result<IpAddr> {
        self.check_host(addr)?;
        if addr == self.gateway {
            return Err(EngineError::AddressReserved {
                addr,
                subnet: self.subnet,
                what: "gateway",
            });
        }
        if leased.contains(&addr) {
            return Err(EngineError::AddressInUse { addr });
        }
        Ok(addr)
    }

    /// The lowest free host address. Leases outside the subnet are ignored.
    /// Runs in O(leases in the subnet), independent of the subnet size.
    pub fn pick(&self, leased: &BTreeSet<IpAddr>) -> Result<IpAddr> {
        let (first, last) = self.host_range();
        let like = self.subnet.network();
        let gw = to_u128(self.gateway);
        let mut taken = leased
            .range(from_u128(first, like)..=from_u128(last, like))
            .map(|a| to_u128(*a))
            .peekable();
        let mut c = first;
        while c <= last {
            if c == gw {
                c += 1;
                continue;
            }
            while taken.next_if(|&l| l < c).is_some() {}
            if taken.peek() == Some(&c) {
                c += 1;
                continue;
            }
            return Ok(from_u128(c, like));
        }
        Err(EngineError::AddressesExhausted {
            subnet: self.subnet,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|s| a(s)).collect()
    }

    #[test]
    fn pick_table() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("10.201.0.0/24", &[], "10.201.0.2"),
            ("10.201.0.0/24", &["10.201.0.2"], "10.201.0.3"),
            ("10.201.0.0/24", &["10.201.0.3"], "10.201.0.2"),
            ("10.201.0.0/24", &["10.201.0.2", "10.201.0.3"], "10.201.0.4"),
            ("10.201.0.0/24", &["10.9.9.9", "fd00::2"], "10.201.0.2"),
            ("10.201.0.0/30", &[], "10.201.0.2"),
            ("10.201.0.0/30", &["10.201.0.2"], "EXHAUSTED"),
            ("fd00::/64", &[], "fd00::2"),
            ("fd00::/126", &["fd00::2"], "fd00::3"),
            ("fd00::/126", &["fd00::2", "fd00::3"], "EXHAUSTED"),
        ];
        for (subnet, leased, want) in cases {
            let p = AddressPicker::new(n(subnet)).unwrap();
            let got = p.pick(&set(leased));
            if *want == "EXHAUSTED" {
                let e = got.unwrap_err();
                assert!(e.to_string().contains(subnet), "{e}");
            } else {
                assert_eq!(got.unwrap(), a(want), "{subnet} {leased:?}");
            }
        }
    }

    #[test]
    fn gateway_and_capacity() {
        let p = AddressPicker::new(n("10.201.0.0/24")).unwrap();
        assert_eq!(p.gateway(), a("10.201.0.1"));
        assert_eq!(p.capacity(), 253);
        assert_eq!(p.subnet(), n("10.201.0.0/24"));
        let p = AddressPicker::with_gateway(n("10.201.0.0/24"), a("10.201.0.254")).unwrap();
        assert_eq!(p.pick(&BTreeSet::new()).unwrap(), a("10.201.0.1"));
        assert!(AddressPicker::with_gateway(n("10.201.0.0/24"), a("10.201.0.255")).is_err());
        assert!(AddressPicker::with_gateway(n("10.201.0.0/24"), a("10.201.0.0")).is_err());
        assert!(AddressPicker::with_gateway(n("10.201.0.0/24"), a("10.202.0.1")).is_err());
        assert!(AddressPicker::new(n("10.201.0.0/31")).is_err());
        assert!(AddressPicker::new(n("10.201.0.1/24")).is_err());
        assert_eq!(AddressPicker::new(n("fd00::/120")).unwrap().capacity(), 254);
    }

    #[test]
    fn full_slash24_is_exhausted_after_253() {
        let p = AddressPicker::new(n("10.201.0.0/24")).unwrap();
        let mut leased = BTreeSet::new();
        for _ in 0..253 {
            let ip = p.pick(&leased).unwrap();
            assert!(leased.insert(ip));
        }
        assert!(matches!(
            p.pick(&leased),
            Err(EngineError::AddressesExhausted { .. })
        ));
    }

    #[test]
    fn check_table() {
        let p = AddressPicker::new(n("10.201.0.0/24")).unwrap();
        let leased = set(&["10.201.0.7"]);
        assert!(p.check(a("10.201.0.8"), &leased).is_ok());
        for (addr, what) in [
            ("10.201.0.0", "network"),
            ("10.201.0.255", "broadcast"),
            ("10.201.0.1", "gateway"),
            ("10.201.0.7", "leased"),
            ("10.202.0.7", "not inside"),
        ] {
            let e = p.check(a(addr), &leased).unwrap_err();
            assert!(e.to_string().contains(what), "{addr}: {e}");
        }
    }

    proptest! {
        #[test]
        fn never_returns_leased_or_special(
            prefix_len in 24u8..=30,
            leased_octets in proptest::collection::btree_set(0u8..=255, 0..260),
        ) {
            let subnet = n(&format!("10.201.7.0/{prefix_len}"));
            let p = AddressPicker::new(subnet).unwrap();
            let leased: BTreeSet<IpAddr> = leased_octets
                .iter()
                .map(|o| IpAddr::from([10, 201, 7, *o]))
                .collect();
            let network = subnet.network();
            let broadcast = subnet.broadcast();
            match p.pick(&leased) {
                Ok(ip) => {
                    prop_assert!(subnet.contains(&ip));
                    prop_assert!(!leased.contains(&ip));
                    prop_assert_ne!(ip, network);
                    prop_assert_ne!(ip, broadcast);
                    prop_assert_ne!(ip, p.gateway());
                    // Lowest: every lower host address is excluded.
                    for h in subnet.hosts() {
                        if h >= ip { break; }
                        prop_assert!(h == p.gateway() || leased.contains(&h));
                    }
                    prop_assert!(p.check(ip, &leased).is_ok());
                }
                Err(_) => {
                    for h in subnet.hosts() {
                        prop_assert!(h == p.gateway() || leased.contains(&h));
                    }
                }
            }
        }

        #[test]
        fn v6_never_returns_leased(
            leased_ids in proptest::collection::btree_set(0u16..64, 0..70),
        ) {
            let subnet = n("fd00:9::/122");
            let p = AddressPicker::new(subnet).unwrap();
            let leased: BTreeSet<IpAddr> = leased_ids
                .iter()
                .map(|i| a(&format!("fd00:9::{i:x}")))
                .collect();
            if let Ok(ip) = p.pick(&leased) {
                prop_assert!(subnet.contains(&ip));
                prop_assert!(!leased.contains(&ip));
                prop_assert_ne!(ip, subnet.network());
                prop_assert_ne!(ip, p.gateway());
            } else {
                prop_assert!(leased.len() >= 62);
            }
        }
    }
}
