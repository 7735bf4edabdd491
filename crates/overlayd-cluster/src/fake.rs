//! An in-memory [`ClusterStore`] with etcd's semantics where cluster mode
//! relies on them (revisions, versions, leases deleting their keys, watch
//! from a revision, compaction), plus switches tests use to break it:
//! unreachable, expire a lease, compact, cut every watch.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::store::{
    ClusterStore, Compare, KeyValue, Op, StoreError, StoreResult, WatchEvent, WatchItem,
};

#[derive(Default)]
struct Inner {
    kvs: BTreeMap<String, KeyValue>,
    revision: i64,
    compacted: i64,
    history: Vec<(i64, WatchEvent)>,
    leases: HashMap<i64, i64>,
    next_lease: i64,
    watchers: Vec<(String, mpsc::Sender<WatchItem>)>,
    unreachable: bool,
    lists: u64,
    requests: u64,
}

/// The in-memory store; clones share state.
#[derive(Clone, Default)]
pub struct MemStore {
    inner: Arc<Mutex<Inner>>,
}

impl Inner {
    fn check(&mut self) -> StoreResult<()> {
        self.requests += 1;
        if self.unreachable {
            return Err(StoreError::Unavailable("fake store is unreachable".into()));
        }
        Ok(())
    }

    fn emit(&mut self, events: Vec<WatchEvent>) {
        if events.is_empty() {
            return;
        }
        for e in &events {
            self.history.push((self.revision, e.clone()));
        }
        self.watchers.retain(|(prefix, tx)| {
            let mine: Vec<WatchEvent> = events
                .iter()
                .filter(|e| event_key(e).starts_with(prefix.as_str()))
                .cloned()
                .collect();
            mine.is_empty() || tx.try_send(Ok(mine)).is_ok()
        });
    }

    fn apply(&mut self, ops: Vec<Op>) -> Vec<WatchEvent> {
        self.revision += 1;
        let rev = self.revision;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => {
                    let version = self.kvs.get(&key).map_or(0, |k| k.version) + 1;
                    let kv = KeyValue {
                        key: key.clone(),
                        value,
                        version,
                        mod_revision: rev,
                        lease,
                    };
                    self.kvs.insert(key, kv.clone());
                    events.push(WatchEvent::Put(kv));
                }
                Op::Delete(key) => {
                    if self.kvs.remove(&key).is_some() {
                        events.push(WatchEvent::Delete { key, revision: rev });
                    }
                }
            }
        }
        events
    }

    fn drop_lease(&mut self, lease: i64) {
        if self.leases.remove(&lease).is_none() {
            return;
        }
        let keys: Vec<String> = self
            .kvs
            .values()
            .filter(|k| k.lease == lease)
            .map(|k| k.key.clone())
            .collect();
        let events = self.apply(keys.into_iter().map(Op::Delete).collect());
        self.emit(events);
    }
}

fn event_key(e: &WatchEvent) -> &str {
    match e {
        WatchEvent::Put(kv) => &kv.key,
        WatchEvent::Delete { key, .. } => key,
    }
}

impl MemStore {
    /// A new, empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make every request fail as if etcd were unreachable (or heal it).
    pub fn set_unreachable(&self, down: bool) {
        let mut g = self.lock();
        g.unreachable = down;
        if down {
            for (_, tx) in g.watchers.drain(..) {
                let _ = tx.try_send(Err(StoreError::Unavailable("connection lost".into())));
            }
        }
    }

    /// Expire a lease now, deleting its keys (as a missed TTL would).
    pub fn expire(&self, lease: i64) {
        self.lock().drop_lease(lease);
    }

    /// Compact history at the current revision and cancel every watch
    /// (etcd cancels a watcher that falls behind a compaction).
    pub fn compact(&self) {
        let mut g = self.lock();
        g.compacted = g.revision;
        g.history.clear();
        let rev = g.compacted;
        for (_, tx) in g.watchers.drain(..) {
            let _ = tx.try_send(Err(StoreError::Compacted(rev)));
        }
    }

    /// Put a key directly (as another client would).
    pub fn put(&self, key: &str, value: &[u8], lease: i64) {
        let mut g = self.lock();
        let ev = g.apply(vec![Op::Put {
            key: key.into(),
            value: value.into(),
            lease,
        }]);
        g.emit(ev);
    }

    /// Delete a key directly (as another client would).
    pub fn delete(&self, key: &str) {
        let mut g = self.lock();
        let ev = g.apply(vec![Op::Delete(key.into())]);
        g.emit(ev);
    }

    /// Current value of a key.
    pub fn value(&self, key: &str) -> Option<KeyValue> {
        self.lock().kvs.get(key).cloned()
    }

    /// Keys under a prefix.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.lock()
            .kvs
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Live lease ids.
    pub fn leases(&self) -> Vec<i64> {
        self.lock().leases.keys().copied().collect()
    }

    /// How many `list` calls were served (relists in the watcher).
    pub fn list_calls(&self) -> u64 {
        self.lock().lists
    }

    /// How many requests were made in total.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }
}

#[async_trait]
impl ClusterStore for MemStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let mut g = self.lock();
        g.check()?;
        Ok(g.kvs.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> StoreResult<(Vec<KeyValue>, i64)> {
        let mut g = self.lock();
        g.check()?;
        g.lists += 1;
        let v = g
            .kvs
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        Ok((v, g.revision))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> StoreResult<bool> {
        let mut g = self.lock();
        g.check()?;
        let ok = compares.iter().all(|c| match c {
            Compare::Version(k, v) => g.kvs.get(k).map_or(0, |x| x.version) == *v,
            Compare::Value(k, v) => g.kvs.get(k).is_some_and(|x| x.value == *v),
        });
        if !ok {
            return Ok(false);
        }
        for op in &ops {
            if let Op::Put { lease, .. } = op {
                if *lease != 0 && !g.leases.contains_key(lease) {
                    return Err(StoreError::Failed("requested lease not found".into()));
                }
            }
        }
        let ev = g.apply(ops);
        g.emit(ev);
        Ok(true)
    }

    async fn grant(&self, ttl_secs: i64) -> StoreResult<i64> {
        let mut g = self.lock();
        g.check()?;
        g.next_lease += 1;
        let id = 0x1000 + g.next_lease;
        g.leases.insert(id, ttl_secs);
        Ok(id)
    }

    async fn keep_alive(&self, lease: i64) -> StoreResult<i64> {
        let mut g = self.lock();
        g.check()?;
        Ok(g.leases.get(&lease).copied().unwrap_or(0))
    }

    async fn revoke(&self, lease: i64) -> StoreResult<()> {
        let mut g = self.lock();
        g.check()?;
        g.drop_lease(lease);
        Ok(())
    }

    async fn watch(
        &self,
        prefix: &str,
        from_revision: i64,
    ) -> StoreResult<mpsc::Receiver<WatchItem>> {
        let mut g = self.lock();
        g.check()?;
        let (tx, rx) = mpsc::channel(1024);
        if from_revision <= g.compacted {
            let _ = tx.try_send(Err(StoreError::Compacted(g.compacted)));
            return Ok(rx);
        }
        let past: Vec<WatchEvent> = g
            .history
            .iter()
            .filter(|(r, e)| *r >= from_revision && event_key(e).starts_with(prefix))
            .map(|(_, e)| e.clone())
            .collect();
        if !past.is_empty() {
            let _ = tx.try_send(Ok(past));
        }
        g.watchers.push((prefix.to_string(), tx));
        Ok(rx)
    }
}
