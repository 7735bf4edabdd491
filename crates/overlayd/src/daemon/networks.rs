//! Host networks: the shared NAT bridge, isolation bridges and service
//! bridges — created once, recorded in the marker, confirmed or recreated
//! on later calls, and the nftables tables kept in step with them. The
//! service requests are in `services.rs`.

use ipnet::IpNet;
use overlayd_proto::Response;
use overlayd_state::entry::KIND_LINUX_BRIDGE;
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
    pub async fn ensure_bridge_v6(
        &mut self,
        owner: Owner,
        requested: Option<IpNet>,
        want6: WantV6,
    ) -> OpResult<NetworkEntry> {
        if let Some(entry) = self.marker.get(&owner).cloned() {
            dual_stack::check_existing(&entry, want6)?;
            if let Some(req) = requested {
                if entry.subnet != req.to_string() {
                    return Err(OpError::Conflict(format!(
                        "{owner} already exists with subnet {}; tear it down first to change it to {req}",
                        entry.subnet
                    )));
                }
            }
            self.realize_bridge(&entry).await?;
            return Ok(entry);
        }
        let subnet = self.plan_subnet(&owner, requested)?;
        if want6 != WantV6::No && subnet.addr().is_ipv6() {
            return Err(OpError::Invalid(format!(
                "a dual-stack network needs an IPv4 subnet, not {subnet}"
            )));
        }
        let subnet6 = self.plan_subnet_v6(&owner, want6)?;
        let all: Vec<IpNet> = std::iter::once(subnet).chain(subnet6).collect();
        self.refuse_host_conflicts(&format!("subnet of {owner}"), &all)
            .await?;
        let name = self.namer().bridge(&owner);
        self.refuse_foreign(&name, &owner).await?;
        // A bridge tagged for this owner but unrecorded (left by a failed
        // earlier attempt or a lost marker) is adopted with its own id.
        let id = match self.host.link(&name).await? {
            Some(l) => l
                .alias
                .as_deref()
                .and_then(plan::parse_tag)
                .filter(|t| t.owner() == Some(&owner))
                .map(|t| t.id().to_string())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let entry = NetworkEntry::new(
            owner.clone(),
            KIND_LINUX_BRIDGE,
            &name,
            &id,
            &subnet.to_string(),
        );
        let mut entry = entry;
        entry.subnet_v6 = subnet6.map(|s| s.to_string());
        let created = match self.realize_bridge(&entry).await {
            Ok(_) => self.record(entry.clone()),
            Err(e) => Err(e),
        };
        if let Err(e) = created {
            // Nothing recorded: leave no bridge behind either.
            let _ = self.host.delete_link(&name).await;
            return Err(e);
        }
        match subnet6 {
            Some(s6) => info!(%owner, bridge = %name, %subnet, subnet_v6 = %s6, "network created"),
            None => info!(%owner, bridge = %name, %subnet, "network created"),
        }
        self.sync_firewall_or_warn().await;
        Ok(entry)
    }

    /// Bring a recorded bridge to its recorded shape: adopt it when the live
    /// link carries our tag with this owner and id, create it otherwise.
    pub async fn realize_bridge(&self, entry: &NetworkEntry) -> OpResult<u32> {
        let subnet: IpNet = entry.subnet.parse().map_err(|_| {
            OpError::State(format!(
                "{}: recorded subnet {:?} is not a CIDR",
                entry.owner, entry.subnet
            ))
        })?;
        let gateway = plan::gateway_cidr(subnet)?;
        let gateway6 = dual_stack::subnet_v6(entry)?
            .map(plan::gateway_cidr)
            .transpose()?;
        let tag = plan::network_tag(&entry.owner, &entry.id, &self.instance);
        let index = match self.host.link(&entry.name).await? {
            Some(link) => {
                if !plan::tag_matches(link.alias.as_deref(), &entry.owner, &entry.id) {
                    return Err(OpError::Conflict(format!(
                        "interface {} exists but is not overlayd's {} (its alias is {}); rename or remove it, or change interface_prefix",
                        entry.name,
                        entry.owner,
                        link.alias.as_deref().map(|a| format!("{a:?}")).unwrap_or_else(|| "empty".into())
                    )));
                }
                link.index
            }
            None => {
                self.host
                    .create_bridge(&entry.name, &tag, self.network_mtu(entry).await)
                    .await?
                    .index
            }
        };
        self.host.add_address(&entry.name, gateway).await?;
        if let Some(g6) = gateway6 {
            self.host.add_address(&entry.name, g6).await?;
        }
        self.host.set_up(&entry.name, true).await?;
        Ok(index)
    }

    /// Refuse to use a name held by a link that is not this owner's.
    async fn refuse_foreign(&self, name: &str, owner: &Owner) -> OpResult<()> {
        if let Some(link) = self.host.link(name).await? {
            let alias = link.alias.as_deref();
            if plan::is_foreign_instance(alias, &self.instance) {
                return Err(OpError::Conflict(format!(
                    "interface name {name} for {owner} is taken by another overlayd instance in this namespace; give each instance its own interface_prefix"
                )));
            }
            let ours = plan::tag_names_owner(alias, owner);
            if !ours {
                return Err(OpError::Conflict(format!(
                    "interface name {name} for {owner} is already taken by a link overlayd does not own; remove that link or set a different interface_prefix"
                )));
            }
        }
        Ok(())
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

    /// Delete a recorded bridge network (host object, marker entry), after
    /// checking no container is still attached to it.
    pub async fn remove_bridge(&mut self, owner: &Owner) -> OpResult<bool> {
        let Some(entry) = self.marker.get(owner).cloned() else {
            return Ok(false);
        };
        self.ensure_unattached(owner)?;
        // Every object is tried even when one fails; the errors are reported
        // together and the entry stays recorded so a retry finishes the job.
        let mut errors = Vec::new();
        if let Some(dev) = entry.interface.clone() {
            let d = dev.clone();
            if let Err(e) = super::overlay::wg_call(&self.wg, move |wg| wg.delete(&d)).await {
                errors.push(format!("WireGuard device {dev}: {e}"));
            }
        }
        match self.host.link(&entry.name).await {
            Ok(Some(link)) if plan::tag_matches(link.alias.as_deref(), owner, &entry.id) => {
                if let Err(e) = self.host.delete_link(&entry.name).await {
                    errors.push(format!("bridge {}: {e}", entry.name));
                }
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("bridge {}: {e}", entry.name)),
        }
        if !errors.is_empty() {
            return Err(OpError::HostFailed(format!(
                "cannot remove all of {owner} ({}); it stays recorded, retry to finish",
                errors.join("; ")
            )));
        }
        self.forget(owner)?;
        if let Some(port) = entry.wg_port {
            self.ports.release(port);
        }
        let owner_s = owner.to_string();
        self.store.write(|tx| {
            for (k, l) in tx.list::<super::records::Lease>(Table::Leases)? {
                if l.network == owner_s {
                    tx.remove(Table::Leases, &k)?;
                }
            }
            Ok(())
        })?;
        self.sync_firewall_or_warn().await;
        info!(%owner, "network removed");
        Ok(true)
    }

    /// Refuse to remove a network containers are still attached to.
    pub fn ensure_unattached(&self, owner: &Owner) -> OpResult<()> {
        let attached = self.attachments_on(&owner.to_string())?;
        if !attached.is_empty() {
            return Err(OpError::Conflict(format!(
                "{owner} still has {} attached container(s); detach them first",
                attached.len()
            )));
        }
        Ok(())
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

    /// `setup_isolation_network`.
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
        if self.marker.get(&owner).is_some() && self.is_internal(&owner)? != internal {
            let (is, asked) = if internal {
                ("not internal", "internal")
            } else {
                ("internal", "not internal")
            };
            return Err(OpError::Conflict(format!(
                "isolation network {network} exists and is {is}; tear it down first (`overlayd iso down {network}`) to recreate it {asked}"
            )));
        }
        // Desired state first, so the firewall applied when the bridge
        // appears already treats it as internal.
        let previous: Option<IsolationRecord> =
            self.store.read(|tx| tx.get(Table::Isolation, network))?;
        if internal {
            let rec = IsolationRecord {
                subnet: previous
                    .as_ref()
                    .map(|r| r.subnet.clone())
                    .unwrap_or_default(),
                internal,
                subnet_v6: previous.as_ref().and_then(|r| r.subnet_v6.clone()),
            };
            self.store
                .write(|tx| tx.put(Table::Isolation, network, &rec))?;
        }
        let entry = match self.ensure_bridge_v6(owner, requested, want6).await {
            Ok(e) => e,
            Err(e) => {
                if internal && previous.is_none() {
                    let _ = self
                        .store
                        .write(|tx| tx.remove(Table::Isolation, network).map(|_| ()));
                }
                return Err(e);
            }
        };
        self.store.write(|tx| {
            tx.put(
                Table::Isolation,
                network,
                &IsolationRecord {
                    subnet: entry.subnet.clone(),
                    internal,
                    subnet_v6: entry.subnet_v6.clone(),
                },
            )?;
            missing::unbury(tx, &entry.owner.to_string())
        })?;
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
        let recorded: Option<IsolationRecord> =
            self.store.read(|tx| tx.get(Table::Isolation, network))?;
        if recorded.is_none() && self.marker.get(&owner).is_none() {
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
            return Ok(Response::Ok);
        }
        self.ensure_unattached(&owner)?;
        // Desired state goes first: a failure below is finished by a retry
        // or by the next start, never undone into a resurrection.
        self.store.write(|tx| {
            tx.remove(Table::Isolation, network)?;
            missing::bury(tx, &owner.to_string())
        })?;
        self.remove_bridge(&owner).await?;
        Ok(Response::Ok)
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
