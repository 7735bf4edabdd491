//! Table-driven and property tests of the network start-up plan.

use std::collections::BTreeSet;

use overlayd_model::entry::{KIND_HCN_INTERNAL, KIND_LINUX_BRIDGE, KIND_LINUX_WIREGUARD};
use overlayd_model::{NetworkEntry, Owner};

use super::networks::{plan_networks, Action, Desired, NetworkInput, Plan};
use crate::live::{LinkRef, LiveLink};
use crate::naming::{LinkRole, Namer};
use crate::tag::Tag;

pub(super) fn iso(n: &str) -> Owner {
    Owner::Isolation(n.into())
}

pub(super) fn svc(n: &str) -> Owner {
    Owner::Service(n.into())
}

pub(super) fn entry(owner: &Owner, kind: &str, name: &str, id: &str) -> NetworkEntry {
    NetworkEntry::new(owner.clone(), kind, name, id, "10.201.0.0/24")
}

pub(super) fn tagged(name: &str, index: u32, kind: &str, owner: &Owner, id: &str) -> LiveLink {
    let t = Tag::network(owner, id).unwrap().to_string();
    LiveLink::new(name, index, kind, Some(&t))
}

pub(super) fn lr(name: &str, index: u32) -> LinkRef {
    LinkRef {
        name: name.into(),
        index,
    }
}

pub(super) fn plan(
    recorded: &[NetworkEntry],
    live: &[LiveLink],
    desired: &[Owner],
    gc: bool,
) -> Plan {
    let desired: BTreeSet<Owner> = desired.iter().cloned().collect();
    plan_networks(&NetworkInput {
        recorded,
        live,
        desired: Desired::Known(&desired),
        namer: &Namer::default(),
        gc,
    })
}

pub(super) fn deleted(p: &Plan) -> Vec<LinkRef> {
    p.actions
        .iter()
        .flat_map(|a| match a {
            Action::DeleteOrphan { link, .. } => vec![link.clone()],
            Action::DropRecord { delete, .. } => delete.clone(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn adopts_when_tag_matches_owner_and_id() {
    let o = iso("a");
    let rec = [entry(&o, KIND_LINUX_BRIDGE, "br-a", "id1")];
    let live = [tagged("br-a", 7, "bridge", &o, "id1")];
    let p = plan(&rec, &live, std::slice::from_ref(&o), true);
    assert_eq!(
        p.actions,
        vec![Action::Adopt {
            owner: o,
            name: "br-a".into(),
            index: 7,
            interface: None
        }]
    );
    assert!(p.is_noop());
}

#[test]
fn adopts_service_with_both_links() {
    let o = svc("web");
    let mut e = entry(&o, KIND_LINUX_BRIDGE, "br-w", "s1");
    e.interface = Some("wg-w".into());
    let live = [
        tagged("br-w", 5, "bridge", &o, "s1"),
        tagged("wg-w", 6, "wireguard", &o, "s1"),
    ];
    let p = plan(&[e], &live, std::slice::from_ref(&o), true);
    assert_eq!(
        p.actions,
        vec![Action::Adopt {
            owner: o,
            name: "br-w".into(),
            index: 5,
            interface: Some(lr("wg-w", 6))
        }]
    );
}

#[test]
fn recreates_missing_and_keeps_present_links() {
    let o = svc("web");
    let mut e = entry(&o, KIND_LINUX_BRIDGE, "br-w", "s1");
    e.interface = Some("wg-w".into());
    e.wg_port = Some(51821);
    let live = [tagged("br-w", 5, "bridge", &o, "s1")];
    let p = plan(
        std::slice::from_ref(&e),
        &live,
        std::slice::from_ref(&o),
        true,
    );
    match &p.actions[..] {
        [Action::Recreate {
            owner,
            entry,
            missing,
            keep,
        }] => {
            assert_eq!(owner, &o);
            assert_eq!(entry.0, e);
            assert_eq!(missing, &vec!["wg-w".to_string()]);
            assert_eq!(keep, &vec![lr("br-w", 5)]);
        }
        other => panic!("{other:?}"),
    }
    let p = plan(
        std::slice::from_ref(&e),
        &[],
        std::slice::from_ref(&o),
        true,
    );
    assert!(
        matches!(&p.actions[..], [Action::Recreate { missing, keep, .. }]
        if missing.len() == 2 && keep.is_empty())
    );
}

#[test]
fn foreign_links_are_conflicts_never_touched() {
    let o = iso("a");
    let rec = [entry(&o, KIND_LINUX_BRIDGE, "br-a", "id1")];
    let cases: Vec<(LiveLink, &str)> = vec![
        (LiveLink::new("br-a", 9, "bridge", None), "not tagged"),
        (
            LiveLink::new("br-a", 9, "bridge", Some("docker net")),
            "not tagged",
        ),
        (
            LiveLink::new("br-a", 9, "bridge", Some("overlayd:v2 owner=iso:a id=id1")),
            "cannot read",
        ),
        (tagged("br-a", 9, "veth", &o, "id1"), "kind"),
        (
            LiveLink::new(
                "br-a",
                9,
                "bridge",
                Some(&Tag::attachment("pid:1", "id1").unwrap().to_string()),
            ),
            "attachment",
        ),
    ];
    for gc in [true, false] {
        for (link, why_part) in &cases {
            let p = plan(
                &rec,
                std::slice::from_ref(link),
                std::slice::from_ref(&o),
                gc,
            );
            assert!(p.has_conflicts(), "{link:?}");
            assert!(deleted(&p).is_empty(), "{link:?}: {p:?}");
            match &p.actions[..] {
                [Action::Conflict { owner, name, why }] => {
                    assert_eq!(owner, &o);
                    assert_eq!(name, "br-a");
                    assert!(why.contains(why_part), "{why}");
                }
                other => panic!("{link:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn stale_link_of_ours_is_replaced_only_with_gc() {
    let o = iso("a");
    let rec = [entry(&o, KIND_LINUX_BRIDGE, "br-a", "new")];
    let live = [tagged("br-a", 9, "bridge", &o, "old")];
    let p = plan(&rec, &live, std::slice::from_ref(&o), true);
    assert!(matches!(&p.actions[0], Action::DeleteOrphan { link, .. } if *link == lr("br-a", 9)));
    assert!(matches!(&p.actions[1], Action::Recreate { missing, .. } if missing == &["br-a"]));
    assert_eq!(p.actions.len(), 2);

    let p = plan(&rec, &live, std::slice::from_ref(&o), false);
    assert!(deleted(&p).is_empty());
    assert!(matches!(&p.actions[..], [Action::Conflict { why, .. }] if why.contains("stale")));
}

#[test]
fn orphans_deleted_with_gc_reported_without() {
    let live = [
        tagged("ovl-old", 3, "bridge", &iso("gone"), "x"),
        LiveLink::new("future", 4, "bridge", Some("overlayd:v7 whatever")),
        LiveLink::new("eth0", 2, "", None),
        LiveLink::new(
            "veth1",
            5,
            "veth",
            Some(&Tag::attachment("pid:1", "x").unwrap().to_string()),
        ),
    ];
    let p = plan(&[], &live, &[], true);
    assert_eq!(
        p.actions,
        vec![
            Action::DeleteOrphan {
                link: lr("ovl-old", 3),
                tag: Tag::network(&iso("gone"), "x").unwrap()
            },
            Action::ReportOrphan {
                link: lr("future", 4),
                alias: "overlayd:v7 whatever".into()
            },
        ]
    );
    let p = plan(&[], &live, &[], false);
    assert!(deleted(&p).is_empty());
    assert_eq!(p.actions.len(), 2);
    assert!(p
        .actions
        .iter()
        .all(|a| matches!(a, Action::ReportOrphan { .. })));
}

#[test]
fn foreign_kinds_and_unknown_owners_are_kept() {
    let hcn = entry(&svc("win"), KIND_HCN_INTERNAL, "hcn-net", "guid");
    let other = Owner::Other("future:x".into());
    let unknown = entry(&other, KIND_LINUX_BRIDGE, "ovl-fut", "u1");
    let live = [tagged("ovl-fut", 8, "bridge", &other, "u1")];
    // Neither is desired, yet neither is dropped or deleted.
    let p = plan(&[hcn, unknown], &live, &[], true);
    assert_eq!(
        p.actions,
        vec![
            Action::KeepUnknownOwner { owner: other },
            Action::KeepForeignKind {
                owner: svc("win"),
                kind: KIND_HCN_INTERNAL.into()
            },
        ]
    );
}

#[test]
fn undesired_records_are_dropped_with_only_their_own_links() {
    let a = iso("a");
    let b = iso("b");
    let rec = [
        entry(&a, KIND_LINUX_BRIDGE, "br-a", "ia"),
        entry(&b, KIND_LINUX_BRIDGE, "br-b", "ib"),
    ];
    let live = [
        tagged("br-a", 1, "bridge", &a, "ia"),
        LiveLink::new("br-b", 2, "bridge", None),
    ];
    let p = plan(&rec, &live, &[], true);
    assert_eq!(
        p.actions,
        vec![
            Action::DropRecord {
                owner: a,
                delete: vec![lr("br-a", 1)]
            },
            Action::DropRecord {
                owner: b,
                delete: vec![]
            },
        ]
    );
}

#[test]
fn unknown_desired_set_keeps_records_and_creates_nothing() {
    let o = iso("a");
    let rec = [entry(&o, KIND_LINUX_BRIDGE, "br-a", "id1")];
    let p = plan_networks(&NetworkInput {
        recorded: &rec,
        live: &[],
        desired: Desired::Unknown,
        namer: &Namer::default(),
        gc: true,
    });
    assert!(matches!(&p.actions[..], [Action::Recreate { .. }]));
}

#[test]
fn creates_desired_networks_with_free_names() {
    let n = Namer::default();
    let o = svc("api");
    let p = plan(&[], &[], &[o.clone(), Owner::Base], true);
    assert_eq!(
        p.actions,
        vec![
            Action::Create {
                owner: Owner::Base,
                names: vec![
                    (LinkRole::Bridge, n.bridge(&Owner::Base)),
                    (LinkRole::WireGuard, n.wireguard(&Owner::Base))
                ]
            },
            Action::Create {
                owner: o.clone(),
                names: vec![
                    (LinkRole::Bridge, n.bridge(&o)),
                    (LinkRole::WireGuard, n.wireguard(&o))
                ]
            },
        ]
    );

    // Canonical name held by a foreign link: pick the next candidate.
    let canonical = n.bridge(&iso("x"));
    let live = [LiveLink::new(canonical.as_str(), 4, "bridge", None)];
    let p = plan(&[], &live, &[iso("x")], true);
    let want = n.network_link_attempt(&iso("x"), LinkRole::Bridge, 1);
    assert_eq!(
        p.actions,
        vec![Action::Create {
            owner: iso("x"),
            names: vec![(LinkRole::Bridge, want)]
        }]
    );

    // Held by an orphan of ours that gc deletes first: reuse it.
    let live = [tagged(canonical.as_str(), 4, "bridge", &iso("x"), "lost")];
    let p = plan(&[], &live, &[iso("x")], true);
    assert!(matches!(&p.actions[0], Action::DeleteOrphan { .. }));
    assert_eq!(
        p.actions[1],
        Action::Create {
            owner: iso("x"),
            names: vec![(LinkRole::Bridge, canonical)]
        }
    );

    // An owner kind this build cannot create is a conflict, not a guess.
    let p = plan(&[], &[], &[Owner::Other("x:y".into())], true);
    assert!(p.has_conflicts());
}

#[test]
fn recorded_names_are_never_reused_for_new_networks() {
    let n = Namer::default();
    let a = iso("a");
    // Another owner recorded under a's canonical name (e.g. older prefix scheme).
    let rec = [entry(
        &iso("b"),
        KIND_LINUX_BRIDGE,
        n.bridge(&a).as_str(),
        "ib",
    )];
    let p = plan(&rec, &[], &[a.clone(), iso("b")], true);
    let created = p.actions.iter().find_map(|x| match x {
        Action::Create { names, .. } => Some(names[0].1.clone()),
        _ => None,
    });
    assert_eq!(
        created,
        Some(n.network_link_attempt(&a, LinkRole::Bridge, 1))
    );
}

#[test]
fn invalid_recorded_name_is_a_conflict() {
    let o = iso("a");
    let rec = [entry(&o, KIND_LINUX_BRIDGE, "name/with/slash", "id")];
    let p = plan(&rec, &[], std::slice::from_ref(&o), true);
    assert!(matches!(&p.actions[..], [Action::Conflict { .. }]));
    let rec = [entry(&o, KIND_LINUX_BRIDGE, "", "id")];
    assert!(plan(&rec, &[], &[o], true).has_conflicts());
}

#[test]
fn wireguard_entry_accepts_kernel_or_tun_device() {
    for kind in ["wireguard", "tun"] {
        let rec = [entry(&Owner::Base, KIND_LINUX_WIREGUARD, "wg0", "b")];
        let live = [tagged("wg0", 3, kind, &Owner::Base, "b")];
        let p = plan(&rec, &live, &[Owner::Base], true);
        assert!(matches!(&p.actions[..], [Action::Adopt { index: 3, .. }]));
    }
}
