//! Requests (client → daemon), tagged by `op`, with the handle and scope
//! objects they carry. Strings stay strings on the wire; the daemon parses
//! them with clear error messages.

use serde::{Deserialize, Serialize};

/// How a service is networked. `auto` resolves to `shared`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ServiceMode {
    /// Let overlayd choose (currently: shared).
    #[default]
    Auto,
    /// Use the node's shared NAT network.
    Shared,
    /// A dedicated WireGuard overlay and bridge for this service.
    Dedicated,
}

impl ServiceMode {
    /// The concrete mode (`auto` → `shared`).
    pub fn resolve(self) -> ServiceMode {
        match self {
            ServiceMode::Auto => ServiceMode::Shared,
            m => m,
        }
    }

    /// Wire name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMode::Auto => "auto",
            ServiceMode::Shared => "shared",
            ServiceMode::Dedicated => "dedicated",
        }
    }
}

impl std::str::FromStr for ServiceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ServiceMode::Auto),
            "shared" => Ok(ServiceMode::Shared),
            "dedicated" => Ok(ServiceMode::Dedicated),
            _ => Err(format!(
                "unknown service mode {s:?}; expected auto, shared or dedicated"
            )),
        }
    }
}

/// What a container is, tagged by `platform`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum Handle {
    /// A Linux process whose network namespace is `/proc/PID/ns/net`.
    LinuxPid {
        /// The process id.
        pid: u32,
    },
    /// A Windows container (HCN); not served on Linux.
    WindowsContainer {
        /// Container id.
        container_id: String,
        /// Requested address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip: Option<String>,
    },
    /// A guest (VM) that runs its own WireGuard; answered with a `guest_config`.
    GuestManaged {
        /// Guest id.
        id: String,
    },
    /// **ext**: a network namespace given by a path (e.g. `/run/netns/c1`).
    NetnsPath {
        /// Path of the namespace file.
        path: String,
    },
    /// **ext**: a CNI attachment, identified by (network, container id,
    /// interface name) so one container may join several networks and be
    /// released after its namespace is gone.
    Cni {
        /// The CNI network name (the conflist's `name`).
        network: String,
        /// `CNI_CONTAINERID`.
        container_id: String,
        /// `CNI_IFNAME`: the interface name inside the container.
        ifname: String,
        /// `CNI_NETNS`: needed to attach, absent when releasing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netns: Option<String>,
    },
}

impl Handle {
    /// A stable string key for this handle, used to index attachments.
    pub fn key(&self) -> String {
        match self {
            Handle::LinuxPid { pid } => format!("pid:{pid}"),
            Handle::WindowsContainer { container_id, .. } => format!("win:{container_id}"),
            Handle::GuestManaged { id } => format!("guest:{id}"),
            Handle::NetnsPath { path } => format!("netns:{path}"),
            Handle::Cni {
                network,
                container_id,
                ifname,
                ..
            } => format!("cni:{network}/{container_id}/{ifname}"),
        }
    }

    /// The interface name this handle asks for inside the container, when it
    /// names one (`None` means the default, `eth0`).
    pub fn ifname(&self) -> Option<&str> {
        match self {
            Handle::Cni { ifname, .. } => Some(ifname),
            _ => None,
        }
    }
}

/// Which overlay a peer operation applies to; absent means global.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum Scope {
    /// The node's base overlay.
    #[default]
    Global,
    /// A dedicated service overlay.
    Service {
        /// The service name.
        service: String,
    },
}

/// A request, tagged by `op`. See `PROTOCOL.md` for every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Record this node's id.
    SetLocalNodeId {
        /// Node id.
        node_id: u64,
    },
    /// Record the orchestrator's view of this node's WireGuard public key.
    SetLocalWgPubkey {
        /// Base64 public key.
        pubkey: String,
    },
    /// Bring up the node's base overlay.
    SetupGlobalOverlay {
        /// Deployment name.
        deployment: String,
        /// Instance id.
        instance_id: String,
        /// Cluster CIDR.
        cluster_cidr: String,
        /// This node's slice of the cluster CIDR.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slice_cidr: Option<String>,
        /// WireGuard listen port.
        wg_port: u16,
        /// Masquerade outbound traffic.
        nat_enabled: bool,
    },
    /// Tear down the node's base overlay.
    TeardownGlobalOverlay,
    /// Set up a service's network.
    SetupServiceOverlay {
        /// Service name.
        service: String,
        /// Networking mode.
        mode: ServiceMode,
        /// **ext**: replace the service's recorded network identity (a
        /// dedicated overlay's key, port and subnet) with a newly minted one,
        /// or change its mode. Without it such a change is refused.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        recreate: bool,
    },
    /// Tear down a service's network.
    TeardownServiceOverlay {
        /// Service name.
        service: String,
    },
    /// Lease an address for a service.
    AllocateIp {
        /// Service name.
        service: String,
        /// Lease from the global overlay instead.
        join_global: bool,
    },
    /// Release a leased address.
    ReleaseIp {
        /// The address.
        ip: String,
    },
    /// Attach a container to a service network.
    AttachContainer {
        /// The container.
        handle: Handle,
        /// Service name.
        service: String,
        /// Also reach the base overlay.
        join_global: bool,
        /// DNS server the runtime will configure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dns_server: Option<String>,
        /// DNS search domain the runtime will configure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dns_domain: Option<String>,
        /// **ext**: attach to this isolation network instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        isolation: Option<String>,
        /// **ext**: DNS name to register for the container.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// **ext**: ports of the container published on the host.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        publish: Vec<crate::publish::PortMapping>,
    },
    /// Detach a container (idempotent).
    DetachContainer {
        /// The container.
        handle: Handle,
    },
    /// Add or replace a WireGuard peer.
    AddPeer {
        /// Peer public key (base64).
        public_key: String,
        /// `host:port`.
        endpoint: String,
        /// Comma-separated CIDRs.
        allowed_ips: String,
        /// Keepalive seconds (0 = off).
        persistent_keepalive_secs: u64,
        /// Global or a dedicated service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
    },
    /// Remove a peer.
    RemovePeer {
        /// Peer public key.
        pubkey: String,
        /// Global or a dedicated service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
    },
    /// Add an allowed CIDR to a peer.
    AddAllowedIp {
        /// Peer public key.
        pubkey: String,
        /// CIDR.
        cidr: String,
        /// Global or a dedicated service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
    },
    /// Remove an allowed CIDR from a peer.
    RemoveAllowedIp {
        /// Peer public key.
        pubkey: String,
        /// CIDR.
        cidr: String,
        /// Global or a dedicated service.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<Scope>,
    },
    /// Register a DNS name.
    RegisterDns {
        /// Name (relative to the zone, or fully qualified inside it).
        name: String,
        /// Address.
        ip: String,
    },
    /// Remove a DNS name.
    UnregisterDns {
        /// Name.
        name: String,
        /// **ext**: also remove the addresses attached containers
        /// registered under the name (by default only those added with
        /// `register_dns` go).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        force: bool,
    },
    /// Report status.
    Status,
    /// NAT traversal refresh tick.
    NatTick,
    /// Graceful stop; host networks stay.
    Shutdown,
    /// **ext**: protocol version negotiation.
    Hello {
        /// The client's protocol version.
        protocol_version: u32,
    },
    /// **ext**: create (or confirm) an isolation network.
    SetupIsolationNetwork {
        /// Network name.
        network: String,
        /// Requested subnet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet: Option<String>,
        /// No route or NAT to outside the host: members reach each other,
        /// the gateway and DNS only.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        internal: bool,
        /// **ext**: dual-stack: the network also gets an IPv6 subnet (from
        /// `local_pool6` unless `subnet_v6` names one). `subnet` stays the
        /// IPv4 one (a v6 `subnet` with `ipv6` is taken as `subnet_v6`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ipv6: bool,
        /// **ext**: the IPv6 subnet of a dual-stack network (implies `ipv6`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_v6: Option<String>,
    },
    /// **ext**: remove an isolation network.
    TeardownIsolationNetwork {
        /// Network name.
        network: String,
    },
    /// **ext**: list every marker entry with live state.
    ListNetworks,
    /// **ext**: push events on this connection from now on.
    SubscribeEvents,
    /// **ext**: list the registered DNS records.
    ListDnsRecords,
    /// **ext**: what an attached container was given (address, gateway,
    /// the DNS server and domain to write into its resolv.conf).
    InspectAttachment {
        /// The container.
        handle: Handle,
    },
    /// **ext**: the live state of an attached container's interface, read
    /// inside its namespace (for CNI `CHECK` and results).
    InspectInterface {
        /// The container.
        handle: Handle,
    },
    /// **ext**: reconcile now, as at start (adopt, recreate, restore the
    /// firewall, reclaim attachments), without a restart.
    Reconcile,
    /// **ext**: cluster mode's view: members, this node's leases, etcd health.
    ClusterStatus,
    /// **ext**: leave the cluster gracefully (drop the presence; keep the
    /// slice lease unless `release`).
    ClusterLeave {
        /// Also give up the slice and service subnet leases.
        #[serde(default)]
        release: bool,
    },
    /// **ext**: give a recorded network (`service:<name>`, `iso:<net>`,
    /// `shared-nat`) another subnet — the explicit fix when two nodes use
    /// the same one. Refused while containers are attached. Answers
    /// `networks` with the moved network.
    MoveNetwork {
        /// The network's owner string.
        network: String,
        /// The subnet to move to; absent = the next one the address plan
        /// (or `local_pool`) offers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet: Option<String>,
    },
    /// **ext**: list the services set up, with their networks.
    ListServices,
    /// **ext**: list the attached containers with their addresses and names.
    ListAttachments,
    /// **ext**: connect an attached container to a further network, on its
    /// own interface (`eth1`, …) with its own address and DNS names; the
    /// default route stays on the first network. Answers `attached`.
    ConnectContainer {
        /// The container (`linux_pid` or `netns_path`), already attached.
        handle: Handle,
        /// The network: an isolation network name, or an owner string
        /// (`iso:<net>`, `service:<name>`, `shared-nat`, `base`).
        network: String,
        /// Interface name inside the container; default the lowest free `ethN`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ifname: Option<String>,
        /// DNS name on that network; default the container's own name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// **ext**: disconnect a container from a network it was connected to
    /// with `connect_container` (its first network goes with `detach_container`).
    DisconnectContainer {
        /// The container.
        handle: Handle,
        /// The network, as for `connect_container`.
        network: String,
    },
    /// **ext**: remove every isolation network and every service with no
    /// attached container (never `base` or `shared-nat`; a dedicated
    /// service only with `include_dedicated`). Answers `pruned`.
    PruneNetworks {
        /// Also remove dedicated services (their key, port and subnet) that
        /// have no members.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        include_dedicated: bool,
    },
}

impl Request {
    /// The wire name of this request's op.
    pub fn op(&self) -> &'static str {
        match self {
            Request::SetLocalNodeId { .. } => "set_local_node_id",
            Request::SetLocalWgPubkey { .. } => "set_local_wg_pubkey",
            Request::SetupGlobalOverlay { .. } => "setup_global_overlay",
            Request::TeardownGlobalOverlay => "teardown_global_overlay",
            Request::SetupServiceOverlay { .. } => "setup_service_overlay",
            Request::TeardownServiceOverlay { .. } => "teardown_service_overlay",
            Request::AllocateIp { .. } => "allocate_ip",
            Request::ReleaseIp { .. } => "release_ip",
            Request::AttachContainer { .. } => "attach_container",
            Request::DetachContainer { .. } => "detach_container",
            Request::AddPeer { .. } => "add_peer",
            Request::RemovePeer { .. } => "remove_peer",
            Request::AddAllowedIp { .. } => "add_allowed_ip",
            Request::RemoveAllowedIp { .. } => "remove_allowed_ip",
            Request::RegisterDns { .. } => "register_dns",
            Request::UnregisterDns { .. } => "unregister_dns",
            Request::Status => "status",
            Request::NatTick => "nat_tick",
            Request::Shutdown => "shutdown",
            Request::Hello { .. } => "hello",
            Request::SetupIsolationNetwork { .. } => "setup_isolation_network",
            Request::TeardownIsolationNetwork { .. } => "teardown_isolation_network",
            Request::ListNetworks => "list_networks",
            Request::SubscribeEvents => "subscribe_events",
            Request::ListDnsRecords => "list_dns_records",
            Request::Reconcile => "reconcile",
            Request::InspectAttachment { .. } => "inspect_attachment",
            Request::InspectInterface { .. } => "inspect_interface",
            Request::ListAttachments => "list_attachments",
            Request::ClusterStatus => "cluster_status",
            Request::ClusterLeave { .. } => "cluster_leave",
            Request::MoveNetwork { .. } => "move_network",
            Request::ListServices => "list_services",
            Request::PruneNetworks { .. } => "prune_networks",
            Request::ConnectContainer { .. } => "connect_container",
            Request::DisconnectContainer { .. } => "disconnect_container",
        }
    }
}
