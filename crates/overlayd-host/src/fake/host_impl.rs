//! [`Host`] for [`FakeHost`]: the same validation and rollback rules as the
//! Linux host, on the in-memory tables.

use async_trait::async_trait;
use ipnet::IpNet;

use crate::error::{HostError, Result};
use crate::firewall::{FirewallSpec, PublishedPort};
use crate::host::Host;
use crate::types::{
    validate_alias, validate_ifname, validate_mtu, ContainerInterface, Forwarding, LinkInfo,
    LinkKind, NetnsId, NetnsTarget, Uplink, VethAttachment, VethSpec,
};

use super::state::*;
use super::{Call, ContainerIface, FakeHost, Op};

#[async_trait]
impl Host for FakeHost {
    async fn links(&self) -> Result<Vec<LinkInfo>> {
        let s = self.begin(Call::Links, Op::Links)?;
        let mut v: Vec<LinkInfo> = s.links.values().cloned().collect();
        v.sort_by_key(|l| l.index);
        Ok(v)
    }

    async fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        let s = self.begin(Call::Link(name.into()), Op::Link)?;
        validate_ifname(name)?;
        Ok(s.links.get(name).cloned())
    }

    async fn create_bridge(&self, name: &str, alias: &str, mtu: Option<u32>) -> Result<LinkInfo> {
        self.stall(Op::CreateBridge).await;
        let call = Call::CreateBridge {
            name: name.into(),
            alias: alias.into(),
            mtu,
        };
        let mut s = self.begin(call, Op::CreateBridge)?;
        validate_ifname(name)?;
        validate_alias(alias)?;
        if let Some(m) = mtu {
            validate_mtu(m)?;
        }
        if let Some(existing) = s.links.get_mut(name) {
            if existing.alias.as_deref() != Some(alias) {
                return Err(HostError::ForeignLink {
                    name: name.into(),
                    alias: existing.alias.clone(),
                });
            }
            if existing.kind != LinkKind::Bridge {
                return Err(HostError::WrongLinkKind {
                    name: name.into(),
                    expected: "bridge".into(),
                    actual: existing.kind.to_string(),
                });
            }
            existing.up = true;
            if let Some(m) = mtu {
                existing.mtu = m;
            }
            return Ok(existing.clone());
        }
        let mut link = s.new_link(name, LinkKind::Bridge, Some(alias), mtu.unwrap_or(1500));
        link.up = true;
        s.links.insert(name.into(), link.clone());
        Ok(link)
    }

    async fn delete_link(&self, name: &str) -> Result<bool> {
        let mut s = self.begin(Call::DeleteLink(name.into()), Op::DeleteLink)?;
        validate_ifname(name)?;
        Ok(s.remove_link(name))
    }

    async fn set_alias(&self, name: &str, alias: &str) -> Result<()> {
        let call = Call::SetAlias {
            name: name.into(),
            alias: alias.into(),
        };
        let mut s = self.begin(call, Op::SetAlias)?;
        validate_alias(alias)?;
        let l = s.require_mut(name)?;
        l.alias = (!alias.is_empty()).then(|| alias.to_string());
        Ok(())
    }

    async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        let call = Call::SetMtu {
            name: name.into(),
            mtu,
        };
        let mut s = self.begin(call, Op::SetMtu)?;
        validate_mtu(mtu)?;
        s.require_mut(name)?.mtu = mtu;
        Ok(())
    }

    async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        let call = Call::SetUp {
            name: name.into(),
            up,
        };
        let mut s = self.begin(call, Op::SetUp)?;
        s.require_mut(name)?.up = up;
        Ok(())
    }

    async fn add_address(&self, name: &str, addr: IpNet) -> Result<()> {
        let call = Call::AddAddress {
            name: name.into(),
            addr,
        };
        let mut s = self.begin(call, Op::AddAddress)?;
        s.require(name)?;
        s.addrs.entry(name.into()).or_default().insert(addr);
        Ok(())
    }

    async fn delete_address(&self, name: &str, addr: IpNet) -> Result<bool> {
        let call = Call::DeleteAddress {
            name: name.into(),
            addr,
        };
        let mut s = self.begin(call, Op::DeleteAddress)?;
        s.require(name)?;
        Ok(s.addrs
            .get_mut(name)
            .map(|a| a.remove(&addr))
            .unwrap_or(false))
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpNet>> {
        let s = self.begin(Call::Addresses(name.into()), Op::Addresses)?;
        s.require(name)?;
        Ok(s.addrs
            .get(name)
            .map(|a| a.iter().copied().collect())
            .unwrap_or_default())
    }

    async fn add_route(&self, dest: IpNet, dev: &str) -> Result<()> {
        let call = Call::AddRoute {
            dest,
            dev: dev.into(),
        };
        let mut s = self.begin(call, Op::AddRoute)?;
        s.require(dev)?;
        let dest = dest.trunc();
        // Create, never replace: one route per destination.
        if let Some((_, other)) = s.routes.iter().find(|(d, o)| *d == dest && o != dev) {
            return Err(HostError::InvalidArgument(format!(
                "a route to {dest} already exists (dev {other}) that overlayd did not add; refusing to replace it"
            )));
        }
        s.routes.insert((dest, dev.into()));
        Ok(())
    }

    async fn delete_route(&self, dest: IpNet, dev: &str) -> Result<bool> {
        let call = Call::DeleteRoute {
            dest,
            dev: dev.into(),
        };
        let mut s = self.begin(call, Op::DeleteRoute)?;
        Ok(s.routes.remove(&(dest.trunc(), dev.to_string())))
    }

    async fn uplink(&self) -> Result<Option<Uplink>> {
        let s = self.begin(Call::Uplink, Op::Uplink)?;
        Ok(s.uplink.clone())
    }

    async fn forwarding(&self) -> Result<Forwarding> {
        Ok(self.lock().forwarding)
    }

    async fn set_forwarding(&self, f: Forwarding) -> Result<()> {
        let mut s = self.begin(Call::SetForwarding(f), Op::SetForwarding)?;
        if f.ipv4.is_some() {
            s.forwarding.ipv4 = f.ipv4;
        }
        if f.ipv6.is_some() && s.forwarding.ipv6.is_some() {
            s.forwarding.ipv6 = f.ipv6;
        }
        Ok(())
    }

    async fn attach_veth(&self, spec: &VethSpec) -> Result<VethAttachment> {
        self.stall(Op::AttachVeth).await;
        let made = self.attach_veth_now(spec);
        if made.is_ok() {
            self.stall_after(Op::AttachVeth).await;
        }
        made
    }

    async fn detach_veth(&self, host_ifname: &str) -> Result<bool> {
        self.stall(Op::DetachVeth).await;
        let mut s = self.begin(Call::DetachVeth(host_ifname.into()), Op::DetachVeth)?;
        validate_ifname(host_ifname)?;
        match s.links.get(host_ifname) {
            None => Ok(false),
            Some(l) if l.kind != LinkKind::Veth => Err(HostError::WrongLinkKind {
                name: l.name.clone(),
                expected: "veth".into(),
                actual: l.kind.to_string(),
            }),
            Some(_) => Ok(s.remove_link(host_ifname)),
        }
    }

    async fn netns_alive(&self, target: &NetnsTarget) -> Result<bool> {
        let s = self.begin(Call::NetnsAlive(target.clone()), Op::NetnsAlive)?;
        Ok(s.live.contains(target))
    }

    async fn netns_identity(&self, target: &NetnsTarget) -> Result<Option<NetnsId>> {
        let s = self.lock();
        if !s.live.contains(target) {
            return Ok(None);
        }
        // A target without an explicit identity is its own namespace.
        Ok(Some(
            s.ns_ids
                .get(target)
                .copied()
                .unwrap_or_else(|| own_ns_id(target)),
        ))
    }

    async fn container_interface(
        &self,
        target: &NetnsTarget,
        ifname: &str,
    ) -> Result<Option<ContainerInterface>> {
        let call = Call::ContainerInterface {
            target: target.clone(),
            ifname: ifname.to_string(),
        };
        let s = self.begin(call, Op::ContainerInterface)?;
        validate_ifname(ifname)?;
        if !s.live.contains(target) {
            return Ok(None);
        }
        let Some(c) = s.containers.get(target).and_then(|m| m.get(ifname)) else {
            return Ok(None);
        };
        // The container end's MAC: the host end's with a fixed first byte,
        // as attach_veth reports it.
        let mac = s
            .links
            .get(&c.host_ifname)
            .and_then(|l| l.mac)
            .map(|mut m| {
                m[0] = 0x06;
                m
            });
        Ok(Some(ContainerInterface {
            name: c.ifname.clone(),
            mac,
            up: true,
            mtu: c.mtu,
            addresses: std::iter::once(c.address).chain(c.address_v6).collect(),
            default_gateways: c.gateway.into_iter().chain(c.gateway_v6).collect(),
        }))
    }

    async fn apply_firewall(&self, fw: &FirewallSpec) -> Result<()> {
        let mut s = self.begin(Call::ApplyFirewall(fw.clone()), Op::ApplyFirewall)?;
        fw.validate()?;
        s.firewall = Some(fw.normalized());
        s.firewall_intact = true;
        Ok(())
    }

    async fn firewall_matches(&self, fw: &FirewallSpec) -> Result<bool> {
        let s = self.begin(Call::FirewallMatches(fw.clone()), Op::FirewallMatches)?;
        Ok(s.firewall_intact && s.firewall.as_ref() == Some(&fw.normalized()))
    }

    async fn remove_firewall(&self) -> Result<bool> {
        let mut s = self.begin(Call::RemoveFirewall, Op::RemoveFirewall)?;
        s.firewall_intact = true;
        Ok(s.firewall.take().is_some())
    }

    async fn update_published(
        &self,
        add: &[PublishedPort],
        remove: &[PublishedPort],
    ) -> Result<()> {
        let call = Call::UpdatePublished {
            add: add.to_vec(),
            remove: remove.to_vec(),
        };
        let mut s = self.begin(call, Op::UpdatePublished)?;
        for p in add.iter().chain(remove) {
            p.validate()?;
        }
        let intact = s.firewall_intact;
        let Some(fw) = s.firewall.as_mut().filter(|_| intact) else {
            return Err(HostError::Nft {
                op: "publish",
                message: "Error: No such file or directory (table missing)".into(),
            });
        };
        fw.published.retain(|p| !remove.contains(p));
        fw.published.extend(add.iter().cloned());
        *fw = fw.normalized();
        Ok(())
    }

    async fn set_route_localnet(&self, name: &str, on: bool) -> Result<()> {
        let call = Call::SetRouteLocalnet {
            name: name.to_string(),
            on,
        };
        let mut s = self.begin(call, Op::SetRouteLocalnet)?;
        validate_ifname(name)?;
        if on {
            s.route_localnet.insert(name.to_string());
        } else {
            s.route_localnet.remove(name);
        }
        Ok(())
    }
}

impl FakeHost {
    /// The veth of `spec`, made at once (the stalls are around it).
    fn attach_veth_now(&self, spec: &VethSpec) -> Result<VethAttachment> {
        let mut s = self.begin(Call::AttachVeth(spec.clone()), Op::AttachVeth)?;
        spec.validate()?;
        if !s.live.contains(&spec.target) {
            return Err(HostError::NetnsGone {
                target: spec.target.clone(),
                reason: "not a live target of the fake host".into(),
            });
        }
        let bridge = s.require(&spec.bridge)?.clone();
        if bridge.kind != LinkKind::Bridge {
            return Err(HostError::WrongLinkKind {
                name: bridge.name,
                expected: "bridge".into(),
                actual: bridge.kind.to_string(),
            });
        }
        if let Some(existing) = s.links.get(&spec.host_ifname) {
            if !spec.owns(existing) {
                return Err(HostError::ForeignLink {
                    name: existing.name.clone(),
                    alias: existing.alias.clone(),
                });
            }
            s.remove_link(&spec.host_ifname);
        }
        if s.containers
            .get(&spec.target)
            .map(|m| m.contains_key(&spec.container_ifname))
            .unwrap_or(false)
        {
            return Err(HostError::InvalidArgument(format!(
                "an interface named {} already exists in {}",
                spec.container_ifname, spec.target
            )));
        }
        let mtu = spec.mtu.unwrap_or(bridge.mtu);
        let mut host = s.new_link(&spec.host_ifname, LinkKind::Veth, Some(&spec.alias), mtu);
        host.mac = Some(crate::types::veth_mac(&spec.alias));
        s.require_mut(&spec.host_ifname)?.mac = host.mac;
        s.peers.insert(
            spec.host_ifname.clone(),
            (spec.target.clone(), spec.container_ifname.clone()),
        );
        s.containers.entry(spec.target.clone()).or_default().insert(
            spec.container_ifname.clone(),
            ContainerIface {
                ifname: spec.container_ifname.clone(),
                host_ifname: spec.host_ifname.clone(),
                address: spec.address,
                gateway: spec.gateway,
                address_v6: spec.address_v6,
                gateway_v6: spec.gateway_v6,
                mtu,
            },
        );
        if let Err(e) = s.take_failure(Op::AttachConfigure) {
            s.remove_link(&spec.host_ifname);
            return Err(e);
        }
        let link = s.require_mut(&spec.host_ifname)?;
        link.master = Some(bridge.index);
        link.up = true;
        Ok(VethAttachment {
            host_index: host.index,
            host_ifname: spec.host_ifname.clone(),
            container_ifname: spec.container_ifname.clone(),
            container_index: 2,
            container_mac: host.mac.map(|mut m| {
                m[0] = 0x06;
                m
            }),
        })
    }
}
