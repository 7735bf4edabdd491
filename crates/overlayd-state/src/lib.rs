//! overlayd durable state: the network-state marker (SPEC §2), the instance
//! lock, the dedicated WireGuard port band, the transactional store for
//! high-churn and desired state, and the node keypair.

pub mod entry;
pub mod owner;

pub use entry::NetworkEntry;
pub use owner::Owner;
