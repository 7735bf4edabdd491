//! **ext** records of the listing ops `list_services` and
//! `list_attachments`: what exists, in the shape the CLI's `service ls` and
//! `ps` print, so orchestrators see the same data. Private keys are never
//! carried.

use serde::{Deserialize, Serialize};

use crate::Handle;

/// One service as `list_services` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Service name.
    pub name: String,
    /// Resolved mode (`shared` or `dedicated`).
    pub mode: String,
    /// Owner of the network its containers attach to (`shared-nat` or
    /// `service:<name>`).
    pub network: String,
    /// The bridge of that network, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The network's subnet, once it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Dedicated WireGuard device (what `wg show` takes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Dedicated WireGuard port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_port: Option<u16>,
    /// Dedicated WireGuard public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wg_public_key: Option<String>,
    /// Number of containers attached for this service.
    pub attachments: u32,
}

/// One attached container as `list_attachments` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    /// The container.
    pub handle: Handle,
    /// The handle as one string (`pid:4242`, `netns:/run/netns/c1`,
    /// `guest:vm1`), as the CLI prints it.
    pub key: String,
    /// Its service.
    pub service: String,
    /// Owner of the network it is attached to.
    pub network: String,
    /// Host end of its veth (absent for guests that run their own tunnel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Its addresses, with prefix length (`10.201.0.2/24`).
    pub addresses: Vec<String>,
    /// DNS names registered for it (fully qualified).
    pub dns_names: Vec<String>,
    /// Ports published for it (`[IP:]HOST_PORT:CONTAINER_PORT/PROTO`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<crate::PortMapping>,
}
