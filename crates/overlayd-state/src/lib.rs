//! overlayd durable state: the network-state marker (SPEC §2), the instance
//! lock, the dedicated WireGuard port band, the transactional store for
//! high-churn and desired state, and the node keypair (SPEC §3).
//!
//! Every path is derived from a data directory passed in by the caller
//! ([`DataDir`]); nothing is hard-coded, so tests and several daemons never
//! collide.

pub mod durable;
pub mod error;
pub mod keys;
pub mod lock;
pub mod marker_file;
pub mod paths;
pub mod store;

// The model's modules, re-exported under their old paths so callers that
// only need values keep one import path.
pub use overlayd_model::{entry, marker, owner, ports};
pub use overlayd_model::{Marker, NetworkEntry, Owner, PortBand, CURRENT_VERSION};

pub use durable::SaveStep;
pub use error::{Result, StateError};
pub use keys::{KeyPair, NodeKeyFile};
pub use lock::InstanceLock;
pub use marker_file::{LoadOutcome, MarkerFile};
pub use paths::DataDir;
pub use store::{ReadTx, Store, Table, WriteTx};
