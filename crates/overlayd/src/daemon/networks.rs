//! Host networks: the shared NAT bridge, isolation bridges and service
//! bridges — created once, recorded in the marker, confirmed or recreated
//! on later calls, and the nftables tables kept in step with them. The
//! service requests are in `services.rs`. Each request gathers facts, asks
//! the engine for a plan (`overlayd_engine::request`) and executes it
//! (`execute.rs`).

use ipnet::IpNet;
use overlayd_engine::request::bridge::{self, BridgeFacts, EnsureBridge, LinkFact, NewBridge};
use overlayd_engine::request::isolation::{self, IsolationSetup, IsolationTeardown};
use overlayd_engine::request::Teardown;
use overlayd_proto::Response;
use overlayd_state::{NetworkEntry, Owner, Table};
use tracing::info;

use super::dual_stack::{self, WantV6};
use super::error::{OpError, OpResult};
use super::missing;
use super::node::{Core, Node};
use super::records::{Attachment, IsolationRecord};
use crate::daemon::plan;

impl Node {
    /// Make sure the bridge network of `owner` exists: confirm (adopt) a
    /// recorded one, recreate it if it vanished, or create and record it.
    pub async fn ensure_bridge(
        &mut self,
        owner: Owner,
        requested: Option<IpNet>,
    ) -> OpResult<NetworkEntry> {
        self.ensure_bridge_v6(owner, requested, WantV6::No).await
    }

    /// [`Node::ensure_bridge`] for a network that may be dual-stack: `want6`
    /// asks for an IPv6 subnet beside the primary one (a recorded network is
    /// confirmed when it matches, refused when it does not, never changed).
    /// Gather → engine plan (`request::bridge::plan_ensure`) → execute.
    pub async fn ensure_bridge_v6(
        &mut self,
        owner: Owner,
        requested: Option<IpNet>,
        want6: WantV6,
    ) -> OpResult<NetworkEntry> {
        let facts = self.gather_bridge(owner, requested, want6).await?;
        let planned = bridge::plan_ensure(facts)?;
        self.execute_plan(planned.plan).await?;
        if planned.created {
            log_created(&planned.entry);
        }
        Ok(planned.entry)
    }

    /// What the engine needs to decide on a bridge network: the recorded
    /// entry, or for a new network its subnets (chosen by the planners and
    /// checked against the host's own networks), name and a fresh id; and
    /// the live link holding the name.
    pub(crate) async fn gather_bridge(
        &self,
        owner: Owner,
        requested: Option<IpNet>,
        want6: WantV6,
    ) -> OpResult<EnsureBridge<'_>> {
        if let Some(entry) = self.marker.get(&owner).cloned() {
            let live = self.live_link(&entry.name).await?;
            return Ok(EnsureBridge {
                facts: BridgeFacts::Recorded(entry),
                requested,
                want6,
                live,
                instance: &self.instance,
            });
        }
        let subnet = self.plan_subnet(&owner, requested)?;
        // An IPv6 primary with an IPv6 request is refused by the engine.
        let subnet6 = if want6 != WantV6::No && subnet.addr().is_ipv6() {
            None
        } else {
            self.plan_subnet_v6(&owner, want6)?
        };
        let all: Vec<IpNet> = std::iter::once(subnet).chain(subnet6).collect();
        self.refuse_host_conflicts(&format!("subnet of {owner}"), &all)
            .await?;
        let name = self.namer().bridge(&owner);
        let live = self.live_link(&name).await?;
        Ok(EnsureBridge {
            facts: BridgeFacts::New(NewBridge {
                owner,
                name,
                subnet,
                subnet_v6: subnet6,
                fresh_id: uuid::Uuid::new_v4().to_string(),
            }),
            requested,
            want6,
            live,
            instance: &self.instance,
        })
    }

    /// Bring a recorded bridge to its recorded shape: adopt it when the live
    /// link carries our tag with this owner and id, create it otherwise.
    pub async fn realize_bridge(&self, entry: &NetworkEntry) -> OpResult<()> {
        let live = self.live_link(&entry.name).await?;
        let plan = bridge::plan_realize(entry, live.as_ref())?;
        self.execute_shared(plan).await
    }

    /// Pick a subnet for a new network.
    pub(crate) fn plan_subnet(&self, owner: &Owner, requested: Option<IpNet>) -> OpResult<IpNet> {
        let pool: IpNet = self.cfg.local_pool.parse().map_err(|_| {
            OpError::Invalid(format!(
                "local_pool {:?} is not a CIDR",
                self.cfg.local_pool
            ))
        })?;
        if requested.is_none() {
            if let Owner::Service(service) = owner {
                // Other nodes route to a dedicated service's subnet: it comes
                // from the address plan, unique per node.
                return self.planned_service_subnet(service);
            }
        }
        let used = self.used_subnets();
        // The base network *is* the node slice; everything else avoids it,
        // and node-local networks avoid the range other nodes' dedicated
        // service subnets come from.
        let reserved = if *owner == Owner::Base {
            Vec::new()
        } else {
            let mut r = self.reserved_subnets();
            if requested.is_none() {
                if let Ok(range) = self.cfg.service_range.parse() {
                    r.push(range);
                }
            }
            r
        };
        plan::pick_subnet(
            owner,
            pool,
            self.cfg.local_prefix_len,
            requested,
            &used,
            &reserved,
        )
    }
}

impl Core {
    /// Subnets recorded in the marker with their owners (both subnets of a
    /// dual-stack network).
    pub fn used_subnets(&self) -> Vec<(String, IpNet)> {
        self.marker
            .iter()
            .flat_map(|e| {
                std::iter::once(&e.subnet)
                    .chain(e.subnet_v6.as_ref())
                    .filter_map(|s| s.parse().ok().map(|s| (e.owner.to_string(), s)))
            })
            .collect()
    }
}

impl Node {
    /// CIDRs no local network may overlap: the cluster CIDR and node slice.
    pub(crate) fn reserved_subnets(&self) -> Vec<IpNet> {
        let global = self
            .store
            .read(|tx| {
                tx.get::<super::records::GlobalRecord>(Table::Global, super::records::GLOBAL_KEY)
            })
            .ok()
            .flatten();
        global
            .map(|g| {
                [g.cluster_cidr, g.slice_cidr]
                    .iter()
                    .filter_map(|c| c.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Delete a recorded bridge network (device, bridge, marker entry,
    /// port, leases), after checking no container is still attached to it
    /// (`request::bridge::plan_remove`).
    pub async fn remove_bridge(&mut self, owner: &Owner) -> OpResult<bool> {
        let Some(entry) = self.marker.get(owner).cloned() else {
            return Ok(false);
        };
        let attached = self.members_of(owner)?;
        let live = self.link_fact(&entry.name).await;
        self.execute_plan(bridge::plan_remove(&entry, live, attached)?)
            .await?;
        Ok(true)
    }

    /// Forget the peers recorded for a network's device.
    pub fn forget_peers(&self, owner: &Owner) -> OpResult<()> {
        let owner_p = format!("{owner}|");
        self.store
            .write(|tx| tx.remove_prefix(Table::Peers, &owner_p).map(|_| ()))?;
        Ok(())
    }

    /// Apply the firewall after a change that has already happened on the
    /// host: a failure is logged (the periodic check applies it again)
    /// rather than reported as the change failing.
    pub async fn sync_firewall_or_warn(&self) {
        if let Err(e) = self.sync_firewall().await {
            tracing::warn!(error = %e, "cannot apply overlayd's nftables table now; the periodic check retries");
        }
    }

    /// How many containers are on network `owner`, for the requests that
    /// are refused while any is. When every one of them is being detached
    /// right now (its record marked `detaching`, the veth going), the answer
    /// is `unavailable` — retry in a moment — rather than a `conflict`
    /// telling the caller to detach what it already is detaching.
    pub fn members_of(&self, owner: &Owner) -> OpResult<usize> {
        let atts = self.attachments_on(&owner.to_string())?;
        refuse_while_detaching(owner, &atts)?;
        Ok(atts.len())
    }

    /// Attachments on a network.
    pub fn attachments_on(&self, network: &str) -> OpResult<Vec<Attachment>> {
        Ok(self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| a.network == network)
            .collect())
    }

    /// Apply the nftables tables for the networks recorded now.
    pub async fn sync_firewall(&self) -> OpResult<()> {
        let spec = self.firewall_spec();
        self.ensure_forwarding(&spec).await?;
        self.host.apply_firewall(&spec).await?;
        self.sync_route_localnet(&spec).await;
        self.sync_dns_listeners().await;
        Ok(())
    }

    /// `setup_isolation_network`: gather → `request::isolation::plan_setup`
    /// → execute.
    pub async fn setup_isolation(
        &mut self,
        network: &str,
        subnet: Option<&str>,
        internal: bool,
        ipv6: bool,
        subnet_v6: Option<&str>,
    ) -> OpResult<Response> {
        let owner = Owner::isolation(network)?;
        let (requested, want6) = dual_stack::requested_subnets(subnet, ipv6, subnet_v6)?;
        let previous: Option<IsolationRecord> =
            self.store.read(|tx| tx.get(Table::Isolation, network))?;
        let bridge = self.gather_bridge(owner, requested, want6).await?;
        let planned = isolation::plan_setup(IsolationSetup {
            network: network.to_string(),
            internal,
            previous: previous.as_ref().map(Into::into),
            bridge,
        })?;
        self.execute_plan(planned.plan).await?;
        if planned.created {
            log_created(&planned.entry);
        }
        let entry = planned.entry;
        Ok(Response::IsolationNetwork {
            network: network.to_string(),
            subnet: entry.subnet,
            bridge: entry.name,
            subnet_v6: entry.subnet_v6,
        })
    }

    /// `teardown_isolation_network`: idempotent for a network that existed;
    /// a name never recorded is `not_found`.
    pub async fn teardown_isolation(&mut self, network: &str) -> OpResult<Response> {
        let owner = Owner::isolation(network)?;
        let desired: Option<IsolationRecord> =
            self.store.read(|tx| tx.get(Table::Isolation, network))?;
        let recorded = self.marker.get(&owner).cloned();
        let attached = if desired.is_some() || recorded.is_some() {
            self.members_of(&owner)?
        } else {
            0
        };
        let bridge = match &recorded {
            Some(e) => self.link_fact(&e.name).await,
            None => LinkFact::Absent,
        };
        let decision = isolation::plan_teardown(IsolationTeardown {
            network: network.to_string(),
            desired: desired.is_some(),
            recorded,
            bridge,
            attached,
        })?;
        match decision {
            Teardown::NotRecorded => {
                let known: Vec<(String, IsolationRecord)> =
                    self.store.read(|tx| tx.list(Table::Isolation))?;
                missing::already_gone_or(
                    &self.store,
                    &owner.to_string(),
                    "isolation network",
                    network,
                    known.iter().map(|(k, _)| k.as_str()),
                    "overlayd network ls",
                )?;
            }
            Teardown::Remove(plan) => self.execute_plan(plan).await?,
        }
        Ok(Response::Ok)
    }
}

/// Log a network the request created.
pub(crate) fn log_created(entry: &NetworkEntry) {
    let (owner, bridge, subnet) = (&entry.owner, &entry.name, &entry.subnet);
    match &entry.subnet_v6 {
        Some(s6) => info!(%owner, %bridge, %subnet, subnet_v6 = %s6, "network created"),
        None => info!(%owner, %bridge, %subnet, "network created"),
    }
}

impl Core {
    /// The nftables intent for what is recorded now.
    pub fn firewall_spec(&self) -> overlayd_host::FirewallSpec {
        let global = self.global().ok().flatten();
        let mut spec = plan::firewall_spec(&self.marker, global.as_ref(), &self.peer_cidrs());
        self.add_published(&mut spec);
        self.close_internal(&mut spec);
        spec.normalized()
    }
}

impl Node {
    /// The interface namer for this instance.
    pub fn namer(&self) -> plan::Namer {
        plan::namer(&self.cfg.interface_prefix)
    }
}

/// `unavailable` when `atts` (the containers of one network or service) are
/// all being detached right now; nothing to say otherwise.
pub(crate) fn refuse_while_detaching(
    what: &dyn std::fmt::Display,
    atts: &[Attachment],
) -> OpResult<()> {
    if !atts.is_empty()
        && atts
            .iter()
            .all(|a| a.state == super::records::AttachState::Detaching)
    {
        return Err(OpError::Unavailable(format!(
            "the last {} container(s) of {what} are being detached right now; retry when that has finished",
            atts.len()
        )));
    }
    Ok(())
}
