//! The fake host's tables: links, addresses, routes, firewall, namespaces, calls.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::error::{HostError, Result};
use crate::firewall::FirewallSpec;
#[cfg(doc)]
use crate::host::Host;
use crate::types::{Forwarding, LinkInfo, LinkKind, NetnsId, NetnsTarget, Uplink};

use super::{Call, ContainerIface, Op};

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) links: BTreeMap<String, LinkInfo>,
    pub(super) next_index: u32,
    pub(super) addrs: BTreeMap<String, BTreeSet<IpNet>>,
    pub(super) routes: BTreeSet<(IpNet, String)>,
    pub(super) firewall: Option<FirewallSpec>,
    pub(super) firewall_intact: bool,
    pub(super) live: BTreeSet<NetnsTarget>,
    pub(super) ns_ids: BTreeMap<NetnsTarget, NetnsId>,
    pub(super) containers: BTreeMap<NetnsTarget, BTreeMap<String, ContainerIface>>,
    pub(super) peers: BTreeMap<String, (NetnsTarget, String)>,
    pub(super) uplink: Option<Uplink>,
    pub(super) forwarding: Forwarding,
    pub(super) route_localnet: BTreeSet<String>,
    pub(super) calls: Vec<Call>,
    pub(super) failures: Vec<Op>,
    pub(super) stalls: Vec<(Op, std::time::Duration)>,
    pub(super) stalls_after: Vec<(Op, std::time::Duration)>,
    pub(super) stalled: usize,
}

impl State {
    pub(super) fn take_failure(&mut self, op: Op) -> Result<()> {
        if let Some(pos) = self.failures.iter().position(|o| *o == op) {
            self.failures.remove(pos);
            return Err(HostError::Injected(op));
        }
        Ok(())
    }

    pub(super) fn new_link(
        &mut self,
        name: &str,
        kind: LinkKind,
        alias: Option<&str>,
        mtu: u32,
    ) -> LinkInfo {
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

    pub(super) fn remove_link(&mut self, name: &str) -> bool {
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

    pub(super) fn require(&self, name: &str) -> Result<&LinkInfo> {
        self.links.get(name).ok_or_else(|| HostError::LinkNotFound {
            name: name.to_string(),
        })
    }

    pub(super) fn require_mut(&mut self, name: &str) -> Result<&mut LinkInfo> {
        self.links
            .get_mut(name)
            .ok_or_else(|| HostError::LinkNotFound {
                name: name.to_string(),
            })
    }
}

/// The identity a fake target has unless told otherwise: FNV-1a of its
/// display form, so every target is its own namespace.
pub(super) fn own_ns_id(target: &NetnsTarget) -> NetnsId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.to_string().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    NetnsId { dev: 4, ino: h }
}
