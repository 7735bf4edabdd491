//! The watcher: list the prefix, hand the full member set to the node, then
//! watch from the next revision. On a compacted watch or a broken stream it
//! lists again, diffs (through the member table) and watches again, backing
//! off 0.1 s → 5 s so it never spins. Also the heartbeat loop that keeps the
//! leases alive. Neither ever removes anything because etcd is unreachable.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::agent::Cluster;
use crate::keys::{DnsEntry, KeyKind, Member};
use crate::store::{KeyValue, WatchEvent};

/// First backoff after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest backoff.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the watcher drives on the node.
#[async_trait]
pub trait ClusterSink: Send + Sync {
    /// The remote members whose peers should be configured (present, or
    /// vanished within the grace period). Full set each time.
    async fn members_changed(&self, members: Vec<Member>);
    /// DNS names served by those members. Full set each time.
    async fn dns_changed(&self, records: Vec<DnsEntry>);
}

fn parse_member(kv: &KeyValue) -> Option<Member> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| warn!(key = %kv.key, error = %e, "unreadable member record ignored"))
        .ok()
}

fn parse_dns(kv: &KeyValue) -> Option<DnsEntry> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| warn!(key = %kv.key, error = %e, "unreadable DNS record ignored"))
        .ok()
}

impl Cluster {
    fn with_table<T>(&self, f: impl FnOnce(&mut crate::members::MemberTable) -> T) -> T {
        f(&mut self.table.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn push(&self, sink: &dyn ClusterSink) {
        let (members, dns) = self.with_table(|t| (t.live(), t.dns()));
        sink.members_changed(members).await;
        sink.dns_changed(dns).await;
    }

    /// Apply one listing; returns the revision it was taken at.
    async fn relist(&self, sink: &dyn ClusterSink) -> crate::Result<i64> {
        let (kvs, rev) = self.store.list(&self.keys.root()).await?;
        self.relists.fetch_add(1, Ordering::Relaxed);
        let mut members = Vec::new();
        let mut dns = Vec::new();
        for kv in &kvs {
            match self.keys.classify(&kv.key) {
                KeyKind::Member(_) => members.extend(parse_member(kv)),
                KeyKind::Dns(node, _) => {
                    if let Some(e) = parse_dns(kv) {
                        dns.push((node.to_string(), e));
                    }
                }
                KeyKind::Other => {}
            }
        }
        let now = Instant::now();
        self.with_table(|t| {
            t.relist(members, dns, now);
            t.expire(now);
        });
        self.push(sink).await;
        Ok(rev)
    }

    fn apply_events(&self, events: &[WatchEvent]) {
        let now = Instant::now();
        self.with_table(|t| {
            for e in events {
                match e {
                    WatchEvent::Put(kv) => match self.keys.classify(&kv.key) {
                        KeyKind::Member(_) => {
                            if let Some(m) = parse_member(kv) {
                                t.put(m);
                            }
                        }
                        KeyKind::Dns(node, _) => {
                            if let Some(d) = parse_dns(kv) {
                                t.put_dns(node, d);
                            }
                        }
                        KeyKind::Other => {}
                    },
                    WatchEvent::Delete { key, .. } => match self.keys.classify(key) {
                        KeyKind::Member(n) => t.delete(n, now),
                        KeyKind::Dns(node, name) => t.delete_dns(node, name),
                        KeyKind::Other => {}
                    },
                }
            }
        });
    }

    /// Wait `d`, expiring graced members meanwhile; false when stopped.
    async fn pause(
        &self,
        d: Duration,
        sink: &dyn ClusterSink,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let until = tokio::time::Instant::now() + d;
        loop {
            let deadline = self.grace_deadline().map_or(until, |g| g.min(until));
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {
                    if self.expire_now() {
                        self.push(sink).await;
                    }
                    if tokio::time::Instant::now() >= until {
                        return true;
                    }
                }
                _ = stop.changed() => return false,
            }
        }
    }

    fn grace_deadline(&self) -> Option<tokio::time::Instant> {
        self.with_table(|t| t.next_deadline())
            .map(tokio::time::Instant::from_std)
    }

    fn expire_now(&self) -> bool {
        let now = Instant::now();
        self.with_table(|t| t.expire(now))
    }

    /// Run the watcher until `stop` turns true.
    pub async fn watch_loop(
        self: Arc<Self>,
        sink: Arc<dyn ClusterSink>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if *stop.borrow() {
                return;
            }
            let rev = match self.relist(sink.as_ref()).await {
                Ok(r) => r,
                Err(e) => {
                    self.report("watch", Some(e.to_string()));
                    if !self.pause(backoff, sink.as_ref(), &mut stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let mut rx = match self.store.watch(&self.keys.root(), rev + 1).await {
                Ok(rx) => rx,
                Err(e) => {
                    self.report("watch", Some(e.to_string()));
                    if !self.pause(backoff, sink.as_ref(), &mut stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            self.report("watch", None);
            let started = Instant::now();
            let why = loop {
                let deadline = self.grace_deadline();
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(Ok(events)) => {
                            self.apply_events(&events);
                            self.expire_now();
                            self.push(sink.as_ref()).await;
                        }
                        Some(Err(e)) => break e.to_string(),
                        None => break "watch stream closed".to_string(),
                    },
                    _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                        if self.expire_now() {
                            self.push(sink.as_ref()).await;
                        }
                    }
                    _ = stop.changed() => return,
                }
            };
            debug!(reason = %why, "watch ended; listing again");
            // A watch that ran a while earned a fresh backoff; one that
            // breaks at once keeps doubling it (no hot loop).
            if started.elapsed() > BACKOFF_MAX {
                backoff = BACKOFF_MIN;
            }
            if !self.pause(backoff, sink.as_ref(), &mut stop).await {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Keep the leases alive every third of the presence TTL until `stop`.
    pub async fn heartbeat_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let period = Duration::from_millis(self.opts.presence_ttl_secs.max(1) * 1000 / 3);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            match self.heartbeat().await {
                Ok(()) => self.report("lease", None),
                Err(e) => {
                    warn!(error = %e, "cluster heartbeat failed; keeping every peer and network");
                    self.report("lease", Some(e.to_string()));
                }
            }
        }
    }
}
