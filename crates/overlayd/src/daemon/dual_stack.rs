//! Dual-stack networks: an isolation network with one IPv4 and one IPv6
//! subnet (`iso up NET --ipv6 [--subnet CIDR]...`), and the shared NAT
//! network when `shared_nat_ipv6` is set. The marker entry keeps
//! `subnet` for IPv4 and the extension field `subnet_v6` for IPv6; the
//! IPv6 subnet comes from `local_pool6` (lowest free `/local_prefix_len6`)
//! unless the caller names one, and is recorded, never derived again.
//! A single-stack network (IPv4 or IPv6 `subnet`, no `subnet_v6`) is
//! unchanged by all of this.

use std::net::IpAddr;

use ipnet::IpNet;
use overlayd_state::{NetworkEntry, Owner};

use super::error::{OpError, OpResult};
use super::node::Node;
use super::plan;

/// What a network set-up asks for in IPv6 (decided on in the engine).
pub use overlayd_engine::request::WantV6;

/// The subnets a `setup_isolation_network` asks for, from its wire fields:
/// the primary (IPv4, or IPv6 for a single-stack IPv6 network as before)
/// and the IPv6 one of a dual-stack network. `subnet_v6` implies `ipv6`;
/// with `ipv6`, an IPv6 `subnet` is taken as the IPv6 subnet (the IPv4
/// one then comes from the pool).
pub fn requested_subnets(
    subnet: Option<&str>,
    ipv6: bool,
    subnet_v6: Option<&str>,
) -> OpResult<(Option<IpNet>, WantV6)> {
    let mut primary = subnet.map(plan::parse_cidr).transpose()?;
    let mut want = match subnet_v6 {
        Some(s) => {
            let n = plan::parse_cidr(s)?;
            if !n.addr().is_ipv6() {
                return Err(OpError::Invalid(format!(
                    "subnet_v6 {n} is not an IPv6 subnet; give the IPv4 subnet as subnet"
                )));
            }
            WantV6::Subnet(n)
        }
        None if ipv6 => WantV6::Auto,
        None => WantV6::No,
    };
    if want != WantV6::No {
        if let Some(p) = primary.filter(|p| p.addr().is_ipv6()) {
            if let WantV6::Subnet(v6) = want {
                return Err(OpError::Invalid(format!(
                    "two IPv6 subnets ({p} and {v6}); a dual-stack network has one IPv4 and one IPv6 subnet"
                )));
            }
            want = WantV6::Subnet(p);
            primary = None;
        }
    }
    Ok((primary, want))
}

/// Whether an existing entry already is what `want` asks for, or why not
/// (the engine's decision, as an operation error).
pub fn check_existing(entry: &NetworkEntry, want: WantV6) -> OpResult<()> {
    Ok(overlayd_engine::request::check_existing_v6(entry, want)?)
}

/// The IPv6 subnet of a dual-stack entry, parsed.
pub fn subnet_v6(entry: &NetworkEntry) -> OpResult<Option<IpNet>> {
    entry
        .subnet_v6
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            plan::parse_cidr(s).map_err(|_| {
                OpError::State(format!(
                    "{}: recorded subnet_v6 {s:?} is not a CIDR",
                    entry.owner
                ))
            })
        })
        .transpose()
}

/// Every subnet of an entry with its gateway address: the primary one
/// and, dual-stack, the IPv6 one. Unparseable subnets are left out.
pub fn gateways(entry: &NetworkEntry) -> Vec<(IpNet, IpAddr)> {
    let primary = plan::parse_cidr(&entry.subnet).ok();
    let v6 = subnet_v6(entry).ok().flatten();
    primary
        .into_iter()
        .chain(v6)
        .filter_map(|s| plan::gateway_cidr(s).ok().map(|g| (s, g.addr())))
        .collect()
}

impl Node {
    /// What the shared NAT network asks for in IPv6: dual-stack when
    /// `shared_nat_ipv6` is set — for a network about to be created, or one
    /// recorded dual-stack already. A recorded single-stack one stays as it
    /// is (its members have no IPv6 address; it is recreated dual-stack once
    /// removed, e.g. by `network prune` when no shared service is left).
    pub(crate) fn shared_nat_want6(&self) -> WantV6 {
        if !self.cfg.shared_nat_ipv6 {
            return WantV6::No;
        }
        match self.marker.get(&Owner::SharedNat) {
            Some(e) if e.subnet_v6.is_none() => {
                tracing::debug!(
                    "shared_nat_ipv6 is set but shared-nat was recorded single-stack; it stays so until it is removed and created again"
                );
                WantV6::No
            }
            _ => WantV6::Auto,
        }
    }

    /// Pick the IPv6 subnet of a new dual-stack network: the requested
    /// one after overlap checks, or the lowest free of `local_pool6`.
    pub(crate) fn plan_subnet_v6(&self, owner: &Owner, want: WantV6) -> OpResult<Option<IpNet>> {
        let requested = match want {
            WantV6::No => return Ok(None),
            WantV6::Auto => None,
            WantV6::Subnet(s) => Some(s),
        };
        let pool: IpNet = self.cfg.local_pool6.parse().map_err(|_| {
            OpError::Invalid(format!(
                "local_pool6 {:?} is not a CIDR",
                self.cfg.local_pool6
            ))
        })?;
        let used = self.used_subnets();
        let reserved: Vec<IpNet> = self.reserved_subnets();
        plan::pick_subnet(
            owner,
            pool,
            self.cfg.local_prefix_len6,
            requested,
            &used,
            &reserved,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlayd_state::entry::KIND_LINUX_BRIDGE;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn wire_fields_become_one_v4_and_one_v6_subnet() {
        assert_eq!(
            requested_subnets(None, false, None).unwrap(),
            (None, WantV6::No)
        );
        // Single-stack IPv6, as before dual-stack existed.
        assert_eq!(
            requested_subnets(Some("fd00:1::/64"), false, None).unwrap(),
            (Some(n("fd00:1::/64")), WantV6::No)
        );
        assert_eq!(
            requested_subnets(None, true, None).unwrap(),
            (None, WantV6::Auto)
        );
        // A v6 subnet with ipv6 is the v6 subnet; v4 comes from the pool.
        assert_eq!(
            requested_subnets(Some("fd00:1::/64"), true, None).unwrap(),
            (None, WantV6::Subnet(n("fd00:1::/64")))
        );
        // subnet_v6 implies ipv6.
        assert_eq!(
            requested_subnets(Some("10.9.0.0/24"), false, Some("fd00:2::/64")).unwrap(),
            (Some(n("10.9.0.0/24")), WantV6::Subnet(n("fd00:2::/64")))
        );
        assert!(requested_subnets(None, true, Some("10.9.0.0/24")).is_err());
        assert!(requested_subnets(Some("fd00:1::/64"), true, Some("fd00:2::/64")).is_err());
        assert!(requested_subnets(None, true, Some("fd00:2::1/64")).is_err());
    }

    #[test]
    fn an_existing_network_is_confirmed_or_refused_never_changed() {
        let mut e = NetworkEntry::new(
            Owner::isolation("a").unwrap(),
            KIND_LINUX_BRIDGE,
            "br",
            "id",
            "10.201.0.0/24",
        );
        check_existing(&e, WantV6::No).unwrap();
        assert!(matches!(
            check_existing(&e, WantV6::Auto),
            Err(OpError::Conflict(_))
        ));
        e.subnet_v6 = Some("fd42::/64".into());
        check_existing(&e, WantV6::No).unwrap();
        check_existing(&e, WantV6::Auto).unwrap();
        check_existing(&e, WantV6::Subnet(n("fd42::/64"))).unwrap();
        assert!(matches!(
            check_existing(&e, WantV6::Subnet(n("fd43::/64"))),
            Err(OpError::Conflict(_))
        ));
        let gws: Vec<IpAddr> = gateways(&e).into_iter().map(|(_, g)| g).collect();
        assert_eq!(
            gws,
            vec![
                "10.201.0.1".parse::<IpAddr>().unwrap(),
                "fd42::1".parse().unwrap()
            ]
        );
    }
}
