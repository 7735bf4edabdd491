//! The node: everything one daemon instance owns — the marker, the store,
//! the node key, the port band, the host backend — and the routing of
//! state-changing requests to the module that implements them.

use std::sync::Arc;

use overlayd_host::Host;
use overlayd_proto::{Event, Request, Response};
use overlayd_state::{LoadOutcome, Marker, MarkerFile, NetworkEntry, Owner, PortBand, Table};
use tokio::sync::broadcast;
use tracing::{error, info, warn};

use super::error::{OpError, OpResult};
use super::records::{META_NODE_ID, META_ORCH_PUBKEY};
use crate::config::Config;

/// Everything one daemon instance owns: the state read-only requests need
/// ([`Core`], reached through `Deref`, and published as a snapshot after
/// every marker save) and the state each service keeps for its mutations,
/// each in a type of its own whose fields only its module sees:
///
/// | service | its own state |
/// |---|---|
/// | networks | [`MarkerBook`]: the marker file, the rebuild flag, the published snapshot |
/// | overlay (devices, peers) | [`OverlayState`]: the node key, the dedicated port band, peer health |
/// | attachments | [`InFlight`]: containers with a request in flight, claimed records and veths |
/// | DNS | the [`overlayd_dns::DnsServer`]: listeners and scope (the record set is in `Core`) |
///
/// [`MarkerBook`]: super::marker_book::MarkerBook
/// [`OverlayState`]: super::overlay_state::OverlayState
/// [`InFlight`]: super::inflight::InFlight
pub struct Node {
    /// What reads need; every `&self` helper that only reads lives on it.
    pub core: Core,
    /// The networks service's own state.
    pub book: super::marker_book::MarkerBook,
    /// The overlay service's own state.
    pub overlay: super::overlay_state::OverlayState,
    /// The attachments service's own state, shared with the dispatcher:
    /// attaches and detaches whose veth work runs outside the node lock.
    pub inflight: super::inflight::InFlight,
    /// The DNS service: its server.
    pub dns: overlayd_dns::DnsServer,
    /// Event fan-out.
    pub events: broadcast::Sender<Event>,
    /// Cluster mode, when `[cluster]` is configured.
    pub cluster: Option<Arc<super::cluster::ClusterHandle>>,
}

/// The state read-only requests are answered from. The node owns one and
/// mutates it under its lock; after each marker save a clone is published
/// (the marker by value, the rest shared handles: the store answers
/// concurrent read transactions, the DNS record set and the host are
/// thread-safe), so `status`, `list_networks`, the listings and the
/// inspects read a consistent, completed state without the node lock.
#[derive(Clone)]
pub struct Core {
    /// Resolved configuration.
    pub cfg: Config,
    /// The marker as last saved (on the node: as being changed).
    pub marker: Marker,
    /// Transactional store.
    pub store: super::blocking::SharedStore,
    /// Kernel boundary.
    pub host: Arc<dyn Host>,
    /// WireGuard backend.
    pub wg: Arc<dyn overlayd_wg::WgBackend>,
    /// DNS records being served.
    pub records: overlayd_dns::Records,
    /// This daemon instance's id ([`super::plan::instance_id`]), written in
    /// every tag so two instances in one namespace never touch each other's
    /// links.
    pub instance: String,
    /// The node's public key.
    pub public_key: [u8; 32],
}

impl std::ops::Deref for Node {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Core {
        &mut self.core
    }
}

impl Node {
    /// Load (or create) everything from the data dir. A corrupt marker is
    /// quarantined and rebuilt from the host at reconcile time; a marker of a
    /// newer version is refused.
    ///
    /// The store and node key are checked against the marker
    /// ([`super::state_files`]); `rebuild_store` lets a lost or damaged
    /// store be set aside and started afresh (gc is then off for this run,
    /// so live containers' veths that only the lost store recorded survive).
    pub async fn open(
        mut cfg: Config,
        host: Arc<dyn Host>,
        wg: Arc<dyn overlayd_wg::WgBackend>,
        events: broadcast::Sender<Event>,
        rebuild_store: bool,
    ) -> anyhow::Result<Self> {
        let marker_file = MarkerFile::new(&cfg.data_dir);
        let (marker, rebuild_marker) = match marker_file.load()? {
            LoadOutcome::Loaded(m) => (m, false),
            LoadOutcome::Missing => (Marker::default(), true),
            LoadOutcome::Quarantined {
                moved_to,
                reason,
                salvaged,
            } => {
                error!(
                    moved_to = %moved_to.display(),
                    %reason,
                    kept = salvaged.len(),
                    "network-state marker was corrupt: quarantined it, kept every readable entry; rebuilding the rest from host objects tagged by overlayd"
                );
                (salvaged, true)
            }
        };
        for e in marker.iter().filter(|e| !e.is_linux_managed()) {
            warn!(owner = %e.owner, kind = %e.kind, "marker entry of a kind this platform cannot manage: kept untouched");
        }
        let (store, rebuilt) =
            super::state_files::open_store(&cfg.data_dir, &marker, rebuild_store)?;
        if rebuilt {
            warn!("state store rebuilt: tagged objects nothing records are reported, not deleted, until the next start");
            cfg.gc = false;
        }
        let key = super::state_files::load_node_key(&cfg.data_dir, &marker)?;
        let global_port = store
            .read(|tx| {
                tx.get::<super::records::GlobalRecord>(Table::Global, super::records::GLOBAL_KEY)
            })?
            .map(|g| g.wg_port)
            .unwrap_or(cfg.wg_port);
        let ports = PortBand::from_marker(global_port, &marker);
        let (records, dns) = super::dns::start(&cfg, &store).await?;
        info!(entries = marker.len(), data_dir = %cfg.data_dir.display(), "state loaded");
        let store = super::blocking::SharedStore::new(store);
        let core = Core {
            instance: super::plan::instance_id(&cfg.data_dir),
            cfg,
            marker,
            store,
            host,
            wg,
            records,
            public_key: key.public,
        };
        Ok(Node {
            book: super::marker_book::MarkerBook::new(marker_file, rebuild_marker, &core),
            core,
            overlay: super::overlay_state::OverlayState::new(key, ports),
            inflight: Default::default(),
            dns,
            events,
            cluster: None,
        })
    }

    /// Save the marker durably, then publish the state for reads.
    pub fn save_marker(&self) -> OpResult<()> {
        self.book.save(&self.marker)?;
        self.publish();
        Ok(())
    }

    /// Publish the current [`Core`] for read-only requests.
    pub fn publish(&self) {
        self.book.publish(&self.core);
    }

    /// Record (or replace) an entry and save, rolling the in-memory marker
    /// back if the save fails.
    pub fn record(&mut self, entry: NetworkEntry) -> OpResult<()> {
        let previous = self.marker.upsert(entry.clone());
        let created = previous.is_none();
        if let Err(e) = self.save_marker() {
            match previous {
                Some(p) => {
                    self.marker.upsert(p);
                }
                None => {
                    self.marker.remove(&entry.owner);
                }
            }
            return Err(e);
        }
        if created {
            self.emit(Event::NetworkCreated {
                owner: entry.owner.to_string(),
                name: entry.name,
            });
        }
        Ok(())
    }

    /// Forget an entry and save, rolling back on failure.
    pub fn forget(&mut self, owner: &Owner) -> OpResult<Option<NetworkEntry>> {
        let Some(old) = self.marker.remove(owner) else {
            return Ok(None);
        };
        if let Err(e) = self.save_marker() {
            self.marker.upsert(old);
            return Err(e);
        }
        self.emit(Event::NetworkRemoved {
            owner: old.owner.to_string(),
            name: old.name.clone(),
        });
        Ok(Some(old))
    }

    /// Flush at stop: the store commits every transaction, so only the
    /// marker needs a final save.
    pub fn flush(&self) -> OpResult<()> {
        self.save_marker()
    }

    /// Handle a request and announce what it changed to subscribers.
    pub async fn handle(&mut self, request: Request) -> OpResult<Response> {
        let probe = self.probe(&request);
        let response = self.route(request).await?;
        self.announce(probe, &response);
        Ok(response)
    }

    /// Route a request to the module that implements it.
    async fn route(&mut self, request: Request) -> OpResult<Response> {
        if let Some(answer) = self.core.answer_read(&request).await {
            return answer;
        }
        match request {
            // Answered by `answer_read` just above.
            Request::Status
            | Request::ListNetworks
            | Request::ListServices
            | Request::ListAttachments
            | Request::ListDnsRecords
            | Request::InspectAttachment { .. }
            | Request::InspectInterface { .. } => Err(OpError::State(format!(
                "{} is a read and is answered by Core::answer_read",
                request.op()
            ))),
            Request::SetLocalNodeId { node_id } => {
                self.store
                    .write(|tx| tx.put(Table::Meta, META_NODE_ID, &node_id))?;
                Ok(Response::Ok)
            }
            Request::SetLocalWgPubkey { pubkey } => {
                overlayd_state::keys::decode_key(&pubkey)
                    .map_err(|e| OpError::Invalid(format!("pubkey: {e}")))?;
                if pubkey != self.overlay.public_base64() {
                    warn!("orchestrator's recorded public key differs from this node's key; the node key is authoritative");
                }
                self.store
                    .write(|tx| tx.put(Table::Meta, META_ORCH_PUBKEY, &pubkey))?;
                Ok(Response::Ok)
            }
            Request::SetupIsolationNetwork {
                network,
                subnet,
                internal,
                ipv6,
                subnet_v6,
            } => {
                self.setup_isolation(
                    &network,
                    subnet.as_deref(),
                    internal,
                    ipv6,
                    subnet_v6.as_deref(),
                )
                .await
            }
            Request::TeardownIsolationNetwork { network } => {
                self.teardown_isolation(&network).await
            }
            Request::SetupServiceOverlay {
                service,
                mode,
                recreate,
            } => self.setup_service(&service, mode, recreate).await,
            Request::TeardownServiceOverlay { service } => self.teardown_service(&service).await,
            Request::AllocateIp {
                service,
                join_global,
            } => self.allocate_ip(&service, join_global).await,
            Request::ReleaseIp { ip } => self.release_ip(&ip),
            Request::AttachContainer { .. }
            | Request::DetachContainer { .. }
            | Request::ConnectContainer { .. }
            | Request::DisconnectContainer { .. } => self.container_op(request).await,
            Request::SetupGlobalOverlay {
                deployment,
                instance_id,
                cluster_cidr,
                slice_cidr,
                wg_port,
                nat_enabled,
            } => {
                // ZLayer's daemon never sends a slice: the address plan
                // picks (and records) one unique to this node; in cluster
                // mode the slice is leased from etcd instead.
                let requested = slice_cidr
                    .as_deref()
                    .map(super::plan::parse_cidr)
                    .transpose()?;
                let leased = self.cluster_slice(&cluster_cidr, requested).await?;
                let slice_cidr = match (slice_cidr, leased) {
                    (_, Some(s)) => s.to_string(),
                    (Some(s), None) => s,
                    (None, None) => self.planned_slice(&cluster_cidr)?,
                };
                self.setup_global(super::records::GlobalRecord {
                    deployment,
                    instance_id,
                    cluster_cidr,
                    slice_cidr,
                    wg_port,
                    nat_enabled,
                })
                .await
            }
            Request::TeardownGlobalOverlay => self.teardown_global().await,
            Request::AddPeer {
                public_key,
                endpoint,
                allowed_ips,
                persistent_keepalive_secs,
                scope,
            } => {
                self.add_peer(
                    &public_key,
                    &endpoint,
                    &allowed_ips,
                    persistent_keepalive_secs,
                    scope,
                )
                .await
            }
            Request::RemovePeer { pubkey, scope } => self.remove_peer(&pubkey, scope).await,
            Request::AddAllowedIp {
                pubkey,
                cidr,
                scope,
            } => self.change_allowed_ip(&pubkey, &cidr, scope, true).await,
            Request::RemoveAllowedIp {
                pubkey,
                cidr,
                scope,
            } => self.change_allowed_ip(&pubkey, &cidr, scope, false).await,
            Request::RegisterDns { name, ip } => self.register_dns(&name, &ip),
            Request::UnregisterDns { name, force } => self.unregister_dns(&name, force),
            Request::Reconcile => {
                let gc = self.cfg.gc;
                let r = self.reconcile(gc).await;
                let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
                Ok(Response::Reconciled {
                    adopted: n(r.adopted),
                    recreated: n(r.recreated),
                    created: n(r.created),
                    orphans: n(r.orphans),
                    reclaimed: n(r.reclaimed + r.finished + r.replugged),
                    conflicts: n(r.conflicts),
                })
            }
            Request::PruneNetworks { include_dedicated } => {
                self.prune_networks(include_dedicated).await
            }
            Request::ClusterStatus => self.cluster_status().await,
            Request::ClusterLeave { release } => self.cluster_leave(release).await,
            Request::MoveNetwork { network, subnet } => {
                self.move_network(&network, subnet.as_deref()).await
            }
            Request::Hello { .. }
            | Request::Shutdown
            | Request::SubscribeEvents
            | Request::NatTick => Ok(Response::Ok),
        }
    }
}
