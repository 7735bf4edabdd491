//! Responses (daemon → client), tagged by `result`, and the records they carry.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A WireGuard peer as carried in a `guest_config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestPeer {
    /// Base64 public key.
    pub public_key: String,
    /// `host:port`.
    pub endpoint: String,
    /// Comma-separated CIDRs.
    pub allowed_ips: String,
    /// Keepalive seconds.
    pub persistent_keepalive_secs: u64,
}

/// A peer in a `status` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Base64 public key.
    pub public_key: String,
    /// `host:port`.
    pub endpoint: String,
    /// Comma-separated CIDRs.
    pub allowed_ips: String,
    /// Last handshake, Unix seconds (0 = never).
    pub last_handshake_unix_secs: i64,
}

/// A dedicated service in a `status` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedicatedServiceStatus {
    /// Service name.
    pub service: String,
    /// WireGuard interface.
    pub interface: String,
    /// Base64 public key.
    pub public_key: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// The service overlay address of this node.
    pub overlay_ip: String,
    /// The service subnet.
    pub subnet: String,
    /// Number of peers.
    pub peer_count: u32,
}

/// The `status` result body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StatusInfo {
    /// Base overlay interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Node overlay address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ip: Option<String>,
    /// Node public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Cluster CIDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_cidr: Option<String>,
    /// This node's slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice_cidr: Option<String>,
    /// Global peers.
    pub peer_count: u32,
    /// Services known.
    pub service_count: u32,
    /// Global peers in detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerStatus>>,
    /// Dedicated services in detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedicated_services: Option<Vec<DedicatedServiceStatus>>,
}

/// One marker entry plus live state, as listed by `list_networks`. Private
/// keys are never carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkView {
    /// Owner key.
    pub owner: String,
    /// Backend kind.
    pub kind: String,
    /// Host object name.
    pub name: String,
    /// Host-addressable identity.
    pub id: String,
    /// Subnet.
    pub subnet: String,
    /// WireGuard port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_port: Option<u16>,
    /// WireGuard public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_public_key: Option<String>,
    /// Secondary interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Whether the host object exists right now.
    pub present: bool,
    /// Whether this platform can manage the kind.
    pub managed: bool,
    /// Further live details (ifindex, members, drift notes).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A DNS record as listed by `list_dns_records`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecordView {
    /// Fully qualified name.
    pub name: String,
    /// Addresses.
    pub ips: Vec<String>,
}

/// A cluster member as `cluster_status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMemberView {
    /// Node name.
    pub name: String,
    /// Its slice.
    pub slice: String,
    /// Underlay `host:port` it is dialled on.
    pub endpoint: String,
    /// Public key of its base WireGuard device.
    pub public_key: String,
    /// Unix seconds it was last seen present in etcd.
    pub last_seen: u64,
    /// `present`, or `gone` while its grace period runs.
    pub state: String,
}

/// A response, tagged by `result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// Done.
    Ok,
    /// An address.
    Ip {
        /// The address.
        ip: String,
    },
    /// A container was attached.
    Attached {
        /// Its address.
        ip: String,
        /// Windows namespace id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace_guid: Option<String>,
        /// **ext**: its IPv6 address on a dual-stack network (`ip` stays
        /// the IPv4 one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip_v6: Option<String>,
    },
    /// WireGuard configuration for a guest that runs its own tunnel.
    GuestConfig {
        /// Guest overlay address.
        overlay_ip: String,
        /// Prefix length.
        prefix_len: u8,
        /// Guest private key (secret: `Debug` shows it redacted).
        private_key: Secret,
        /// Guest public key.
        public_key: String,
        /// Guest listen port.
        listen_port: u16,
        /// Peers to configure.
        peers: Vec<GuestPeer>,
        /// DNS server.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dns_server: Option<String>,
        /// DNS domain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dns_domain: Option<String>,
    },
    /// The name of a bridge / overlay device.
    BridgeName {
        /// Interface name.
        name: String,
    },
    /// Status.
    Status(StatusInfo),
    /// A service's network.
    ServiceOverlay {
        /// Service name.
        name: String,
        /// Resolved mode.
        mode: String,
        /// Dedicated overlay public key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wg_public_key: Option<String>,
        /// Dedicated overlay port.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wg_port: Option<u16>,
        /// This node's address on the service network.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        overlay_ip: Option<String>,
        /// The service subnet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet: Option<String>,
    },
    /// Failure.
    Err {
        /// What was wrong and what to do.
        message: String,
        /// **ext**: machine-readable error code (see [`ErrorCode`]); v1
        /// callers ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
    },
    /// **ext**: version negotiation answer.
    Hello {
        /// Protocol version spoken.
        protocol_version: u32,
        /// Daemon version.
        server_version: String,
        /// Extension ops served.
        extensions: Vec<String>,
    },
    /// **ext**: every marker entry with live state.
    Networks {
        /// Entries.
        networks: Vec<NetworkView>,
    },
    /// **ext**: the registered DNS records.
    DnsRecords {
        /// The zone.
        zone: String,
        /// Records, sorted by name.
        records: Vec<DnsRecordView>,
    },
    /// **ext**: an attached container, as `inspect_attachment` reports it.
    Attachment {
        /// The container.
        handle: crate::Handle,
        /// Its service.
        service: String,
        /// The network owner it is attached to.
        network: String,
        /// Its address.
        ip: String,
        /// Prefix length of its network.
        prefix_len: u8,
        /// Its default gateway (absent for guests).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway: Option<String>,
        /// DNS server for its resolv.conf: the one given at attach, else the
        /// network's gateway, where overlayd answers.
        dns_server: String,
        /// DNS search domain: the one given at attach, else overlayd's zone.
        dns_domain: String,
        /// DNS name registered for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// **ext**: its IPv6 address on a dual-stack network.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ip_v6: Option<String>,
        /// **ext**: prefix length of the network's IPv6 subnet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_len_v6: Option<u8>,
        /// **ext**: its IPv6 default gateway.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gateway_v6: Option<String>,
    },
    /// **ext**: the live state of an attached container's interface, as
    /// `inspect_interface` reads it inside the container's namespace.
    Interface {
        /// The container.
        handle: crate::Handle,
        /// Interface name inside the container.
        ifname: String,
        /// Host end of its veth.
        host_ifname: String,
        /// Whether the namespace and the interface exist.
        present: bool,
        /// Hardware address of the container end (`aa:bb:…`), when present.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<String>,
        /// Administrative state.
        up: bool,
        /// Addresses with prefix length.
        addresses: Vec<String>,
        /// Next hops of the default routes out of the interface.
        gateways: Vec<String>,
    },
    /// **ext**: what a `reconcile` did.
    Reconciled {
        /// Recorded networks found and adopted.
        adopted: u32,
        /// Recorded networks recreated with their identity.
        recreated: u32,
        /// Desired networks created.
        created: u32,
        /// Tagged objects nothing records.
        orphans: u32,
        /// Attachments reclaimed.
        reclaimed: u32,
        /// Names held by links that are not overlayd's.
        conflicts: u32,
    },
    /// **ext**: the services set up (`list_services`), sorted by name.
    Services {
        /// Services.
        services: Vec<crate::ServiceView>,
    },
    /// **ext**: the attached containers (`list_attachments`), sorted by handle.
    Attachments {
        /// Attachments.
        attachments: Vec<crate::AttachmentView>,
    },
    /// **ext**: cluster mode's view, as `cluster_status` reports it.
    ClusterStatus {
        /// This node's name.
        node_name: String,
        /// The cluster's key prefix.
        prefix: String,
        /// etcd is unreachable (or refused this node): last known state kept.
        degraded: bool,
        /// Why, when degraded.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        reason: String,
        /// Whether this node's member record is published.
        registered: bool,
        /// This node's slice lease.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slice: Option<String>,
        /// This node's service subnet leases (`network owner → subnet`).
        subnets: std::collections::BTreeMap<String, String>,
        /// Members, this node included, sorted by name.
        members: Vec<ClusterMemberView>,
    },
    /// **ext**: what `prune_networks` removed, and what it could not.
    Pruned {
        /// Isolation networks removed (names, without `iso:`).
        networks: Vec<String>,
        /// Services removed (names).
        services: Vec<String>,
        /// Removals that failed (each says which and why); the rest went on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<String>,
    },
    /// **ext**: an isolation network.
    IsolationNetwork {
        /// Network name.
        network: String,
        /// Subnet.
        subnet: String,
        /// Bridge name.
        bridge: String,
        /// **ext**: the IPv6 subnet of a dual-stack network.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subnet_v6: Option<String>,
    },
}

impl Response {
    /// An `err` response.
    pub fn err(message: impl Into<String>) -> Self {
        Response::Err {
            message: message.into(),
            code: None,
        }
    }

    /// An `err` response carrying a machine-readable code.
    pub fn err_with_code(code: ErrorCode, message: impl Into<String>) -> Self {
        Response::Err {
            message: message.into(),
            code: Some(code),
        }
    }
}

/// A secret string (a private key) carried in a frame: serialised as the
/// plain string, but `Debug` never shows it, so no log line or `{:?}` print
/// of a response can carry it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(
    /// The secret string.
    pub String,
);

impl Secret {
    /// The secret itself, for the one place that must write it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// **ext**: the machine-readable `code` of an `err` frame. Serialised as a
/// snake_case string; a code this version does not know decodes as
/// [`ErrorCode::Other`] so newer daemons never break older clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request's arguments are invalid; nothing changed.
    Invalid,
    /// A named target (service, network, name, attachment, peer) does not exist.
    NotFound,
    /// A name, address, port or identity is taken, or the request would
    /// change a recorded identity implicitly.
    Conflict,
    /// The capability is not available on this platform or build.
    Unsupported,
    /// The caller is not allowed to do this.
    PermissionDenied,
    /// The daemon cannot serve this now (busy, shutting down, resource cap); retry later.
    Unavailable,
    /// A kernel operation failed (after rollback).
    Host,
    /// Durable state could not be read or written.
    State,
    /// The frame could not be decoded.
    Malformed,
    /// A code this version does not know.
    #[serde(other)]
    Other,
}
