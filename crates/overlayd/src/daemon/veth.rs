//! The veth of an attachment as a value: its spec (name, tag, bridge, the
//! addresses of each family its network has, default routes), and the
//! re-plugging of a recreated bridge's members with the same specs.

use std::net::IpAddr;

use ipnet::IpNet;
use overlayd_host::{NetnsTarget, VethSpec};
use overlayd_state::Owner;

use super::attach::netns_target;
use super::error::{OpError, OpResult};
use super::node::Node;
use super::plan;
use super::records::Attachment;

impl Node {
    /// Put an attach's just-made veth on its network's bridge as it exists
    /// now, when a bridge was made again (and its members re-plugged)
    /// while the veth was being made: the veth may be on no bridge.
    pub(crate) async fn plug_into_current_bridge(&self, spec: &VethSpec) -> OpResult<()> {
        let veth = self.host.link(&spec.host_ifname).await?;
        let bridge = self.host.link(&spec.bridge).await?;
        if let (Some(v), Some(b)) = (veth, bridge) {
            if v.master != Some(b.index) {
                self.host.detach_veth(&spec.host_ifname).await?;
                self.host.attach_veth(spec).await?;
                tracing::info!(veth = %spec.host_ifname, bridge = %spec.bridge, "plugged a new container into its recreated bridge");
            }
        }
        Ok(())
    }

    /// The veth of an attachment on a network.
    pub async fn veth_spec(
        &self,
        a: &Attachment,
        entry: &overlayd_state::NetworkEntry,
        target: NetnsTarget,
    ) -> OpResult<VethSpec> {
        let subnet = plan::parse_cidr(&entry.subnet)?;
        let ip: IpAddr = a
            .ip
            .parse()
            .map_err(|_| OpError::State(format!("attachment address {:?} is not an IP", a.ip)))?;
        // Dual-stack: the IPv6 address (and gateway) beside the IPv4 one.
        let subnet6 = super::dual_stack::subnet_v6(entry)?;
        let address_v6 = match (&a.ip_v6, subnet6) {
            (Some(ip6), Some(s6)) => {
                let ip6: IpAddr = ip6.parse().map_err(|_| {
                    OpError::State(format!("attachment address {ip6:?} is not an IP"))
                })?;
                Some(IpNet::new(ip6, s6.prefix_len()).map_err(|e| OpError::State(e.to_string()))?)
            }
            _ => None,
        };
        let default_route = !(a.is_connected() || self.is_internal(&entry.owner)?);
        let gateway_v6 = match (address_v6, subnet6) {
            (Some(_), Some(s6)) if default_route => Some(plan::gateway_cidr(s6)?.addr()),
            _ => None,
        };
        Ok(VethSpec {
            host_ifname: a.host_ifname.clone(),
            alias: plan::attach_tag(&a.key(), &a.id, &self.instance),
            bridge: entry.name.clone(),
            target,
            container_ifname: a.container_ifname().to_string(),
            address: IpNet::new(ip, a.prefix_len).map_err(|e| OpError::State(e.to_string()))?,
            // An internal network has no way out: no default route; a
            // further network leaves the default route on the first one.
            gateway: if default_route {
                Some(plan::gateway_cidr(subnet)?.addr())
            } else {
                None
            },
            mtu: self.network_mtu(entry).await,
            address_v6,
            gateway_v6,
        })
    }

    /// Re-plug the containers of a network whose bridge was recreated: their
    /// veths survived but lost their master, so each gets a fresh pair with
    /// the same name, tag and address.
    pub async fn replug_members(&self, owner: &Owner) -> OpResult<usize> {
        let Some(entry) = self.marker.get(owner).cloned() else {
            return Ok(0);
        };
        // Attaches in flight (skipped below) re-plug their own veth.
        self.inflight.note_replug();
        let Some(bridge) = self.host.link(&entry.name).await? else {
            return Ok(0);
        };
        let mut n = 0;
        for a in self.attachments_on(&owner.to_string())? {
            // A guest has no veth; a request in flight makes its own.
            if a.guest_private_key.is_some() || self.inflight.is_claimed(&a.key()) {
                continue;
            }
            let Some(link) = self.host.link(&a.host_ifname).await? else {
                continue;
            };
            if link.master == Some(bridge.index) {
                continue;
            }
            let Ok(target) = netns_target(&a.handle) else {
                continue;
            };
            let spec = self.veth_spec(&a, &entry, target).await?;
            self.host.detach_veth(&a.host_ifname).await?;
            self.host.attach_veth(&spec).await?;
            n += 1;
        }
        Ok(n)
    }
}
