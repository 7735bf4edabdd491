//! The store boundary: the few etcd v3 operations cluster mode needs, as a
//! trait, so the lease/claim/watch logic runs against an in-memory fake in
//! unit tests and against etcd in production.

use async_trait::async_trait;
use tokio::sync::mpsc;

/// Failure of a store operation. Every variant means "etcd did not answer
/// as asked"; callers keep the data plane and retry.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or the request failed in transit.
    #[error("etcd unreachable: {0}")]
    Unavailable(String),
    /// The store answered with an error.
    #[error("etcd error: {0}")]
    Failed(String),
    /// A watch asked for history that was compacted away.
    #[error("watch history compacted (compact revision {0})")]
    Compacted(i64),
}

/// Result of store operations.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// Full key.
    pub key: String,
    /// Value bytes.
    pub value: Vec<u8>,
    /// Number of writes since the key was (re)created; 0 means absent.
    pub version: i64,
    /// Revision of the last write.
    pub mod_revision: i64,
    /// Lease the key is attached to (0: none).
    pub lease: i64,
}

/// A condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's version equals this (0: the key does not exist).
    Version(String, i64),
    /// The key's value equals these bytes (false when the key is absent).
    Value(String, Vec<u8>),
}

/// A write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Put a key, attached to a lease (0: none).
    Put {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
        /// Lease id (0: none).
        lease: i64,
    },
    /// Delete a key.
    Delete(String),
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was written.
    Put(KeyValue),
    /// A key was deleted (explicitly or by lease expiry).
    Delete {
        /// The key.
        key: String,
        /// Revision of the deletion.
        revision: i64,
    },
}

/// What a watch stream delivers: batches of events, or an error after which
/// the stream is finished (compaction, lost connection).
pub type WatchItem = StoreResult<Vec<WatchEvent>>;

/// The etcd operations cluster mode uses.
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Read one key.
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>>;
    /// Read every key under a prefix, with the store revision of the read.
    async fn list(&self, prefix: &str) -> StoreResult<(Vec<KeyValue>, i64)>;
    /// Apply `ops` if every compare holds; `Ok(true)` when they were applied.
    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> StoreResult<bool>;
    /// Grant a lease of `ttl_secs`; returns its id.
    async fn grant(&self, ttl_secs: i64) -> StoreResult<i64>;
    /// Refresh a lease once; returns its remaining TTL, 0 when it is gone.
    async fn keep_alive(&self, lease: i64) -> StoreResult<i64>;
    /// Revoke a lease (its keys are deleted). Revoking a gone lease is fine.
    async fn revoke(&self, lease: i64) -> StoreResult<()>;
    /// Watch a prefix from `from_revision` (inclusive). The receiver ends
    /// after an `Err` item or when the store closes the stream.
    async fn watch(
        &self,
        prefix: &str,
        from_revision: i64,
    ) -> StoreResult<mpsc::Receiver<WatchItem>>;
}
