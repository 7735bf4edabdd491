//! Table-driven and property tests of the network start-up plan.

use std::collections::BTreeSet;

use overlayd_model::entry::{KIND_HCN_INTERNAL, KIND_LINUX_BRIDGE, KIND_LINUX_WIREGUARD};
use overlayd_model::{NetworkEntry, Owner};
use proptest::prelude::*;

use super::networks::{plan_networks, Action, Desired, NetworkInput, Plan};
use crate::live::{LinkRef, LiveLink};
use crate::naming::{LinkRole, Namer};
use crate::tag::Tag;

fn iso(n: &str) -> Owner {
    Owner::Isolation(n.into())
}

fn svc(n: &str) -> Owner {
    Owner::Service(n.into())
}

fn entry(owner: &Owner, kind: &str, name: &str, id: &str) -> NetworkEntry {
    NetworkEntry::new(owner.clone(), kind, name, id, "10.201.0.0/24")
}

fn tagged(name: &str, index: u32, kind: &str, owner: &Owner, id: &str) -> LiveLink {
    let t = Tag::network(owner, id).unwrap().to_string();
    LiveLink::new(name, index, kind, Some(&t))
}

fn lr(name: &str, index: u32) -> LinkRef {
    LinkRef {
        name: name.into(),
        index,
    }
}

fn plan(recorded: &[NetworkEntry], live: &[LiveLink], desired: &[Owner], gc: bool) -> Plan {
    let desired: BTreeSet<Owner> = desired.iter().cloned().collect();
    plan_networks(&NetworkInput {
        recorded,
        live,
        desired: Desired::Known(&desired),
        namer: &Namer::default(),
        gc,
    })
}

fn deleted(p: &Plan) -> Vec<LinkRef> {
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

/// A live link of a table case: (name, index, tag owner and id); no tag
/// means an untagged link.
type LiveSpec = (&'static str, u32, Option<(&'static str, &'static str)>);

/// One case of a marker recording the same name for several owners.
struct SharedNameCase {
    what: &'static str,
    /// (owner, recorded name, recorded id).
    recorded: &'static [(&'static str, &'static str, &'static str)],
    /// (name, index, tag owner, tag id); `None` owner = untagged.
    live: &'static [LiveSpec],
    desired: &'static [&'static str],
    gc: bool,
    /// Owners that must end in a conflict.
    conflicts: &'static [&'static str],
    /// Owner adopting the shared name, if any.
    adopts: Option<&'static str>,
    /// Links deleted.
    deletes: &'static [(&'static str, u32)],
}

const SHARED_NAME_CASES: &[SharedNameCase] = &[
    SharedNameCase {
        // proptest regression cc 03a1fb9e…: `a` saw the link as stale and
        // planned to recreate "n4" while `c` adopted it.
        what: "live link tagged for one recorder, other id",
        recorded: &[("a", "n4", "i0"), ("c", "n4", "i0")],
        live: &[("n4", 100, Some(("c", "i0")))],
        desired: &["a", "c"],
        gc: true,
        conflicts: &["a"],
        adopts: Some("c"),
        deletes: &[],
    },
    SharedNameCase {
        what: "same, gc off",
        recorded: &[("a", "n4", "i0"), ("c", "n4", "i0")],
        live: &[("n4", 100, Some(("c", "i0")))],
        desired: &["a", "c"],
        gc: false,
        conflicts: &["a"],
        adopts: Some("c"),
        deletes: &[],
    },
    SharedNameCase {
        what: "name missing: nobody may recreate it",
        recorded: &[("a", "n4", "i0"), ("c", "n4", "i1")],
        live: &[],
        desired: &["a", "c"],
        gc: true,
        conflicts: &["a", "c"],
        adopts: None,
        deletes: &[],
    },
    SharedNameCase {
        what: "held by a stale link of a third owner: kept, both conflict",
        recorded: &[("a", "n4", "i0"), ("c", "n4", "i1")],
        live: &[("n4", 100, Some(("d", "i0")))],
        desired: &["a", "c"],
        gc: true,
        conflicts: &["a", "c"],
        adopts: None,
        deletes: &[],
    },
    SharedNameCase {
        what: "held by an untagged link",
        recorded: &[("a", "n4", "i0"), ("c", "n4", "i1")],
        live: &[("n4", 100, None)],
        desired: &["a", "c"],
        gc: true,
        conflicts: &["a", "c"],
        adopts: None,
        deletes: &[],
    },
    SharedNameCase {
        what: "holder dropped: deletes its link once, the other conflicts",
        recorded: &[("a", "n4", "i0"), ("c", "n4", "i1")],
        live: &[("n4", 100, Some(("a", "i0")))],
        desired: &["c"],
        gc: true,
        conflicts: &["c"],
        adopts: None,
        deletes: &[("n4", 100)],
    },
];

#[test]
fn name_recorded_by_several_owners_is_used_only_by_its_proven_holder() {
    for case in SHARED_NAME_CASES {
        let rec: Vec<NetworkEntry> = case
            .recorded
            .iter()
            .map(|(o, n, id)| entry(&iso(o), KIND_LINUX_BRIDGE, n, id))
            .collect();
        let live: Vec<LiveLink> = case
            .live
            .iter()
            .map(|(n, i, t)| match t {
                Some((o, id)) => tagged(n, *i, "bridge", &iso(o), id),
                None => LiveLink::new(n, *i, "bridge", None),
            })
            .collect();
        let desired: Vec<Owner> = case.desired.iter().map(|o| iso(o)).collect();
        let p = plan(&rec, &live, &desired, case.gc);
        let what = case.what;

        let want_dels: Vec<LinkRef> = case.deletes.iter().map(|(n, i)| lr(n, *i)).collect();
        assert_eq!(deleted(&p), want_dels, "{what}: {p:?}");
        for o in case.conflicts {
            assert!(
                p.actions.iter().any(
                    |a| matches!(a, Action::Conflict { owner, name, .. } if *owner == iso(o) && name == "n4")
                ),
                "{what}: no conflict for {o}: {p:?}"
            );
        }
        let adopted: Vec<&Owner> = p
            .actions
            .iter()
            .filter_map(|a| match a {
                Action::Adopt { owner, .. } => Some(owner),
                _ => None,
            })
            .collect();
        assert_eq!(
            adopted,
            case.adopts.map(iso).iter().collect::<Vec<_>>(),
            "{what}: {p:?}"
        );
        let creates = p
            .actions
            .iter()
            .any(|a| matches!(a, Action::Recreate { .. } | Action::Create { .. }));
        assert!(!creates, "{what}: {p:?}");
    }
}

#[test]
fn entry_with_one_name_for_both_links_is_a_conflict() {
    let o = svc("web");
    let mut e = entry(&o, KIND_LINUX_BRIDGE, "br-w", "s1");
    e.interface = Some("br-w".into());
    let live = [tagged("br-w", 5, "bridge", &o, "s1")];
    let p = plan(
        std::slice::from_ref(&e),
        &live,
        std::slice::from_ref(&o),
        true,
    );
    assert!(
        matches!(&p.actions[..], [Action::Conflict { name, .. }] if name == "br-w"),
        "{p:?}"
    );
    // Dropped, its single link is deleted once.
    let p = plan(&[e], &live, &[], true);
    assert_eq!(deleted(&p), vec![lr("br-w", 5)]);
}

// ---- property: nothing untagged is ever deleted or adopted ----

#[derive(Debug, Clone)]
enum AliasKind {
    None,
    Foreign,
    Ours(usize, usize),
    Future,
}

fn arb_alias() -> impl Strategy<Value = AliasKind> {
    prop_oneof![
        Just(AliasKind::None),
        Just(AliasKind::Foreign),
        (0usize..4, 0usize..2).prop_map(|(o, i)| AliasKind::Ours(o, i)),
        Just(AliasKind::Future),
    ]
}

const OWNERS: [&str; 4] = ["a", "b", "c", "d"];
const IDS: [&str; 2] = ["i0", "i1"];
const NAMES: [&str; 5] = ["n0", "n1", "n2", "n3", "n4"];

proptest! {
    #[test]
    fn plan_is_safe(
        live_spec in proptest::collection::vec((0usize..5, arb_alias()), 0..6),
        rec_spec in proptest::collection::vec((0usize..4, 0usize..5, 0usize..2), 0..4),
        desired_mask in 0u8..16,
        gc in any::<bool>(),
    ) {
        let mut live: Vec<LiveLink> = Vec::new();
        for (i, (name, alias)) in live_spec.iter().enumerate() {
            if live.iter().any(|l| l.name == NAMES[*name]) {
                continue;
            }
            let alias = match alias {
                AliasKind::None => None,
                AliasKind::Foreign => Some("docker".to_string()),
                AliasKind::Ours(o, id) => {
                    Some(Tag::network(&iso(OWNERS[*o]), IDS[*id]).unwrap().to_string())
                }
                AliasKind::Future => Some("overlayd:v9 x".to_string()),
            };
            let mut l = LiveLink::new(NAMES[*name], 100 + i as u32, "bridge", None);
            l.alias = alias;
            live.push(l);
        }
        let mut rec: Vec<NetworkEntry> = Vec::new();
        for (o, name, id) in rec_spec {
            if rec.iter().any(|e| e.owner == iso(OWNERS[o])) {
                continue;
            }
            rec.push(entry(&iso(OWNERS[o]), KIND_LINUX_BRIDGE, NAMES[name], IDS[id]));
        }
        let desired: Vec<Owner> = (0..4)
            .filter(|i| desired_mask & (1 << i) != 0)
            .map(|i| iso(OWNERS[i]))
            .collect();
        let p = plan(&rec, &live, &desired, gc);
        let find = |r: &LinkRef| live.iter().find(|l| l.name == r.name && l.index == r.index);

        let dels = deleted(&p);
        let unique: BTreeSet<&LinkRef> = dels.iter().collect();
        prop_assert_eq!(unique.len(), dels.len(), "deleted twice: {:?}", p);
        for d in &dels {
            let l = find(d).expect("deleting a link that does not exist");
            prop_assert!(l.tag().is_some(), "deleting untagged {:?}", l);
        }
        if !gc {
            let any_delete = p.actions.iter().any(|a| matches!(a, Action::DeleteOrphan { .. }));
            prop_assert!(!any_delete, "gc off but orphan deleted: {:?}", p);
        }
        for a in &p.actions {
            if let Action::Adopt { owner, name, index, .. } = a {
                let l = find(&lr(name, *index)).expect("adopting missing link");
                let e = rec.iter().find(|e| &e.owner == owner).unwrap();
                prop_assert!(l.tag().unwrap().is_network(owner, &e.id));
                prop_assert!(!dels.contains(&lr(name, *index)));
            }
            if let Action::Recreate { missing, keep, .. } = a {
                for k in keep {
                    prop_assert!(!dels.contains(k));
                }
                for m in missing {
                    // A name to create is free or freed by a deletion first.
                    let holder = live.iter().find(|l| &l.name == m);
                    prop_assert!(holder.is_none_or(|h| dels.contains(&h.link_ref())));
                }
            }
            if let Action::Create { names, .. } = a {
                for (_, n) in names {
                    let holder = live.iter().find(|l| l.name == n.as_str());
                    prop_assert!(holder.is_none_or(|h| dels.contains(&h.link_ref())));
                    prop_assert!(!rec.iter().any(|e| e.name == n.as_str()));
                }
            }
        }
        // No name is created twice.
        let mut created: Vec<&str> = p
            .actions
            .iter()
            .flat_map(|a| match a {
                Action::Recreate { missing, .. } => missing.iter().map(String::as_str).collect(),
                Action::Create { names, .. } => names.iter().map(|(_, n)| n.as_str()).collect(),
                _ => Vec::new(),
            })
            .collect();
        let n_created = created.len();
        created.sort_unstable();
        created.dedup();
        prop_assert_eq!(created.len(), n_created, "name created twice: {:?}", p);
        // Every recorded owner gets exactly one decision.
        for e in &rec {
            let n = p.actions.iter().filter(|a| match a {
                Action::Adopt { owner, .. }
                | Action::Recreate { owner, .. }
                | Action::DropRecord { owner, .. } => owner == &e.owner,
                _ => false,
            }).count();
            let conflicts = p
                .actions
                .iter()
                .any(|a| matches!(a, Action::Conflict { owner, .. } if owner == &e.owner));
            prop_assert!(n == 1 || (n == 0 && conflicts), "{:?} -> {:?}", e.owner, p);
        }
    }
}
