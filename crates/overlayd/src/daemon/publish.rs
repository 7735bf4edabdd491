//! Published ports: checked and resolved at attach (conflicts refused naming
//! the holder, a host range resolved to its first free port), recorded with
//! the attachment, added to and removed from the firewall's maps as
//! elements, and part of the firewall spec so start-up and the drift check
//! restore them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use overlayd_host::{FirewallSpec, L4Proto, PublishedPort};
use overlayd_proto::{PortMapping, PortProtocol};
use overlayd_state::{NetworkEntry, Table};
use tracing::warn;

use super::error::{OpError, OpResult};
use super::node::{Core, Node};
use super::plan;
use super::records::Attachment;

/// Most host ports one attachment may publish (ranges expanded).
pub const MAX_PUBLISHED_PER_ATTACHMENT: usize = 4096;

fn l4(p: PortProtocol) -> L4Proto {
    match p {
        PortProtocol::Tcp => L4Proto::Tcp,
        PortProtocol::Udp => L4Proto::Udp,
        PortProtocol::Sctp => L4Proto::Sctp,
    }
}

/// The host ports of a resolved mapping, with their container ports.
fn port_pairs(m: &PortMapping) -> Vec<(u16, u16)> {
    let end = m.host_port_end.unwrap_or(m.host_port);
    (m.host_port..=end)
        .map(|h| (h, m.container_port + (h - m.host_port)))
        .collect()
}

/// The firewall elements of one mapping to `container_ip` on `bridge`.
pub fn mapping_ports(m: &PortMapping, container_ip: IpAddr, bridge: &str) -> Vec<PublishedPort> {
    let host_ip = m.host_addr().filter(|h| !h.is_unspecified());
    port_pairs(m)
        .into_iter()
        .map(|(h, c)| PublishedPort {
            protocol: l4(m.protocol),
            host_ip,
            host_port: h,
            container_ip,
            container_port: c,
            bridge: bridge.to_string(),
        })
        .collect()
}

/// The firewall elements of an attachment's recorded mappings.
pub fn attachment_ports(a: &Attachment, bridge: &str) -> Vec<PublishedPort> {
    let Ok(container_ip) = a.ip.parse::<IpAddr>() else {
        return Vec::new();
    };
    a.publish
        .iter()
        .flat_map(|m| mapping_ports(m, container_ip, bridge))
        .collect()
}

/// Whether two published ports would answer the same packets.
fn overlaps(a: &PublishedPort, b: &PublishedPort) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && a.container_ip.is_ipv4() == b.container_ip.is_ipv4()
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
}

/// A holder as people know it: its handle and, when it has one, its name.
fn holder(a: &Attachment) -> String {
    match &a.dns_name {
        Some(n) => format!("{} ({n})", a.handle.key()),
        None => a.handle.key(),
    }
}

impl Core {
    /// Every published port recorded now, with who holds it.
    fn published_with_holders(&self) -> OpResult<Vec<(PublishedPort, Attachment)>> {
        let atts = self
            .store
            .read(|tx| tx.list::<Attachment>(Table::Attachments))?;
        let mut out = Vec::new();
        for (_, a) in atts {
            if a.publish.is_empty() {
                continue;
            }
            let Some(bridge) = self.network_bridge(&a.network) else {
                continue;
            };
            for p in attachment_ports(&a, &bridge) {
                out.push((p, a.clone()));
            }
        }
        Ok(out)
    }
}

impl Node {
    /// Check and resolve the mappings an attach asks for: families, ports,
    /// conflicts with every other attachment (refused naming the holder),
    /// and a host range with one container port resolved to its first free
    /// port. Changes nothing.
    pub(crate) fn plan_publish(
        &self,
        key: &str,
        entry: &NetworkEntry,
        internal: bool,
        requested: &[PortMapping],
    ) -> OpResult<Vec<PortMapping>> {
        if requested.is_empty() {
            return Ok(Vec::new());
        }
        if internal {
            return Err(OpError::Invalid(format!(
                "{} is an internal network: nothing from outside the host reaches it, so ports cannot be published",
                entry.owner
            )));
        }
        let subnet = plan::parse_cidr(&entry.subnet)?;
        // Any address of the right family stands in for the container's
        // own (not leased yet) in the overlap checks.
        let probe_ip = subnet.network();
        let taken: Vec<(PublishedPort, Attachment)> = self
            .published_with_holders()?
            .into_iter()
            .filter(|(_, a)| a.handle.key() != key)
            .collect();
        let mut mine: Vec<PublishedPort> = Vec::new();
        let mut resolved = Vec::new();
        for m in requested {
            m.validate().map_err(OpError::Invalid)?;
            let mut m = m.clone();
            if let Some(h) = m.host_addr() {
                if h.is_ipv4() != subnet.addr().is_ipv4() {
                    return Err(OpError::Invalid(format!(
                        "{m}: host address {h} and network {} ({}) are of different IP families",
                        entry.owner, entry.subnet
                    )));
                }
                if h.is_unspecified() {
                    m.host_ip = None;
                }
            }
            let candidates: Vec<PortMapping> =
                if m.host_port_end.is_some() && m.container_port_end.is_none() {
                    // Docker's `8000-8010:80`: the first free host port.
                    let end = m.host_port_end.unwrap_or(m.host_port);
                    (m.host_port..=end)
                        .map(|h| PortMapping {
                            host_port: h,
                            host_port_end: None,
                            ..m.clone()
                        })
                        .collect()
                } else {
                    vec![m.clone()]
                };
            let mut last_conflict = None;
            let mut chosen = None;
            for c in candidates {
                let ports = mapping_ports(&c, probe_ip, &entry.name);
                for p in &ports {
                    p.validate()?;
                }
                let clash = ports.iter().find_map(|p| {
                    taken
                        .iter()
                        .find(|(t, _)| overlaps(p, t))
                        .map(|(t, a)| format!("{t} is already published by {}", holder(a)))
                        .or_else(|| {
                            mine.iter()
                                .find(|t| overlaps(p, t))
                                .map(|t| format!("{t} is listed twice in this request"))
                        })
                });
                match clash {
                    Some(why) => last_conflict = Some(why),
                    None => {
                        chosen = Some((c, ports));
                        break;
                    }
                }
            }
            let Some((c, ports)) = chosen else {
                let why = last_conflict.unwrap_or_default();
                return Err(OpError::Conflict(format!(
                    "cannot publish {m}: {why}; pick another host port or detach the holder"
                )));
            };
            mine.extend(ports);
            if mine.len() > MAX_PUBLISHED_PER_ATTACHMENT {
                return Err(OpError::Invalid(format!(
                    "at most {MAX_PUBLISHED_PER_ATTACHMENT} host ports may be published per container"
                )));
            }
            resolved.push(c);
        }
        Ok(resolved)
    }

    /// Publish an attachment's ports: one element update of the firewall
    /// (the whole table applied if it is missing), and `route_localnet` on
    /// the bridge when a loopback port is among them.
    pub(crate) async fn publish_ports(&self, a: &Attachment, bridge: &str) -> OpResult<()> {
        let ports = attachment_ports(a, bridge);
        if ports.is_empty() {
            return Ok(());
        }
        if ports.iter().any(|p| p.is_loopback()) {
            self.host.set_route_localnet(bridge, true).await?;
        }
        if let Err(e) = self.host.update_published(&ports, &[]).await {
            warn!(error = %e, "cannot add published ports in place; applying the whole table");
            self.sync_firewall().await?;
        }
        Ok(())
    }

    /// Remove an attachment's published ports after its record is gone.
    /// Best effort: a failure leaves the full re-apply to fix it.
    pub(crate) async fn unpublish_ports(&self, a: &Attachment, bridge: &str) {
        let ports = attachment_ports(a, bridge);
        if ports.is_empty() {
            return;
        }
        if let Err(e) = self.host.update_published(&[], &ports).await {
            warn!(error = %e, "cannot remove published ports in place; applying the whole table");
            self.sync_firewall_or_warn().await;
        }
        if ports.iter().any(|p| p.is_loopback()) {
            let still = self
                .published_with_holders()
                .map(|all| {
                    all.iter()
                        .any(|(p, _)| p.bridge == bridge && p.is_loopback())
                })
                .unwrap_or(true);
            if !still {
                if let Err(e) = self.host.set_route_localnet(bridge, false).await {
                    warn!(bridge, error = %e, "cannot turn route_localnet off");
                }
            }
        }
    }
}

impl Core {
    /// The bridge of a recorded network.
    pub(crate) fn network_bridge(&self, network: &str) -> Option<String> {
        self.marker
            .iter()
            .find(|e| e.owner.to_string() == network)
            .map(|e| e.name.clone())
    }
}

impl Node {
    /// A repeated attach must ask for what was published the first time.
    pub(crate) fn same_publish(
        &self,
        existing: &Attachment,
        asked: &[PortMapping],
    ) -> OpResult<()> {
        let unchanged = asked.is_empty() && existing.publish.is_empty()
            || asked.len() == existing.publish.len()
                && asked.iter().zip(&existing.publish).all(|(a, e)| {
                    a == e
                        || (a.host_port_end.is_some()
                            && a.container_port_end.is_none()
                            && (a.host_port..=a.host_port_end.unwrap_or(a.host_port))
                                .contains(&e.host_port)
                            && a.container_port == e.container_port
                            && a.protocol == e.protocol)
                });
        if unchanged {
            return Ok(());
        }
        let list = |v: &[PortMapping]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|m| m.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        Err(OpError::Conflict(format!(
            "{} is already attached publishing {}; detach it first to publish {}",
            existing.handle.key(),
            list(&existing.publish),
            list(asked)
        )))
    }
}

impl Core {
    /// Add the published ports and the bridges they may come from to a spec.
    pub(crate) fn add_published(&self, spec: &mut FirewallSpec) {
        spec.publish_bridges = self
            .marker
            .iter()
            .filter(|e| e.kind == overlayd_state::entry::KIND_LINUX_BRIDGE)
            .map(|e| e.name.clone())
            .collect();
        match self.published_with_holders() {
            // Only committed attachments are published; an `attaching`
            // record's ports are reserved (plan_publish) but not live yet.
            Ok(all) => {
                spec.published = all
                    .into_iter()
                    .filter(|(_, a)| a.state != super::records::AttachState::Attaching)
                    .map(|(p, _)| p)
                    .collect()
            }
            Err(e) => warn!(error = %e, "cannot read published ports"),
        }
    }
}

impl Node {
    /// Turn `route_localnet` on where a loopback port is published (after
    /// a start or a restore).
    pub(crate) async fn sync_route_localnet(&self, spec: &FirewallSpec) {
        let bridges: BTreeSet<String> = spec.localnet_bridges();
        for b in bridges {
            if let Err(e) = self.host.set_route_localnet(&b, true).await {
                warn!(bridge = %b, error = %e, "cannot turn route_localnet on");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp(host_ip: Option<&str>, port: u16, cip: &str) -> PublishedPort {
        PublishedPort {
            protocol: L4Proto::Tcp,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port: port,
            container_ip: cip.parse().unwrap(),
            container_port: 80,
            bridge: "b".into(),
        }
    }

    #[test]
    fn overlap_rules() {
        let any = pp(None, 80, "10.0.0.2");
        assert!(overlaps(&any, &pp(Some("127.0.0.1"), 80, "10.0.0.3")));
        assert!(overlaps(&any, &pp(None, 80, "10.0.0.3")));
        assert!(!overlaps(&any, &pp(None, 81, "10.0.0.3")));
        assert!(
            !overlaps(&any, &pp(None, 80, "fd00::3")),
            "v4 and v6 are separate"
        );
        assert!(!overlaps(
            &pp(Some("127.0.0.1"), 80, "10.0.0.2"),
            &pp(Some("192.0.2.1"), 80, "10.0.0.3")
        ));
        let mut udp = any.clone();
        udp.protocol = L4Proto::Udp;
        assert!(!overlaps(&any, &udp));
    }

    #[test]
    fn ranges_expand_one_to_one() {
        let m: PortMapping = "9000-9002:7000-7002/udp".parse().unwrap();
        assert_eq!(
            port_pairs(&m),
            vec![(9000, 7000), (9001, 7001), (9002, 7002)]
        );
        let ports = mapping_ports(&m, "10.0.0.2".parse().unwrap(), "br");
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[2].protocol, L4Proto::Udp);
        assert_eq!(ports[2].container_port, 7002);
    }
}
