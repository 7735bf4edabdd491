//! Containers: attach (lease and `attaching` record, veth, commit — rolled
//! back on any failure), split in a first half and a second half so the
//! veth can be made without the node lock ([`super::container_ops`]).
//! The store bookkeeping is in `attach_records.rs`, detach in `detach.rs`,
//! leases in `lease.rs`, the veth's spec in `veth.rs`, `inspect_attachment`
//! in `listing.rs`.

use std::net::IpAddr;
use std::path::PathBuf;

use overlayd_host::{NetnsId, NetnsTarget};
use overlayd_proto::{Handle, Response, ServiceMode};
use overlayd_state::{Owner, Table};
use tracing::{info, warn};

use super::error::{OpError, OpResult};
use super::node::Node;
use super::records::{AttachState, Attachment, ServiceRecord};

/// What `attach_container` asks for.
#[derive(Debug, Clone)]
pub struct AttachSpec {
    /// The container.
    pub handle: Handle,
    /// Its service.
    pub service: String,
    /// Also reach the base overlay.
    pub join_global: bool,
    /// Isolation network instead of the service's network.
    pub isolation: Option<String>,
    /// DNS name to register.
    pub name: Option<String>,
    /// DNS server the runtime will configure.
    pub dns_server: Option<String>,
    /// DNS domain the runtime will configure.
    pub dns_domain: Option<String>,
    /// Ports to publish on the host.
    pub publish: Vec<overlayd_proto::PortMapping>,
}

/// How the first step of a split request ended: nothing left to do, or
/// host work to run (outside the node lock) before the last step. A
/// value returned and consumed at once, so its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Begun<P> {
    /// The answer; no host work is pending.
    Done(Response),
    /// Recorded and waiting for its host work.
    Pending(P),
}

/// An attach (or connect) decided and recorded `attaching`, with its lease,
/// waiting for its veth.
pub struct PendingAttach {
    /// The record as written (state `attaching`, addresses leased).
    pub record: Attachment,
    /// Its network's marker entry.
    pub entry: overlayd_state::NetworkEntry,
    /// The veth to make.
    pub spec: overlayd_host::VethSpec,
    /// [`super::inflight::InFlight::replug_epoch`] when it was decided.
    pub replug_epoch: u64,
}

/// Make the veth of a pending attach: the only slow host work of an attach,
/// and the part that runs without the node lock.
pub async fn make_veth(host: &dyn overlayd_host::Host, p: &PendingAttach) -> OpResult<()> {
    host.attach_veth(&p.spec)
        .await
        .map(|_| ())
        .map_err(OpError::from)
}

/// Interface name of the container end.
pub const CONTAINER_IFNAME: &str = "eth0";

/// The namespace a handle points at, or why it cannot be entered.
pub fn netns_target(handle: &Handle) -> OpResult<NetnsTarget> {
    match handle {
        Handle::LinuxPid { pid } => {
            if *pid == 0 {
                return Err(OpError::Invalid("pid 0 is not a process".into()));
            }
            Ok(NetnsTarget::Pid(*pid))
        }
        Handle::NetnsPath { path } => {
            if path.is_empty() {
                return Err(OpError::Invalid("netns path is empty".into()));
            }
            Ok(NetnsTarget::Path(PathBuf::from(path)))
        }
        Handle::WindowsContainer { .. } => Err(OpError::Unsupported(
            "windows_container handles are served by the Windows HCN backend, not on Linux".into(),
        )),
        Handle::Cni { netns, .. } => {
            super::interfaces::validate_cni_handle(handle)?;
            match netns {
                Some(p) if !p.is_empty() => Ok(NetnsTarget::Path(PathBuf::from(p))),
                _ => Err(OpError::Invalid(
                    "cni handle has no netns: attaching needs the container's namespace (CNI_NETNS)"
                        .into(),
                )),
            }
        }
        Handle::GuestManaged { .. } => Err(OpError::Unsupported(
            "guest_managed handles run their own WireGuard and have no network namespace to enter"
                .into(),
        )),
    }
}

impl Node {
    /// The network a request targets: an isolation network, or the
    /// service's network. Unknown names are errors.
    pub(crate) fn target_network(
        &self,
        service: &str,
        isolation: Option<&str>,
        join_global: bool,
    ) -> OpResult<Owner> {
        overlayd_state::owner::validate_name(service)?;
        let rec: Option<ServiceRecord> = self.store.read(|tx| tx.get(Table::Services, service))?;
        let Some(rec) = rec else {
            return Err(OpError::NotFound(format!(
                "unknown service {service:?}; set it up first with setup_service_overlay (`overlayd service up {service}`)"
            )));
        };
        if let Some(net) = isolation {
            let owner = Owner::isolation(net)?;
            if self.marker.get(&owner).is_none() {
                return Err(OpError::NotFound(format!(
                    "isolation network {net:?} does not exist; create it with setup_isolation_network (`overlayd iso up {net}`)"
                )));
            }
            return Ok(owner);
        }
        let mut owner = self.service_network(service, rec.mode)?;
        if join_global && owner == Owner::SharedNat {
            if self.global()?.is_none() {
                return Err(OpError::NotFound(
                    "join_global needs the global overlay; call setup_global_overlay (`overlayd global up`) first".into(),
                ));
            }
            owner = Owner::Base;
        }
        if self.marker.get(&owner).is_none() {
            return Err(OpError::NotFound(format!(
                "network {owner} of service {service} is not recorded; run setup_service_overlay again"
            )));
        }
        Ok(owner)
    }

    /// The decision and the intent of an attach: validate, settle whatever
    /// is recorded for the container, lease and record it `attaching`, and
    /// build its veth. `Done` when nothing is left to do (already attached,
    /// a guest).
    pub async fn attach_begin(&mut self, req: AttachSpec) -> OpResult<Begun<PendingAttach>> {
        let AttachSpec {
            handle,
            service,
            join_global,
            isolation,
            name,
            dns_server,
            dns_domain,
            publish,
        } = req;
        let (service, isolation) = (service.as_str(), isolation.as_deref());
        if let Some(s) = &dns_server {
            s.parse::<IpAddr>()
                .map_err(|_| OpError::Invalid(format!("dns_server {s:?} is not an IP address")))?;
        }
        if let Some(d) = &dns_domain {
            validate_dns_domain(d)?;
        }
        if let Some(n) = &name {
            self.records
                .normalize(n)
                .map_err(|e| OpError::Invalid(format!("name: {e}")))?;
        }
        if let Handle::GuestManaged { id } = &handle {
            if id.is_empty() {
                return Err(OpError::Invalid("guest id is empty".into()));
            }
            return Ok(Begun::Done(
                self.attach_guest(handle.clone(), service).await?,
            ));
        }
        let target = netns_target(&handle)?;
        let key = handle.key();
        let network = self.target_network(service, isolation, join_global)?;
        let ns_id = self.host.netns_identity(&target).await?;
        if let Some(n) = &name {
            let ns = ns_id.map(|i| i.to_string());
            self.refuse_duplicate_name(n, &network, &key, ns.as_deref())?;
        }
        let mut found = self
            .store
            .read(|tx| tx.get::<Attachment>(Table::Attachments, &key))?;
        if let Some(stale) = found.take_if(|a| is_other_namespace(a, ns_id)) {
            // The handle (a reused PID) now names another namespace: the
            // recorded container is gone and this is a different one.
            info!(handle = %key, recorded = ?stale.netns_id, "handle names a different namespace than recorded: reclaiming the old attachment");
            let connected = self.connected_of(&stale)?;
            for a in connected.iter().chain(std::iter::once(&stale)) {
                self.inflight.refuse_claimed(a)?;
            }
            for c in connected {
                self.undo_attachment(&c).await?;
            }
            self.undo_attachment(&stale).await?;
        }
        if found.is_none() {
            // The same namespace attached under another handle form.
            found = self.attachment_by_netns(&handle, ns_id)?;
        }
        if let Some(existing) = found {
            let committed = existing.state == AttachState::Attached;
            if committed && (existing.network != network.to_string() || existing.service != service)
            {
                return Err(OpError::Conflict(format!(
                    "{key} is already attached (as {}) to {} for service {}; detach it first to move it",
                    existing.handle.key(),
                    existing.network,
                    existing.service
                )));
            }
            if committed {
                self.same_publish(&existing, &publish)?;
            }
            if committed && self.attachment_problem(&existing).await?.is_none() {
                return Ok(Begun::Done(Response::Attached {
                    ip: existing.ip,
                    namespace_guid: None,
                    ip_v6: existing.ip_v6,
                }));
            }
            // Half-done (a crash mid-attach or mid-detach) or broken: finish
            // undoing it, then attach afresh — unless another request (the
            // same namespace under another handle form) is doing it now.
            self.inflight.refuse_claimed(&existing)?;
            self.undo_attachment(&existing).await?;
        }
        if !self.host.netns_alive(&target).await? {
            return Err(OpError::NotFound(match &target {
                NetnsTarget::Pid(p) => {
                    format!("process {p} does not exist or its network namespace cannot be entered")
                }
                NetnsTarget::Path(p) => format!("{} is not a network namespace", p.display()),
            }));
        }
        let entry = self
            .marker
            .get(&network)
            .cloned()
            .ok_or_else(|| OpError::NotFound(format!("network {network} is not recorded")))?;
        let internal = self.is_internal(&network)?;
        let publish = self.plan_publish(&key, &entry, internal, &publish)?;
        let host_ifname = self.namer().veth(&key);
        let record = Attachment {
            handle: handle.clone(),
            network: network.to_string(),
            service: service.to_string(),
            ip: String::new(),
            prefix_len: 0,
            host_ifname,
            id: uuid::Uuid::new_v4().to_string(),
            dns_name: name,
            guest_private_key: None,
            dns_server,
            dns_domain,
            state: AttachState::Attaching,
            netns_id: ns_id.map(|i| i.to_string()),
            publish,
            ifname: None,
            ip_v6: None,
            prefix_len_v6: None,
        };
        Ok(Begun::Pending(
            self.begin_realize(record, entry, target).await?,
        ))
    }

    /// The commit of an attach (or connect) whose veth was made, or the
    /// rollback of one whose veth failed: the response to send.
    pub async fn attach_finish(
        &mut self,
        p: PendingAttach,
        made: OpResult<()>,
    ) -> OpResult<Response> {
        let (key, network, host_ifname) = (
            p.record.key(),
            p.record.network.clone(),
            p.record.host_ifname.clone(),
        );
        let ifname = p.record.ifname.clone();
        let (ip, ip6) = self.finish_realize(p, made).await?;
        match (ifname, ip6) {
            (Some(ifname), _) => {
                info!(handle = %key, %network, %ip, ip6 = ?ip6, %ifname, "container connected to a further network")
            }
            (None, Some(ip6)) => {
                info!(handle = %key, %network, %ip, %ip6, veth = %host_ifname, "container attached")
            }
            (None, None) => {
                info!(handle = %key, %network, %ip, veth = %host_ifname, "container attached")
            }
        }
        Ok(Response::Attached {
            ip: ip.to_string(),
            namespace_guid: None,
            ip_v6: ip6.map(|i| i.to_string()),
        })
    }

    /// The first half of the attach state machine, shared by
    /// `attach_container` and `connect_container`: the lease and the
    /// `attaching` record in one transaction, then the veth's spec. `record`
    /// is in state `attaching`, without an address yet.
    pub(crate) async fn begin_realize(
        &mut self,
        record: Attachment,
        entry: overlayd_state::NetworkEntry,
        target: NetnsTarget,
    ) -> OpResult<PendingAttach> {
        let key = record.key();
        // Lease and `attaching` record in one transaction, before any host
        // effect: whatever a crash leaves on the host from here on is named
        // by this record (veth name, and MAC derived from its tag).
        let (ip, prefix_len, ip6) = self.lease(&entry.owner, &key, Some(record.clone()))?;
        let mut record = record;
        record.ip = ip.to_string();
        record.prefix_len = prefix_len;
        record.ip_v6 = ip6.map(|i| i.to_string());
        record.prefix_len_v6 = super::dual_stack::subnet_v6(&entry)?.map(|s| s.prefix_len());
        match self.veth_spec(&record, &entry, target).await {
            Ok(spec) => Ok(PendingAttach {
                record,
                entry,
                spec,
                replug_epoch: self.inflight.replug_epoch(),
            }),
            Err(e) => {
                if let Err(re) = self.drop_attachment(&record) {
                    warn!(error = %re, "rolling back the attachment record failed; the periodic check will");
                }
                Err(e)
            }
        }
    }

    /// The second half: given how making the veth went (the host backend
    /// deletes it again on its own failure), commit `attached` with the DNS
    /// names, then the published ports — each step undone when a later one
    /// fails. Returns the address and, on a dual-stack network, the IPv6
    /// address.
    pub(crate) async fn finish_realize(
        &mut self,
        p: PendingAttach,
        made: OpResult<()>,
    ) -> OpResult<(IpAddr, Option<IpAddr>)> {
        let PendingAttach {
            mut record,
            entry,
            spec,
            replug_epoch,
        } = p;
        let host_ifname = record.host_ifname.clone();
        let undo_record = |node: &Node, record: &Attachment| {
            if let Err(re) = node.drop_attachment(record) {
                warn!(error = %re, "rolling back the attachment record failed; the periodic check will");
            }
        };
        // A bridge made again meanwhile (its members re-plugged, this one
        // skipped as in flight) may have left the new veth on no bridge.
        let made = match made {
            Ok(()) if self.inflight.replug_epoch() != replug_epoch => {
                match self.plug_into_current_bridge(&spec).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        if let Err(de) = self.host.detach_veth(&host_ifname).await {
                            warn!(veth = %host_ifname, error = %de, "cannot undo the veth of a refused attach; the periodic check will");
                        }
                        Err(e)
                    }
                }
            }
            other => other,
        };
        if let Err(e) = made {
            undo_record(self, &record);
            return Err(e);
        }
        // While the veth was being made other attaches ran: one may have
        // taken this name since it was checked.
        let dup = match &record.dns_name {
            Some(n) => {
                let owner = entry.owner.clone();
                self.refuse_duplicate_name(
                    n,
                    &owner,
                    &record.handle.key(),
                    record.netns_id.as_deref(),
                )
            }
            None => Ok(()),
        };
        // Commit point: `attached` and the DNS names in one transaction. If
        // it cannot be written, undo the veth: a refused attach changes
        // nothing on the host.
        record.state = AttachState::Attached;
        if let Err(e) = dup.and_then(|()| self.commit_attached(&record)) {
            if let Err(de) = self.host.detach_veth(&host_ifname).await {
                warn!(veth = %host_ifname, error = %de, "cannot undo the veth of a refused attach; the periodic check will");
            }
            undo_record(self, &record);
            return Err(e);
        }
        // Published ports, built from the committed record; if they cannot
        // be added, the attach is undone whole.
        if let Err(e) = self.publish_ports(&record, &entry.name).await {
            if let Err(de) = self.host.detach_veth(&host_ifname).await {
                warn!(veth = %host_ifname, error = %de, "cannot undo the veth of a refused attach; the periodic check will");
            }
            undo_record(self, &record);
            self.unpublish_ports(&record, &entry.name).await;
            return Err(e);
        }
        let ip = record
            .ip
            .parse()
            .map_err(|_| OpError::State(format!("leased address {:?} is not an IP", record.ip)))?;
        let ip6 = record.ip_v6.as_deref().and_then(|i| i.parse().ok());
        Ok((ip, ip6))
    }
}

/// A search domain the runtime writes into a container's resolv.conf: a DNS
/// name (letters, digits, `-` in dot-separated labels of 1-63 bytes, 253
/// bytes in all), so it can never inject a line or an option.
pub fn validate_dns_domain(d: &str) -> OpResult<()> {
    let bad =
        |rule: &str| OpError::Invalid(format!("dns_domain {d:?} is not a DNS domain: {rule}"));
    let name = d.strip_suffix('.').unwrap_or(d);
    if name.is_empty() || name.len() > 253 {
        return Err(bad("it must be 1 to 253 bytes long"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("every dot-separated label must be 1 to 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(bad(
                "labels may only contain letters, digits and '-' (no spaces, newlines or other characters)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label must not start or end with '-'"));
        }
    }
    Ok(())
}

/// Whether a recorded attachment names a different namespace than the one
/// its handle names now (both identities known and unequal).
pub fn is_other_namespace(a: &Attachment, now: Option<NetnsId>) -> bool {
    match (a.netns_id.as_deref(), now) {
        (Some(rec), Some(now)) => rec != now.to_string(),
        _ => false,
    }
}

/// Whether a mode is dedicated (used by status views).
pub fn is_dedicated(mode: ServiceMode) -> bool {
    mode.resolve() == ServiceMode::Dedicated
}
