//! Read-only answers: `status` and `list_networks` (every marker entry with
//! its live state, including entries of kinds this platform cannot manage).

use overlayd_proto::{NetworkView, Response, StatusInfo};
use overlayd_state::Table;
use serde_json::{json, Map};

use super::error::OpResult;
use super::node::Node;
use super::plan;
use super::records::ServiceRecord;

impl Node {
    /// `status`.
    pub async fn status(&self) -> OpResult<Response> {
        let services = self
            .store
            .read(|tx| tx.list::<ServiceRecord>(Table::Services))?;
        Ok(Response::Status(StatusInfo {
            public_key: Some(self.key.public_base64()),
            service_count: u32::try_from(services.len()).unwrap_or(u32::MAX),
            peers: Some(Vec::new()),
            dedicated_services: Some(Vec::new()),
            ..StatusInfo::default()
        }))
    }

    /// `list_networks`.
    pub async fn list_networks(&self) -> OpResult<Response> {
        let links = self.host.links().await?;
        let mut networks = Vec::with_capacity(self.marker.len());
        for e in self.marker.iter() {
            let managed = e.is_linux_managed();
            let live = links.iter().find(|l| l.name == e.name);
            let mut extra = Map::new();
            let present = match live {
                Some(l) if managed => {
                    extra.insert("ifindex".into(), json!(l.index));
                    if !plan::tag_matches(l.alias.as_deref(), &e.owner, &e.id) {
                        extra.insert(
                            "drift".into(),
                            json!(format!(
                                "link {} exists but does not carry overlayd's tag for {}; remove or rename that link, then restart overlayd",
                                e.name, e.owner
                            )),
                        );
                    } else {
                        let members = links.iter().filter(|m| m.master == Some(l.index)).count();
                        extra.insert("members".into(), json!(members));
                    }
                    true
                }
                _ => false,
            };
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
