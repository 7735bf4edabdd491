//! Rebuilding marker entries from live links that carry our network tag,
//! used when the marker was lost or quarantined as corrupt (SPEC §2 rule 3).
//! What a link cannot tell (WireGuard key and port) is left empty for the
//! host layer to fill in from the device itself.

use std::collections::BTreeMap;

use overlayd_model::{NetworkEntry, Owner};

use crate::live::{entry_kind_for, LinkRef, LiveLink};
use crate::naming::{owner_roles, LinkRole};

/// A tagged link that could not be turned into an entry, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The link.
    pub link: LinkRef,
    /// Why it was skipped.
    pub why: String,
}

/// The outcome of a rebuild.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rebuilt {
    /// One entry per owner, sorted by owner.
    pub entries: Vec<NetworkEntry>,
    /// Tagged links left out (reported; reconcile treats them as orphans).
    pub skipped: Vec<Skipped>,
}

/// An owner with its tagged links and the id each link's tag carries.
type OwnerLinks<'a> = (Owner, Vec<(&'a LiveLink, String)>);

fn role_of(link_kind: &str) -> Option<LinkRole> {
    match entry_kind_for(link_kind)? {
        overlayd_model::entry::KIND_LINUX_BRIDGE => Some(LinkRole::Bridge),
        _ => Some(LinkRole::WireGuard),
    }
}

/// Rebuild entries from tagged links: owner and id from the tag, name from
/// the link, kind from the link kind, subnet from the primary link's IPv4
/// address (else its IPv6 one; link-local addresses ignored) and, for a
/// dual-stack bridge, `subnet_v6` from its IPv6 one (empty when it has none). A service's bridge is the entry's
/// `name` and its WireGuard device the `interface`. Owners whose links
/// disagree on the id, or carry unexpected extra links, are skipped.
pub fn rebuild_from_live(live: &[LiveLink]) -> Rebuilt {
    let mut groups: BTreeMap<String, OwnerLinks<'_>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for link in live {
        let Some(tag) = link.tag() else { continue };
        let Some(owner) = tag.owner() else { continue };
        groups
            .entry(owner.to_string())
            .or_insert_with(|| (owner.clone(), Vec::new()))
            .1
            .push((link, tag.id().to_string()));
    }

    let mut entries = Vec::new();
    for (_, (owner, links)) in groups {
        let skip_all = |why: &str, skipped: &mut Vec<Skipped>| {
            skipped.extend(links.iter().map(|(l, _)| Skipped {
                link: l.link_ref(),
                why: why.to_string(),
            }));
        };
        let id = &links[0].1;
        if links.iter().any(|(_, i)| i != id) {
            skip_all(
                &format!("links of {owner} carry different ids"),
                &mut skipped,
            );
            continue;
        }
        let expected: Vec<LinkRole> = if owner.is_known() {
            owner_roles(&owner).to_vec()
        } else {
            // Unknown owner: accept a single link of a kind we manage.
            links
                .iter()
                .filter_map(|(l, _)| role_of(&l.kind))
                .take(1)
                .collect()
        };
        let mut slots: Vec<Option<&LiveLink>> = vec![None; expected.len()];
        for (l, _) in &links {
            let pos = role_of(&l.kind)
                .and_then(|r| expected.iter().position(|e| *e == r))
                .filter(|&p| slots[p].is_none());
            match pos {
                Some(p) => slots[p] = Some(l),
                None => skipped.push(Skipped {
                    link: l.link_ref(),
                    why: format!("unexpected {:?} link for {owner}", l.kind),
                }),
            }
        }
        let present: Vec<&LiveLink> = slots.iter().flatten().copied().collect();
        let Some(primary) = present.first() else {
            continue;
        };
        let Some(kind) = entry_kind_for(&primary.kind) else {
            continue;
        };
        let (subnet, subnet_v6) = match primary_subnets(primary) {
            (Some(s), s6) => (s.trunc().to_string(), s6.map(|s| s.trunc().to_string())),
            // No usable address on the primary link: the first address of
            // any of the owner's links, as before.
            (None, _) => (
                present
                    .iter()
                    .flat_map(|l| l.addresses.first())
                    .next()
                    .map(|a| a.trunc().to_string())
                    .unwrap_or_default(),
                None,
            ),
        };
        let mut entry = NetworkEntry::new(owner.clone(), kind, &primary.name, id, &subnet);
        entry.interface = present.get(1).map(|l| l.name.clone());
        entry.subnet_v6 = subnet_v6;
        entries.push(entry);
    }
    Rebuilt { entries, skipped }
}

/// The subnets a link's addresses tell: the first IPv4 one (else the first
/// IPv6 one that is not link-local) and, beside an IPv4 one, the first
/// IPv6 one that is not link-local (a dual-stack bridge carries both
/// gateways). Link-local addresses are the kernel's, never a network's.
fn primary_subnets(link: &LiveLink) -> (Option<ipnet::IpNet>, Option<ipnet::IpNet>) {
    let v4 = link.addresses.iter().find(|a| a.addr().is_ipv4()).copied();
    let v6 = link
        .addresses
        .iter()
        .find(|a| match a {
            ipnet::IpNet::V6(n) => !n.addr().is_unicast_link_local(),
            ipnet::IpNet::V4(_) => false,
        })
        .copied();
    match v4 {
        Some(v4) => (Some(v4), v6),
        None => (v6, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tag::Tag;

    fn tagged(name: &str, index: u32, kind: &str, owner: &Owner, id: &str) -> LiveLink {
        let t = Tag::network(owner, id).unwrap().to_string();
        LiveLink::new(name, index, kind, Some(&t))
    }

    #[test]
    fn rebuilds_every_owner_shape() {
        let svc = Owner::Service("web".into());
        let mut bridge = tagged("ovl-bsvc", 5, "bridge", &svc, "s1");
        bridge.addresses = vec!["10.201.3.1/24".parse().unwrap()];
        let mut nat = tagged("ovl-bnat", 3, "bridge", &Owner::SharedNat, "n1");
        nat.addresses = vec!["10.201.0.1/24".parse().unwrap()];
        let live = vec![
            LiveLink::new("eth0", 2, "", None),
            tagged("ovl-wsvc", 6, "tun", &svc, "s1"),
            bridge,
            nat,
            tagged("ovl-wbase", 4, "wireguard", &Owner::Base, "b1"),
            LiveLink::new("docker0", 7, "bridge", Some("something else")),
            LiveLink::new(
                "v1",
                8,
                "veth",
                Some(&Tag::attachment("pid:1", "x").unwrap().to_string()),
            ),
        ];
        let r = rebuild_from_live(&live);
        assert!(r.skipped.is_empty(), "{:?}", r.skipped);
        type Row<'a> = (String, &'a str, &'a str, &'a str, &'a str, Option<&'a str>);
        let got: Vec<Row<'_>> = r
            .entries
            .iter()
            .map(|e| {
                (
                    e.owner.to_string(),
                    e.kind.as_str(),
                    e.name.as_str(),
                    e.id.as_str(),
                    e.subnet.as_str(),
                    e.interface.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "base".into(),
                    "linux-wireguard",
                    "ovl-wbase",
                    "b1",
                    "",
                    None
                ),
                (
                    "service:web".into(),
                    "linux-bridge",
                    "ovl-bsvc",
                    "s1",
                    "10.201.3.0/24",
                    Some("ovl-wsvc")
                ),
                (
                    "shared-nat".into(),
                    "linux-bridge",
                    "ovl-bnat",
                    "n1",
                    "10.201.0.0/24",
                    None
                ),
            ]
        );
    }

    #[test]
    fn conflicting_ids_and_extras_are_skipped() {
        let iso = Owner::Isolation("a".into());
        let live = vec![
            tagged("b1", 1, "bridge", &iso, "x"),
            tagged("b2", 2, "bridge", &iso, "y"),
            tagged("n1", 3, "bridge", &Owner::SharedNat, "z"),
            tagged("n2", 4, "bridge", &Owner::SharedNat, "z"),
            tagged("d1", 5, "dummy", &Owner::Base, "q"),
        ];
        let r = rebuild_from_live(&live);
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].name, "n1");
        let names: Vec<&str> = r.skipped.iter().map(|s| s.link.name.as_str()).collect();
        assert_eq!(names, vec!["d1", "b1", "b2", "n2"]);
        assert!(r.skipped[1].why.contains("different ids"));
    }

    #[test]
    fn a_dual_stack_bridge_gives_both_subnets_and_link_local_is_ignored() {
        let iso = Owner::Isolation("d".into());
        let mut b = tagged("b1", 1, "bridge", &iso, "x");
        b.addresses = vec![
            "fe80::1/64".parse().unwrap(),
            "fd42::1/64".parse().unwrap(),
            "10.201.1.1/24".parse().unwrap(),
        ];
        let mut six = tagged("b2", 2, "bridge", &Owner::Isolation("s".into()), "y");
        six.addresses = vec![
            "fe80::2/64".parse().unwrap(),
            "fd00:1::1/64".parse().unwrap(),
        ];
        let r = rebuild_from_live(&[b, six]);
        let got: Vec<(&str, Option<&str>)> = r
            .entries
            .iter()
            .map(|e| (e.subnet.as_str(), e.subnet_v6.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![("10.201.1.0/24", Some("fd42::/64")), ("fd00:1::/64", None)]
        );
    }

    #[test]
    fn unknown_owner_single_link() {
        let o = Owner::Other("future:x".into());
        let r = rebuild_from_live(&[tagged("f1", 1, "bridge", &o, "id")]);
        assert_eq!(r.entries.len(), 1);
        assert_eq!(r.entries[0].owner, o);
        assert_eq!(r.entries[0].kind, "linux-bridge");
    }
}
