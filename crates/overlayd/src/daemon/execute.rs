//! The executor of request plans (`overlayd_engine::request`): runs a plan's
//! steps in order, each as one host, store or marker operation, and when a
//! step fails runs the undo of the steps already done, last first (and
//! the failed step's own, when it may be half done). Undo is
//! best effort: its errors are logged and the step's own error is returned.
//! Best-effort steps (the objects of a teardown) collect their failures
//! instead, and a `RequireAllRemoved` step reports them together.
//!
//! How each step is done lives here; whether and in which order is the
//! engine's decision.

use overlayd_engine::request::dns::Tombstone;
use overlayd_engine::request::global::GlobalDesired;
use overlayd_engine::request::peers::PeerDesired;
use overlayd_engine::request::{IsolationDesired, Plan, ServiceDesired, ServiceKind, Step};
use overlayd_proto::ServiceMode;
use overlayd_state::{Owner, Table};
use tracing::{debug, info, warn};

use super::error::{OpError, OpResult};
use super::missing;
use super::node::Node;
use super::overlay::{parse_pubkey, wg_call};
use super::plan;
use super::records::{
    peer_key, DnsRecord, GlobalRecord, IsolationRecord, Lease, PeerRecord, ServiceRecord,
    GLOBAL_KEY,
};

impl From<overlayd_engine::request::Refusal> for OpError {
    fn from(r: overlayd_engine::request::Refusal) -> Self {
        use overlayd_engine::request::Refusal;
        match r {
            Refusal::Conflict(m) => OpError::Conflict(m),
            Refusal::Invalid(m) => OpError::Invalid(m),
            Refusal::State(m) => OpError::State(m),
            Refusal::NotFound(m) => OpError::NotFound(m),
            Refusal::Unsupported(m) => OpError::Unsupported(m),
        }
    }
}

impl From<&IsolationDesired> for IsolationRecord {
    fn from(d: &IsolationDesired) -> Self {
        IsolationRecord {
            subnet: d.subnet.clone(),
            internal: d.internal,
            subnet_v6: d.subnet_v6.clone(),
        }
    }
}

impl From<&IsolationRecord> for IsolationDesired {
    fn from(r: &IsolationRecord) -> Self {
        IsolationDesired {
            subnet: r.subnet.clone(),
            internal: r.internal,
            subnet_v6: r.subnet_v6.clone(),
        }
    }
}

impl From<&GlobalDesired> for GlobalRecord {
    fn from(d: &GlobalDesired) -> Self {
        GlobalRecord {
            deployment: d.deployment.clone(),
            instance_id: d.instance_id.clone(),
            cluster_cidr: d.cluster_cidr.clone(),
            slice_cidr: d.slice_cidr.clone(),
            wg_port: d.wg_port,
            nat_enabled: d.nat_enabled,
        }
    }
}

impl From<&GlobalRecord> for GlobalDesired {
    fn from(r: &GlobalRecord) -> Self {
        GlobalDesired {
            deployment: r.deployment.clone(),
            instance_id: r.instance_id.clone(),
            cluster_cidr: r.cluster_cidr.clone(),
            slice_cidr: r.slice_cidr.clone(),
            wg_port: r.wg_port,
            nat_enabled: r.nat_enabled,
        }
    }
}

impl From<&PeerDesired> for PeerRecord {
    fn from(d: &PeerDesired) -> Self {
        PeerRecord {
            network: d.network.clone(),
            public_key: d.public_key.clone(),
            endpoint: d.endpoint.clone(),
            allowed_ips: d.allowed_ips.clone(),
            persistent_keepalive_secs: d.persistent_keepalive_secs,
            cluster: d.cluster,
        }
    }
}

impl From<&PeerRecord> for PeerDesired {
    fn from(r: &PeerRecord) -> Self {
        PeerDesired {
            network: r.network.clone(),
            public_key: r.public_key.clone(),
            endpoint: r.endpoint.clone(),
            allowed_ips: r.allowed_ips.clone(),
            persistent_keepalive_secs: r.persistent_keepalive_secs,
            cluster: r.cluster,
        }
    }
}

/// The engine's kind of a service mode (`auto` is `shared`).
pub fn service_kind(mode: ServiceMode) -> ServiceKind {
    match mode.resolve() {
        ServiceMode::Dedicated => ServiceKind::Dedicated,
        _ => ServiceKind::Shared,
    }
}

/// The wire mode of an engine service kind.
pub fn service_mode(kind: ServiceKind) -> ServiceMode {
    match kind {
        ServiceKind::Shared => ServiceMode::Shared,
        ServiceKind::Dedicated => ServiceMode::Dedicated,
    }
}

impl From<&ServiceDesired> for ServiceRecord {
    fn from(d: &ServiceDesired) -> Self {
        ServiceRecord {
            mode: service_mode(d.kind),
            wg_port: d.wg_port,
            wg_private_key: d.wg_private_key.clone(),
        }
    }
}

/// A stored service record as the engine compares it; a record stored
/// with mode `auto` matches nothing the engine plans, so it is rewritten.
pub fn service_desired(r: &ServiceRecord) -> Option<ServiceDesired> {
    (r.mode != ServiceMode::Auto).then(|| ServiceDesired {
        kind: service_kind(r.mode),
        wg_port: r.wg_port,
        wg_private_key: r.wg_private_key.clone(),
    })
}

impl Node {
    /// Carry out `plan`; on a failure undo what was done and return the
    /// failure.
    pub async fn execute_plan(&mut self, plan: Plan) -> OpResult<()> {
        debug!(?plan, "executing plan");
        let mut done: Vec<Vec<Step>> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        for planned in plan.steps {
            let result = match &planned.step {
                Step::RequireAllRemoved { owner } if !failed.is_empty() => {
                    Err(OpError::HostFailed(format!(
                        "cannot remove all of {owner} ({}); it stays recorded, retry to finish",
                        std::mem::take(&mut failed).join("; ")
                    )))
                }
                step => self.run_step(step).await,
            };
            match result {
                Ok(()) => done.push(planned.undo),
                Err(e) if planned.best_effort => {
                    failed.push(format!("{}: {}", planned.step.subject(), bare(&e)))
                }
                Err(e) => {
                    if planned.undo_if_failed {
                        done.push(planned.undo);
                    }
                    self.undo(done).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Run the undo of the steps done, last first; errors are logged.
    async fn undo(&mut self, done: Vec<Vec<Step>>) {
        for step in done.into_iter().rev().flatten() {
            if let Err(e) = self.run_step(&step).await {
                warn!(?step, error = %e, "cannot undo a step of a failed request; the periodic check or a retry finishes it");
            }
        }
    }

    /// Do one step: the marker and the port band need the node; the rest
    /// is [`Node::run_shared`].
    async fn run_step(&mut self, step: &Step) -> OpResult<()> {
        match step {
            Step::RecordEntry { entry } => self.record(entry.clone())?,
            Step::ForgetEntry { owner } => {
                if self.forget(owner)?.is_some() {
                    info!(%owner, "network removed");
                }
            }
            Step::ReservePort { port } => {
                self.overlay.reserve_port(*port);
            }
            Step::ReleasePort { port } => {
                self.overlay.release_port(*port);
            }
            Step::SetGlobalPort { port } => self.overlay.set_global_port(*port),
            step => self.run_shared(step).await?,
        }
        Ok(())
    }

    /// Carry out a plan of host and store steps only (no marker or port
    /// change), e.g. bringing a recorded bridge to its shape; on a failure
    /// undo what was done.
    pub async fn execute_shared(&self, plan: Plan) -> OpResult<()> {
        let mut done: Vec<Vec<Step>> = Vec::new();
        for planned in plan.steps {
            if let Err(e) = self.run_shared(&planned.step).await {
                if planned.undo_if_failed {
                    done.push(planned.undo);
                }
                for step in done.into_iter().rev().flatten() {
                    if let Err(e) = self.run_shared(&step).await {
                        warn!(?step, error = %e, "cannot undo a step of a failed request");
                    }
                }
                return Err(e);
            }
            done.push(planned.undo);
        }
        Ok(())
    }

    /// Carry out a plan of store and served-set steps only (a DNS name),
    /// without awaiting anything: the same order and undo rules as
    /// [`Node::execute_shared`], for requests answered synchronously.
    pub fn execute_local(&self, plan: Plan) -> OpResult<()> {
        let mut done: Vec<Vec<Step>> = Vec::new();
        for planned in plan.steps {
            if let Err(e) = self.run_local(&planned.step) {
                if planned.undo_if_failed {
                    done.push(planned.undo);
                }
                for step in done.into_iter().rev().flatten() {
                    if let Err(e) = self.run_local(&step) {
                        warn!(?step, error = %e, "cannot undo a step of a failed request");
                    }
                }
                return Err(e);
            }
            done.push(planned.undo);
        }
        Ok(())
    }

    /// Do one step that needs no host: a DNS name in the store or the
    /// served set.
    fn run_local(&self, step: &Step) -> OpResult<()> {
        match step {
            Step::WriteDnsName {
                key,
                ips,
                tombstone,
            } => self.store.write(|tx| {
                match ips {
                    Some(ips) => tx.put(Table::Dns, key, &DnsRecord { ips: ips.clone() })?,
                    None => {
                        tx.remove(Table::Dns, key)?;
                    }
                }
                let tomb = format!("dns:{key}");
                match tombstone {
                    Tombstone::Leave => Ok(()),
                    Tombstone::Bury => missing::bury(tx, &tomb),
                    Tombstone::Unbury => missing::unbury(tx, &tomb),
                }
            })?,
            Step::ServeDnsName { key, ips } => {
                let served = if ips.is_empty() {
                    self.records.remove(key).map(|_| ())
                } else {
                    self.records.set(key, ips.iter().copied())
                };
                served.map_err(|e| OpError::Invalid(e.to_string()))?;
            }
            step => {
                return Err(OpError::State(format!(
                    "{step:?} needs the host or the node, not only the store"
                )))
            }
        }
        Ok(())
    }

    /// Do one step that changes neither the marker nor the port band.
    async fn run_shared(&self, step: &Step) -> OpResult<()> {
        match step {
            Step::PutIsolation {
                network,
                record,
                unbury,
            } => {
                let rec = IsolationRecord::from(record);
                self.store.write(|tx| {
                    tx.put(Table::Isolation, network, &rec)?;
                    match unbury {
                        Some(o) => missing::unbury(tx, &o.to_string()),
                        None => Ok(()),
                    }
                })?;
            }
            Step::RemoveIsolation { network, bury } => self.store.write(|tx| {
                tx.remove(Table::Isolation, network)?;
                match bury {
                    Some(o) => missing::bury(tx, &o.to_string()),
                    None => Ok(()),
                }
            })?,
            Step::PutService {
                service,
                record,
                unbury,
            } => {
                let rec = ServiceRecord::from(record);
                self.store.write(|tx| {
                    tx.put(Table::Services, service, &rec)?;
                    match unbury {
                        Some(o) => missing::unbury(tx, &o.to_string()),
                        None => Ok(()),
                    }
                })?;
            }
            Step::RemoveService { service, bury } => self.store.write(|tx| {
                tx.remove(Table::Services, service)?;
                match bury {
                    Some(o) => missing::bury(tx, &o.to_string()),
                    None => Ok(()),
                }
            })?,
            Step::CreateBridge { entry } => {
                let tag = plan::network_tag(&entry.owner, &entry.id, &self.instance);
                let mtu = self.network_mtu(entry).await;
                self.host.create_bridge(&entry.name, &tag, mtu).await?;
            }
            Step::AdoptBridge { name } => {
                debug!(bridge = %name, "adopting a tagged bridge nothing records")
            }
            Step::ConfigureBridge { entry } => {
                let subnet = plan::parse_cidr(&entry.subnet).map_err(|_| {
                    OpError::State(format!(
                        "{}: recorded subnet {:?} is not a CIDR",
                        entry.owner, entry.subnet
                    ))
                })?;
                let gateway = plan::gateway_cidr(subnet)?;
                let gateway6 = super::dual_stack::subnet_v6(entry)?
                    .map(plan::gateway_cidr)
                    .transpose()?;
                self.host.add_address(&entry.name, gateway).await?;
                if let Some(g6) = gateway6 {
                    self.host.add_address(&entry.name, g6).await?;
                }
                self.host.set_up(&entry.name, true).await?;
            }
            Step::DeleteBridge { name } => {
                self.host.delete_link(name).await?;
            }
            Step::SyncFirewall => self.sync_firewall_or_warn().await,
            Step::ApplyFirewall => self.sync_firewall().await?,
            Step::PutGlobal { record } => {
                let rec = GlobalRecord::from(record);
                self.store
                    .write(|tx| tx.put(Table::Global, GLOBAL_KEY, &rec))?;
            }
            Step::RemoveGlobal { with_peers } => self.store.write(|tx| {
                tx.remove(Table::Global, GLOBAL_KEY)?;
                if *with_peers {
                    tx.remove_prefix(Table::Peers, &format!("{}|", Owner::Base))?;
                }
                Ok(())
            })?,
            Step::RealizeDevice { entry } => self.realize_device(entry).await?,
            Step::DeleteDevice { name } => {
                let d = name.clone();
                wg_call(&self.wg, move |wg| wg.delete(&d)).await?;
            }
            Step::Unreadable { error, .. } => return Err(OpError::Unavailable(error.clone())),
            Step::RequireAllRemoved { .. } => {}
            Step::DropLeases { network } => self.store.write(|tx| {
                for (k, l) in tx.list::<Lease>(Table::Leases)? {
                    if l.network == *network {
                        tx.remove(Table::Leases, &k)?;
                    }
                }
                Ok(())
            })?,
            Step::ForgetPeers { owner } => self.forget_peers(owner)?,
            Step::ReleaseClusterSubnet { owner } => self.cluster_release(owner).await,
            Step::PutPeer { record } => {
                let rec = PeerRecord::from(record);
                let key = peer_key(&rec.network, &rec.public_key);
                self.store.write(|tx| tx.put(Table::Peers, &key, &rec))?;
            }
            Step::RemovePeerRecord {
                network,
                public_key,
            } => {
                let key = peer_key(network, public_key);
                self.store
                    .write(|tx| tx.remove(Table::Peers, &key).map(|_| ()))?;
            }
            Step::ProgramPeer { device, record } => {
                self.apply_peer(device, &PeerRecord::from(record)).await?
            }
            Step::RemoveDevicePeer { device, public_key } => {
                let pk = parse_pubkey(public_key)?;
                let d = device.clone();
                wg_call(&self.wg, move |wg| wg.remove_peer(&d, &pk)).await?;
            }
            Step::RemoveAllowedIp {
                device,
                public_key,
                net,
            } => {
                let (pk, d, n) = (parse_pubkey(public_key)?, device.clone(), *net);
                wg_call(&self.wg, move |wg| wg.remove_allowed_ip(&d, &pk, n)).await?;
            }
            Step::DeleteRoutes { device, nets } => {
                for n in nets {
                    let _ = self.host.delete_route(*n, device).await;
                }
            }
            Step::AddAddress { link, addr } => self.host.add_address(link, *addr).await?,
            Step::DeleteAddress { link, addr } => {
                self.host.delete_address(link, *addr).await?;
            }
            Step::SyncDnsListeners => self.sync_dns_listeners().await,
            Step::WriteDnsName { .. } | Step::ServeDnsName { .. } => self.run_local(step)?,
            Step::RecordEntry { .. }
            | Step::ForgetEntry { .. }
            | Step::ReservePort { .. }
            | Step::ReleasePort { .. }
            | Step::SetGlobalPort { .. } => {
                return Err(OpError::State(format!(
                    "{step:?} changes the marker or port band and needs the node"
                )))
            }
        }
        Ok(())
    }

    /// The live link holding `name`, as the engine sees it.
    pub(crate) async fn live_link(
        &self,
        name: &str,
    ) -> OpResult<Option<overlayd_engine::LiveLink>> {
        Ok(self.host.link(name).await?.map(|l| {
            overlayd_engine::LiveLink::new(
                &l.name,
                l.index,
                &l.kind.to_string(),
                l.alias.as_deref(),
            )
        }))
    }

    /// The live link holding `name` for a removal: a failed lookup is a
    /// fact too (the removal reports it and keeps the network recorded).
    pub(crate) async fn link_fact(&self, name: &str) -> overlayd_engine::request::bridge::LinkFact {
        use overlayd_engine::request::bridge::LinkFact;
        match self.live_link(name).await {
            Ok(Some(l)) => LinkFact::Present(l),
            Ok(None) => LinkFact::Absent,
            Err(e) => LinkFact::Unreadable(bare(&e)),
        }
    }
}

/// An error as a best-effort failure names it: a host error bare (the
/// report already says it is the host's), others as they read.
pub(crate) fn bare(e: &OpError) -> String {
    match e {
        OpError::Host(h) => h.to_string(),
        other => other.to_string(),
    }
}
