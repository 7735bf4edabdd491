//! overlayd durable state: the network-state marker (SPEC §2), the instance
//! lock, the dedicated WireGuard port band, the transactional store for
//! high-churn and desired state, and the node keypair (SPEC §3).
//!
//! Every path is derived from a data directory passed in by the caller
//! ([`DataDir`]); nothing is hard-coded, so tests and several daemons never
//! collide.

pub mod durable;
pub mod entry;
pub mod error;
pub mod keys;
pub mod lock;
pub mod marker;
pub mod marker_file;
pub mod owner;
pub mod paths;
pub mod ports;
pub mod store;

pub use durable::SaveStep;
pub use entry::NetworkEntry;
pub use error::{Result, StateError};
pub use keys::{KeyPair, NodeKeyFile};
pub use lock::InstanceLock;
pub use marker::{Marker, CURRENT_VERSION};
pub use marker_file::{LoadOutcome, MarkerFile};
pub use owner::Owner;
pub use paths::DataDir;
pub use ports::PortBand;
pub use store::{ReadTx, Store, Table, WriteTx};
