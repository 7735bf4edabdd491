//! The member table the watcher keeps: every member seen, with the moment
//! it disappeared (deleted or expired). A vanished member stays "live" for
//! the grace period, so a flapping etcd never flaps the data plane; a
//! member that comes back within it is simply live again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::keys::{DnsEntry, Member};

/// One member as the watcher knows it.
#[derive(Debug, Clone)]
pub struct Known {
    /// Its last record.
    pub member: Member,
    /// When its key went away (None: present).
    pub gone_since: Option<Instant>,
}

/// Members and their DNS names, with grace on removal.
#[derive(Debug, Clone)]
pub struct MemberTable {
    own: String,
    grace: Duration,
    members: BTreeMap<String, Known>,
    dns: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl MemberTable {
    /// A table for node `own` (never listed as its own peer).
    pub fn new(own: &str, grace: Duration) -> Self {
        MemberTable {
            own: own.to_string(),
            grace,
            members: BTreeMap::new(),
            dns: BTreeMap::new(),
        }
    }

    /// A member record was written.
    pub fn put(&mut self, m: Member) {
        if m.name == self.own {
            return;
        }
        self.members.insert(
            m.name.clone(),
            Known {
                member: m,
                gone_since: None,
            },
        );
    }

    /// A member record went away at `now`.
    pub fn delete(&mut self, name: &str, now: Instant) {
        if let Some(k) = self.members.get_mut(name) {
            k.gone_since.get_or_insert(now);
        }
    }

    /// A DNS record was written.
    pub fn put_dns(&mut self, node: &str, e: DnsEntry) {
        if node == self.own {
            return;
        }
        self.dns
            .entry(node.to_string())
            .or_default()
            .insert(e.name, e.ips);
    }

    /// A DNS record went away.
    pub fn delete_dns(&mut self, node: &str, name: &str) {
        if let Some(m) = self.dns.get_mut(node) {
            m.remove(name);
        }
    }

    /// Replace everything with a full listing: listed members are present,
    /// unlisted ones start (or continue) their grace period.
    pub fn relist(&mut self, members: Vec<Member>, dns: Vec<(String, DnsEntry)>, now: Instant) {
        let listed: std::collections::BTreeSet<String> =
            members.iter().map(|m| m.name.clone()).collect();
        for (name, k) in self.members.iter_mut() {
            if !listed.contains(name) {
                k.gone_since.get_or_insert(now);
            }
        }
        for m in members {
            self.put(m);
        }
        self.dns.clear();
        for (node, e) in dns {
            self.put_dns(&node, e);
        }
    }

    /// Forget members whose grace ran out; true when any was removed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let grace = self.grace;
        let before = self.members.len();
        self.members
            .retain(|_, k| k.gone_since.is_none_or(|t| now.duration_since(t) < grace));
        let members = &self.members;
        self.dns.retain(|node, _| members.contains_key(node));
        before != self.members.len()
    }

    /// When the next grace period runs out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .filter_map(|k| k.gone_since)
            .min()
            .map(|t| t + self.grace)
    }

    /// Members whose peers should be configured (present or in grace).
    pub fn live(&self) -> Vec<Member> {
        self.members.values().map(|k| k.member.clone()).collect()
    }

    /// Every known member with its state (for status).
    pub fn known(&self) -> Vec<Known> {
        self.members.values().cloned().collect()
    }

    /// DNS records of live members.
    pub fn dns(&self) -> Vec<DnsEntry> {
        self.dns
            .values()
            .flat_map(|m| {
                m.iter().map(|(n, ips)| DnsEntry {
                    name: n.clone(),
                    ips: ips.clone(),
                })
            })
            .collect()
    }
}

/// A WireGuard peer cluster mode wants on this node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DesiredPeer {
    /// Network owner whose device carries it (`base` or `service:<name>`).
    pub network: String,
    /// Peer public key.
    pub public_key: String,
    /// `host:port` to dial.
    pub endpoint: String,
    /// Allowed CIDRs.
    pub allowed_ips: Vec<String>,
}

/// The peers this node needs for `members`: each member's base device
/// (allowed: its slice), and for each dedicated service this node also
/// runs (`local_services`), that member's device of the service.
pub fn desired_peers(local_services: &[String], members: &[Member]) -> Vec<DesiredPeer> {
    let mut out = Vec::new();
    for m in members {
        out.push(DesiredPeer {
            network: "base".into(),
            public_key: m.public_key.clone(),
            endpoint: m.endpoint.clone(),
            allowed_ips: vec![m.slice.clone()],
        });
        let host = endpoint_host(&m.endpoint);
        for s in m
            .services
            .iter()
            .filter(|s| local_services.contains(&s.name))
        {
            out.push(DesiredPeer {
                network: format!("service:{}", s.name),
                public_key: s.public_key.clone(),
                endpoint: join_host_port(host, s.port),
                allowed_ips: vec![s.subnet.clone()],
            });
        }
    }
    out.sort();
    out
}

/// The host part of `host:port` (brackets of an IPv6 literal kept).
fn endpoint_host(ep: &str) -> &str {
    ep.rsplit_once(':').map_or(ep, |(h, _)| h)
}

fn join_host_port(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MemberService;

    fn m(name: &str, slice: &str) -> Member {
        Member {
            name: name.into(),
            public_key: format!("key-{name}"),
            endpoint: format!("192.0.2.{}:51820", name.len()),
            slice: slice.into(),
            overlay_ip: String::new(),
            services: vec![],
            updated_unix: 0,
        }
    }

    #[test]
    fn removal_waits_for_grace_and_return_cancels_it() {
        let t0 = Instant::now();
        let mut t = MemberTable::new("me", Duration::from_secs(60));
        t.put(m("me", "10.200.0.0/24"));
        t.put(m("a", "10.200.1.0/24"));
        t.put(m("b", "10.200.2.0/24"));
        assert_eq!(t.live().len(), 2, "own record is never a peer");
        t.delete("a", t0);
        assert!(!t.expire(t0 + Duration::from_secs(59)));
        assert_eq!(t.live().len(), 2, "still within grace");
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert!(t.expire(t0 + Duration::from_secs(60)));
        assert_eq!(
            t.live().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        t.delete("b", t0);
        t.put(m("b", "10.200.2.0/24"));
        assert!(
            !t.expire(t0 + Duration::from_secs(120)),
            "came back: no removal"
        );
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn relist_starts_grace_for_missing_members_only() {
        let t0 = Instant::now();
        let mut t = MemberTable::new("me", Duration::from_secs(5));
        t.put(m("a", "10.200.1.0/24"));
        t.put(m("b", "10.200.2.0/24"));
        t.put_dns(
            "b",
            DnsEntry {
                name: "web.b".into(),
                ips: vec!["10.200.2.5".into()],
            },
        );
        t.relist(
            vec![m("a", "10.200.1.0/24")],
            vec![(
                "b".into(),
                DnsEntry {
                    name: "web.b".into(),
                    ips: vec!["10.200.2.5".into()],
                },
            )],
            t0,
        );
        assert_eq!(t.live().len(), 2);
        assert_eq!(t.dns().len(), 1, "dns of a member in grace is still served");
        assert!(t.expire(t0 + Duration::from_secs(5)));
        assert_eq!(t.live().len(), 1);
        assert!(t.dns().is_empty(), "dns goes with its member");
    }

    #[test]
    fn service_peers_only_for_services_on_both_nodes() {
        let mut a = m("a", "10.200.1.0/24");
        a.endpoint = "192.0.2.1:51820".into();
        a.services = vec![
            MemberService {
                name: "db".into(),
                public_key: "a-db".into(),
                port: 51821,
                subnet: "10.202.1.0/24".into(),
            },
            MemberService {
                name: "web".into(),
                public_key: "a-web".into(),
                port: 51822,
                subnet: "10.202.2.0/24".into(),
            },
        ];
        let peers = desired_peers(&["db".into(), "cache".into()], &[a]);
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].network, "base");
        assert_eq!(peers[0].allowed_ips, ["10.200.1.0/24"]);
        assert_eq!(peers[1].network, "service:db");
        assert_eq!(peers[1].endpoint, "192.0.2.1:51821");
        assert_eq!(peers[1].allowed_ips, ["10.202.1.0/24"]);
    }
}
