//! The address plan (SPEC §6): which subnets a node uses when the caller
//! names none, so that nodes on default configuration do not collide.
//!
//! Two kinds of subnet must differ between nodes because other nodes route
//! to them through WireGuard: the node's **slice** of the cluster CIDR (the
//! base overlay) and the subnet of every **dedicated service** network. Both
//! are derived here from the node's identity with a stable hash:
//!
//! - the preferred block is `hash(domain, range, identity[, service]) mod
//!   blocks`, where `blocks` is the number of aligned `/prefix_len` blocks in
//!   the range;
//! - if that block overlaps something the node already uses (its other
//!   networks, peers' allowed IPs, host routes), the next free block after
//!   it is taken, wrapping around once;
//! - the daemon records the answer and never derives it again for that
//!   network, so it survives restarts, `global down`/`up`, a later
//!   `set_local_node_id` and upgrades of this code.
//!
//! Networks only this node routes (shared NAT, isolation) keep coming from
//! `local_pool` lowest-first: no other node ever sees them.
//!
//! The chance that two of `n` nodes pick the same block of a range holding
//! `b` blocks is the birthday bound, `1 - exp(-n(n-1) / 2b)`; [`collision_probability`]
//! computes it. Collisions that do happen are caught when peers are added
//! (their allowed IPs overlap one of this node's networks) and named then.

use std::net::IpAddr;

use ipnet::IpNet;

use super::subnet::{Reserved, SubnetPlanner, UsedSubnet};
use crate::error::Result;
use crate::hash::stable_hash;

/// Default prefix length of a node slice inside the cluster CIDR.
pub const DEFAULT_SLICE_PREFIX: u8 = 24;
/// Default range dedicated service subnets are derived from. It lies outside
/// the default cluster CIDR (`10.200.0.0/16`) and `local_pool`
/// (`10.201.0.0/16`).
pub const DEFAULT_SERVICE_RANGE: &str = "10.208.0.0/12";
/// Default prefix length of a dedicated service's subnet on one node.
pub const DEFAULT_SERVICE_PREFIX: u8 = 24;

/// Who this node is, for the plan: the orchestrator's node id when it set
/// one, else the node's WireGuard public key. Only the bytes matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity(Vec<u8>);

impl NodeIdentity {
    /// The identity of a node whose orchestrator set `node_id`.
    pub fn from_node_id(node_id: u64) -> Self {
        let mut v = b"node-id:".to_vec();
        v.extend_from_slice(&node_id.to_be_bytes());
        NodeIdentity(v)
    }

    /// The identity of a node known by its WireGuard public key.
    pub fn from_public_key(key: &[u8; 32]) -> Self {
        let mut v = b"wg-key:".to_vec();
        v.extend_from_slice(key);
        NodeIdentity(v)
    }

    /// The node id when set, else the public key.
    pub fn of(node_id: Option<u64>, public_key: &[u8; 32]) -> Self {
        match node_id {
            Some(id) => Self::from_node_id(id),
            None => Self::from_public_key(public_key),
        }
    }

    /// The raw identity bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What a derived subnet must not overlap, with names for the error.
#[derive(Debug, Clone, Default)]
pub struct Avoid {
    /// Subnets of this node's networks, by owner.
    pub used: Vec<UsedSubnet>,
    /// Other ranges (peers' allowed IPs, host routes, the other range of the plan).
    pub reserved: Vec<Reserved>,
}

impl Avoid {
    /// Add a used subnet.
    pub fn used(mut self, subnet: IpNet, owner: impl Into<String>) -> Self {
        self.used.push(UsedSubnet::new(subnet, owner));
        self
    }

    /// Add a reserved range.
    pub fn reserved(mut self, net: IpNet, why: impl Into<String>) -> Self {
        self.reserved.push(Reserved::other(net, why));
        self
    }

    /// Reserve a single address (e.g. a host address of the namespace).
    pub fn address(mut self, addr: IpAddr, why: impl Into<String>) -> Self {
        self.reserved.push(Reserved::other(IpNet::from(addr), why));
        self
    }
}

/// The block a hash prefers, before any conflict is looked at.
fn preferred_slot(planner: &SubnetPlanner, domain: &str, parts: &[&[u8]]) -> u128 {
    let h = u128::from(stable_hash(domain, parts));
    h % planner.slots().max(1)
}

/// The node's slice of `cluster`: a `/prefix_len` block chosen from the node
/// identity, or the next free one when that block is in use.
pub fn derive_slice(
    cluster: IpNet,
    prefix_len: u8,
    identity: &NodeIdentity,
    avoid: &Avoid,
) -> Result<IpNet> {
    let planner = SubnetPlanner::new(cluster, prefix_len)?;
    let range = cluster.to_string();
    let slot = preferred_slot(
        &planner,
        "overlayd/v1/node-slice",
        &[range.as_bytes(), identity.as_bytes()],
    );
    planner.allocate_from(slot, &avoid.used, &avoid.reserved)
}

/// The subnet of dedicated service `service` on this node: a `/prefix_len`
/// block of `range` chosen from (service, node identity), or the next free
/// one when that block is in use.
pub fn derive_service_subnet(
    range: IpNet,
    prefix_len: u8,
    service: &str,
    identity: &NodeIdentity,
    avoid: &Avoid,
) -> Result<IpNet> {
    let planner = SubnetPlanner::new(range, prefix_len)?;
    let r = range.to_string();
    let slot = preferred_slot(
        &planner,
        "overlayd/v1/service-subnet",
        &[r.as_bytes(), service.as_bytes(), identity.as_bytes()],
    );
    planner.allocate_from(slot, &avoid.used, &avoid.reserved)
}

/// The birthday bound: the probability that at least two of `nodes`
/// independent uniform picks among `blocks` blocks coincide.
pub fn collision_probability(nodes: u64, blocks: u128) -> f64 {
    if blocks == 0 {
        return 1.0;
    }
    let n = nodes as f64;
    1.0 - (-(n * (n - 1.0)) / (2.0 * blocks as f64)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn key(seed: u64) -> [u8; 32] {
        let mut k = [0u8; 32];
        for (i, b) in k.iter_mut().enumerate() {
            *b = (stable_hash("test-key", &[&seed.to_le_bytes(), &[i as u8]]) & 0xff) as u8;
        }
        k
    }

    #[test]
    fn node_id_wins_over_key() {
        let k = key(1);
        assert_eq!(NodeIdentity::of(Some(7), &k), NodeIdentity::from_node_id(7));
        assert_eq!(
            NodeIdentity::of(None, &k),
            NodeIdentity::from_public_key(&k)
        );
        assert_ne!(NodeIdentity::from_node_id(7), NodeIdentity::from_node_id(8));
    }

    #[test]
    fn golden_values_never_change() {
        // The plan is recorded, but a new node must derive what an older
        // build derived for the same identity: pin a few answers.
        let id = NodeIdentity::from_node_id(1);
        let a = derive_slice(net("10.200.0.0/16"), 24, &id, &Avoid::default()).unwrap();
        let b = derive_slice(net("10.200.0.0/16"), 24, &id, &Avoid::default()).unwrap();
        assert_eq!(a, b);
        let s =
            derive_service_subnet(net("10.208.0.0/12"), 24, "db", &id, &Avoid::default()).unwrap();
        assert!(net("10.208.0.0/12").contains(&s));
        assert_eq!(s.prefix_len(), 24);
        assert_eq!(a.to_string(), GOLDEN_SLICE_OF_NODE_1);
        assert_eq!(s.to_string(), GOLDEN_DB_OF_NODE_1);
    }

    const GOLDEN_SLICE_OF_NODE_1: &str = "10.200.10.0/24";
    const GOLDEN_DB_OF_NODE_1: &str = "10.210.104.0/24";

    #[test]
    fn different_services_and_nodes_differ() {
        let n1 = NodeIdentity::from_node_id(1);
        let n2 = NodeIdentity::from_node_id(2);
        let r = net("10.208.0.0/12");
        let a = derive_service_subnet(r, 24, "db", &n1, &Avoid::default()).unwrap();
        let b = derive_service_subnet(r, 24, "db", &n2, &Avoid::default()).unwrap();
        let c = derive_service_subnet(r, 24, "web", &n1, &Avoid::default()).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn taken_block_moves_to_the_next_free_one() {
        let id = NodeIdentity::from_node_id(1);
        let cluster = net("10.200.0.0/16");
        let first = derive_slice(cluster, 24, &id, &Avoid::default()).unwrap();
        let avoid = Avoid::default().used(first, "iso:x");
        let second = derive_slice(cluster, 24, &id, &avoid).unwrap();
        assert_ne!(first, second);
        assert!(!crate::ipam::overlaps(&first, &second));
    }

    #[test]
    fn wraps_around_to_the_start() {
        let id = NodeIdentity::from_node_id(3);
        // /30 blocks in a /29, the upper one taken.
        let cluster29 = net("10.200.0.0/29");
        let upper = net("10.200.0.4/30");
        let lower = net("10.200.0.0/30");
        let got = derive_slice(cluster29, 30, &id, &Avoid::default().used(upper, "a")).unwrap();
        assert_eq!(got, lower);
        let err = derive_slice(
            cluster29,
            30,
            &id,
            &Avoid::default().used(upper, "a").used(lower, "b"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("exhausted"), "{err}");
    }

    #[test]
    fn ipv6_ranges_work() {
        let id = NodeIdentity::from_node_id(9);
        let s = derive_slice(net("fd00:200::/48"), 64, &id, &Avoid::default()).unwrap();
        assert!(net("fd00:200::/48").contains(&s));
        assert_eq!(s.prefix_len(), 64);
        let big = derive_slice(net("fd00::/16"), 112, &id, &Avoid::default()).unwrap();
        assert!(net("fd00::/16").contains(&big));
    }

    #[test]
    fn birthday_rate_holds_for_1000_nodes() {
        // 1,000 random identities over a range of 65,536 blocks (/24s in a
        // /8): expected colliding pairs = C(1000, 2) / 65536 ≈ 7.6.
        let range = net("10.0.0.0/8");
        let mut seen = std::collections::HashMap::new();
        let mut pairs = 0u64;
        for i in 0..1000u64 {
            let id = NodeIdentity::from_public_key(&key(i));
            let s = derive_slice(range, 24, &id, &Avoid::default()).unwrap();
            let c = seen.entry(s).or_insert(0u64);
            pairs += *c;
            *c += 1;
        }
        let expected = 1000.0 * 999.0 / 2.0 / 65536.0;
        // Poisson with mean 7.6: P(X > 20) < 1e-4, P(X = 0) ≈ 5e-4.
        assert!(
            (pairs as f64) < expected * 2.7 && pairs >= 1,
            "{pairs} colliding pairs, expected about {expected:.1}"
        );
    }

    #[test]
    fn birthday_bound_figures() {
        // The figures docs/architecture.md states.
        let p2 = collision_probability(2, 256);
        assert!((p2 - 0.0039).abs() < 0.0002, "{p2}");
        let p10 = collision_probability(10, 4096);
        assert!((p10 - 0.011).abs() < 0.001, "{p10}");
    }

    proptest! {
        #[test]
        fn slice_is_stable_inside_and_avoids(
            seed in any::<u64>(),
            taken in proptest::collection::vec(0u8..=255, 0..40),
        ) {
            let cluster = net("10.200.0.0/16");
            let id = NodeIdentity::from_public_key(&key(seed));
            let mut avoid = Avoid::default();
            for t in &taken {
                avoid = avoid.used(net(&format!("10.200.{t}.0/24")), format!("n{t}"));
            }
            let a = derive_slice(cluster, 24, &id, &avoid).unwrap();
            let b = derive_slice(cluster, 24, &id, &avoid).unwrap();
            prop_assert_eq!(a, b);
            prop_assert!(cluster.contains(&a));
            prop_assert_eq!(a.prefix_len(), 24);
            for u in &avoid.used {
                prop_assert!(!crate::ipam::overlaps(&a, &u.subnet));
            }
        }

        #[test]
        fn service_subnet_is_stable_inside_and_avoids(
            seed in any::<u64>(),
            service in "[a-z][a-z0-9-]{0,20}",
            slice_octet in 0u8..=255,
        ) {
            let range = net("10.208.0.0/12");
            let id = NodeIdentity::from_public_key(&key(seed));
            let slice = net(&format!("10.{}.{slice_octet}.0/24", 208 + (slice_octet % 16)));
            let avoid = Avoid::default().reserved(slice, "slice");
            let a = derive_service_subnet(range, 24, &service, &id, &avoid).unwrap();
            prop_assert_eq!(a, derive_service_subnet(range, 24, &service, &id, &avoid).unwrap());
            prop_assert!(range.contains(&a));
            prop_assert!(!crate::ipam::overlaps(&a, &slice));
        }
    }
}
