//! Detach: every network of a container (further ones first, then the
//! first), each through the state machine's `detaching` mark; the lookups
//! that find a container by namespace identity whatever handle names it;
//! and the tombstones that keep a repeated detach `ok`.

use overlayd_host::NetnsId;
use overlayd_proto::{Handle, Response};
use overlayd_state::Table;
use tracing::{info, warn};

use super::attach::netns_target;
use super::error::{OpError, OpResult};
use super::node::Node;
use super::records::{AttachState, Attachment};

impl Node {
    /// `detach_container`: idempotent for a container that was attached (a
    /// handle never attached is `not_found`). The record is marked
    /// `detaching` first (a refused detach — the store cannot write —
    /// touches nothing on the host), then the veth goes, then the record and
    /// lease. Past the mark, a crash or failure is finished by start-up or
    /// the periodic check.
    pub async fn detach(&mut self, handle: &Handle) -> OpResult<Response> {
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
                return Ok(Response::Ok);
            }
            if super::missing::was_removed(&self.store, &format!("attach:{key}"))? {
                return Ok(Response::Ok);
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
            return Ok(Response::Ok);
        }
        // Every further network first, then the first one.
        for c in self.connected_of(&a)? {
            self.detach_one(c).await?;
        }
        self.detach_one(a.clone()).await?;
        self.bury_attachment(&key);
        self.bury_attachment(&a.handle.key());
        info!(handle = %key, ip = %a.ip, "container detached");
        Ok(Response::Ok)
    }

    /// Detach one (container, network) attachment: mark it `detaching`,
    /// delete its veth, drop its record, lease and names, unpublish.
    pub(crate) async fn detach_one(&mut self, mut a: Attachment) -> OpResult<()> {
        let key = a.key();
        if a.state != AttachState::Detaching {
            a.state = AttachState::Detaching;
            self.store
                .write(|tx| tx.put(Table::Attachments, &key, &a))?;
        }
        self.delete_attachment_veth(&a).await?;
        if let Err(e) = self.drop_attachment(&a) {
            // The detach is decided and durable; only the bookkeeping lags.
            warn!(handle = %key, error = %e, "veth removed; the record and lease are released by the periodic check");
        }
        if let Some(bridge) = self.network_bridge(&a.network) {
            self.unpublish_ports(&a, &bridge).await;
        }
        Ok(())
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
