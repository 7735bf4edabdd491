//! Read-only listings for operators and orchestrators: `list_services`
//! (each service with its network, bridge, WireGuard device and number of
//! containers), `list_attachments` (each attached container with its
//! network, interface, addresses and DNS names) and `inspect_attachment`
//! (what one container was given).

use overlayd_proto::{AttachmentView, Handle, Response, ServiceView};
use overlayd_state::Table;

use super::error::{OpError, OpResult};
use super::node::Core;
use super::records::{Attachment, ServiceRecord};

impl Core {
    /// `inspect_attachment`: what a container was given, including the DNS
    /// server and domain its resolv.conf should name.
    pub fn inspect_attachment(&self, handle: &Handle) -> OpResult<Response> {
        let key = handle.key();
        let Some(a) = self
            .store
            .read(|tx| tx.get::<Attachment>(Table::Attachments, &key))?
        else {
            return Err(OpError::NotFound(format!("{key} is not attached")));
        };
        let gateways = if a.guest_private_key.is_some() {
            Vec::new()
        } else {
            self.marker
                .iter()
                .find(|e| e.owner.to_string() == a.network)
                .map(super::dual_stack::gateways)
                .unwrap_or_default()
        };
        let gateway = gateways.first().map(|(_, g)| g.to_string());
        let gateway_v6 = a
            .ip_v6
            .as_ref()
            .and(gateways.get(1))
            .map(|(_, g)| g.to_string());
        let dns_server = a
            .dns_server
            .clone()
            .or_else(|| gateway.clone())
            .or_else(|| self.node_ip().map(|i| i.to_string()))
            .unwrap_or_default();
        Ok(Response::Attachment {
            handle: a.handle.clone(),
            service: a.service.clone(),
            network: a.network.clone(),
            ip: a.ip.clone(),
            prefix_len: a.prefix_len,
            gateway,
            dns_server,
            dns_domain: a
                .dns_domain
                .clone()
                .unwrap_or_else(|| self.records.zone().trim_end_matches('.').to_string()),
            name: a.dns_name.clone(),
            ip_v6: a.ip_v6.clone(),
            prefix_len_v6: a.prefix_len_v6,
            gateway_v6,
        })
    }

    /// `list_services`, sorted by name.
    pub fn list_services(&self) -> OpResult<Response> {
        let (services, attachments) = self.store.read(|tx| {
            Ok((
                tx.list::<ServiceRecord>(Table::Services)?,
                tx.list::<Attachment>(Table::Attachments)?,
            ))
        })?;
        let mut out = Vec::with_capacity(services.len());
        for (name, rec) in services {
            let owner = self.service_network(&name, rec.mode)?;
            let entry = self.marker.get(&owner);
            let count = attachments
                .iter()
                // One container, counted once however many networks it joined.
                .filter(|(_, a)| a.service == name && !a.is_connected())
                .count();
            out.push(ServiceView {
                mode: rec.mode.resolve().as_str().to_string(),
                network: owner.to_string(),
                bridge: entry.map(|e| e.name.clone()),
                subnet: entry.map(|e| e.subnet.clone()),
                interface: entry.and_then(|e| e.interface.clone()),
                wg_port: entry.and_then(|e| e.wg_port),
                wg_public_key: entry.and_then(|e| e.wg_public_key.clone()),
                attachments: u32::try_from(count).unwrap_or(u32::MAX),
                name,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::Services { services: out })
    }

    /// `list_attachments`, sorted by handle key.
    pub fn list_attachments(&self) -> OpResult<Response> {
        let attachments = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?;
        let mut out: Vec<AttachmentView> = attachments
            .into_iter()
            .map(|(key, a)| self.attachment_view(key, a))
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Response::Attachments { attachments: out })
    }

    fn attachment_view(&self, key: String, a: Attachment) -> AttachmentView {
        let mut dns_names: Vec<String> = a
            .dns_name
            .iter()
            .chain(std::iter::once(&a.service))
            .filter_map(|n| self.records.normalize(n).ok())
            .collect();
        dns_names.dedup();
        let guest = a.guest_private_key.is_some() || a.host_ifname.is_empty();
        AttachmentView {
            key,
            service: a.service,
            network: a.network,
            interface: (!guest).then_some(a.host_ifname),
            addresses: std::iter::once((&a.ip, Some(a.prefix_len)))
                .chain(a.ip_v6.as_ref().map(|i| (i, a.prefix_len_v6)))
                .filter(|(ip, _)| !ip.is_empty())
                .map(|(ip, p)| format!("{ip}/{}", p.unwrap_or(0)))
                .collect(),
            dns_names,
            ports: a.publish,
            handle: a.handle,
        }
    }
}
