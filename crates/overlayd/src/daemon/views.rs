//! Read-only answers: `status` (base overlay, peers with their last
//! handshake, dedicated services) and `list_networks` (every marker entry
//! with its live state, including entries of kinds this platform cannot
//! manage).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::UNIX_EPOCH;

use overlayd_proto::{
    DedicatedServiceStatus, NetworkView, PeerStatus, Request, Response, StatusInfo,
};
use overlayd_state::{Marker, Owner, Store, Table};
use serde_json::{json, Map};

use super::attach_state::attachment_problem;
use super::error::OpResult;
use super::node::{Core, Node};
use super::overlay::wg_call;
use super::plan;
use super::records::{Attachment, GlobalRecord, PeerRecord, ServiceRecord, GLOBAL_KEY};

/// Where read-only requests are answered: the [`Core`] the node published
/// after its last marker save (the marker by value; the store, host,
/// WireGuard backend and DNS records as shared handles that answer
/// concurrent reads). Nothing here takes the node lock, so a read answers at
/// once while a mutation waits on a slow host operation, and always reflects
/// completed changes only.
#[derive(Clone)]
pub struct ReadView {
    published: Arc<RwLock<Arc<Core>>>,
}

impl ReadView {
    /// A view of what is published in `published`.
    pub fn new(published: Arc<RwLock<Arc<Core>>>) -> Self {
        ReadView { published }
    }

    /// The state as last published.
    pub fn snapshot(&self) -> Arc<Core> {
        self.published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Answer a read-only request, or give it back when it is not one.
    pub async fn answer(&self, request: &Request) -> Option<OpResult<Response>> {
        self.snapshot().answer_read(request).await
    }
}

impl Core {
    /// Answer a read-only request from this state, or `None` when the
    /// request changes something. The one routing of reads: the read view
    /// uses it on the published snapshot, the node on its live state.
    pub async fn answer_read(&self, request: &Request) -> Option<OpResult<Response>> {
        Some(match request {
            Request::Status => self.status().await,
            Request::ListNetworks => self.list_networks().await,
            Request::ListServices => self.list_services(),
            Request::ListAttachments => self.list_attachments(),
            Request::ListDnsRecords => Ok(self.list_dns()),
            Request::InspectAttachment { handle } => self.inspect_attachment(handle),
            Request::InspectInterface { handle } => self.inspect_interface(handle).await,
            _ => return None,
        })
    }
}

/// Live peers of a device, as the protocol reports them.
async fn device_peers(wg: &Arc<dyn overlayd_wg::WgBackend>, device: &str) -> Vec<PeerStatus> {
    let dev = device.to_string();
    let Ok(st) = wg_call(wg, move |wg| wg.status(&dev)).await else {
        return Vec::new();
    };
    st.peers
        .iter()
        .map(|p| PeerStatus {
            public_key: overlayd_wg::format_key(&p.public_key),
            endpoint: p.endpoint.map(|e| e.to_string()).unwrap_or_default(),
            allowed_ips: p
                .allowed_ips
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            last_handshake_unix_secs: p
                .last_handshake
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        })
        .collect()
}

/// `status` from the store, a marker, the WireGuard backend and the key.
async fn status(
    store: &Store,
    marker: &Marker,
    wg: &Arc<dyn overlayd_wg::WgBackend>,
    public_key: &str,
) -> OpResult<Response> {
    let services = store.read(|tx| tx.list::<ServiceRecord>(Table::Services))?;
    let global: Option<GlobalRecord> = store.read(|tx| tx.get(Table::Global, GLOBAL_KEY))?;
    let base = marker.get(&Owner::Base).cloned();
    let peers = match base.as_ref().and_then(|b| b.interface.clone()) {
        Some(dev) => device_peers(wg, &dev).await,
        None => Vec::new(),
    };
    let mut dedicated = Vec::new();
    for e in marker
        .iter()
        .filter(|e| matches!(e.owner, Owner::Service(_)))
    {
        let (Some(dev), Some(port), Owner::Service(name)) = (&e.interface, e.wg_port, &e.owner)
        else {
            continue;
        };
        let peer_count: Vec<(String, PeerRecord)> =
            store.read(|tx| tx.list_prefix(Table::Peers, &format!("{}|", e.owner)))?;
        let overlay_ip = plan::parse_cidr(&e.subnet)
            .and_then(plan::gateway_cidr)
            .map(|g| g.addr().to_string())
            .unwrap_or_default();
        dedicated.push(DedicatedServiceStatus {
            service: name.clone(),
            interface: dev.clone(),
            public_key: e.wg_public_key.clone().unwrap_or_default(),
            listen_port: port,
            overlay_ip,
            subnet: e.subnet.clone(),
            peer_count: u32::try_from(peer_count.len()).unwrap_or(u32::MAX),
        });
    }
    Ok(Response::Status(StatusInfo {
        interface: base.as_ref().and_then(|b| b.interface.clone()),
        node_ip: base
            .as_ref()
            .and_then(|e| plan::parse_cidr(&e.subnet).ok())
            .and_then(|s| plan::gateway_cidr(s).ok())
            .map(|g| g.addr().to_string()),
        public_key: Some(public_key.to_string()),
        overlay_cidr: global.as_ref().map(|g| g.cluster_cidr.clone()),
        slice_cidr: global.as_ref().map(|g| g.slice_cidr.clone()),
        peer_count: u32::try_from(peers.len()).unwrap_or(u32::MAX),
        service_count: u32::try_from(services.len()).unwrap_or(u32::MAX),
        peers: Some(peers),
        dedicated_services: Some(dedicated),
    }))
}

impl Node {
    /// The lock-free view read-only requests are served from.
    pub fn read_view(&self) -> ReadView {
        self.book.read_view()
    }
}

impl Core {
    /// `status`.
    pub async fn status(&self) -> OpResult<Response> {
        let public_key = overlayd_wg::format_key(&self.public_key);
        status(&self.store, &self.marker, &self.wg, &public_key).await
    }

    /// When the live nftables table is not what the records say (deleted,
    /// flushed, edited, or unreadable): the bridges whose isolation, NAT or
    /// published ports it covers, and what to do.
    async fn firewall_drift(&self) -> Option<(Vec<String>, String)> {
        let spec = self.firewall_spec();
        let why = match self.host.firewall_matches(&spec).await {
            Ok(true) => return None,
            Ok(false) => "firewall: overlayd's nftables table is missing or was changed by someone else; isolation, NAT and published ports may not hold — `overlayd doctor --fix` restores it".to_string(),
            Err(e) => format!("firewall: cannot read overlayd's nftables table ({e}); `overlayd doctor --fix` re-applies it"),
        };
        Some((spec.accept_bridges.clone(), why))
    }

    /// `list_networks`.
    pub async fn list_networks(&self) -> OpResult<Response> {
        let links = self.host.links().await?;
        let attachments: Vec<Attachment> = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let collisions = self.subnet_collisions();
        let firewall = self.firewall_drift().await;
        let mut networks = Vec::with_capacity(self.marker.len());
        for e in self.marker.iter() {
            let managed = e.is_linux_managed();
            let live = links.iter().find(|l| l.name == e.name);
            let mut extra = Map::new();
            if managed {
                let owner = e.owner.to_string();
                let drift: Vec<String> = attachments
                    .iter()
                    .filter(|a| a.network == owner)
                    .filter_map(|a| {
                        let veth = links.iter().find(|l| l.name == a.host_ifname);
                        attachment_problem(a, veth, live, &self.instance)
                    })
                    .collect();
                if !drift.is_empty() {
                    extra.insert("attachment_drift".into(), json!(drift));
                }
            }
            let present = match live {
                Some(l) if managed => {
                    extra.insert("ifindex".into(), json!(l.index));
                    if !plan::tag_matches(l.alias.as_deref(), &e.owner, &e.id) {
                        extra.insert(
                            "drift".into(),
                            json!(format!(
                                "link {} exists but does not carry overlayd's tag for {}; remove or rename that link, then run `overlayd doctor --fix`",
                                e.name, e.owner
                            )),
                        );
                    } else {
                        let members = links.iter().filter(|m| m.master == Some(l.index)).count();
                        extra.insert("members".into(), json!(members));
                    }
                    if let Some(dev) = &e.interface {
                        let up = links.iter().any(|d| &d.name == dev);
                        extra.insert("device_present".into(), json!(up));
                        if !up {
                            extra.insert(
                                "drift".into(),
                                json!(format!(
                                    "WireGuard device {dev} is missing; run `overlayd doctor --fix` to recreate it with its recorded key and port"
                                )),
                            );
                        }
                    }
                    true
                }
                _ => false,
            };
            let owner = e.owner.to_string();
            let clashes: Vec<String> = collisions
                .iter()
                .filter(|c| c.owner == owner)
                .map(|c| c.describe())
                .collect();
            if !clashes.is_empty() {
                extra.insert("collisions".into(), json!(clashes));
                if managed && present && !extra.contains_key("drift") {
                    extra.insert("drift".into(), json!(clashes.join("; ")));
                }
            }
            if managed && e.subnet.parse::<ipnet::IpNet>().is_err() {
                extra.insert(
                    "drift".into(),
                    json!(format!(
                        "recorded subnet {:?} is not a CIDR (the marker was edited by hand?); `overlayd network move {} --subnet CIDR` records a valid one",
                        e.subnet, e.owner
                    )),
                );
            }
            if let Some(s6) = &e.subnet_v6 {
                extra.insert("subnet_v6".into(), json!(s6));
            }
            if let Some((bridges, why)) = &firewall {
                if managed && present && bridges.contains(&e.name) {
                    extra.insert("firewall_drift".into(), json!(why));
                    if !extra.contains_key("drift") {
                        extra.insert("drift".into(), json!(why));
                    }
                }
            }
            networks.push(NetworkView {
                owner: e.owner.to_string(),
                kind: e.kind.clone(),
                name: e.name.clone(),
                id: e.id.clone(),
                subnet: e.subnet.clone(),
                wg_port: e.wg_port,
                wg_public_key: e.wg_public_key.clone(),
                interface: e.interface.clone(),
                present,
                managed,
                extra,
            });
        }
        Ok(Response::Networks { networks })
    }
}
