//! Errors of cluster mode.

use crate::store::StoreError;

/// What can go wrong in cluster mode.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// etcd did not answer; the data plane is kept and the call retried later.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// This node's configuration disagrees with the cluster's.
    #[error("this node cannot join the cluster: {0}")]
    ConfigMismatch(String),
    /// The asked-for subnet belongs to another node.
    #[error("{0}")]
    Taken(String),
    /// No free subnet is left in the range.
    #[error("{0}")]
    Exhausted(String),
    /// The node no longer owns its slice (another node claimed it while
    /// this one was away): membership is refused (fencing).
    #[error("{0}")]
    Fenced(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Local state could not be read or written.
    #[error("{0}")]
    Local(String),
}

/// Result of cluster operations.
pub type Result<T> = std::result::Result<T, ClusterError>;
