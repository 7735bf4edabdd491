//! `prune_networks` (ext): remove every isolation network and service that
//! no container is attached to, as `docker network prune` does. The base
//! network and the shared NAT bridge are never removed; a dedicated
//! service (its key, port and subnet) only when asked.
//!
//! The decision is a pure function of the records ([`plan_prune`]); each
//! removal then goes through the same teardown the single-network ops use,
//! and a failure is collected while the others go on.

use std::collections::{BTreeMap, BTreeSet};

use overlayd_proto::{Response, ServiceMode};
use overlayd_state::{Owner, Table};
use tracing::info;

use super::error::OpResult;
use super::node::Node;
use super::records::{Attachment, IsolationRecord, ServiceRecord};

/// What a prune removes, decided from the records alone.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PrunePlan {
    /// Isolation networks without members (names, without `iso:`).
    pub networks: Vec<String>,
    /// Services without members (names).
    pub services: Vec<String>,
}

/// Decide what to prune. `isolation` are the isolation networks recorded
/// (store or marker), `services` every service with its mode (a dedicated
/// network left without a service record counts as a dedicated service),
/// `attachments` every attachment in any phase: a container half-way
/// through attaching or detaching is a member too.
pub fn plan_prune(
    isolation: &BTreeSet<String>,
    services: &BTreeMap<String, ServiceMode>,
    attachments: &[Attachment],
    include_dedicated: bool,
) -> PrunePlan {
    let networks = isolation
        .iter()
        .filter(|n| {
            let owner = format!("iso:{n}");
            !attachments.iter().any(|a| a.network == owner)
        })
        .cloned()
        .collect();
    let services = services
        .iter()
        .filter(|(_, mode)| include_dedicated || mode.resolve() != ServiceMode::Dedicated)
        .filter(|(name, _)| !attachments.iter().any(|a| &a.service == *name))
        .map(|(name, _)| name.clone())
        .collect();
    PrunePlan { networks, services }
}

impl Node {
    /// `prune_networks`: remove every isolation network and service with no
    /// members; answers `pruned` with what went and what could not.
    pub async fn prune_networks(&mut self, include_dedicated: bool) -> OpResult<Response> {
        let attachments: Vec<Attachment> = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
        let mut isolation: BTreeSet<String> = self
            .store
            .read(|tx| tx.list::<IsolationRecord>(Table::Isolation))?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut services: BTreeMap<String, ServiceMode> = self
            .store
            .read(|tx| tx.list::<ServiceRecord>(Table::Services))?
            .into_iter()
            .map(|(k, r)| (k, r.mode))
            .collect();
        for e in self.marker.iter() {
            match &e.owner {
                Owner::Isolation(n) => {
                    isolation.insert(n.clone());
                }
                Owner::Service(s) => {
                    services.entry(s.clone()).or_insert(ServiceMode::Dedicated);
                }
                _ => {}
            }
        }
        let plan = plan_prune(&isolation, &services, &attachments, include_dedicated);
        let mut removed = PrunePlan::default();
        let mut errors = Vec::new();
        for n in plan.networks {
            match self.teardown_isolation(&n).await {
                Ok(_) => removed.networks.push(n),
                Err(e) => errors.push(format!("iso:{n}: {e}")),
            }
        }
        for s in plan.services {
            match self.teardown_service(&s).await {
                Ok(_) => removed.services.push(s),
                Err(e) => errors.push(format!("service {s}: {e}")),
            }
        }
        info!(
            networks = removed.networks.len(),
            services = removed.services.len(),
            failed = errors.len(),
            "prune done"
        );
        Ok(Response::Pruned {
            networks: removed.networks,
            services: removed.services,
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use overlayd_proto::Handle;

    fn member(network: &str, service: &str) -> Attachment {
        Attachment {
            handle: Handle::LinuxPid { pid: 1 },
            network: network.into(),
            service: service.into(),
            ip: "10.0.0.2".into(),
            prefix_len: 24,
            host_ifname: "v".into(),
            id: "x".into(),
            dns_name: None,
            guest_private_key: None,
            dns_server: None,
            dns_domain: None,
            state: Default::default(),
            netns_id: None,
            publish: Vec::new(),
            ifname: None,
            ip_v6: None,
            prefix_len_v6: None,
        }
    }

    #[test]
    fn only_networks_and_services_without_members_are_planned() {
        let iso: BTreeSet<String> = ["red", "blue"].iter().map(|s| s.to_string()).collect();
        let services: BTreeMap<String, ServiceMode> = [
            ("web".to_string(), ServiceMode::Shared),
            ("api".to_string(), ServiceMode::Shared),
            ("db".to_string(), ServiceMode::Dedicated),
        ]
        .into_iter()
        .collect();
        let members = vec![member("iso:red", "api")];
        let p = plan_prune(&iso, &services, &members, false);
        assert_eq!(p.networks, vec!["blue".to_string()]);
        assert_eq!(p.services, vec!["web".to_string()]);
        let p = plan_prune(&iso, &services, &members, true);
        assert_eq!(p.services, vec!["db".to_string(), "web".to_string()]);
    }
}
