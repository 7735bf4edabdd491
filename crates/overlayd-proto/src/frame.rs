//! The envelope: request, response and event frames, tagged by `frame`, and
//! decoding that recovers the request `id` even from a body it cannot parse.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::Request;
use crate::response::Response;

/// An unsolicited event, tagged by `event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A peer's handshake went stale or recovered.
    PeerHealthChanged {
        /// Peer public key.
        pubkey: String,
        /// Whether the peer is healthy now.
        healthy: bool,
    },
    /// A peer's observed endpoint changed.
    NatEndpointChanged {
        /// Peer public key.
        pubkey: String,
        /// New `host:port`.
        endpoint: String,
    },
    /// **ext**: a container was attached.
    ContainerAttached {
        /// The handle as one string (`pid:4242`, `netns:/run/netns/c1`).
        key: String,
        /// Its service.
        service: String,
        /// Owner of the network it joined.
        network: String,
        /// Its address.
        ip: String,
    },
    /// **ext**: a container was detached.
    ContainerDetached {
        /// The handle as one string.
        key: String,
        /// Owner of the network it left.
        network: String,
    },
    /// **ext**: a host network was created (or recreated) and recorded.
    NetworkCreated {
        /// Owner key.
        owner: String,
        /// Host object name.
        name: String,
    },
    /// **ext**: a host network was deleted and forgotten.
    NetworkRemoved {
        /// Owner key.
        owner: String,
        /// Host object name.
        name: String,
    },
    /// **ext**: a WireGuard peer was added or replaced.
    PeerAdded {
        /// Owner of the device carrying it (`base` or `service:<name>`).
        network: String,
        /// Peer public key.
        pubkey: String,
    },
    /// **ext**: a WireGuard peer was removed.
    PeerRemoved {
        /// Owner of the device that carried it.
        network: String,
        /// Peer public key.
        pubkey: String,
    },
    /// **ext**: a reconcile (at start, `reconcile`, or the periodic check
    /// when it repaired something) finished.
    Reconciled {
        /// Recorded networks adopted.
        adopted: u32,
        /// Recorded networks recreated.
        recreated: u32,
        /// Desired networks created.
        created: u32,
        /// Tagged objects nothing records.
        orphans: u32,
        /// Attachments reclaimed.
        reclaimed: u32,
    },
    /// **ext**: cluster mode lost (or regained) etcd; the data plane is kept.
    ClusterDegraded {
        /// Whether the node is degraded now.
        degraded: bool,
        /// Why, when degraded.
        reason: String,
    },
    /// An event kind this version does not know (sent by a newer daemon);
    /// decoding it never breaks a subscriber.
    #[serde(other)]
    Other,
}

/// One frame on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Frame {
    /// Client → daemon.
    Request {
        /// Correlation id echoed in the response.
        id: u64,
        /// The request.
        request: Request,
    },
    /// Daemon → client.
    Response {
        /// The request's id.
        id: u64,
        /// The response.
        response: Response,
    },
    /// Daemon → client, unsolicited.
    Event(Event),
}

/// A body that is not a valid frame; carries the request id when readable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    /// The request id found in the body, or 0.
    pub id: u64,
    /// What was wrong.
    pub message: String,
}

/// Decode a frame body.
pub fn decode_frame(body: &[u8]) -> Result<Frame, DecodeError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| DecodeError {
        id: 0,
        message: format!("frame is not valid JSON: {e}"),
    })?;
    let id = value.get("id").and_then(Value::as_u64).unwrap_or(0);
    if let Some(op) = value
        .get("request")
        .and_then(|r| r.get("op"))
        .and_then(Value::as_str)
    {
        if !KNOWN_OPS.contains(&op) {
            return Err(DecodeError {
                id,
                message: format!(
                    "unknown op {op:?}; this daemon speaks protocol v{} (send `hello` to list extensions)",
                    crate::PROTOCOL_VERSION
                ),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| DecodeError {
        id,
        message: format!("invalid request: {e}"),
    })
}

/// Encode a frame body.
pub fn encode_frame(frame: &Frame) -> Vec<u8> {
    // Serialising these types cannot fail: every map key is a string.
    serde_json::to_vec(frame).unwrap_or_else(|e| {
        format!(r#"{{"frame":"response","id":0,"response":{{"result":"err","message":"encode failed: {e}"}}}}"#)
            .into_bytes()
    })
}

/// Every op name a request may carry.
pub const KNOWN_OPS: &[&str] = &[
    "set_local_node_id",
    "set_local_wg_pubkey",
    "setup_global_overlay",
    "teardown_global_overlay",
    "setup_service_overlay",
    "teardown_service_overlay",
    "allocate_ip",
    "release_ip",
    "attach_container",
    "detach_container",
    "add_peer",
    "remove_peer",
    "add_allowed_ip",
    "remove_allowed_ip",
    "register_dns",
    "unregister_dns",
    "status",
    "nat_tick",
    "shutdown",
    "hello",
    "setup_isolation_network",
    "teardown_isolation_network",
    "list_networks",
    "subscribe_events",
    "list_dns_records",
    "reconcile",
    "inspect_attachment",
    "inspect_interface",
    "list_attachments",
    "cluster_status",
    "cluster_leave",
    "move_network",
    "list_services",
    "prune_networks",
    "connect_container",
    "disconnect_container",
];
