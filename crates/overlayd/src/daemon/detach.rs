//! Detach: every network of a container (further ones first, then the
//! first), each through the state machine's `detaching` mark; the lookups
//! that find a container by namespace identity whatever handle names it;
//! and the tombstones that keep a repeated detach `ok`.

use overlayd_host::NetnsId;
use overlayd_proto::{Handle, Response};
use overlayd_state::Table;
use tracing::{info, warn};

use super::attach::{netns_target, Begun};
use super::error::{OpError, OpResult};
use super::node::Node;
use super::records::{AttachState, Attachment};

/// A detach whose records are all marked `detaching`, waiting for their
/// veths to be deleted (the slow part: the kernel waits for in-flight
/// packets), which runs without the node lock.
pub struct PendingDetach {
    /// The attachments being detached, further networks first.
    pub marked: Vec<Attachment>,
    /// Keys whose tombstones are written once they are gone, so a repeated
    /// detach is `ok`.
    bury: Vec<String>,
}

/// Delete the veths of a pending detach (each only if it is the
/// attachment's own); how each went, in the order of `p.marked`.
pub async fn remove_veths(
    host: &dyn overlayd_host::Host,
    instance: &str,
    p: &PendingDetach,
) -> Vec<OpResult<()>> {
    let mut out = Vec::with_capacity(p.marked.len());
    for a in &p.marked {
        out.push(super::attach_state::delete_owned_veth(host, instance, a).await);
    }
    out
}

impl Node {
    /// Find what a detach removes — every network of the container, further
    /// ones first — and mark it all `detaching` in one transaction (a
    /// refused detach, the store cannot write, touches nothing on the
    /// host). Past the mark, a crash or failure is finished by start-up or
    /// the periodic check.
    pub async fn detach_begin(&mut self, handle: &Handle) -> OpResult<Begun<PendingDetach>> {
        let key = handle.key();
        let mut found = self
            .store
            .read(|tx| tx.get::<Attachment>(Table::Attachments, &key))?;
        if found.is_none() {
            // The container may have been attached under another handle
            // form of the same namespace (netns path vs /proc/PID/ns/net).
            if let Ok(target) = netns_target(handle) {
                let ns_id = self.host.netns_identity(&target).await?;
                found = self.attachment_by_netns(handle, ns_id)?;
            }
        }
        let Some(a) = found else {
            if self.detach_orphan_connected(handle).await? {
                return Ok(Begun::Done(Response::Ok));
            }
            if super::missing::was_removed(&self.store, &format!("attach:{key}"))? {
                return Ok(Begun::Done(Response::Ok));
            }
            return Err(OpError::NotFound(format!(
                "{key} is not attached (never attached here); see `overlayd network inspect OWNER` for attached containers"
            )));
        };
        if a.guest_private_key.is_some() {
            self.detach_guest(&a).await?;
            self.drop_attachment(&a)?;
            self.bury_attachment(&key);
            info!(handle = %key, ip = %a.ip, "guest detached");
            return Ok(Begun::Done(Response::Ok));
        }
        let mut all = self.connected_of(&a)?;
        all.push(a.clone());
        let mut bury = vec![key.clone()];
        if a.handle.key() != key {
            bury.push(a.handle.key());
        }
        Ok(Begun::Pending(self.mark_detaching(all, bury)?))
    }

    /// Mark attachments `detaching` (one transaction) for a detach.
    pub(crate) fn mark_detaching(
        &self,
        mut all: Vec<Attachment>,
        bury: Vec<String>,
    ) -> OpResult<PendingDetach> {
        for a in &all {
            self.inflight.refuse_claimed(a)?;
        }
        let unmarked: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].state != AttachState::Detaching)
            .collect();
        for &i in &unmarked {
            all[i].state = AttachState::Detaching;
        }
        if !unmarked.is_empty() {
            self.store.write(|tx| {
                for &i in &unmarked {
                    tx.put(Table::Attachments, &all[i].key(), &all[i])?;
                }
                Ok(())
            })?;
        }
        Ok(PendingDetach { marked: all, bury })
    }

    /// The end of a detach: release the record, lease and names and the
    /// published ports of every attachment whose veth went; the first
    /// failure is returned (its record stays `detaching`, finished by the
    /// periodic check or a retry).
    pub async fn detach_finish(
        &mut self,
        p: PendingDetach,
        done: Vec<OpResult<()>>,
    ) -> OpResult<Response> {
        let mut first_error = None;
        for (a, r) in p.marked.iter().zip(done) {
            if let Err(e) = r {
                first_error.get_or_insert(e);
                continue;
            }
            if let Err(e) = self.drop_attachment(a) {
                // The detach is decided and durable; only the bookkeeping lags.
                warn!(handle = %a.key(), error = %e, "veth removed; the record and lease are released by the periodic check");
            }
            if let Some(bridge) = self.network_bridge(&a.network) {
                self.unpublish_ports(a, &bridge).await;
            }
            if a.is_connected() {
                info!(handle = %a.key(), network = %a.network, "container disconnected from a further network");
            } else {
                info!(handle = %a.key(), ip = %a.ip, "container detached");
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        for k in &p.bury {
            self.bury_attachment(k);
        }
        Ok(Response::Ok)
    }

    /// Detach one (container, network) attachment: mark it `detaching`,
    /// delete its veth, drop its record, lease and names, unpublish.
    pub(crate) async fn detach_one(&mut self, a: Attachment) -> OpResult<()> {
        let bury = vec![a.key()];
        let p = self.mark_detaching(vec![a], bury)?;
        let done = remove_veths(self.host.as_ref(), &self.instance, &p).await;
        self.detach_finish(p, done).await.map(|_| ())
    }

    /// The further networks (`connect_container`) of a container whose
    /// first attachment is `first`.
    pub fn connected_of(&self, first: &Attachment) -> OpResult<Vec<Attachment>> {
        let prefix = super::records::connected_key(&first.handle.key(), "");
        Ok(self
            .store
            .read(|tx| tx.list_prefix::<Attachment>(Table::Attachments, &prefix))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| a.is_connected() && a.handle == first.handle)
            .collect())
    }

    /// The attachment recorded for a namespace identity, whatever handle
    /// form it was attached with. Only `linux_pid` / `netns_path` handles
    /// (one container, one `eth0`) are matched this way; CNI handles name an
    /// interface, and one namespace may hold several of them.
    pub fn attachment_by_netns(
        &self,
        handle: &Handle,
        ns_id: Option<NetnsId>,
    ) -> OpResult<Option<Attachment>> {
        let single = |h: &Handle| matches!(h, Handle::LinuxPid { .. } | Handle::NetnsPath { .. });
        let Some(id) = ns_id.map(|i| i.to_string()).filter(|_| single(handle)) else {
            return Ok(None);
        };
        Ok(self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .find(|a| {
                !a.is_connected() && single(&a.handle) && a.netns_id.as_deref() == Some(id.as_str())
            }))
    }

    /// Remember that a container was detached, so a repeated detach is `ok`.
    pub fn bury_attachment(&self, key: &str) {
        if let Err(e) = self
            .store
            .write(|tx| super::missing::bury(tx, &format!("attach:{key}")))
        {
            warn!(error = %e, "cannot record the detach tombstone");
        }
    }
}
