//! The attachment part of the start-up plan: match recorded attachments to
//! live host-side veths by their `attach=` tag, reclaim those whose container
//! is gone, drop records whose veth vanished, and find tagged veths nothing
//! records.

use std::collections::{HashMap, HashSet};

use crate::live::{LinkRef, LiveLink, LINK_KIND_VETH};
use crate::tag::{Tag, TagSubject};

/// A recorded attachment, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    /// The attachment handle key (e.g. `pid:4242`, `netns:/run/netns/c1`).
    pub key: String,
    /// The recorded host-side veth name.
    pub host_ifname: String,
    /// The identity written into the veth's tag, if recorded.
    pub id: Option<String>,
    /// Whether the container (process or netns) still exists.
    pub target_alive: bool,
}

/// One step of the attachment plan.
#[derive(Debug, Clone, PartialEq)]
pub enum AttachAction {
    /// Container alive and veth present: nothing to do.
    Keep {
        /// The handle key.
        key: String,
        /// The veth.
        link: LinkRef,
    },
    /// Container gone: delete the veth (if present), release the lease,
    /// drop the record.
    Reclaim {
        /// The handle key.
        key: String,
        /// The veth to delete, verified ours by tag.
        veth: Option<LinkRef>,
    },
    /// Container alive but its veth is gone: drop the record and release
    /// the lease (the container has lost its network).
    DropLost {
        /// The handle key.
        key: String,
    },
    /// A veth tagged as ours that no record names: delete it.
    DeleteOrphanVeth {
        /// The veth.
        link: LinkRef,
        /// Its tag.
        tag: Tag,
    },
    /// A veth tagged as ours that no record names, kept (gc disabled).
    ReportOrphanVeth {
        /// The veth.
        link: LinkRef,
        /// Its tag.
        tag: Tag,
    },
}

/// The attachment plan, in execution order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttachPlan {
    /// The actions.
    pub actions: Vec<AttachAction>,
}

impl AttachPlan {
    /// Handle keys whose lease must be released (reclaimed or lost).
    pub fn released_keys(&self) -> Vec<&str> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                AttachAction::Reclaim { key, .. } | AttachAction::DropLost { key } => {
                    Some(key.as_str())
                }
                _ => None,
            })
            .collect()
    }
}

/// Compute the attachment plan. A veth matches a record when its tag names
/// the record's key (and id, when recorded) and it is a veth; the recorded
/// name is preferred, but a renamed veth is still found by its tag.
pub fn plan_attachments(records: &[AttachmentRecord], live: &[LiveLink], gc: bool) -> AttachPlan {
    let tagged: Vec<(&LiveLink, Tag)> = live
        .iter()
        .filter(|l| l.kind == LINK_KIND_VETH)
        .filter_map(|l| {
            let t = l.tag()?;
            matches!(t.subject(), TagSubject::Attachment(_)).then_some((l, t))
        })
        .collect();
    let by_name: HashMap<&str, usize> = tagged
        .iter()
        .enumerate()
        .map(|(i, (l, _))| (l.name.as_str(), i))
        .collect();
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut actions = Vec::new();

    let mut records: Vec<&AttachmentRecord> = records.iter().collect();
    records.sort_by(|a, b| a.key.cmp(&b.key));
    for r in records {
        let matches =
            |i: &usize| !claimed.contains(i) && tagged[*i].1.is_attachment(&r.key, r.id.as_deref());
        let found = by_name
            .get(r.host_ifname.as_str())
            .copied()
            .filter(matches)
            .or_else(|| (0..tagged.len()).find(matches));
        if let Some(i) = found {
            claimed.insert(i);
        }
        let link = found.map(|i| tagged[i].0.link_ref());
        actions.push(match (r.target_alive, link) {
            (true, Some(link)) => AttachAction::Keep {
                key: r.key.clone(),
                link,
            },
            (true, None) => AttachAction::DropLost { key: r.key.clone() },
            (false, veth) => AttachAction::Reclaim {
                key: r.key.clone(),
                veth,
            },
        });
    }
    for (i, (l, t)) in tagged.iter().enumerate() {
        if claimed.contains(&i) {
            continue;
        }
        let (link, tag) = (l.link_ref(), t.clone());
        actions.push(if gc {
            AttachAction::DeleteOrphanVeth { link, tag }
        } else {
            AttachAction::ReportOrphanVeth { link, tag }
        });
    }
    AttachPlan { actions }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a1";

    fn veth(name: &str, index: u32, key: &str, id: &str) -> LiveLink {
        let tag = Tag::attachment(key, id).unwrap().to_string();
        LiveLink::new(name, index, "veth", Some(&tag))
    }

    fn rec(key: &str, name: &str, alive: bool) -> AttachmentRecord {
        AttachmentRecord {
            key: key.into(),
            host_ifname: name.into(),
            id: Some(ID.into()),
            target_alive: alive,
        }
    }

    fn lr(name: &str, index: u32) -> LinkRef {
        LinkRef {
            name: name.into(),
            index,
        }
    }

    #[test]
    fn table() {
        let live = vec![
            veth("v1", 11, "pid:1", ID),
            veth("v2", 12, "pid:2", ID),
            veth("v9", 19, "pid:9", ID),
            LiveLink::new("v4", 14, "veth", None),
            LiveLink::new("eth0", 2, "", None),
        ];
        let records = vec![
            rec("pid:1", "v1", true),
            rec("pid:2", "v2", false),
            rec("pid:3", "v3", false),
            rec("pid:4", "v4", true),
        ];
        let plan = plan_attachments(&records, &live, true);
        let orphan_tag = Tag::attachment("pid:9", ID).unwrap();
        assert_eq!(
            plan.actions,
            vec![
                AttachAction::Keep {
                    key: "pid:1".into(),
                    link: lr("v1", 11)
                },
                AttachAction::Reclaim {
                    key: "pid:2".into(),
                    veth: Some(lr("v2", 12))
                },
                AttachAction::Reclaim {
                    key: "pid:3".into(),
                    veth: None
                },
                // An untagged veth with the recorded name is not ours.
                AttachAction::DropLost {
                    key: "pid:4".into()
                },
                AttachAction::DeleteOrphanVeth {
                    link: lr("v9", 19),
                    tag: orphan_tag.clone()
                },
            ]
        );
        assert_eq!(plan.released_keys(), vec!["pid:2", "pid:3", "pid:4"]);

        let plan = plan_attachments(&records, &live, false);
        assert!(plan.actions.contains(&AttachAction::ReportOrphanVeth {
            link: lr("v9", 19),
            tag: orphan_tag
        }));
        assert!(!plan
            .actions
            .iter()
            .any(|a| matches!(a, AttachAction::DeleteOrphanVeth { .. })));
    }

    #[test]
    fn id_mismatch_is_not_a_match_and_becomes_orphan() {
        let live = vec![veth("v1", 11, "pid:1", "other")];
        let plan = plan_attachments(&[rec("pid:1", "v1", true)], &live, true);
        assert_eq!(plan.actions.len(), 2);
        assert_eq!(
            plan.actions[0],
            AttachAction::DropLost {
                key: "pid:1".into()
            }
        );
        assert!(matches!(
            plan.actions[1],
            AttachAction::DeleteOrphanVeth { .. }
        ));
    }

    #[test]
    fn renamed_veth_found_by_tag_and_record_without_id() {
        let live = vec![veth("renamed", 30, "pid:1", ID)];
        let mut r = rec("pid:1", "v1", true);
        r.id = None;
        let plan = plan_attachments(&[r], &live, true);
        assert_eq!(
            plan.actions,
            vec![AttachAction::Keep {
                key: "pid:1".into(),
                link: lr("renamed", 30)
            }]
        );
    }

    #[test]
    fn network_tags_and_non_veths_are_ignored() {
        let net_tag = Tag::network(&overlayd_model::Owner::Base, ID)
            .unwrap()
            .to_string();
        let attach_tag = Tag::attachment("pid:1", ID).unwrap().to_string();
        let live = vec![
            LiveLink::new("w", 1, "wireguard", Some(&net_tag)),
            LiveLink::new("b", 2, "bridge", Some(&attach_tag)),
        ];
        assert!(plan_attachments(&[], &live, true).actions.is_empty());
    }

    #[test]
    fn one_veth_serves_one_record() {
        let live = vec![veth("v1", 11, "pid:1", ID)];
        let records = vec![rec("pid:1", "v1", true), rec("pid:1", "v1", true)];
        let plan = plan_attachments(&records, &live, true);
        assert!(matches!(plan.actions[0], AttachAction::Keep { .. }));
        assert!(matches!(plan.actions[1], AttachAction::DropLost { .. }));
    }
}
