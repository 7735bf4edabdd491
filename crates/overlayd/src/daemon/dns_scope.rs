//! DNS scoping: a name is answered only on networks that can reach the
//! address it points to, and a container name is unique wherever it is
//! visible.
//!
//! Reachability follows the firewall: isolation networks are islands to
//! each other (traffic between two isolation bridges is dropped), an
//! internal network reaches only its own members, and the other networks
//! (`base`, the shared NAT network, service networks, and addresses beyond
//! this node) reach each other. So, asked on a network's gateway, an
//! address inside an isolation or internal network is answered only to
//! that same network; an address elsewhere is answered to every network but
//! internal ones.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use overlayd_state::Owner;

use super::error::{OpError, OpResult};
use super::node::Node;
use super::records::Attachment;

/// How a network reaches the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Reaches (and is reached by) every non-isolated network.
    Open,
    /// An isolation network: reaches open networks, never another isolation
    /// network; its members are named only inside it.
    Isolated,
    /// An internal network: reaches only its own members.
    Internal,
}

/// One network as DNS scoping sees it.
#[derive(Debug, Clone)]
pub struct ScopedNet {
    /// The network's owner.
    pub owner: Owner,
    /// Its subnet.
    pub subnet: IpNet,
    /// Its gateway (where its DNS listener is).
    pub gateway: IpAddr,
    /// How it reaches the others.
    pub reach: Reach,
}

/// Whether a member of network `from` may learn an address in network `to`
/// (`None`: an address in none of this node's networks).
pub fn sees(from: &ScopedNet, to: Option<&ScopedNet>) -> bool {
    match to {
        Some(t) if t.owner == from.owner => true,
        Some(t) if t.reach != Reach::Open => false,
        _ => from.reach != Reach::Internal,
    }
}

/// The networks of this node, answering [`overlayd_dns::Visibility`].
#[derive(Debug, Clone, Default)]
pub struct NetScope {
    nets: Vec<ScopedNet>,
}

impl NetScope {
    /// A scope over `nets`.
    pub fn new(nets: Vec<ScopedNet>) -> Self {
        NetScope { nets }
    }

    fn by_gateway(&self, ip: IpAddr) -> Option<&ScopedNet> {
        self.nets.iter().find(|n| n.gateway == ip)
    }

    fn containing(&self, ip: IpAddr) -> Option<&ScopedNet> {
        // The most specific subnet wins (a slice inside a cluster range).
        self.nets
            .iter()
            .filter(|n| n.subnet.contains(&ip))
            .max_by_key(|n| n.subnet.prefix_len())
    }

    /// The network recorded for `owner`.
    pub fn net(&self, owner: &Owner) -> Option<&ScopedNet> {
        self.nets.iter().find(|n| &n.owner == owner)
    }
}

impl overlayd_dns::Visibility for NetScope {
    fn visible(&self, listener: IpAddr, target: IpAddr) -> bool {
        // A listener that is no network's gateway (`dns_listen`) sees all.
        self.by_gateway(listener)
            .is_none_or(|from| sees(from, self.containing(target)))
    }
}

impl Node {
    /// The scope of the networks recorded now.
    pub fn net_scope(&self) -> NetScope {
        let mut nets = Vec::new();
        for e in self.marker.iter().filter(|e| e.is_linux_managed()) {
            let reach = match &e.owner {
                Owner::Isolation(_) if self.is_internal(&e.owner).unwrap_or(false) => {
                    Reach::Internal
                }
                Owner::Isolation(_) => Reach::Isolated,
                _ => Reach::Open,
            };
            // A dual-stack network is one network with two subnets and
            // two gateways (same owner, so its members see each other in
            // both families).
            for (subnet, gateway) in super::dual_stack::gateways(e) {
                nets.push(ScopedNet {
                    owner: e.owner.clone(),
                    subnet,
                    gateway,
                    reach,
                });
            }
        }
        NetScope::new(nets)
    }

    /// Apply the scope of the networks recorded now to the DNS server.
    pub fn sync_dns_scope(&self) {
        self.dns.set_visibility(Some(Arc::new(self.net_scope())));
    }

    /// Refuse a container name on `network` that another attached container
    /// already holds where either could learn the other's address (two
    /// answers for one container name). The same container (same network
    /// namespace `netns_id`) on several networks may keep one name. Service
    /// names are shared by design and are not checked.
    pub fn refuse_duplicate_name(
        &self,
        name: &str,
        network: &Owner,
        handle_key: &str,
        netns_id: Option<&str>,
    ) -> OpResult<()> {
        let key = self.dns_key(name)?;
        // The usual case, a name nobody holds, costs one in-memory lookup:
        // the attachments are read only for a name that is served already.
        if self
            .records
            .get(&key)
            .ok()
            .flatten()
            .is_none_or(|ips| ips.is_empty())
        {
            return Ok(());
        }
        let attachments: Vec<Attachment> = self
            .store
            .read(|tx| tx.list::<Attachment>(overlayd_state::Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let scope = self.net_scope();
        let Some(mine) = scope.net(network) else {
            return Ok(());
        };
        for a in &attachments {
            let same_container = netns_id.is_some() && a.netns_id.as_deref() == netns_id;
            if a.handle.key() == handle_key || same_container {
                continue;
            }
            let held = a
                .dns_name
                .as_deref()
                .and_then(|n| self.dns_key(n).ok())
                .is_some_and(|k| k == key);
            if !held {
                continue;
            }
            let theirs = a.network.parse::<Owner>().ok();
            let theirs = theirs.as_ref().and_then(|o| scope.net(o));
            if sees(mine, theirs) || theirs.is_some_and(|t| sees(t, Some(mine))) {
                return Err(OpError::Conflict(format!(
                    "DNS name {key} is already held by {} ({} on {}); choose another name or detach it",
                    a.handle.key(),
                    a.ip,
                    a.network
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::plan;
    use overlayd_dns::Visibility;

    fn net(owner: &str, subnet: &str, reach: Reach) -> ScopedNet {
        let subnet: IpNet = subnet.parse().unwrap();
        let gateway = plan::gateway_cidr(subnet).unwrap().addr();
        ScopedNet {
            owner: owner.parse().unwrap(),
            subnet,
            gateway,
            reach,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn isolation_and_internal_networks_are_named_only_inside_themselves() {
        let scope = NetScope::new(vec![
            net("shared-nat", "10.201.0.0/24", Reach::Open),
            net("iso:a", "10.201.1.0/24", Reach::Isolated),
            net("iso:b", "10.201.2.0/24", Reach::Isolated),
            net("iso:i", "10.201.3.0/24", Reach::Internal),
        ]);
        let (shared, a, b, i) = (
            ip("10.201.0.1"),
            ip("10.201.1.1"),
            ip("10.201.2.1"),
            ip("10.201.3.1"),
        );
        let member_a = ip("10.201.1.5");
        assert!(
            scope.visible(a, member_a),
            "a member is named in its network"
        );
        assert!(
            !scope.visible(b, member_a),
            "iso:b does not learn iso:a names"
        );
        assert!(
            !scope.visible(shared, member_a),
            "nor does the shared network"
        );
        assert!(!scope.visible(i, member_a));
        let member_shared = ip("10.201.0.7");
        assert!(
            scope.visible(a, member_shared),
            "isolation reaches open networks"
        );
        assert!(scope.visible(shared, member_shared));
        assert!(
            !scope.visible(i, member_shared),
            "internal reaches only itself"
        );
        assert!(scope.visible(i, ip("10.201.3.9")));
        assert!(!scope.visible(shared, ip("10.201.3.9")));
        let remote = ip("10.200.7.3");
        assert!(scope.visible(shared, remote) && scope.visible(a, remote));
        assert!(!scope.visible(i, remote));
        // A listener that is no network's gateway sees everything.
        assert!(scope.visible(ip("127.0.0.1"), member_a));
    }

    #[test]
    fn a_dual_stack_network_names_its_members_on_both_gateways_only() {
        let scope = NetScope::new(vec![
            net("iso:d", "10.201.1.0/24", Reach::Isolated),
            net("iso:d", "fd42:6f76:6c64::/64", Reach::Isolated),
            net("iso:e", "10.201.2.0/24", Reach::Isolated),
        ]);
        let (gw4, gw6, other) = (ip("10.201.1.1"), ip("fd42:6f76:6c64::1"), ip("10.201.2.1"));
        for member in [ip("10.201.1.5"), ip("fd42:6f76:6c64::5")] {
            assert!(scope.visible(gw4, member), "{member} on the v4 gateway");
            assert!(scope.visible(gw6, member), "{member} on the v6 gateway");
            assert!(!scope.visible(other, member), "{member} not on iso:e");
        }
    }
}
