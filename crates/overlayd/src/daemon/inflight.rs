//! Attaches and detaches whose host work runs outside the node lock.
//!
//! An attach or detach takes the node lock to decide and to write its
//! intent (the `attaching` / `detaching` record), releases it while the
//! kernel creates or deletes the veth, and takes it again to commit. In
//! between, other mutations run — including the periodic check, which
//! would otherwise take the half-done record for a crash and undo it. The
//! registry is what tells them apart:
//!
//! - [`InFlight::hold`] serialises requests on one container (a second
//!   attach of the same handle waits for the first, then finds it done);
//! - [`Held::claim`] names the records and veths an operation has in
//!   flight; the periodic check, start-up-style reconcile on demand,
//!   `doctor --fix` and other requests leave claimed ones alone, and a
//!   request that would have to undo one answers `unavailable` (retry)
//!   instead;
//! - dropping the [`Held`] guard (the request finished, failed or was
//!   cancelled) releases both. A record still half-done after that was
//!   left by a failure, and is finished like a crash's.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::error::{OpError, OpResult};
use super::records::Attachment;

#[derive(Default)]
struct Registry {
    /// Per container (request handle key): its lock and how many requests
    /// hold or wait for it.
    containers: HashMap<String, (Arc<tokio::sync::Mutex<()>>, usize)>,
    /// Attachment records (store keys) an operation has in flight.
    records: HashSet<String>,
    /// Host ends of the veths an operation is creating or deleting.
    veths: HashSet<String>,
}

/// The registry of in-flight attaches and detaches, shared by the
/// dispatcher (which holds containers) and the node (which consults it).
#[derive(Clone, Default)]
pub struct InFlight {
    inner: Arc<Mutex<Registry>>,
    /// Counts the times members were re-plugged into a bridge made again:
    /// an attach whose veth was made meanwhile checks it is on the bridge
    /// that exists now.
    replugs: Arc<AtomicU64>,
}

impl InFlight {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wait until no other request works on container `key`, and hold it
    /// until the returned guard drops.
    pub async fn hold(&self, key: &str) -> Held {
        let mutex = {
            let mut r = self.lock();
            let slot = r
                .containers
                .entry(key.to_string())
                .or_insert_with(|| (Arc::new(tokio::sync::Mutex::new(())), 0));
            slot.1 += 1;
            slot.0.clone()
        };
        // Built before waiting: if this future is dropped while queued, the
        // guard's drop still takes this request off the container's count.
        let mut held = Held {
            registry: self.clone(),
            key: key.to_string(),
            claims: Vec::new(),
            veths: Vec::new(),
            _guard: None,
        };
        held._guard = Some(mutex.lock_owned().await);
        held
    }

    /// Whether an operation has attachment record `key` in flight.
    pub fn is_claimed(&self, record_key: &str) -> bool {
        self.lock().records.contains(record_key)
    }

    /// The claimed records and veths, read together: a check that hides
    /// claimed veths must also skip their records, from the same moment.
    pub fn claimed(&self) -> (HashSet<String>, HashSet<String>) {
        let r = self.lock();
        (r.records.clone(), r.veths.clone())
    }

    /// `unavailable` (retry later) when another request has this
    /// attachment in flight: it is half-done because that request is
    /// running, not because of a crash.
    pub fn refuse_claimed(&self, a: &Attachment) -> OpResult<()> {
        if self.is_claimed(&a.key()) {
            return Err(OpError::Unavailable(format!(
                "an attach or detach of {} is in progress (under another handle form); retry when it has finished",
                a.key()
            )));
        }
        Ok(())
    }

    /// How many times members were re-plugged into a recreated bridge.
    pub fn replug_epoch(&self) -> u64 {
        self.replugs.load(Ordering::SeqCst)
    }

    /// A bridge was made again and its members are being re-plugged.
    pub fn note_replug(&self) {
        self.replugs.fetch_add(1, Ordering::SeqCst);
    }

    /// How many containers have a request running or waiting.
    #[cfg(test)]
    fn containers(&self) -> usize {
        self.lock().containers.len()
    }

    /// How many requests hold or wait for container `key`.
    #[cfg(test)]
    fn holders(&self, key: &str) -> usize {
        self.lock().containers.get(key).map_or(0, |s| s.1)
    }
}

/// A container held by one request; its claims are released on drop.
pub struct Held {
    registry: InFlight,
    key: String,
    claims: Vec<String>,
    veths: Vec<String>,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Held {
    /// Mark attachment `a` (its record and its veth) as in flight until
    /// this guard drops. Call it while still holding the node lock that
    /// wrote the record, so no check can see the record unclaimed.
    pub fn claim(&mut self, a: &Attachment) {
        let mut r = self.registry.lock();
        let key = a.key();
        r.records.insert(key.clone());
        r.veths.insert(a.host_ifname.clone());
        self.claims.push(key);
        self.veths.push(a.host_ifname.clone());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut r = self.registry.lock();
        for k in &self.claims {
            r.records.remove(k);
        }
        for v in &self.veths {
            r.veths.remove(v);
        }
        if let Some(slot) = r.containers.get_mut(&self.key) {
            slot.1 -= 1;
            if slot.1 == 0 {
                r.containers.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use overlayd_proto::Handle;

    use super::*;
    use crate::daemon::records::AttachState;

    fn attachment(pid: u32) -> Attachment {
        Attachment {
            handle: Handle::LinuxPid { pid },
            network: "iso:a".into(),
            service: "web".into(),
            ip: "10.201.0.2".into(),
            prefix_len: 24,
            host_ifname: format!("ovl-v{pid}"),
            id: "id".into(),
            dns_name: None,
            guest_private_key: None,
            dns_server: None,
            dns_domain: None,
            state: AttachState::Attaching,
            netns_id: None,
            publish: Vec::new(),
            ifname: None,
            ip_v6: None,
            prefix_len_v6: None,
        }
    }

    #[tokio::test]
    async fn claims_last_as_long_as_the_hold() {
        let reg = InFlight::default();
        let a = attachment(1);
        let mut held = reg.hold("pid:1").await;
        held.claim(&a);
        assert!(reg.is_claimed(&a.key()));
        assert!(reg.claimed().1.contains("ovl-v1"));
        assert!(reg.refuse_claimed(&a).is_err());
        assert!(reg.refuse_claimed(&attachment(2)).is_ok());
        drop(held);
        assert!(!reg.is_claimed(&a.key()));
        assert!(reg.claimed().1.is_empty());
        assert_eq!(reg.containers(), 0);
    }

    #[tokio::test]
    async fn a_request_cancelled_while_queued_leaves_no_trace() {
        let reg = InFlight::default();
        let first = reg.hold("pid:1").await;
        let queued = tokio::time::timeout(Duration::from_millis(10), reg.hold("pid:1")).await;
        assert!(queued.is_err(), "queued behind the first");
        assert_eq!(
            reg.holders("pid:1"),
            1,
            "the cancelled request is not counted"
        );
        drop(first);
        assert_eq!(reg.containers(), 0);
    }

    #[tokio::test]
    async fn a_second_request_on_one_container_waits_for_the_first() {
        let reg = InFlight::default();
        let first = reg.hold("pid:1").await;
        let reg2 = reg.clone();
        let second = tokio::spawn(async move {
            let _h = reg2.hold("pid:1").await;
        });
        // Another container is not held up.
        let other = tokio::time::timeout(Duration::from_secs(5), reg.hold("pid:2")).await;
        assert!(other.is_ok());
        drop(other);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while reg.holders("pid:1") < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the second request never queued"
            );
            tokio::task::yield_now().await;
        }
        // It is queued behind the first and cannot have run.
        assert!(
            !second.is_finished(),
            "the second request ran beside the first"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second request ran once the first finished")
            .unwrap();
        assert_eq!(reg.containers(), 0);
    }
}
