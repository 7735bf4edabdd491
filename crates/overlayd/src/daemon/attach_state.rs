//! The crash-safe side of attach and detach: recognising an attachment's
//! veth (by tag, or by the MAC derived from the tag when a crash came before
//! the tag), judging whether an attachment is whole, and finishing what a
//! crash left half-done — an `attaching` record is rolled back, a `detaching`
//! one completed — at start-up, in the periodic check and on `doctor --fix`.

use overlayd_host::{veth_mac, LinkInfo, LinkKind};
use overlayd_state::Table;
use tracing::{info, warn};

use super::attach::netns_target;
use super::error::OpResult;
use super::node::Node;
use super::plan;
use super::records::{AttachState, Attachment};

/// Whether `link` is the host end of attachment `a`: a veth carrying its tag,
/// or an untagged veth whose MAC is the one derived from that tag (created,
/// then the process died before the tag was written).
pub fn veth_owned(link: &LinkInfo, a: &Attachment, inst: &str) -> bool {
    if link.kind != LinkKind::Veth {
        return false;
    }
    let key = a.key();
    match link.alias.as_deref() {
        Some(alias) if !alias.is_empty() => plan::attach_tag_matches(Some(alias), &key, &a.id),
        _ => link.mac == Some(veth_mac(&plan::attach_tag(&key, &a.id, inst))),
    }
}

/// What is wrong with attachment `a`, given its live veth and its network's
/// bridge; `None` when it is whole (or a guest, which has no veth).
pub fn attachment_problem(
    a: &Attachment,
    veth: Option<&LinkInfo>,
    bridge: Option<&LinkInfo>,
    inst: &str,
) -> Option<String> {
    if a.guest_private_key.is_some() {
        return None;
    }
    let key = a.key();
    let name = &a.host_ifname;
    match a.state {
        AttachState::Attaching => {
            return Some(format!(
                "{key}: attach was interrupted; `overlayd doctor --fix` rolls it back (veth {name}, lease {})",
                a.ip
            ))
        }
        AttachState::Detaching => {
            return Some(format!(
                "{key}: detach was interrupted; `overlayd doctor --fix` completes it (veth {name}, lease {})",
                a.ip
            ))
        }
        AttachState::Attached => {}
    }
    let Some(veth) = veth else {
        return Some(format!(
            "{key}: veth {name} is gone; `overlayd doctor --fix` releases its lease, then attach the container again"
        ));
    };
    if !veth_owned(veth, a, inst) {
        return Some(format!(
            "{key}: link {name} is not this attachment's veth; remove or rename it, then attach the container again"
        ));
    }
    if bridge.is_some_and(|b| veth.master != Some(b.index)) || !veth.up {
        return Some(format!(
            "{key}: veth {name} is down or on no bridge; `overlayd doctor --fix` plugs it in again"
        ));
    }
    None
}

/// Delete attachment `a`'s veth if it is there and is its own (by tag or
/// tag-derived MAC); a foreign link of that name is left alone. Needs no
/// node state, so a detach runs it without the node lock.
pub async fn delete_owned_veth(
    host: &dyn overlayd_host::Host,
    instance: &str,
    a: &Attachment,
) -> OpResult<()> {
    if let Some(link) = host.link(&a.host_ifname).await? {
        if veth_owned(&link, a, instance) {
            host.detach_veth(&a.host_ifname).await?;
        } else {
            warn!(veth = %a.host_ifname, "link with the attachment's name is not ours; left alone");
        }
    }
    Ok(())
}

impl Node {
    /// The bridge link of the network an attachment is recorded on.
    async fn attachment_bridge(&self, a: &Attachment) -> OpResult<Option<LinkInfo>> {
        let Some(entry) = self
            .marker
            .iter()
            .find(|e| e.owner.to_string() == a.network)
        else {
            return Ok(None);
        };
        Ok(self.host.link(&entry.name).await?)
    }

    /// [`attachment_problem`] of `a` against the live host.
    pub async fn attachment_problem(&self, a: &Attachment) -> OpResult<Option<String>> {
        if a.guest_private_key.is_some() {
            return Ok(None);
        }
        let veth = self.host.link(&a.host_ifname).await?;
        let bridge = self.attachment_bridge(a).await?;
        Ok(attachment_problem(
            a,
            veth.as_ref(),
            bridge.as_ref(),
            &self.instance,
        ))
    }

    /// Delete an attachment's veth if it is there and is its own (by tag or
    /// tag-derived MAC); a foreign link of that name is left alone.
    pub async fn delete_attachment_veth(&self, a: &Attachment) -> OpResult<()> {
        delete_owned_veth(self.host.as_ref(), &self.instance, a).await
    }

    /// Undo an attachment completely: its veth (if ours), then its record,
    /// lease and DNS names, then its published ports.
    pub async fn undo_attachment(&self, a: &Attachment) -> OpResult<()> {
        self.delete_attachment_veth(a).await?;
        self.drop_attachment(a)?;
        if let Some(bridge) = self.network_bridge(&a.network) {
            self.unpublish_ports(a, &bridge).await;
        }
        Ok(())
    }

    /// Roll back every `attaching` record and complete every `detaching`
    /// one — except those a running request has in flight
    /// ([`super::inflight`]): they are half-done because it is working on
    /// them. How many were finished.
    pub async fn finish_half_done(&self) -> OpResult<usize> {
        let half: Vec<Attachment> = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| a.guest_private_key.is_none() && a.state != AttachState::Attached)
            .filter(|a| !self.inflight.is_claimed(&a.key()))
            .collect();
        let mut n = 0;
        for a in half {
            let key = a.key();
            match self.undo_attachment(&a).await {
                Ok(()) => {
                    n += 1;
                    match a.state {
                        AttachState::Attaching => {
                            info!(handle = %key, veth = %a.host_ifname, ip = %a.ip, "rolled back an interrupted attach")
                        }
                        _ => {
                            info!(handle = %key, veth = %a.host_ifname, ip = %a.ip, "completed an interrupted detach")
                        }
                    }
                }
                Err(e) => {
                    warn!(handle = %key, error = %e, "cannot finish an interrupted attach/detach yet")
                }
            }
        }
        Ok(n)
    }

    /// Plug in again every attached container whose veth is ours but down or
    /// off its bridge (someone unplugged it); how many were repaired.
    pub async fn replug_unplugged(&self) -> OpResult<usize> {
        let atts: Vec<Attachment> = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| a.guest_private_key.is_none() && a.state == AttachState::Attached)
            .collect();
        let mut n = 0;
        for a in atts {
            let Some(veth) = self.host.link(&a.host_ifname).await? else {
                continue;
            };
            let Some(bridge) = self.attachment_bridge(&a).await? else {
                continue;
            };
            if !veth_owned(&veth, &a, &self.instance)
                || (veth.master == Some(bridge.index) && veth.up)
            {
                continue;
            }
            let Some(entry) = self
                .marker
                .iter()
                .find(|e| e.owner.to_string() == a.network)
                .cloned()
            else {
                continue;
            };
            let Ok(target) = netns_target(&a.handle) else {
                continue;
            };
            let spec = self.veth_spec(&a, &entry, target).await?;
            self.host.detach_veth(&a.host_ifname).await?;
            self.host.attach_veth(&spec).await?;
            info!(handle = %a.key(), veth = %a.host_ifname, "plugged an unplugged container in again");
            n += 1;
        }
        Ok(n)
    }
}
