//! What the network part of the start-up plan says: its inputs (the
//! recorded entries, the live links, the desired owners) and its output, one
//! [`Action`] per network or link, gathered in a [`Plan`]. The decisions
//! themselves are in [`super::networks`].

use std::collections::BTreeSet;

use overlayd_model::{NetworkEntry, Owner};

use super::RecordedEntry;
use crate::live::{LinkRef, LiveLink};
use crate::naming::{IfName, LinkRole, Namer};
use crate::tag::Tag;

/// Which owners should exist after start-up.
#[derive(Debug, Clone, Copy)]
pub enum Desired<'a> {
    /// The desired set is known (from the store): recorded owners outside it
    /// are dropped, desired owners without a record are created.
    Known(&'a BTreeSet<Owner>),
    /// The desired set is unknown (e.g. the store was lost): keep every
    /// record, create nothing.
    Unknown,
}

/// Everything the network plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct NetworkInput<'a> {
    /// Entries of the marker (or rebuilt from live links).
    pub recorded: &'a [NetworkEntry],
    /// Links live in the daemon's network namespace.
    pub live: &'a [LiveLink],
    /// Which owners should exist.
    pub desired: Desired<'a>,
    /// Derives names for networks that must be created.
    pub namer: &'a Namer,
    /// Delete orphans (`true`) or only report them (`--no-gc`).
    pub gc: bool,
}

/// One step of a start-up plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete a link tagged as ours that nothing records.
    DeleteOrphan {
        /// The link.
        link: LinkRef,
        /// Its parsed tag.
        tag: Tag,
    },
    /// Report, but keep, a link that looks like ours and nothing records
    /// (gc disabled, or a tag this build cannot read).
    ReportOrphan {
        /// The link.
        link: LinkRef,
        /// Its alias as found.
        alias: String,
    },
    /// Remove a record that is no longer desired, deleting the listed links
    /// (verified ours by tag) first.
    DropRecord {
        /// The owner whose record goes.
        owner: Owner,
        /// Links to delete, each verified to carry the record's tag.
        delete: Vec<LinkRef>,
    },
    /// The network exists with the recorded identity: keep it as is
    /// (same ifindex, key, port; members stay attached).
    Adopt {
        /// The owner.
        owner: Owner,
        /// The primary link's name (the entry's `name`).
        name: String,
        /// The primary link's index.
        index: u32,
        /// The secondary link (the entry's `interface`), if recorded.
        interface: Option<LinkRef>,
    },
    /// Some or all of the network's links are missing: recreate them with
    /// the recorded names, key, port and id; keep the ones that are present.
    Recreate {
        /// The owner.
        owner: Owner,
        /// The recorded entry (names, key, port, subnet, id).
        entry: Box<RecordedEntry>,
        /// Recorded link names that are missing and must be created.
        missing: Vec<String>,
        /// Recorded links that are present and ours: adopt, do not recreate.
        keep: Vec<LinkRef>,
    },
    /// A desired network has no record: create it with these names.
    Create {
        /// The owner.
        owner: Owner,
        /// Names for its links, primary first.
        names: Vec<(LinkRole, IfName)>,
    },
    /// A recorded or needed name is held by a link that is not ours (or
    /// cannot be proven ours): never adopt it, never delete it.
    Conflict {
        /// The owner that needs the name.
        owner: Owner,
        /// The contested name.
        name: String,
        /// Why the link cannot be used.
        why: String,
    },
    /// An entry of a kind this platform cannot manage: kept and reported.
    KeepForeignKind {
        /// The owner.
        owner: Owner,
        /// The entry's kind.
        kind: String,
    },
    /// An entry whose owner this build does not understand: kept, its links
    /// protected from orphan collection, and reported.
    KeepUnknownOwner {
        /// The owner.
        owner: Owner,
    },
}

impl Action {
    /// Execution order: deletions before creations, so a freed name can be
    /// reused; reports last.
    pub(super) fn phase(&self) -> u8 {
        match self {
            Action::DeleteOrphan { .. } => 0,
            Action::DropRecord { .. } => 1,
            Action::Adopt { .. } => 2,
            Action::Recreate { .. } => 3,
            Action::Create { .. } => 4,
            Action::Conflict { .. } => 5,
            Action::KeepForeignKind { .. } | Action::KeepUnknownOwner { .. } => 6,
            Action::ReportOrphan { .. } => 7,
        }
    }
}

/// A start-up plan, in execution order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The actions; execute in order.
    pub actions: Vec<Action>,
}

impl Plan {
    /// Whether any action is a conflict the operator must resolve.
    pub fn has_conflicts(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Conflict { .. }))
    }

    /// Whether the plan changes nothing on the host or in the records.
    pub fn is_noop(&self) -> bool {
        self.actions.iter().all(|a| {
            matches!(
                a,
                Action::Adopt { .. }
                    | Action::KeepForeignKind { .. }
                    | Action::KeepUnknownOwner { .. }
                    | Action::ReportOrphan { .. }
                    | Action::Conflict { .. }
            )
        })
    }
}
