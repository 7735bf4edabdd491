//! Table tests of the network start-up plan for names recorded by more
//! than one entry: only the entry the live link's tag proves to hold a name
//! may use it.

use overlayd_model::entry::KIND_LINUX_BRIDGE;
use overlayd_model::{NetworkEntry, Owner};

use super::network_tests::*;
use super::networks::Action;
use crate::live::{LinkRef, LiveLink};

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
