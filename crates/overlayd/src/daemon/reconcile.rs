//! Start-up reconcile (SPEC §4) and the periodic check: adopt recorded
//! networks that exist and match, recreate missing ones with the same name
//! and identity, report or delete tagged orphans, rebuild a lost marker from
//! host tags, reclaim attachments whose container is gone, and restore the
//! nftables tables when someone flushed or edited them.

use std::collections::BTreeSet;

use overlayd_engine::reconcile::{
    plan_attachments, plan_networks, rebuild_from_live, Action, AttachAction, AttachmentRecord,
    Desired, NetworkInput,
};
use overlayd_engine::LiveLink;
use overlayd_host::LinkInfo;
use overlayd_proto::ServiceMode;
use overlayd_state::{Owner, PortBand, Table};
use tracing::{error, info, warn};

use super::attach::netns_target;
use super::dual_stack::WantV6;
use super::error::OpResult;
use super::node::Node;
use super::plan;
use super::records::{AttachState, Attachment, IsolationRecord, ServiceRecord};

/// What a reconcile pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Recorded networks found live and adopted as they are.
    pub adopted: usize,
    /// Recorded networks recreated with their recorded identity.
    pub recreated: usize,
    /// Adopted networks whose (userspace) WireGuard device was started
    /// again with its recorded name, key and port.
    pub devices_restarted: usize,
    /// Desired networks created because nothing recorded them.
    pub created: usize,
    /// Tagged objects nothing records (deleted unless gc is off).
    pub orphans: usize,
    /// Attachments reclaimed (container gone or veth lost).
    pub reclaimed: usize,
    /// Names held by links that are not ours.
    pub conflicts: usize,
    /// Entries rebuilt from host tags after a lost or corrupt marker.
    pub rebuilt: usize,
    /// Interrupted attaches rolled back and interrupted detaches completed.
    pub finished: usize,
    /// Attached containers whose veth was down or off its bridge, plugged in again.
    pub replugged: usize,
}

fn live_view(links: &[LinkInfo], addrs: impl Fn(&LinkInfo) -> Vec<ipnet::IpNet>) -> Vec<LiveLink> {
    links
        .iter()
        .map(|l| {
            let mut v = LiveLink::new(&l.name, l.index, &l.kind.to_string(), l.alias.as_deref());
            v.addresses = addrs(l);
            v
        })
        .collect()
}

impl Node {
    /// The links of the namespace as reconcile sees them: every link but
    /// those tagged by another overlayd instance, which this one never
    /// adopts, collects or rebuilds from.
    async fn live(&self, with_addresses: bool) -> OpResult<(Vec<LinkInfo>, Vec<LiveLink>)> {
        let mut links = self.host.links().await?;
        links.retain(|l| !plan::is_foreign_instance(l.alias.as_deref(), &self.instance));
        let mut addrs = std::collections::HashMap::new();
        if with_addresses {
            for l in links.iter().filter(|l| {
                l.alias
                    .as_deref()
                    .is_some_and(overlayd_engine::tag::is_overlayd_alias)
            }) {
                addrs.insert(
                    l.index,
                    self.host.addresses(&l.name).await.unwrap_or_default(),
                );
            }
        }
        let live = live_view(&links, |l| addrs.get(&l.index).cloned().unwrap_or_default());
        Ok((links, live))
    }

    /// Owners the store says should exist.
    fn desired_owners(&self) -> OpResult<BTreeSet<Owner>> {
        let mut set: BTreeSet<Owner> = self.marker.iter().map(|e| e.owner.clone()).collect();
        let (services, isos) = self.store.read(|tx| {
            Ok((
                tx.list::<ServiceRecord>(Table::Services)?,
                tx.list::<IsolationRecord>(Table::Isolation)?,
            ))
        })?;
        for (name, s) in services {
            if let Ok(o) = self.service_network(&name, s.mode) {
                set.insert(o);
            }
            if s.mode != ServiceMode::Dedicated {
                set.insert(Owner::SharedNat);
            }
        }
        for (net, _) in isos {
            if let Ok(o) = Owner::isolation(&net) {
                set.insert(o);
            }
        }
        if self.global()?.is_some() {
            set.insert(Owner::Base);
        }
        Ok(set)
    }

    /// The full start-up reconcile. Problems are logged and counted; the
    /// daemon still serves so an operator can inspect and fix them.
    pub async fn reconcile(&mut self, gc: bool) -> ReconcileReport {
        let mut rep = ReconcileReport::default();
        if let Err(e) = self.reconcile_inner(gc, &mut rep).await {
            error!(error = %e, "reconcile did not complete");
        }
        super::metrics::global().reconcile(&rep);
        rep
    }

    async fn reconcile_inner(&mut self, gc: bool, rep: &mut ReconcileReport) -> OpResult<()> {
        let (_, live) = self.live(self.book.needs_rebuild()).await?;
        if self.book.needs_rebuild() {
            self.rebuild_from_host(&live, rep)?;
        }
        let desired = self.desired_owners()?;
        let entries: Vec<_> = self.marker.iter().cloned().collect();
        let namer = self.namer();
        let plan = plan_networks(&NetworkInput {
            recorded: &entries,
            live: &live,
            desired: Desired::Known(&desired),
            namer: namer.engine(),
            gc,
        });
        for action in plan.actions {
            self.execute(action, rep).await;
        }
        if let Err(e) = self.sync_firewall().await {
            error!(error = %e, "cannot apply overlayd's nftables table");
        }
        let reclaimed = rep.reclaimed;
        self.reconcile_attachments(gc, rep).await?;
        if rep.reclaimed > reclaimed {
            // Ports published by containers that went away.
            self.sync_firewall_or_warn().await;
        }
        Ok(())
    }

    /// Rebuild marker entries from tagged links (marker lost or quarantined).
    fn rebuild_from_host(&mut self, live: &[LiveLink], rep: &mut ReconcileReport) -> OpResult<()> {
        let rebuilt = rebuild_from_live(live);
        for s in &rebuilt.skipped {
            warn!(link = %s.link.name, why = %s.why, "tagged link not rebuilt into the marker");
        }
        if rebuilt.entries.is_empty() {
            self.book.rebuilt();
            return Ok(());
        }
        for mut e in rebuilt.entries {
            if let Owner::Isolation(net) = &e.owner {
                if let Some(r) = self
                    .store
                    .read(|tx| tx.get::<IsolationRecord>(Table::Isolation, net))?
                {
                    // A dual-stack bridge carries both gateways: the
                    // subnets come from the desired record, not from
                    // whichever address the link listed first.
                    if e.subnet.is_empty() || r.subnet_v6.is_some() {
                        e.subnet = r.subnet;
                    }
                    e.subnet_v6 = r.subnet_v6;
                }
            }
            self.restore_identity(&mut e)?;
            if self.marker.get(&e.owner).is_none() {
                info!(owner = %e.owner, name = %e.name, "marker entry rebuilt from the host tag");
                self.marker.upsert(e);
                rep.rebuilt += 1;
            }
        }
        self.save_marker()?;
        self.overlay
            .reset_ports(PortBand::from_marker(self.global_port()?, &self.marker));
        self.book.rebuilt();
        Ok(())
    }

    /// Fill a rebuilt entry's overlay identity (port, keys, device) from
    /// the store: tags carry owner and id, never secrets.
    fn restore_identity(&self, e: &mut overlayd_state::NetworkEntry) -> OpResult<()> {
        match e.owner.clone() {
            Owner::Base => {
                if let Some(g) = self.global()? {
                    e.wg_port = Some(g.wg_port);
                    e.wg_public_key = Some(self.overlay.public_base64());
                    e.interface = Some(self.namer().wireguard(&Owner::Base));
                    e.subnet = g.slice_cidr;
                }
            }
            Owner::Service(name) => {
                let rec: Option<ServiceRecord> =
                    self.store.read(|tx| tx.get(Table::Services, &name))?;
                if let Some(r) = rec.filter(|r| r.mode == ServiceMode::Dedicated) {
                    if let Some(k) = r.wg_private_key {
                        let kp = overlayd_state::KeyPair::from_private_base64(&k)?;
                        e.wg_public_key = Some(kp.public_base64());
                        e.wg_private_key = Some(k);
                    }
                    e.wg_port = r.wg_port.or(e.wg_port);
                    e.interface = Some(self.namer().wireguard(&e.owner));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Create a desired overlay network the marker lacks, with the identity
    /// the store keeps (the base from the global record and the node key; a
    /// dedicated service with its recorded port and key). Returns whether
    /// anything was created.
    async fn create_overlay_from_store(&mut self, owner: &Owner) -> OpResult<bool> {
        match owner {
            Owner::Base => {
                let Some(g) = self.global()? else {
                    return Ok(false);
                };
                self.overlay.set_global_port(g.wg_port);
                self.setup_global(g).await?;
                Ok(true)
            }
            Owner::Service(name) => {
                let rec: Option<ServiceRecord> =
                    self.store.read(|tx| tx.get(Table::Services, name))?;
                let Some(rec) = rec.filter(|r| r.mode == ServiceMode::Dedicated) else {
                    return Ok(false);
                };
                let mut entry = self.ensure_bridge(owner.clone(), None).await?;
                if let (Some(port), Some(_)) = (rec.wg_port, &rec.wg_private_key) {
                    self.overlay.reserve_port(port);
                }
                self.restore_identity(&mut entry)?;
                if entry.wg_port.is_some() && entry.wg_private_key.is_some() {
                    self.record(entry.clone())?;
                    self.realize_device(&entry).await?;
                } else {
                    // No identity survived: make a new one like a fresh setup.
                    self.setup_service(name, ServiceMode::Dedicated, false)
                        .await?;
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The node-global WireGuard port: the base overlay's, else the configured one.
    pub fn global_port(&self) -> OpResult<u16> {
        Ok(self
            .global()?
            .map(|g| g.wg_port)
            .unwrap_or(self.cfg.wg_port))
    }

    async fn execute(&mut self, action: Action, rep: &mut ReconcileReport) {
        match action {
            Action::Adopt {
                owner, name, index, ..
            } => {
                rep.adopted += 1;
                info!(%owner, %name, index, "adopted recorded network");
                if let Some(entry) = self.marker.get(&owner).cloned() {
                    if let Err(e) = self.realize_bridge(&entry).await {
                        warn!(%owner, error = %e, "adopted network could not be brought to its recorded shape");
                    }
                    if let Err(e) = self.realize_device(&entry).await {
                        error!(%owner, error = %e, "cannot bring up the network's WireGuard device");
                    }
                }
            }
            Action::Recreate { owner, missing, .. } => {
                if let Some(entry) = self.marker.get(&owner).cloned() {
                    let done = match self.realize_bridge(&entry).await {
                        Ok(_) => self.realize_device(&entry).await,
                        Err(e) => Err(e),
                    };
                    // Only the WireGuard device missing: a userspace device
                    // lives in the daemon's process and is expected to be
                    // brought up again at every start; the network itself
                    // (bridge, members, marker) was adopted.
                    let device_only = !missing.is_empty()
                        && missing
                            .iter()
                            .all(|m| entry.interface.as_deref() == Some(m.as_str()));
                    match done {
                        Ok(()) if device_only => {
                            rep.adopted += 1;
                            rep.devices_restarted += 1;
                            info!(%owner, missing = %missing.join(","), "adopted recorded network; restarted its WireGuard device with its recorded key and port");
                        }
                        Ok(()) => {
                            rep.recreated += 1;
                            match self.replug_members(&owner).await {
                                Ok(0) => {}
                                Ok(n) => {
                                    info!(%owner, containers = n, "re-plugged containers into the recreated bridge")
                                }
                                Err(e) => {
                                    warn!(%owner, error = %e, "cannot re-plug containers into the recreated bridge")
                                }
                            }
                            info!(%owner, missing = %missing.join(","), "recreated recorded network with its recorded identity");
                        }
                        Err(e) => error!(%owner, error = %e, "cannot recreate recorded network"),
                    }
                }
            }
            Action::Create { owner, .. } if matches!(owner, Owner::Base | Owner::Service(_)) => {
                match self.create_overlay_from_store(&owner).await {
                    Ok(true) => rep.created += 1,
                    Ok(false) => {}
                    Err(e) => error!(%owner, error = %e, "cannot create desired overlay network"),
                }
            }
            Action::Create { owner, .. } => {
                let rec = match &owner {
                    Owner::Isolation(net) => self
                        .store
                        .read(|tx| tx.get::<IsolationRecord>(Table::Isolation, net))
                        .ok()
                        .flatten(),
                    _ => None,
                };
                let requested = rec.as_ref().and_then(|r| plan::parse_cidr(&r.subnet).ok());
                // The recorded IPv6 subnet of a dual-stack network is kept.
                let want6 = rec
                    .and_then(|r| r.subnet_v6)
                    .and_then(|s| plan::parse_cidr(&s).ok())
                    .map_or(WantV6::No, WantV6::Subnet);
                let want6 = match owner {
                    Owner::SharedNat => self.shared_nat_want6(),
                    _ => want6,
                };
                match self.ensure_bridge_v6(owner.clone(), requested, want6).await {
                    Ok(_) => rep.created += 1,
                    Err(e) => error!(%owner, error = %e, "cannot create desired network"),
                }
            }
            Action::DeleteOrphan { link, tag } => {
                rep.orphans += 1;
                match self.host.delete_link(&link.name).await {
                    Ok(_) => {
                        info!(link = %link.name, tag = %tag, "deleted tagged link that nothing records")
                    }
                    Err(e) => warn!(link = %link.name, error = %e, "cannot delete orphan link"),
                }
            }
            Action::ReportOrphan { link, alias } => {
                rep.orphans += 1;
                warn!(link = %link.name, %alias, "tagged link that nothing records (kept: gc disabled)");
            }
            Action::DropRecord { owner, .. } => {
                warn!(%owner, "recorded network is no longer desired; kept until torn down or purged");
            }
            Action::Conflict { owner, name, why } => {
                rep.conflicts += 1;
                error!(%owner, %name, %why, "recorded name is held by a link overlayd does not own; left alone");
            }
            Action::KeepForeignKind { owner, kind } => {
                info!(%owner, %kind, "marker entry of another platform's kind kept untouched");
            }
            Action::KeepUnknownOwner { owner } => {
                info!(%owner, "marker entry with an owner this build does not know kept untouched");
            }
        }
    }

    /// Finish interrupted attaches (rolled back) and detaches (completed),
    /// reclaim attachments whose container is gone or whose veth vanished,
    /// delete orphan veths that carry our tag but no record, and plug in
    /// again attached veths someone unplugged.
    pub async fn reconcile_attachments(
        &mut self,
        gc: bool,
        rep: &mut ReconcileReport,
    ) -> OpResult<()> {
        rep.finished += self.finish_half_done().await?;
        let (_, mut live) = self.live(false).await?;
        // Records and veths a running attach or detach has in flight are its
        // business (half-done, not missing or orphaned): both are left out,
        // as of one moment.
        let (busy_records, busy_veths) = self.inflight.claimed();
        live.retain(|l| !busy_veths.contains(&l.name));
        // Guests run their own WireGuard: no veth, nothing to reconcile here.
        let atts: Vec<(String, Attachment)> = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .filter(|(_, a)| a.guest_private_key.is_none() && a.state == AttachState::Attached)
            .filter(|(k, _)| !busy_records.contains(k))
            .collect();
        let mut records = Vec::with_capacity(atts.len());
        for (key, a) in &atts {
            // A handle that now names another namespace (a reused PID)
            // means the recorded container is gone.
            let alive = match netns_target(&a.handle) {
                Ok(t) => {
                    self.host.netns_alive(&t).await.unwrap_or(true)
                        && !super::attach::is_other_namespace(
                            a,
                            self.host.netns_identity(&t).await.unwrap_or(None),
                        )
                }
                Err(_) => true,
            };
            records.push(AttachmentRecord {
                key: key.clone(),
                host_ifname: a.host_ifname.clone(),
                id: Some(a.id.clone()),
                target_alive: alive,
            });
        }
        let plan = plan_attachments(&records, &live, gc);
        for action in plan.actions {
            match action {
                AttachAction::Keep { .. } => {}
                AttachAction::Reclaim { key, veth } => {
                    if let Some(v) = veth {
                        if let Err(e) = self.host.detach_veth(&v.name).await {
                            warn!(veth = %v.name, error = %e, "cannot delete reclaimed veth");
                            continue;
                        }
                    }
                    if let Some((_, a)) = atts.iter().find(|(k, _)| *k == key) {
                        self.drop_attachment(a)?;
                    }
                    self.bury_attachment(&key);
                    rep.reclaimed += 1;
                    info!(handle = %key, "reclaimed attachment: container is gone");
                }
                AttachAction::DropLost { key } => {
                    if let Some((_, a)) = atts.iter().find(|(k, _)| *k == key) {
                        self.drop_attachment(a)?;
                    }
                    rep.reclaimed += 1;
                    info!(handle = %key, "dropped attachment whose veth is gone");
                }
                AttachAction::DeleteOrphanVeth { link, .. } => {
                    rep.orphans += 1;
                    match self.host.detach_veth(&link.name).await {
                        Ok(_) => {
                            info!(veth = %link.name, "deleted tagged veth that no attachment records")
                        }
                        Err(e) => warn!(veth = %link.name, error = %e, "cannot delete orphan veth"),
                    }
                }
                AttachAction::ReportOrphanVeth { link, .. } => {
                    rep.orphans += 1;
                    warn!(veth = %link.name, "tagged veth that no attachment records (kept: gc disabled)");
                }
            }
        }
        rep.replugged += self.replug_unplugged().await?;
        Ok(())
    }

    /// The periodic check: restore our nftables table if it drifted and
    /// reclaim attachments of containers that went away.
    pub async fn periodic_check(&mut self) {
        self.restore_firewall_if_drifted().await;
        self.check_peer_health(std::time::SystemTime::now()).await;
        let mut rep = ReconcileReport::default();
        let gc = self.cfg.gc;
        if let Err(e) = self.reconcile_attachments(gc, &mut rep).await {
            warn!(error = %e, "attachment check failed");
        }
        if rep.reclaimed > 0 {
            // Ports published by containers that went away.
            self.sync_firewall_or_warn().await;
        }
    }

    /// Compare the live firewall with what is recorded and re-apply it when
    /// someone deleted or edited it. Returns whether it had drifted.
    pub async fn restore_firewall_if_drifted(&self) -> bool {
        let spec = self.firewall_spec();
        match self.host.firewall_matches(&spec).await {
            Ok(true) => false,
            Ok(false) => {
                warn!(
                    "overlayd's nftables table was deleted, flushed or edited by someone else; restoring it"
                );
                if let Err(e) = self.host.apply_firewall(&spec).await {
                    error!(error = %e, "cannot restore overlayd's nftables table");
                }
                true
            }
            Err(e) => {
                warn!(error = %e, "cannot read overlayd's nftables table");
                false
            }
        }
    }
}
