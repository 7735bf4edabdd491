//! Several networks per container: `connect_container` joins an attached
//! container to a further network on its own interface (`eth1`, …) with its
//! own veth, lease and DNS names, and `disconnect_container` takes it off
//! again. Both go through the attach state machine of [`super::attach`]
//! (record `attaching` → veth → commit `attached`; `detaching` first on the
//! way out); the record of a further network is stored under
//! `KEY@NETWORK` ([`Attachment::key`]). The default route stays on the
//! container's first network; `detach_container` removes every network.

use overlayd_proto::{Handle, Response};
use overlayd_state::{Owner, Table};

use super::attach::{netns_target, Begun, PendingAttach};
use super::detach::PendingDetach;
use super::error::{OpError, OpResult};
use super::node::Node;
use super::records::{connected_key, AttachState, Attachment};

/// The network a `connect` / `disconnect` names: an owner string
/// (`iso:<net>`, `service:<name>`, `shared-nat`, `base`) or a bare
/// isolation network name.
pub fn parse_network(network: &str) -> OpResult<Owner> {
    if network.contains(':') || network == "shared-nat" || network == "base" {
        match network.parse::<Owner>() {
            Ok(Owner::Other(_)) | Err(_) => Err(OpError::Invalid(format!(
                "{network:?} is not a network: give an isolation network name or iso:NET, service:NAME, shared-nat or base"
            ))),
            Ok(o) => Ok(o),
        }
    } else {
        Ok(Owner::isolation(network)?)
    }
}

/// The interface a further network gets: `asked`, or the lowest free
/// `ethN` (N ≥ 1). `taken` are the names the container's attachments use.
pub fn pick_ifname(asked: Option<&str>, taken: &[String]) -> OpResult<String> {
    if let Some(n) = asked {
        overlayd_host::types::validate_ifname(n)
            .map_err(|e| OpError::Invalid(format!("ifname: {e}")))?;
        if taken.iter().any(|t| t == n) {
            return Err(OpError::Conflict(format!(
                "the container already has {n} from overlayd; choose another --ifname"
            )));
        }
        return Ok(n.to_string());
    }
    (1..)
        .map(|i| format!("eth{i}"))
        .find(|n| !taken.contains(n))
        .ok_or_else(|| OpError::Conflict("no free interface name".into()))
}

impl Node {
    /// The first attachment of the container a handle names (by its key,
    /// else by its namespace identity).
    async fn first_attachment(&self, handle: &Handle) -> OpResult<Option<Attachment>> {
        if !matches!(handle, Handle::LinuxPid { .. } | Handle::NetnsPath { .. }) {
            return Err(OpError::Invalid(
                "connect and disconnect take a linux_pid or netns_path handle (a CNI runtime adds each network with its own ADD)".into(),
            ));
        }
        let key = handle.key();
        if let Some(a) = self
            .store
            .read(|tx| tx.get::<Attachment>(Table::Attachments, &key))?
        {
            return Ok(Some(a));
        }
        let target = netns_target(handle)?;
        let ns_id = self.host.netns_identity(&target).await?;
        self.attachment_by_netns(handle, ns_id)
    }

    /// The decision and intent of a `connect_container`: the record
    /// `attaching` with its lease, and the veth to make.
    pub async fn connect_begin(
        &mut self,
        handle: Handle,
        network: &str,
        ifname: Option<String>,
        name: Option<String>,
    ) -> OpResult<Begun<PendingAttach>> {
        let owner = parse_network(network)?;
        if let Some(n) = &name {
            self.records
                .normalize(n)
                .map_err(|e| OpError::Invalid(format!("name: {e}")))?;
        }
        let Some(first) = self.first_attachment(&handle).await? else {
            return Err(OpError::NotFound(format!(
                "{} is not attached; attach it to its first network first (`overlayd attach`)",
                handle.key()
            )));
        };
        if first.state != AttachState::Attached {
            return Err(OpError::Conflict(format!(
                "{} is half-way through an attach or detach; retry, or run `overlayd doctor --fix`",
                first.key()
            )));
        }
        if first.network == owner.to_string() {
            return Err(OpError::Conflict(format!(
                "{} is already on {owner} (its first network, {})",
                first.key(),
                first.container_ifname()
            )));
        }
        let Some(entry) = self.marker.get(&owner).cloned() else {
            return Err(OpError::NotFound(format!(
                "network {owner} is not recorded; create it first (e.g. `overlayd iso up NET`)"
            )));
        };
        let key = connected_key(&first.handle.key(), &owner.to_string());
        let mut others = self.connected_of(&first)?;
        if let Some(i) = others.iter().position(|c| c.key() == key) {
            let existing = others.remove(i);
            let same_if = ifname
                .as_deref()
                .is_none_or(|n| n == existing.container_ifname());
            if existing.state == AttachState::Attached
                && self.attachment_problem(&existing).await?.is_none()
            {
                if !same_if {
                    return Err(OpError::Conflict(format!(
                        "{key} is already connected as {}; disconnect it first to rename it",
                        existing.container_ifname()
                    )));
                }
                return Ok(Begun::Done(Response::Attached {
                    ip: existing.ip,
                    namespace_guid: None,
                    ip_v6: existing.ip_v6,
                }));
            }
            // Half-done or broken: finish undoing it, then connect afresh —
            // unless another request is doing it now.
            self.inflight.refuse_claimed(&existing)?;
            self.undo_attachment(&existing).await?;
        }
        let mut taken: Vec<String> = vec![first.container_ifname().to_string()];
        taken.extend(others.iter().map(|c| c.container_ifname().to_string()));
        let ifname = pick_ifname(ifname.as_deref(), &taken)?;
        let target = netns_target(&first.handle)?;
        if !self.host.netns_alive(&target).await? {
            return Err(OpError::NotFound(format!(
                "the namespace of {} is gone; detach it",
                first.key()
            )));
        }
        let record = Attachment {
            handle: first.handle.clone(),
            network: owner.to_string(),
            service: first.service.clone(),
            ip: String::new(),
            prefix_len: 0,
            host_ifname: self.namer().veth(&key),
            id: uuid::Uuid::new_v4().to_string(),
            dns_name: name.or_else(|| first.dns_name.clone()),
            guest_private_key: None,
            dns_server: None,
            dns_domain: None,
            state: AttachState::Attaching,
            netns_id: first.netns_id.clone(),
            publish: Vec::new(),
            ifname: Some(ifname.clone()),
            ip_v6: None,
            prefix_len_v6: None,
        };
        Ok(Begun::Pending(
            self.begin_realize(record, entry, target).await?,
        ))
    }

    /// Detach the further networks recorded for a handle whose first
    /// attachment is gone (reclaimed after its veth vanished); whether
    /// there were any.
    pub(crate) async fn detach_orphan_connected(&mut self, handle: &Handle) -> OpResult<bool> {
        let prefix = connected_key(&handle.key(), "");
        let orphans: Vec<Attachment> = self
            .store
            .read(|tx| tx.list_prefix::<Attachment>(Table::Attachments, &prefix))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| a.is_connected() && a.handle == *handle)
            .collect();
        let any = !orphans.is_empty();
        for a in orphans {
            self.detach_one(a).await?;
        }
        Ok(any)
    }

    /// The mark of `disconnect_container` — idempotent for a network that
    /// was connected (a container never connected to it is `not_found`):
    /// the further network's record `detaching`, its veth still to delete.
    pub async fn disconnect_begin(
        &mut self,
        handle: &Handle,
        network: &str,
    ) -> OpResult<Begun<PendingDetach>> {
        let owner = parse_network(network)?;
        let Some(first) = self.first_attachment(handle).await? else {
            return Err(OpError::NotFound(format!(
                "{} is not attached",
                handle.key()
            )));
        };
        if first.network == owner.to_string() {
            return Err(OpError::Conflict(format!(
                "{owner} is the first network of {}; `overlayd detach` removes it with every other network",
                first.key()
            )));
        }
        let key = connected_key(&first.handle.key(), &owner.to_string());
        let Some(a) = self
            .connected_of(&first)?
            .into_iter()
            .find(|c| c.key() == key)
        else {
            if super::missing::was_removed(&self.store, &format!("attach:{key}"))? {
                return Ok(Begun::Done(Response::Ok));
            }
            return Err(OpError::NotFound(format!(
                "{} is not connected to {owner}; `overlayd ps` lists its networks",
                first.key()
            )));
        };
        Ok(Begun::Pending(self.mark_detaching(vec![a], vec![key])?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_owner_strings_or_isolation_names() {
        assert_eq!(
            parse_network("red").unwrap(),
            Owner::Isolation("red".into())
        );
        assert_eq!(
            parse_network("iso:red").unwrap(),
            Owner::Isolation("red".into())
        );
        assert_eq!(
            parse_network("service:db").unwrap(),
            Owner::Service("db".into())
        );
        assert_eq!(parse_network("shared-nat").unwrap(), Owner::SharedNat);
        assert!(parse_network("bogus:x").is_err());
        assert!(parse_network("bad name").is_err());
    }

    #[test]
    fn interface_names_default_to_the_lowest_free_eth() {
        let taken = vec!["eth0".to_string(), "eth2".to_string()];
        assert_eq!(pick_ifname(None, &taken).unwrap(), "eth1");
        assert_eq!(pick_ifname(Some("net9"), &taken).unwrap(), "net9");
        assert!(pick_ifname(Some("eth2"), &taken).is_err());
        assert!(pick_ifname(Some("a/b"), &taken).is_err());
        assert!(pick_ifname(Some("much-too-long-name"), &taken).is_err());
    }
}
