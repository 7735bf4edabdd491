//! The steps of a request plan: each one host, store, marker or served-set
//! operation the daemon's executor knows how to do (and undo, by running
//! other steps).

use std::net::IpAddr;

use ipnet::IpNet;
use overlayd_model::{NetworkEntry, Owner};

use super::{dns, global, peers, IsolationDesired, ServiceDesired};

/// One thing to do. Steps are plain values: the daemon's executor maps each
/// to one host, store or marker operation. `Debug` never shows a private
/// key (marker entries redact theirs).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write the desired record of an isolation network; with `unbury`,
    /// clear the owner's tombstone in the same store transaction.
    PutIsolation {
        /// The network name.
        network: String,
        /// The record.
        record: IsolationDesired,
        /// Owner whose tombstone goes (it exists again).
        unbury: Option<Owner>,
    },
    /// Remove the desired record of an isolation network; with `bury`,
    /// leave a tombstone in the same transaction.
    RemoveIsolation {
        /// The network name.
        network: String,
        /// Owner to bury.
        bury: Option<Owner>,
    },
    /// Write the desired record of a service (and clear its tombstone).
    PutService {
        /// The service name.
        service: String,
        /// The record.
        record: ServiceDesired,
        /// Owner whose tombstone goes.
        unbury: Option<Owner>,
    },
    /// Remove the desired record of a service (and leave a tombstone).
    RemoveService {
        /// The service name.
        service: String,
        /// Owner to bury.
        bury: Option<Owner>,
    },
    /// Write the desired base overlay.
    PutGlobal {
        /// The record.
        record: global::GlobalDesired,
    },
    /// Remove the desired base overlay; `with_peers` also forgets the
    /// peers recorded for the base device (same transaction).
    RemoveGlobal {
        /// Also forget the base peers.
        with_peers: bool,
    },
    /// Move the dedicated port band above this global port.
    SetGlobalPort {
        /// The node's WireGuard port.
        port: u16,
    },
    /// Record (add or replace) a peer.
    PutPeer {
        /// The record.
        record: peers::PeerDesired,
    },
    /// Forget a recorded peer.
    RemovePeerRecord {
        /// The network whose device carries it.
        network: String,
        /// Its public key.
        public_key: String,
    },
    /// Program a peer on a device (endpoint, keepalive, allowed IPs as
    /// given) and a route per allowed IP into the device.
    ProgramPeer {
        /// The device.
        device: String,
        /// The peer.
        record: peers::PeerDesired,
    },
    /// Take a peer off a device (nothing when it is not there).
    RemoveDevicePeer {
        /// The device.
        device: String,
        /// Its public key.
        public_key: String,
    },
    /// Take one allowed IP off a peer on a device.
    RemoveAllowedIp {
        /// The device.
        device: String,
        /// The peer's public key.
        public_key: String,
        /// The allowed IP.
        net: IpNet,
    },
    /// Delete the routes of these CIDRs into a device; a route already
    /// gone is not a failure.
    DeleteRoutes {
        /// The device.
        device: String,
        /// The CIDRs.
        nets: Vec<IpNet>,
    },
    /// Create the bridge of `entry`, tagged with its owner and id.
    CreateBridge {
        /// The network.
        entry: NetworkEntry,
    },
    /// Take over a live bridge tagged for this network (nothing to do on
    /// the host; it exists so its undo can delete what nothing records).
    AdoptBridge {
        /// The bridge.
        name: String,
    },
    /// Put the gateway address(es) of `entry` on its bridge and set it up.
    ConfigureBridge {
        /// The network.
        entry: NetworkEntry,
    },
    /// Delete a bridge (or any link) by name.
    DeleteBridge {
        /// The link.
        name: String,
    },
    /// Record (or replace) a marker entry and save the marker.
    RecordEntry {
        /// The entry.
        entry: NetworkEntry,
    },
    /// Forget a marker entry and save the marker.
    ForgetEntry {
        /// Whose entry.
        owner: Owner,
    },
    /// Apply the firewall for what is recorded now; a failure is logged,
    /// never fails the request (the periodic check applies it again).
    SyncFirewall,
    /// Apply the firewall for what is recorded now; a failure fails the
    /// request (the base overlay is not up without it).
    ApplyFirewall,
    /// Hold a port of the dedicated band.
    ReservePort {
        /// The port.
        port: u16,
    },
    /// Give a port of the dedicated band back.
    ReleasePort {
        /// The port.
        port: u16,
    },
    /// Create or adopt the WireGuard device of a recorded network (same
    /// name, key, port), address it and re-apply its recorded peers.
    RealizeDevice {
        /// The network.
        entry: NetworkEntry,
    },
    /// Delete a WireGuard device.
    DeleteDevice {
        /// The device.
        name: String,
    },
    /// Report a fact that could not be read (a failed link lookup) as this
    /// step's failure.
    Unreadable {
        /// What could not be read (`bridge ovl-b-…`).
        what: String,
        /// Why.
        error: String,
    },
    /// Fail when any best-effort step before it failed: the network stays
    /// recorded so a retry finishes the removal.
    RequireAllRemoved {
        /// The network being removed.
        owner: Owner,
    },
    /// Drop every address lease of a network.
    DropLeases {
        /// The network (owner string).
        network: String,
    },
    /// Forget the peers recorded for a network's device.
    ForgetPeers {
        /// The network.
        owner: Owner,
    },
    /// Give a cross-node network's subnet lease back (cluster mode; best
    /// effort).
    ReleaseClusterSubnet {
        /// The network.
        owner: Owner,
    },
    /// Put an address on a link.
    AddAddress {
        /// The link.
        link: String,
        /// The address with its prefix.
        addr: IpNet,
    },
    /// Take an address off a link.
    DeleteAddress {
        /// The link.
        link: String,
        /// The address with its prefix.
        addr: IpNet,
    },
    /// Make the DNS server's gateway listeners match the recorded networks
    /// (never fails: a listener that cannot bind is logged).
    SyncDnsListeners,
    /// Write a DNS name's stored addresses (none: the name goes) and its
    /// tombstone, in one store transaction.
    WriteDnsName {
        /// The name's zone key (`web.overlay.internal.`).
        key: String,
        /// Its addresses as stored; none removes the name.
        ips: Option<Vec<String>>,
        /// What happens to the name's tombstone.
        tombstone: dns::Tombstone,
    },
    /// Make the served record set answer these addresses for a name (none:
    /// the name is no longer served).
    ServeDnsName {
        /// The name's zone key.
        key: String,
        /// Its addresses.
        ips: Vec<IpAddr>,
    },
}

impl Step {
    /// How a best-effort failure of this step is named in the report.
    pub fn subject(&self) -> String {
        match self {
            Step::DeleteDevice { name } => format!("WireGuard device {name}"),
            Step::DeleteBridge { name } | Step::AdoptBridge { name } => format!("bridge {name}"),
            Step::CreateBridge { entry } | Step::ConfigureBridge { entry } => {
                format!("bridge {}", entry.name)
            }
            Step::Unreadable { what, .. } => what.clone(),
            Step::AddAddress { link, addr } | Step::DeleteAddress { link, addr } => {
                format!("address {addr} on {link}")
            }
            other => format!("{other:?}"),
        }
    }
}
