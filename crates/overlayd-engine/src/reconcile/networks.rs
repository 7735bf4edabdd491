//! The network part of the start-up plan: for every recorded network decide
//! adopt / recreate / drop / keep, create networks that are desired but not
//! recorded, and find tagged links nothing records (orphans).
//!
//! Safety rules encoded here:
//! - a link is adopted only when the live link with the recorded name carries
//!   our v1 tag with the recorded owner **and** id, and a matching kind;
//! - a link that is not ours (untagged, foreign alias, unreadable overlayd
//!   tag, wrong kind) is never adopted and never deleted: it is a conflict;
//! - entries of kinds this platform cannot manage, and owners this build does
//!   not know, are kept untouched and reported;
//! - a name recorded by more than one entry is used (adopted, kept or
//!   deleted) only by the entry the live link's tag proves to hold it; every
//!   other entry recording it is a conflict, so nothing recreates a name
//!   another entry keeps and no name is created twice.

use std::collections::{HashMap, HashSet};

use overlayd_model::{NetworkEntry, Owner};

use super::RecordedEntry;
use crate::live::{entry_kind_for, kind_matches, LiveLink};
use crate::naming::{owner_roles, IfName};
use crate::tag::TagSubject;

pub use super::network_plan::{Action, Desired, NetworkInput, Plan};

/// How a recorded name relates to the live link holding it.
enum Slot<'a> {
    /// No live link has the name.
    Missing,
    /// The link is ours with the recorded identity.
    Ours(&'a LiveLink),
    /// The link carries our tag for a different owner or id: a stale object
    /// of ours (deleted as an orphan when gc is on).
    Stale(&'a LiveLink),
    /// The link is not provably ours.
    Foreign(String),
}

fn classify<'a>(
    entry: &NetworkEntry,
    name: &str,
    primary: bool,
    live: &HashMap<&str, &'a LiveLink>,
) -> Slot<'a> {
    let Some(link) = live.get(name).copied() else {
        return Slot::Missing;
    };
    match link.tag() {
        Some(tag) if tag.is_network(&entry.owner, &entry.id) => {
            let kind_ok = if primary {
                kind_matches(&entry.kind, &link.kind)
            } else {
                entry_kind_for(&link.kind).is_some()
            };
            if kind_ok {
                Slot::Ours(link)
            } else {
                Slot::Foreign(format!(
                    "link kind {:?} does not match recorded kind {:?}",
                    link.kind, entry.kind
                ))
            }
        }
        Some(tag) => match tag.subject() {
            TagSubject::Network(_) => Slot::Stale(link),
            TagSubject::Attachment(_) => {
                Slot::Foreign("name is held by an attachment veth".to_string())
            }
        },
        None if link.has_overlayd_alias() => {
            Slot::Foreign("link carries an overlayd tag this build cannot read".to_string())
        }
        None => Slot::Foreign("link is not tagged by overlayd".to_string()),
    }
}

/// Recorded link names of an entry, primary first, each once.
fn entry_names(entry: &NetworkEntry) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::with_capacity(2);
    for n in std::iter::once(entry.name.as_str()).chain(entry.interface.as_deref()) {
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// Link names recorded by more than one Linux-managed entry (a corrupt or
/// hand-edited marker). Only the entry whose live link under the name
/// proves it theirs (tag with its owner and id) may adopt or delete it;
/// every other recorder is a conflict, so no entry recreates a name that
/// another keeps, and no two entries recreate the same name.
struct Contested<'a> {
    /// Name -> (its recorders, the proven holder if exactly one).
    names: HashMap<&'a str, (Vec<&'a NetworkEntry>, Option<&'a NetworkEntry>)>,
}

impl<'a> Contested<'a> {
    fn new(recorded: &[&'a NetworkEntry], live: &HashMap<&str, &'a LiveLink>) -> Self {
        let mut recorders: HashMap<&'a str, Vec<&'a NetworkEntry>> = HashMap::new();
        for &e in recorded.iter().filter(|e| e.is_linux_managed()) {
            for n in entry_names(e) {
                recorders.entry(n).or_default().push(e);
            }
        }
        let names = recorders
            .into_iter()
            .filter(|(_, r)| r.len() > 1)
            .map(|(n, r)| {
                let mut proven = r
                    .iter()
                    .copied()
                    .filter(|e| matches!(classify(e, n, n == e.name, live), Slot::Ours(_)));
                let holder = match (proven.next(), proven.next()) {
                    (Some(h), None) => Some(h),
                    _ => None,
                };
                (n, (r, holder))
            })
            .collect();
        Contested { names }
    }

    /// Why `entry` may not use `name`, when another entry records it too.
    fn rival(&self, entry: &NetworkEntry, name: &str) -> Option<String> {
        let (recorders, holder) = self.names.get(name)?;
        match holder {
            Some(h) if std::ptr::eq(*h, entry) => None,
            Some(h) => Some(format!(
                "name is also recorded for {}, whose tag the live link carries",
                h.owner
            )),
            None => {
                let others: Vec<String> = recorders
                    .iter()
                    .filter(|e| !std::ptr::eq(**e, entry))
                    .map(|e| e.owner.to_string())
                    .collect();
                Some(format!(
                    "name is also recorded for {}; no live link proves which entry holds it",
                    others.join(", ")
                ))
            }
        }
    }
}

/// Compute the network start-up plan.
pub fn plan_networks(input: &NetworkInput<'_>) -> Plan {
    let live: HashMap<&str, &LiveLink> = input.live.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut claimed: HashSet<&str> = HashSet::new();
    let mut actions = Vec::new();

    let mut recorded: Vec<&NetworkEntry> = input.recorded.iter().collect();
    recorded.sort_by_key(|e| e.owner.to_string());
    let recorded_owners: HashSet<&Owner> = recorded.iter().map(|e| &e.owner).collect();

    let contested = Contested::new(&recorded, &live);
    for entry in &recorded {
        plan_entry(input, entry, &live, &contested, &mut claimed, &mut actions);
    }

    // Orphans: tagged network links nothing claimed.
    let mut orphan_names: HashSet<&str> = HashSet::new();
    for link in input.live {
        if claimed.contains(link.name.as_str()) {
            continue;
        }
        match link.tag() {
            Some(tag) if matches!(tag.subject(), TagSubject::Network(_)) => {
                if input.gc {
                    orphan_names.insert(link.name.as_str());
                    actions.push(Action::DeleteOrphan {
                        link: link.link_ref(),
                        tag,
                    });
                } else {
                    actions.push(report(link));
                }
            }
            Some(_) => {} // attachment veths: see `attachments`.
            None if link.has_overlayd_alias() => actions.push(report(link)),
            None => {}
        }
    }

    if let Desired::Known(desired) = input.desired {
        let recorded_names: HashSet<&str> = recorded.iter().flat_map(|e| entry_names(e)).collect();
        let mut chosen: HashSet<IfName> = HashSet::new();
        for owner in desired.iter().filter(|o| !recorded_owners.contains(o)) {
            let roles = owner_roles(owner);
            if roles.is_empty() {
                actions.push(Action::Conflict {
                    owner: owner.clone(),
                    name: String::new(),
                    why: "owner kind is unknown to this build; cannot create it".to_string(),
                });
                continue;
            }
            let mut names = Vec::new();
            for &role in roles {
                let taken = |n: &IfName| {
                    let s = n.as_str();
                    recorded_names.contains(s)
                        || chosen.contains(n)
                        || (live.contains_key(s) && !orphan_names.contains(s))
                };
                match input.namer.first_free(owner, role, taken) {
                    Ok(n) => {
                        chosen.insert(n.clone());
                        names.push((role, n));
                    }
                    Err(e) => {
                        actions.push(Action::Conflict {
                            owner: owner.clone(),
                            name: input.namer.network_link(owner, role).to_string(),
                            why: e.to_string(),
                        });
                        names.clear();
                        break;
                    }
                }
            }
            if !names.is_empty() {
                actions.push(Action::Create {
                    owner: owner.clone(),
                    names,
                });
            }
        }
    }

    actions.sort_by_key(Action::phase);
    Plan { actions }
}

fn report(link: &LiveLink) -> Action {
    Action::ReportOrphan {
        link: link.link_ref(),
        alias: link.alias.clone().unwrap_or_default(),
    }
}

fn plan_entry<'a>(
    input: &NetworkInput<'a>,
    entry: &'a NetworkEntry,
    live: &HashMap<&str, &'a LiveLink>,
    contested: &Contested<'a>,
    claimed: &mut HashSet<&'a str>,
    actions: &mut Vec<Action>,
) {
    let owner = entry.owner.clone();
    if !entry.is_linux_managed() {
        actions.push(Action::KeepForeignKind {
            owner,
            kind: entry.kind.clone(),
        });
        return;
    }
    let names = entry_names(entry);
    if !owner.is_known() {
        claimed.extend(names.iter().copied());
        actions.push(Action::KeepUnknownOwner { owner });
        return;
    }
    if let Desired::Known(desired) = input.desired {
        if !desired.contains(&owner) {
            let delete = names
                .iter()
                .filter(|&&n| contested.rival(entry, n).is_none())
                .filter_map(|&n| match classify(entry, n, n == entry.name, live) {
                    Slot::Ours(l) => {
                        claimed.insert(n);
                        Some(l.link_ref())
                    }
                    _ => None,
                })
                .collect();
            actions.push(Action::DropRecord { owner, delete });
            return;
        }
    }
    if entry.name.is_empty() {
        actions.push(Action::Conflict {
            owner,
            name: entry.name.clone(),
            why: "recorded entry has an empty name".to_string(),
        });
        return;
    }
    if entry.interface.as_deref() == Some(entry.name.as_str()) {
        claimed.insert(entry.name.as_str());
        actions.push(Action::Conflict {
            owner,
            name: entry.name.clone(),
            why: "recorded entry uses the same name for both of its links".to_string(),
        });
        return;
    }

    let mut keep = Vec::new();
    let mut missing = Vec::new();
    let mut blocked = false;
    for (i, &name) in names.iter().enumerate() {
        if let Err(e) = name.parse::<IfName>() {
            claimed.insert(name);
            actions.push(Action::Conflict {
                owner: owner.clone(),
                name: name.to_string(),
                why: format!("recorded name is not a valid interface name: {e}"),
            });
            blocked = true;
            continue;
        }
        if let Some(why) = contested.rival(entry, name) {
            claimed.insert(name);
            actions.push(Action::Conflict {
                owner: owner.clone(),
                name: name.to_string(),
                why,
            });
            blocked = true;
            continue;
        }
        match classify(entry, name, i == 0, live) {
            Slot::Missing => missing.push(name.to_string()),
            Slot::Ours(l) => {
                claimed.insert(name);
                keep.push(l.link_ref());
            }
            Slot::Stale(l) => {
                if input.gc {
                    // Left unclaimed: deleted as an orphan, then recreated.
                    missing.push(name.to_string());
                } else {
                    claimed.insert(name);
                    actions.push(Action::Conflict {
                        owner: owner.clone(),
                        name: name.to_string(),
                        why: format!(
                            "held by a stale overlayd link ({}); garbage collection is disabled",
                            l.alias.as_deref().unwrap_or_default()
                        ),
                    });
                    blocked = true;
                }
            }
            Slot::Foreign(why) => {
                claimed.insert(name);
                actions.push(Action::Conflict {
                    owner: owner.clone(),
                    name: name.to_string(),
                    why,
                });
                blocked = true;
            }
        }
    }
    if blocked {
        return;
    }
    if missing.is_empty() {
        let mut links = keep.into_iter();
        if let Some(primary) = links.next() {
            actions.push(Action::Adopt {
                owner,
                name: primary.name,
                index: primary.index,
                interface: links.next(),
            });
        }
    } else {
        actions.push(Action::Recreate {
            owner,
            entry: Box::new(RecordedEntry(entry.clone())),
            missing,
            keep,
        });
    }
}
