//! overlayd IPC wire protocol (version 1, ZLayer-compatible): frame types,
//! requests, responses, events, and the length-prefixed JSON codec.
//!
//! Every shape here is the contract in `PROTOCOL.md`; extensions add new ops
//! and results, never change existing ones.

pub mod codec;
pub mod frame;
pub mod listing;
pub mod publish;
pub mod request;
pub mod response;

pub use codec::{read_frame, write_frame, FrameError, MAX_FRAME_LEN};
pub use frame::{decode_frame, encode_frame, DecodeError, Event, Frame};
pub use listing::{AttachmentView, ServiceView};
pub use publish::{PortMapping, PortProtocol};
pub use request::{Handle, Request, Scope, ServiceMode};
pub use response::{
    ClusterMemberView, DedicatedServiceStatus, DnsRecordView, ErrorCode, GuestPeer, NetworkView,
    PeerStatus, Response, Secret, StatusInfo,
};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Extension ops this build serves beyond the v1 set (reported by `hello`).
/// The `netns_path` and `cni` attach handles are extensions too, available
/// whenever `hello` answers (`cni` when `inspect_interface` is listed).
pub const EXTENSIONS: &[&str] = &[
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
