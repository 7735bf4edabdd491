//! Services: `setup_service_overlay` / `teardown_service_overlay`. A shared
//! service's containers join the shared NAT network; a dedicated service
//! gets its own bridge, its own port from the band and its own keypair,
//! all recorded so a restart brings the same ones back. `auto` keeps a
//! recorded mode: an identity changes only with `recreate`.

use ipnet::IpNet;
use overlayd_proto::{Response, ServiceMode};
use overlayd_state::{Owner, Table};
use tracing::info;

use super::error::{OpError, OpResult};
use super::missing;
use super::node::{Core, Node};
use super::plan;
use super::records::ServiceRecord;

impl Node {
    /// `setup_service_overlay`. `auto` keeps a recorded mode; changing a
    /// recorded mode, or minting a new identity for a dedicated service,
    /// needs `recreate`.
    pub async fn setup_service(
        &mut self,
        service: &str,
        mode: ServiceMode,
        recreate: bool,
    ) -> OpResult<Response> {
        overlayd_state::owner::validate_name(service)?;
        let dedicated_owner = Owner::service(service)?;
        let existing: Option<ServiceRecord> =
            self.store.read(|tx| tx.get(Table::Services, service))?;
        // A dedicated network left without its service record (an
        // interrupted request) still holds a recorded key: it counts.
        let recorded = existing.as_ref().map(|r| r.mode).or_else(|| {
            self.marker
                .get(&dedicated_owner)
                .filter(|e| e.wg_private_key.is_some())
                .map(|_| ServiceMode::Dedicated)
        });
        let mode = super::identity::resolve_service_mode(service, mode, recorded, recreate)?;
        if let Some(prev) = recorded {
            if prev != mode || recreate {
                let on = self.service_network(service, prev)?;
                if !self
                    .attachments_on(&on.to_string())?
                    .iter()
                    .all(|a| a.service != service)
                {
                    return Err(OpError::Conflict(format!(
                        "service {service} is {} with attached containers; detach them before changing its mode to {} or recreating it",
                        prev.as_str(),
                        mode.as_str()
                    )));
                }
            }
        }
        let replace_dedicated = recreate || mode != ServiceMode::Dedicated;
        if replace_dedicated && self.marker.get(&dedicated_owner).is_some() {
            info!(%service, "recreate: removing the service's dedicated network and its identity");
            self.remove_bridge(&dedicated_owner).await?;
            self.forget_peers(&dedicated_owner)?;
        }
        let response = match mode {
            ServiceMode::Dedicated => self.setup_dedicated(service).await?,
            _ => {
                let want6 = self.shared_nat_want6();
                let entry = self.ensure_bridge_v6(Owner::SharedNat, None, want6).await?;
                let subnet: IpNet = plan::parse_cidr(&entry.subnet)?;
                // As upstream: `name` is the network's interface, the bridge
                // containers of this service attach to.
                Response::ServiceOverlay {
                    name: entry.name.clone(),
                    mode: ServiceMode::Shared.as_str().to_string(),
                    wg_public_key: None,
                    wg_port: None,
                    overlay_ip: Some(plan::gateway_cidr(subnet)?.addr().to_string()),
                    subnet: Some(entry.subnet),
                }
            }
        };
        // A repeated setup (every CNI ADD makes one) writes nothing: no
        // store commit, no fsync, when the record is already as it should be.
        let record = self.service_record(service, mode);
        if existing.as_ref() != Some(&record) {
            self.store.write(|tx| {
                tx.put(Table::Services, service, &record)?;
                missing::unbury(tx, &dedicated_owner.to_string())
            })?;
        }
        Ok(response)
    }

    /// A dedicated service: its own bridge, its own port from the band and
    /// its own keypair, all recorded so a restart brings the same ones back.
    async fn setup_dedicated(&mut self, service: &str) -> OpResult<Response> {
        let owner = Owner::service(service)?;
        let is_new = self.marker.get(&owner).is_none();
        // The port comes first: an exhausted band must leave nothing behind.
        let new_port = match self.marker.get(&owner).and_then(|e| e.wg_port) {
            Some(_) => None,
            None => Some(self.ports.allocate()?),
        };
        let release = |node: &mut Node| {
            if let Some(p) = new_port {
                node.ports.release(p);
            }
        };
        // In cluster mode a new service's subnet is leased from etcd.
        let leased = match self.cluster_subnet(&owner).await {
            Ok(s) => s,
            Err(e) => {
                release(self);
                return Err(e);
            }
        };
        let mut entry = match self.ensure_bridge(owner.clone(), leased).await {
            Ok(e) => e,
            Err(e) => {
                release(self);
                return Err(e);
            }
        };
        if entry.wg_port.is_none() || entry.wg_private_key.is_none() {
            let kp = overlayd_state::KeyPair::generate();
            entry.wg_port = entry.wg_port.or(new_port);
            entry.wg_private_key = Some(kp.private_base64());
            entry.wg_public_key = Some(kp.public_base64());
            entry.interface = Some(self.namer().wireguard(&entry.owner));
            if let Err(e) = self.record(entry.clone()) {
                release(self);
                return Err(e);
            }
        }
        if let Err(e) = self.realize_device(&entry).await {
            if is_new {
                let _ = self.remove_bridge(&owner).await;
            }
            return Err(e);
        }
        let subnet: IpNet = plan::parse_cidr(&entry.subnet)?;
        Ok(Response::ServiceOverlay {
            name: entry.name.clone(),
            mode: ServiceMode::Dedicated.as_str().to_string(),
            wg_public_key: entry.wg_public_key.clone(),
            wg_port: entry.wg_port,
            overlay_ip: Some(plan::gateway_cidr(subnet)?.addr().to_string()),
            subnet: Some(entry.subnet),
        })
    }

    /// `teardown_service_overlay`: idempotent for a service that existed (a
    /// name never recorded is `not_found`); refuses while containers are attached.
    pub async fn teardown_service(&mut self, service: &str) -> OpResult<Response> {
        overlayd_state::owner::validate_name(service)?;
        let rec: Option<ServiceRecord> = self.store.read(|tx| tx.get(Table::Services, service))?;
        let owner = Owner::service(service)?;
        if rec.is_none() && self.marker.get(&owner).is_none() {
            let known: Vec<(String, ServiceRecord)> =
                self.store.read(|tx| tx.list(Table::Services))?;
            missing::already_gone_or(
                &self.store,
                &owner.to_string(),
                "service",
                service,
                known.iter().map(|(k, _)| k.as_str()),
                "overlayd network ls",
            )?;
            return Ok(Response::Ok);
        }
        let mode = rec
            .map(|r| r.mode)
            .unwrap_or(if self.marker.get(&owner).is_some() {
                ServiceMode::Dedicated
            } else {
                ServiceMode::Shared
            });
        let network = self.service_network(service, mode)?;
        let attached: Vec<_> = self
            .attachments_on(&network.to_string())?
            .into_iter()
            .filter(|a| a.service == service)
            .collect();
        if !attached.is_empty() {
            return Err(OpError::Conflict(format!(
                "service {service} still has {} attached container(s); detach them first",
                attached.len()
            )));
        }
        self.store.write(|tx| {
            tx.remove(Table::Services, service)?;
            missing::bury(tx, &owner.to_string())
        })?;
        // Also clears a dedicated network left behind by an interrupted
        // mode change.
        if self.marker.get(&owner).is_some() {
            self.remove_bridge(&owner).await?;
            self.forget_peers(&owner)?;
            self.cluster_release(&owner).await;
        }
        Ok(Response::Ok)
    }
}

impl Core {
    /// Which network a service's containers join.
    pub fn service_network(&self, service: &str, mode: ServiceMode) -> OpResult<Owner> {
        Ok(match mode.resolve() {
            ServiceMode::Dedicated => Owner::service(service)?,
            _ => Owner::SharedNat,
        })
    }
}

impl Node {
    /// The store record of a service, with a dedicated overlay's identity
    /// copied from its marker entry.
    fn service_record(&self, service: &str, mode: ServiceMode) -> ServiceRecord {
        let entry = Owner::service(service)
            .ok()
            .and_then(|o| self.marker.get(&o).cloned())
            .filter(|_| mode == ServiceMode::Dedicated);
        ServiceRecord {
            mode,
            wg_port: entry.as_ref().and_then(|e| e.wg_port),
            wg_private_key: entry.and_then(|e| e.wg_private_key),
        }
    }
}
