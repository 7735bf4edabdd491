//! Blocking work inside request handlers — a store commit (an fsync), a
//! marker save (two fsyncs) — must not stall the runtime's two async
//! workers: while a commit waits on the disk, other connections' reads and
//! the nftables watch keep running. [`off_worker`] hands the current
//! worker's queued tasks to another thread for the duration
//! (`block_in_place`); [`SharedStore`] does that for every store write.

use std::ops::Deref;
use std::sync::Arc;

use overlayd_state::{ReadTx, Result, Store, WriteTx};
use tokio::runtime::{Handle, RuntimeFlavor};

/// Run `f`, which blocks, without holding up the other tasks of a
/// multi-threaded runtime. On a current-thread runtime (in-process tests)
/// or outside a runtime it simply runs.
pub fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The daemon's handle on the store: reads run in place (redb reads are
/// memory-mapped lookups, no I/O wait in the common case), writes — which
/// commit durably — run [`off_worker`].
#[derive(Clone)]
pub struct SharedStore(Arc<Store>);

impl SharedStore {
    /// Share `store`.
    pub fn new(store: Store) -> Self {
        SharedStore(Arc::new(store))
    }

    /// A read transaction.
    pub fn read<T>(&self, f: impl FnOnce(&ReadTx<'_>) -> Result<T>) -> Result<T> {
        self.0.read(f)
    }

    /// A write transaction, committed durably, off the async workers.
    pub fn write<T>(&self, f: impl FnOnce(&mut WriteTx<'_>) -> Result<T>) -> Result<T> {
        off_worker(|| self.0.write(f))
    }
}

impl Deref for SharedStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(off_worker(|| 7), 7);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_in_place_on_a_current_thread_runtime() {
        // block_in_place would panic here (in-process tests run like this).
        assert_eq!(off_worker(|| 8), 8);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_on_a_multi_thread_runtime() {
        // block_in_place panics on the wrong kind of runtime; this is the
        // daemon's kind.
        assert_eq!(tokio::spawn(async { off_worker(|| 9) }).await.unwrap(), 9);
    }
}
