//! The lease / claim / membership / watch state machine against the
//! in-memory store: no etcd, no root.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ipnet::IpNet;
use overlayd_cluster::{
    Cluster, ClusterConfig, ClusterError, ClusterOptions, ClusterSink, DnsEntry, MemStore, Member,
};

fn config() -> ClusterConfig {
    ClusterConfig {
        cluster_cidr: "10.200.0.0/16".into(),
        slice_prefix_len: 24,
        service_range: "10.202.0.0/16".into(),
        service_prefix_len: 24,
        global_port: 51820,
    }
}

fn opts(name: &str, state: Option<&std::path::Path>) -> ClusterOptions {
    ClusterOptions {
        prefix: "/overlayd/v1/test".into(),
        node_name: name.into(),
        presence_ttl_secs: 3,
        peer_grace_secs: 1,
        claim_ttl_secs: 3600,
        config: config(),
        state_file: state.map(|d| d.join(format!("{name}.json"))),
    }
}

fn node(store: &MemStore, name: &str, state: Option<&std::path::Path>) -> Arc<Cluster> {
    Arc::new(Cluster::new(Arc::new(store.clone()), opts(name, state)).unwrap())
}

fn member(name: &str, slice: IpNet) -> Member {
    Member {
        name: name.into(),
        public_key: format!("pk-{name}"),
        endpoint: "192.0.2.1:51820".into(),
        slice: slice.to_string(),
        overlay_ip: String::new(),
        services: vec![],
        updated_unix: 0,
    }
}

async fn join(c: &Cluster) -> IpNet {
    c.ensure_config().await.unwrap();
    let s = c.claim_slice(None, &[]).await.unwrap();
    c.register(member(&c.options().node_name, s)).await.unwrap();
    s
}

#[tokio::test]
async fn config_is_created_once_and_a_disagreeing_node_is_refused_with_the_reason() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    a.ensure_config().await.unwrap();
    let first = store.value("/overlayd/v1/test/config").unwrap();
    node(&store, "b", None).ensure_config().await.unwrap();
    assert_eq!(
        store.value("/overlayd/v1/test/config").unwrap().version,
        first.version
    );
    let mut o = opts("c", None);
    o.config.global_port = 51999;
    let c = Cluster::new(Arc::new(store.clone()), o).unwrap();
    let err = c.ensure_config().await.unwrap_err();
    assert!(matches!(err, ClusterError::ConfigMismatch(_)));
    assert!(
        err.to_string()
            .contains("global WireGuard port is 51820 in the cluster but 51999 here"),
        "{err}"
    );
}

#[tokio::test]
async fn concurrent_nodes_get_distinct_slices() {
    let store = MemStore::new();
    let nodes: Vec<_> = (0..16)
        .map(|i| node(&store, &format!("n{i}"), None))
        .collect();
    let slices = futures::future::join_all(nodes.iter().map(|n| n.claim_slice(None, &[]))).await;
    let mut got: Vec<IpNet> = slices.into_iter().map(Result::unwrap).collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 16, "two nodes got the same slice");
    assert_eq!(store.keys("/overlayd/v1/test/slices/").len(), 16);
}

#[tokio::test]
async fn an_asked_for_subnet_has_exactly_one_winner() {
    let store = MemStore::new();
    let want: IpNet = "10.200.77.0/24".parse().unwrap();
    let a = node(&store, "a", None);
    let b = node(&store, "b", None);
    let (ra, rb) = tokio::join!(
        a.claim_slice(Some(want), &[]),
        b.claim_slice(Some(want), &[])
    );
    let winners = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{ra:?} {rb:?}");
    let err = ra.err().or(rb.err()).unwrap();
    assert!(matches!(err, ClusterError::Taken(_)));
    assert!(err.to_string().contains("already claimed by"), "{err}");
}

#[tokio::test]
async fn a_restarted_node_reclaims_its_slice_and_subnets_on_the_same_lease() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let a = node(&store, "a", Some(dir.path()));
    let slice = join(&a).await;
    let db = a.claim_subnet("service:db", None, &[]).await.unwrap();
    let lease = a.claims().await.claim_lease;
    drop(a);
    let a2 = node(&store, "a", Some(dir.path()));
    assert_eq!(a2.claim_slice(None, &[]).await.unwrap(), slice);
    assert_eq!(a2.claim_subnet("service:db", None, &[]).await.unwrap(), db);
    assert_eq!(
        a2.claims().await.claim_lease,
        lease,
        "the live claim lease is reused"
    );
}

#[tokio::test]
async fn a_slice_lost_while_away_moves_the_node_to_the_next_free_one_and_fences_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let a = node(&store, "a", Some(dir.path()));
    let slice = a.claim_slice(None, &[]).await.unwrap();
    // a's claim lease runs out while it is down; b takes the slice.
    store.expire(a.claims().await.claim_lease);
    drop(a);
    let b = node(&store, "b", None);
    assert_eq!(b.claim_slice(Some(slice), &[]).await.unwrap(), slice);
    let a2 = node(&store, "a", Some(dir.path()));
    // Registering with the old slice is refused (fencing).
    let err = a2.register(member("a", slice)).await.unwrap_err();
    assert!(matches!(err, ClusterError::Fenced(_)), "{err}");
    assert!(store.value("/overlayd/v1/test/members/a").is_none());
    let next = a2.claim_slice(None, &[]).await.unwrap();
    assert_ne!(next, slice);
    a2.register(member("a", next)).await.unwrap();
    let owner = store
        .value(&format!(
            "/overlayd/v1/test/slices/{}",
            next.to_string().replace('/', "_")
        ))
        .unwrap();
    assert_eq!(owner.value, b"a");
}

#[tokio::test]
async fn claims_avoid_given_subnets() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    let avoid: Vec<IpNet> = vec!["10.200.0.0/17".parse().unwrap()];
    let s = a.claim_slice(None, &avoid).await.unwrap();
    assert!(!avoid[0].contains(&s.network()), "{s}");
}

#[tokio::test]
async fn presence_expiry_is_repaired_by_the_heartbeat_and_leave_releases_on_request() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    let slice = join(&a).await;
    let key = "/overlayd/v1/test/members/a";
    let presence = store.value(key).unwrap().lease;
    store.expire(presence);
    assert!(store.value(key).is_none());
    a.heartbeat().await.unwrap();
    let again = store.value(key).expect("re-registered");
    assert_ne!(again.lease, presence, "a new presence lease");
    a.leave(false).await.unwrap();
    assert!(store.value(key).is_none(), "leave drops the presence");
    let slice_key = format!(
        "/overlayd/v1/test/slices/{}",
        slice.to_string().replace('/', "_")
    );
    assert!(store.value(&slice_key).is_some(), "the slice stays claimed");
    a.leave(true).await.unwrap();
    assert!(
        store.value(&slice_key).is_none(),
        "--release gives the slice up"
    );
}

#[derive(Default)]
struct Recorder {
    members: Mutex<Vec<String>>,
    dns: Mutex<Vec<DnsEntry>>,
    pushes: Mutex<u64>,
}

#[async_trait]
impl ClusterSink for Recorder {
    async fn members_changed(&self, members: Vec<Member>) {
        *self.members.lock().unwrap() = members.into_iter().map(|m| m.name).collect();
        *self.pushes.lock().unwrap() += 1;
    }
    async fn dns_changed(&self, records: Vec<DnsEntry>) {
        *self.dns.lock().unwrap() = records;
    }
}

impl Recorder {
    fn names(&self) -> Vec<String> {
        self.members.lock().unwrap().clone()
    }
}

async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start_watch(c: &Arc<Cluster>) -> (Arc<Recorder>, tokio::sync::watch::Sender<bool>) {
    let rec = Arc::new(Recorder::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(c.clone().watch_loop(rec.clone(), rx));
    (rec, tx)
}

#[tokio::test]
async fn the_watcher_adds_members_and_removes_them_only_after_the_grace_period() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    join(&a).await;
    let (rec, _stop) = start_watch(&a);
    let b = node(&store, "b", None);
    join(&b).await;
    let c = node(&store, "c", None);
    join(&c).await;
    until("b and c seen", 5, || rec.names() == ["b", "c"]).await;
    let mut dns = BTreeMap::new();
    dns.insert(
        "web.overlay.internal".to_string(),
        vec!["10.200.9.2".to_string()],
    );
    b.set_dns(dns).await.unwrap();
    until("b's DNS seen", 5, || rec.dns.lock().unwrap().len() == 1).await;
    let gone = Instant::now();
    c.leave(false).await.unwrap();
    // Still there right after (grace 1 s), then gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        rec.names(),
        ["b", "c"],
        "removed before the grace period ran out"
    );
    until("c removed after grace", 5, || rec.names() == ["b"]).await;
    assert!(gone.elapsed() >= Duration::from_secs(1));
    // b's presence expires (a crash): its DNS name goes with it after grace.
    store.expire(store.value("/overlayd/v1/test/members/b").unwrap().lease);
    until("b removed", 5, || rec.names().is_empty()).await;
    assert!(rec.dns.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_member_that_returns_within_grace_is_never_removed() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    join(&a).await;
    let (rec, _stop) = start_watch(&a);
    let b = node(&store, "b", None);
    join(&b).await;
    until("b seen", 5, || rec.names() == ["b"]).await;
    store.expire(store.value("/overlayd/v1/test/members/b").unwrap().lease);
    b.heartbeat().await.unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        assert_eq!(rec.names(), ["b"], "a flap removed the peer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn compaction_makes_the_watcher_relist_once_without_a_hot_loop() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    join(&a).await;
    let (rec, _stop) = start_watch(&a);
    until("first list", 5, || a.relists() == 1).await;
    store.compact();
    until("relist after compaction", 5, || a.relists() == 2).await;
    let b = node(&store, "b", None);
    join(&b).await;
    until("b seen after the rewatch", 5, || rec.names() == ["b"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.relists(), 2, "relisted more than once for one compaction");
}

#[tokio::test]
async fn an_unreachable_store_keeps_every_member_and_reports_degraded_until_healed() {
    let store = MemStore::new();
    let a = node(&store, "a", None);
    join(&a).await;
    let (rec, _stop) = start_watch(&a);
    let b = node(&store, "b", None);
    join(&b).await;
    until("b seen", 5, || rec.names() == ["b"]).await;
    let health = a.health();
    store.set_unreachable(true);
    assert!(a.heartbeat().await.is_err());
    a.report("lease", Some("etcd unreachable".into()));
    until("degraded", 5, || health.borrow().degraded).await;
    // Backoff is capped: over 1.5 s the watcher tries a handful of times, not hundreds.
    let before = store.requests();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let tries = store.requests() - before;
    assert!(tries <= 8, "{tries} requests in 1.5 s while unreachable");
    assert_eq!(rec.names(), ["b"], "members kept while etcd is unreachable");
    store.set_unreachable(false);
    a.heartbeat().await.unwrap();
    a.report("lease", None);
    until("healthy again", 10, || !health.borrow().degraded).await;
    assert_eq!(rec.names(), ["b"]);
}
