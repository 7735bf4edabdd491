//! Services: `setup_service_overlay` / `teardown_service_overlay`. A shared
//! service's containers join the shared NAT network; a dedicated service
//! gets its own bridge, its own port from the band and its own keypair,
//! all recorded so a restart brings the same ones back. `auto` keeps a
//! recorded mode: an identity changes only with `recreate`. Decided by
//! `overlayd_engine::request::service`, carried out by `execute.rs`.

use ipnet::IpNet;
use overlayd_engine::request::bridge::LinkFact;
use overlayd_engine::request::service::{
    self, DedicatedSetup, FreshIdentity, ServiceChange, ServiceTeardown,
};
use overlayd_engine::request::{ServiceDesired, Teardown};
use overlayd_proto::{Response, ServiceMode};
use overlayd_state::{NetworkEntry, Owner, Table};
use tracing::info;

use super::dual_stack::WantV6;
use super::error::OpResult;
use super::execute::{service_desired, service_kind};
use super::missing;
use super::node::{Core, Node};
use super::plan;
use super::records::{Attachment, ServiceRecord};

impl Node {
    /// `setup_service_overlay`. `auto` keeps a recorded mode; changing a
    /// recorded mode, or minting a new identity for a dedicated service,
    /// needs `recreate`. Two plans: what the request replaces goes first
    /// (`request::service::plan_change`), then the network is decided on
    /// what is left (`plan_shared` / `plan_dedicated`).
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
        let dedicated = self.marker.get(&dedicated_owner).cloned();
        // A dedicated network left without its service record (an
        // interrupted request) still holds a recorded key: it counts.
        let recorded = existing.as_ref().map(|r| r.mode).or_else(|| {
            dedicated
                .as_ref()
                .filter(|e| e.wg_private_key.is_some())
                .map(|_| ServiceMode::Dedicated)
        });
        let mode = super::identity::resolve_service_mode(service, mode, recorded, recreate)?;
        let (kind, recorded) = (service_kind(mode), recorded.map(service_kind));
        // A repeated set-up (every CNI ADD makes one) gathers only what its
        // decision can use: no attachment scan, no lookup of a bridge kept.
        let attachments = if service::changes_mode(kind, recorded, recreate) {
            self.service_attachments(service)?
        } else {
            Vec::new()
        };
        let (dedicated_bridge, dedicated_attached) =
            match service::replaces_dedicated(kind, recreate) {
                true => self.dedicated_facts(&dedicated).await?,
                false => (LinkFact::Absent, 0),
            };
        let change = service::plan_change(ServiceChange {
            service: service.to_string(),
            kind,
            recorded,
            recreate,
            attachments,
            dedicated,
            dedicated_bridge,
            dedicated_attached,
        })?;
        if !change.is_empty() {
            info!(%service, "recreate: removing the service's dedicated network and its identity");
            self.execute_plan(change).await?;
        }
        let existing = existing.as_ref().and_then(service_desired);
        let planned = match mode {
            ServiceMode::Dedicated => {
                let facts = self.gather_dedicated(service, existing).await?;
                service::plan_dedicated(facts)?
            }
            _ => {
                let want6 = self.shared_nat_want6();
                let facts = self.gather_bridge(Owner::SharedNat, None, want6).await?;
                service::plan_shared(service, facts, existing.as_ref())?
            }
        };
        self.execute_plan(planned.plan).await?;
        let entry = planned.entry;
        if planned.created {
            super::networks::log_created(&entry);
        }
        let subnet: IpNet = plan::parse_cidr(&entry.subnet)?;
        let dedicated = mode == ServiceMode::Dedicated;
        // As upstream: `name` is the network's interface, the bridge
        // containers of this service attach to.
        Ok(Response::ServiceOverlay {
            name: entry.name.clone(),
            mode: if dedicated {
                ServiceMode::Dedicated
            } else {
                ServiceMode::Shared
            }
            .as_str()
            .to_string(),
            wg_public_key: entry.wg_public_key.clone().filter(|_| dedicated),
            wg_port: entry.wg_port.filter(|_| dedicated),
            overlay_ip: Some(plan::gateway_cidr(subnet)?.addr().to_string()),
            subnet: Some(entry.subnet),
        })
    }

    /// What the engine needs for a dedicated service: its bridge (in
    /// cluster mode a new one's subnet is leased from etcd), the lowest
    /// free band port and a fresh keypair when the entry has none yet.
    async fn gather_dedicated(
        &self,
        service: &str,
        existing: Option<ServiceDesired>,
    ) -> OpResult<DedicatedSetup<'_>> {
        let owner = Owner::service(service)?;
        let recorded = self.marker.get(&owner);
        // The port is chosen first: an exhausted band refuses the request
        // before anything is done. The plan reserves it.
        let new_port = match recorded.and_then(|e| e.wg_port) {
            Some(_) => None,
            None => Some(self.overlay.ports().clone().allocate()?),
        };
        let identity = recorded
            .is_none_or(|e| e.wg_port.is_none() || e.wg_private_key.is_none())
            .then(|| {
                let kp = overlayd_state::KeyPair::generate();
                FreshIdentity {
                    private_key: kp.private_base64(),
                    public_key: kp.public_base64(),
                }
            });
        let leased = self.cluster_subnet(&owner).await?;
        let device = self.namer().wireguard(&owner);
        let bridge = self.gather_bridge(owner, leased, WantV6::No).await?;
        Ok(DedicatedSetup {
            service: service.to_string(),
            bridge,
            new_port,
            identity,
            device,
            existing,
        })
    }

    /// The live bridge and the number of attached containers of a
    /// service's recorded dedicated network.
    async fn dedicated_facts(
        &self,
        dedicated: &Option<NetworkEntry>,
    ) -> OpResult<(LinkFact, usize)> {
        Ok(match dedicated {
            Some(e) => (self.link_fact(&e.name).await, self.members_of(&e.owner)?),
            None => (LinkFact::Absent, 0),
        })
    }

    /// The network of every attachment of `service` (`unavailable` while
    /// all of them are being detached, see [`Node::members_of`]).
    fn service_attachments(&self, service: &str) -> OpResult<Vec<String>> {
        let atts: Vec<Attachment> = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| a.service == service)
            .collect();
        super::networks::refuse_while_detaching(&format!("service {service}"), &atts)?;
        Ok(atts.into_iter().map(|a| a.network).collect())
    }

    /// `teardown_service_overlay`: idempotent for a service that existed (a
    /// name never recorded is `not_found`); refuses while containers are attached.
    pub async fn teardown_service(&mut self, service: &str) -> OpResult<Response> {
        overlayd_state::owner::validate_name(service)?;
        let rec: Option<ServiceRecord> = self.store.read(|tx| tx.get(Table::Services, service))?;
        let owner = Owner::service(service)?;
        let dedicated = self.marker.get(&owner).cloned();
        let attachments = if rec.is_some() || dedicated.is_some() {
            self.service_attachments(service)?
        } else {
            Vec::new()
        };
        let (dedicated_bridge, dedicated_attached) = self.dedicated_facts(&dedicated).await?;
        let decision = service::plan_teardown(ServiceTeardown {
            service: service.to_string(),
            desired: rec.map(|r| service_kind(r.mode)),
            dedicated,
            attachments,
            dedicated_bridge,
            dedicated_attached,
        })?;
        match decision {
            Teardown::NotRecorded => {
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
            }
            Teardown::Remove(plan) => self.execute_plan(plan).await?,
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
