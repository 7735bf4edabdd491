//! Records the daemon keeps in the transactional store: desired state
//! (global overlay, services, isolation networks) and high-churn state
//! (leases, attachments, DNS records, node metadata).

use overlayd_proto::{Handle, ServiceMode};
use serde::{Deserialize, Serialize};

/// Desired base overlay (`Table::Global`, key [`GLOBAL_KEY`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalRecord {
    /// Deployment name.
    pub deployment: String,
    /// Instance id.
    pub instance_id: String,
    /// Cluster CIDR.
    pub cluster_cidr: String,
    /// This node's slice.
    pub slice_cidr: String,
    /// WireGuard port.
    pub wg_port: u16,
    /// Masquerade outbound traffic.
    pub nat_enabled: bool,
}

/// Key of the single global record.
pub const GLOBAL_KEY: &str = "config";

/// A service the orchestrator set up (`Table::Services`, key = name).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Resolved mode (`shared` or `dedicated`).
    pub mode: ServiceMode,
    /// A dedicated overlay's port, kept here too so a lost marker can be
    /// rebuilt with the same port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_port: Option<u16>,
    /// A dedicated overlay's private key (secret; the store is `0600`),
    /// kept so a lost marker can be rebuilt with the same identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_private_key: Option<String>,
}

/// A desired isolation network (`Table::Isolation`, key = network name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsolationRecord {
    /// Its subnet.
    pub subnet: String,
    /// No route or NAT to outside the host.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Dual-stack: its IPv6 subnet (`subnet` is the IPv4 one). Kept here
    /// too so a lost marker is rebuilt with the same subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_v6: Option<String>,
}

/// An address lease (`Table::Leases`, key = `<owner>|<ip>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Network owner the address belongs to.
    pub network: String,
    /// The address.
    pub ip: String,
    /// Who holds it: an attachment's handle key, or `alloc` for allocate_ip.
    pub holder: String,
}

/// Holder of leases made by `allocate_ip`.
pub const ALLOC_HOLDER: &str = "alloc";

/// Store key of a lease.
pub fn lease_key(network: &str, ip: &str) -> String {
    format!("{network}|{ip}")
}

/// Where an attachment is in its life (the crash-safe state machine of
/// docs/architecture.md, "Order of effects"). Written durably *before* the
/// host effect it announces, so a crash at any instruction leaves a record
/// that says which way to finish: an `attaching` record is rolled back, a
/// `detaching` one completed, at start-up and by the periodic check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachState {
    /// Lease and record committed; the veth may exist in any half-made state.
    Attaching,
    /// The veth is complete (records written before states existed load as this).
    #[default]
    Attached,
    /// Detach decided; the veth may or may not still exist.
    Detaching,
}

impl AttachState {
    /// Whether this is [`AttachState::Attached`] (omitted from the record then).
    pub fn is_attached(&self) -> bool {
        *self == AttachState::Attached
    }
}

/// An attached container on one network (`Table::Attachments`, key =
/// [`Attachment::key`]: the handle key for the network it was attached to,
/// `KEY@NETWORK` for each further network it was connected to).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container.
    pub handle: Handle,
    /// Network owner it is attached to.
    pub network: String,
    /// Service it belongs to.
    pub service: String,
    /// Its address (no prefix).
    pub ip: String,
    /// Prefix length of its network.
    pub prefix_len: u8,
    /// Host end of its veth.
    pub host_ifname: String,
    /// Identity written into the veth's tag.
    pub id: String,
    /// DNS name registered for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// For a guest that runs its own WireGuard: its keypair (private key
    /// base64, secret), served again on a repeated attach. No veth exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_private_key: Option<String>,
    /// DNS server the runtime asked for at attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    /// DNS domain the runtime asked for at attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_domain: Option<String>,
    /// Phase of attach/detach the host may be in.
    #[serde(default, skip_serializing_if = "AttachState::is_attached")]
    pub state: AttachState,
    /// Identity of the container's network namespace (`DEV:INODE` of its
    /// nsfs file) at attach: the container, whatever handle names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_id: Option<String>,
    /// Ports published for it, as resolved at attach (a host range with
    /// one container port already narrowed to the chosen port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<overlayd_proto::PortMapping>,
    /// Set for a further network joined with `connect_container`: the
    /// interface inside the container (e.g. `eth1`). Such an attachment
    /// has its own veth, lease and DNS names and no default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// Dual-stack: its IPv6 address (no prefix), leased beside `ip` in the
    /// same transaction and released with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_v6: Option<String>,
    /// Prefix length of its network's IPv6 subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len_v6: Option<u8>,
}

impl Attachment {
    /// Store key (also the lease holder and the key in the veth's tag).
    pub fn key(&self) -> String {
        match &self.ifname {
            Some(_) => connected_key(&self.handle.key(), &self.network),
            None => self.handle.key(),
        }
    }

    /// The interface inside the container.
    pub fn container_ifname(&self) -> &str {
        self.ifname
            .as_deref()
            .or(self.handle.ifname())
            .unwrap_or(super::attach::CONTAINER_IFNAME)
    }

    /// Its addresses: the primary one and, dual-stack, the IPv6 one.
    pub fn ips(&self) -> Vec<std::net::IpAddr> {
        std::iter::once(&self.ip)
            .chain(self.ip_v6.as_ref())
            .filter_map(|i| i.parse().ok())
            .collect()
    }

    /// Whether this is a further network joined with `connect_container`.
    pub fn is_connected(&self) -> bool {
        self.ifname.is_some()
    }
}

/// Store key of a container's attachment to a further network.
pub fn connected_key(handle_key: &str, network: &str) -> String {
    format!("{handle_key}@{network}")
}

/// A WireGuard peer (`Table::Peers`, key = [`peer_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Network owner whose device carries the peer (`base` or `service:<name>`).
    pub network: String,
    /// Base64 public key.
    pub public_key: String,
    /// `ip:port`.
    pub endpoint: String,
    /// Allowed CIDRs.
    pub allowed_ips: Vec<String>,
    /// Keepalive seconds (0 = off).
    pub persistent_keepalive_secs: u64,
    /// Configured by cluster mode's watcher (never set for `add_peer`
    /// peers, which the watcher never touches).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster: bool,
}

/// Store key of a peer.
pub fn peer_key(network: &str, public_key: &str) -> String {
    format!("{network}|{public_key}")
}

/// A DNS record (`Table::Dns`, key = normalised name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Addresses.
    pub ips: Vec<String>,
}

/// Meta key: node id set by the orchestrator.
pub const META_NODE_ID: &str = "node_id";
/// Meta key: the orchestrator's view of this node's public key.
pub const META_ORCH_PUBKEY: &str = "orchestrator_pubkey";

/// Debug output never shows the private key.
impl std::fmt::Debug for ServiceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRecord")
            .field("mode", &self.mode)
            .field("wg_port", &self.wg_port)
            .field(
                "wg_private_key",
                &self.wg_private_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Debug output never shows a guest's private key.
impl std::fmt::Debug for Attachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attachment")
            .field("handle", &self.handle)
            .field("network", &self.network)
            .field("service", &self.service)
            .field("ip", &self.ip)
            .field("prefix_len", &self.prefix_len)
            .field("host_ifname", &self.host_ifname)
            .field("id", &self.id)
            .field("dns_name", &self.dns_name)
            .field("dns_server", &self.dns_server)
            .field("dns_domain", &self.dns_domain)
            .field("state", &self.state)
            .field("netns_id", &self.netns_id)
            .field("publish", &self.publish)
            .field("ifname", &self.ifname)
            .field("ip_v6", &self.ip_v6)
            .field(
                "guest_private_key",
                &self.guest_private_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
