//! [`FakeHost`]: an in-memory [`Host`] for fast tests of daemon and engine logic.
//!
//! It keeps a link table, address and route sets, the applied firewall spec, the
//! container interfaces created by attach, and a record of every typed [`Call`].
//! Tests declare which namespace targets are "alive" and can inject a failure
//! into the next call of any [`Op`], including the middle of an attach
//! ([`Op::AttachConfigure`]), to check rollback. Attach follows the same rules as
//! the Linux host: validation first, foreign names refused, nothing left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use ipnet::IpNet;

use crate::error::{HostError, Result};
use crate::firewall::{FirewallSpec, PublishedPort};
use crate::host::Host;
use crate::types::{
    validate_alias, validate_ifname, validate_mtu, ContainerInterface, Forwarding, LinkInfo,
    LinkKind, NetnsId, NetnsTarget, Uplink, VethAttachment, VethSpec,
};

/// An operation of the [`Host`] trait, used to inject failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Host::links`].
    Links,
    /// [`Host::link`].
    Link,
    /// [`Host::create_bridge`].
    CreateBridge,
    /// [`Host::delete_link`].
    DeleteLink,
    /// [`Host::set_alias`].
    SetAlias,
    /// [`Host::set_mtu`].
    SetMtu,
    /// [`Host::set_up`].
    SetUp,
    /// [`Host::add_address`].
    AddAddress,
    /// [`Host::delete_address`].
    DeleteAddress,
    /// [`Host::addresses`].
    Addresses,
    /// [`Host::add_route`].
    AddRoute,
    /// [`Host::delete_route`].
    DeleteRoute,
    /// [`Host::uplink`].
    Uplink,
    /// [`Host::set_forwarding`].
    SetForwarding,
    /// [`Host::attach_veth`], failing before anything is created.
    AttachVeth,
    /// [`Host::attach_veth`], failing after the veth pair exists (exercises rollback).
    AttachConfigure,
    /// [`Host::detach_veth`].
    DetachVeth,
    /// [`Host::netns_alive`].
    NetnsAlive,
    /// [`Host::container_interface`].
    ContainerInterface,
    /// [`Host::apply_firewall`].
    ApplyFirewall,
    /// [`Host::firewall_matches`].
    FirewallMatches,
    /// [`Host::remove_firewall`].
    RemoveFirewall,
    /// [`Host::update_published`].
    UpdatePublished,
    /// [`Host::set_route_localnet`].
    SetRouteLocalnet,
}

/// One recorded call with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Call {
    Links,
    Link(String),
    CreateBridge {
        name: String,
        alias: String,
        mtu: Option<u32>,
    },
    DeleteLink(String),
    SetAlias {
        name: String,
        alias: String,
    },
    SetMtu {
        name: String,
        mtu: u32,
    },
    SetUp {
        name: String,
        up: bool,
    },
    AddAddress {
        name: String,
        addr: IpNet,
    },
    DeleteAddress {
        name: String,
        addr: IpNet,
    },
    Addresses(String),
    AddRoute {
        dest: IpNet,
        dev: String,
    },
    DeleteRoute {
        dest: IpNet,
        dev: String,
    },
    Uplink,
    SetForwarding(Forwarding),
    AttachVeth(VethSpec),
    DetachVeth(String),
    NetnsAlive(NetnsTarget),
    ContainerInterface {
        target: NetnsTarget,
        ifname: String,
    },
    ApplyFirewall(FirewallSpec),
    FirewallMatches(FirewallSpec),
    RemoveFirewall,
    UpdatePublished {
        add: Vec<PublishedPort>,
        remove: Vec<PublishedPort>,
    },
    SetRouteLocalnet {
        name: String,
        on: bool,
    },
}

impl Call {
    /// Whether this call changes host state (reads are `false`).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            Call::Links
                | Call::Link(_)
                | Call::Addresses(_)
                | Call::Uplink
                | Call::NetnsAlive(_)
                | Call::ContainerInterface { .. }
                | Call::FirewallMatches(_)
        )
    }
}

/// A container-side interface created by an attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerIface {
    /// Interface name inside the container namespace.
    pub ifname: String,
    /// Host end of the pair.
    pub host_ifname: String,
    /// Address with prefix length.
    pub address: IpNet,
    /// Default gateway, if one was installed.
    pub gateway: Option<IpAddr>,
    /// Dual-stack: the IPv6 address with prefix length.
    pub address_v6: Option<IpNet>,
    /// IPv6 default gateway, if one was installed.
    pub gateway_v6: Option<IpAddr>,
    /// MTU of both ends.
    pub mtu: u32,
}

#[derive(Debug, Default)]
struct State {
    links: BTreeMap<String, LinkInfo>,
    next_index: u32,
    addrs: BTreeMap<String, BTreeSet<IpNet>>,
    routes: BTreeSet<(IpNet, String)>,
    firewall: Option<FirewallSpec>,
    firewall_intact: bool,
    live: BTreeSet<NetnsTarget>,
    ns_ids: BTreeMap<NetnsTarget, NetnsId>,
    containers: BTreeMap<NetnsTarget, BTreeMap<String, ContainerIface>>,
    peers: BTreeMap<String, (NetnsTarget, String)>,
    uplink: Option<Uplink>,
    forwarding: Forwarding,
    route_localnet: BTreeSet<String>,
    calls: Vec<Call>,
    failures: Vec<Op>,
    stalls: Vec<(Op, std::time::Duration)>,
    stalled: usize,
}

impl State {
    fn take_failure(&mut self, op: Op) -> Result<()> {
        if let Some(pos) = self.failures.iter().position(|o| *o == op) {
            self.failures.remove(pos);
            return Err(HostError::Injected(op));
        }
        Ok(())
    }

    fn new_link(&mut self, name: &str, kind: LinkKind, alias: Option<&str>, mtu: u32) -> LinkInfo {
        // Index 1 is `lo`; new links count up from 2 and are never reused.
        self.next_index = self.next_index.max(1) + 1;
        let index = self.next_index;
        let link = LinkInfo {
            index,
            name: name.to_string(),
            kind,
            alias: alias.map(str::to_string),
            master: None,
            up: false,
            mtu,
            mac: Some([0x02, 0, 0, 0, (index >> 8) as u8, index as u8]),
        };
        self.links.insert(name.to_string(), link.clone());
        link
    }

    fn remove_link(&mut self, name: &str) -> bool {
        let Some(link) = self.links.remove(name) else {
            return false;
        };
        self.addrs.remove(name);
        self.routes.retain(|(_, dev)| dev != name);
        for l in self.links.values_mut() {
            if l.master == Some(link.index) {
                l.master = None;
            }
        }
        if let Some((target, ifname)) = self.peers.remove(name) {
            if let Some(ifaces) = self.containers.get_mut(&target) {
                ifaces.remove(&ifname);
            }
        }
        true
    }

    fn require(&self, name: &str) -> Result<&LinkInfo> {
        self.links.get(name).ok_or_else(|| HostError::LinkNotFound {
            name: name.to_string(),
        })
    }

    fn require_mut(&mut self, name: &str) -> Result<&mut LinkInfo> {
        self.links
            .get_mut(name)
            .ok_or_else(|| HostError::LinkNotFound {
                name: name.to_string(),
            })
    }
}

/// The identity a fake target has unless told otherwise: FNV-1a of its
/// display form, so every target is its own namespace.
fn own_ns_id(target: &NetnsTarget) -> NetnsId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    NetnsId { dev: 4, ino: h }
}

/// In-memory [`Host`]; see the module documentation.
#[derive(Debug, Default)]
pub struct FakeHost {
    state: Mutex<State>,
}

impl FakeHost {
    /// An empty host: no links besides the implicit `lo`, no live targets.
    pub fn new() -> Self {
        let host = FakeHost::default();
        {
            let mut s = host.lock();
            s.firewall_intact = true;
            s.next_index = 0;
            s.forwarding = Forwarding {
                ipv4: Some(false),
                ipv6: Some(false),
            };
            let lo = LinkInfo {
                index: 1,
                name: "lo".into(),
                kind: LinkKind::Unknown,
                alias: None,
                master: None,
                up: true,
                mtu: 65536,
                mac: None,
            };
            s.links.insert("lo".into(), lo);
        }
        host
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock only happens in a failing test; keep
        // the state usable for its diagnostics.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, call: Call, op: Op) -> Result<MutexGuard<'_, State>> {
        let mut s = self.lock();
        s.calls.push(call);
        s.take_failure(op)?;
        Ok(s)
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Only the calls that change state.
    pub fn mutations(&self) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.is_mutation())
            .cloned()
            .collect()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Makes the next call of `op` fail with [`HostError::Injected`]. Several
    /// injections queue up.
    pub fn fail_next(&self, op: Op) {
        self.lock().failures.push(op);
    }

    /// Makes the next call of `op` take `delay` before it does anything (a
    /// slow netlink or `nft` operation). Supported for
    /// [`Op::CreateBridge`] and [`Op::AttachVeth`].
    pub fn stall_next(&self, op: Op, delay: std::time::Duration) {
        self.lock().stalls.push((op, delay));
    }

    /// Waits out a stall set with [`FakeHost::stall_next`] for `op`.
    async fn stall(&self, op: Op) {
        let delay = {
            let mut s = self.lock();
            let i = s.stalls.iter().position(|(o, _)| *o == op);
            i.map(|i| s.stalls.remove(i).1)
        };
        if let Some(d) = delay {
            self.lock().stalled += 1;
            tokio::time::sleep(d).await;
            self.lock().stalled -= 1;
        }
    }

    /// How many calls are waiting out a stall right now.
    pub fn stalled(&self) -> usize {
        self.lock().stalled
    }

    /// Declares a namespace target as existing (a live process or a netns file).
    pub fn add_live_target(&self, target: NetnsTarget) {
        self.lock().live.insert(target);
    }

    /// Declares `target` as live and naming the same namespace as `existing`
    /// (as `/proc/PID/ns/net` and a `/run/netns` bind mount of it do).
    pub fn alias_target(&self, target: NetnsTarget, existing: &NetnsTarget) {
        let mut s = self.lock();
        let id = s
            .ns_ids
            .get(existing)
            .copied()
            .unwrap_or_else(|| own_ns_id(existing));
        s.ns_ids.insert(existing.clone(), id);
        s.ns_ids.insert(target.clone(), id);
        s.live.insert(target);
    }

    /// Gives a live target a new namespace identity, as a PID reused by a
    /// different container would have.
    pub fn renew_target(&self, target: &NetnsTarget) {
        let mut s = self.lock();
        let next = s.ns_ids.values().map(|i| i.ino).max().unwrap_or(0) + 1_000_000;
        s.ns_ids
            .insert(target.clone(), NetnsId { dev: 4, ino: next });
    }

    /// Makes a target vanish, like a container exiting: the kernel then deletes
    /// the veth pairs whose peer lived in it.
    pub fn kill_target(&self, target: &NetnsTarget) {
        let mut s = self.lock();
        s.live.remove(target);
        if let Some(ifaces) = s.containers.remove(target) {
            for iface in ifaces.values() {
                s.peers.remove(&iface.host_ifname);
                s.links.remove(&iface.host_ifname);
            }
        }
    }

    /// Leaves the host as a process killed part-way through
    /// [`Host::attach_veth`] of `spec` would: the pair exists with its peer in
    /// the container, the host end carries the MAC derived from the tag but is
    /// on no bridge and down; with `tagged`, the tag was written too (the
    /// kernel ignores the alias at creation, so untagged is the first state).
    pub fn leave_half_attached(&self, spec: &VethSpec, tagged: bool) {
        let mut s = self.lock();
        let alias = tagged.then_some(spec.alias.as_str());
        let mut link = s.new_link(&spec.host_ifname, LinkKind::Veth, alias, 1500);
        link.mac = Some(crate::types::veth_mac(&spec.alias));
        s.links.insert(spec.host_ifname.clone(), link);
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
                gateway: None,
                address_v6: spec.address_v6,
                gateway_v6: None,
                mtu: 1500,
            },
        );
    }

    /// Adds a link that overlayd did not create (e.g. a NIC or someone's bridge).
    pub fn insert_link(&self, name: &str, kind: LinkKind, alias: Option<&str>) -> LinkInfo {
        let mut s = self.lock();
        let mut link = s.new_link(name, kind, alias, 1500);
        link.up = true;
        s.links.insert(name.to_string(), link.clone());
        link
    }

    /// Sets what [`Host::uplink`] reports.
    pub fn set_uplink(&self, uplink: Option<Uplink>) {
        self.lock().uplink = uplink;
    }

    /// The firewall spec last applied, if any (regardless of tampering).
    pub fn firewall(&self) -> Option<FirewallSpec> {
        self.lock().firewall.clone()
    }

    /// Simulates someone flushing or editing overlayd's table.
    pub fn tamper_firewall(&self) {
        self.lock().firewall_intact = false;
    }

    /// Interfaces with `route_localnet` on.
    pub fn route_localnet(&self) -> Vec<String> {
        self.lock().route_localnet.iter().cloned().collect()
    }

    /// The forwarding sysctls as they are now (both off at first).
    pub fn forwarding_now(&self) -> Forwarding {
        self.lock().forwarding
    }

    /// Sets the forwarding sysctls as the host had them before overlayd.
    pub fn set_forwarding_now(&self, f: Forwarding) {
        self.lock().forwarding = f;
    }

    /// The routes installed with [`Host::add_route`].
    pub fn routes(&self) -> Vec<(IpNet, String)> {
        self.lock().routes.iter().cloned().collect()
    }

    /// The interfaces attach created inside a target namespace.
    pub fn container_ifaces(&self, target: &NetnsTarget) -> Vec<ContainerIface> {
        self.lock()
            .containers
            .get(target)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

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

    async fn detach_veth(&self, host_ifname: &str) -> Result<bool> {
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
