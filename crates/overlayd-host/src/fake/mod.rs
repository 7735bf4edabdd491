//! [`FakeHost`]: an in-memory [`Host`] for fast tests of daemon and engine logic.
//!
//! It keeps a link table, address and route sets, the applied firewall spec, the
//! container interfaces created by attach, and a record of every typed [`Call`].
//! Tests declare which namespace targets are "alive" and can inject a failure
//! into the next call of any [`Op`], including the middle of an attach
//! ([`Op::AttachConfigure`]), to check rollback. Attach follows the same rules as
//! the Linux host: validation first, foreign names refused, nothing left behind.

mod calls;
mod host_impl;
mod state;

pub use calls::{Call, ContainerIface, Op};

use std::sync::{Mutex, MutexGuard};

use ipnet::IpNet;

use crate::error::Result;
use crate::firewall::FirewallSpec;
#[cfg(doc)]
use crate::host::Host;
use crate::types::{Forwarding, LinkInfo, LinkKind, NetnsId, NetnsTarget, Uplink, VethSpec};

use state::*;

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

    /// Makes the next call of `op` fail with [`crate::HostError::Injected`]. Several
    /// injections queue up.
    pub fn fail_next(&self, op: Op) {
        self.lock().failures.push(op);
    }

    /// Makes the next call of `op` take `delay` before it does anything (a
    /// slow netlink or `nft` operation). Supported for
    /// [`Op::CreateBridge`], [`Op::AttachVeth`] and [`Op::DetachVeth`].
    pub fn stall_next(&self, op: Op, delay: std::time::Duration) {
        self.lock().stalls.push((op, delay));
    }

    /// Makes the next successful call of `op` take `delay` after it did its
    /// work, before it returns (the object exists, the caller does not know
    /// yet). Supported for [`Op::AttachVeth`].
    pub fn stall_next_after(&self, op: Op, delay: std::time::Duration) {
        self.lock().stalls_after.push((op, delay));
    }

    /// Waits out a stall set with [`FakeHost::stall_next_after`] for `op`.
    async fn stall_after(&self, op: Op) {
        let delay = {
            let mut s = self.lock();
            let i = s.stalls_after.iter().position(|(o, _)| *o == op);
            i.map(|i| s.stalls_after.remove(i).1)
        };
        self.wait_stalled(delay).await;
    }

    /// Waits out a stall set with [`FakeHost::stall_next`] for `op`.
    async fn stall(&self, op: Op) {
        let delay = {
            let mut s = self.lock();
            let i = s.stalls.iter().position(|(o, _)| *o == op);
            i.map(|i| s.stalls.remove(i).1)
        };
        self.wait_stalled(delay).await;
    }

    /// Sleep `delay`, counted in [`FakeHost::stalled`] meanwhile.
    async fn wait_stalled(&self, delay: Option<std::time::Duration>) {
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
