//! Property tests of the network start-up plan: whatever the marker and
//! the live links hold, nothing untagged is ever deleted or adopted, and no
//! name is created twice.

use std::collections::BTreeSet;

use overlayd_model::entry::KIND_LINUX_BRIDGE;
use overlayd_model::{NetworkEntry, Owner};
use proptest::prelude::*;

use super::network_tests::*;
use super::networks::Action;
use crate::live::{LinkRef, LiveLink};
use crate::tag::Tag;

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
