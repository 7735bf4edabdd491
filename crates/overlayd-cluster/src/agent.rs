//! The node's side of cluster mode: agree on the cluster config, claim the
//! slice and service subnets, keep the claim and presence leases alive,
//! publish the member record (fenced on still owning the slice) and DNS
//! names, and leave. The watcher ([`crate::watcher`]) is the other half.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::claims::{self, stable_hash, ClaimSpec};
use crate::error::{ClusterError, Result};
use crate::keys::{ClusterConfig, DnsEntry, Keys, Member};
use crate::members::MemberTable;
use crate::store::{ClusterStore, Compare, Op};

/// Default presence TTL.
pub const DEFAULT_PRESENCE_TTL_SECS: u64 = 15;
/// Default grace before a vanished member's peers are removed.
pub const DEFAULT_PEER_GRACE_SECS: u64 = 60;
/// TTL of the long-lived claim lease that holds slice and subnet claims.
pub const DEFAULT_CLAIM_TTL_SECS: u64 = 3600;

/// Options of one node in one cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Key prefix of the cluster.
    pub prefix: String,
    /// This node's name (unique in the cluster).
    pub node_name: String,
    /// Presence lease TTL.
    pub presence_ttl_secs: u64,
    /// Grace before a vanished member's peers are removed.
    pub peer_grace_secs: u64,
    /// Claim lease TTL.
    pub claim_ttl_secs: u64,
    /// The cluster parameters this node was configured with.
    pub config: ClusterConfig,
    /// Where claims are remembered across restarts (None: not remembered).
    pub state_file: Option<PathBuf>,
}

/// What this node has claimed, remembered in the data dir.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalClaims {
    /// Claim lease id (0: none).
    #[serde(default)]
    pub claim_lease: i64,
    /// The slice.
    #[serde(default)]
    pub slice: Option<String>,
    /// Subnets per network owner (`service:<name>`).
    #[serde(default)]
    pub subnets: BTreeMap<String, String>,
}

/// Health of cluster mode as `cluster status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// etcd could not be reached (or refused this node) recently.
    pub degraded: bool,
    /// Why, when degraded.
    pub reason: String,
}

#[derive(Default)]
struct Inner {
    claims: LocalClaims,
    presence: i64,
    member: Option<Member>,
    dns: BTreeMap<String, Vec<String>>,
    written_dns: BTreeMap<String, Vec<String>>,
    registered: bool,
    claim_checked: Option<Instant>,
}

/// One node's membership in one cluster.
pub struct Cluster {
    pub(crate) store: Arc<dyn ClusterStore>,
    pub(crate) keys: Keys,
    pub(crate) opts: ClusterOptions,
    inner: Mutex<Inner>,
    pub(crate) table: StdMutex<MemberTable>,
    faults: StdMutex<BTreeMap<&'static str, String>>,
    health: tokio::sync::watch::Sender<Health>,
    pub(crate) relists: AtomicU64,
}

impl Cluster {
    /// A node of the cluster at `opts.prefix` on `store`; reads remembered claims.
    pub fn new(store: Arc<dyn ClusterStore>, opts: ClusterOptions) -> Result<Self> {
        let claims = match &opts.state_file {
            Some(p) => match std::fs::read(p) {
                Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                    ClusterError::Local(format!("{} is not valid JSON: {e}", p.display()))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => LocalClaims::default(),
                Err(e) => return Err(ClusterError::Local(format!("{}: {e}", p.display()))),
            },
            None => LocalClaims::default(),
        };
        let grace = Duration::from_secs(opts.peer_grace_secs);
        Ok(Cluster {
            store,
            keys: Keys::new(&opts.prefix),
            table: StdMutex::new(MemberTable::new(&opts.node_name, grace)),
            opts,
            inner: Mutex::new(Inner {
                claims,
                ..Default::default()
            }),
            faults: StdMutex::new(BTreeMap::new()),
            health: tokio::sync::watch::channel(Health::default()).0,
            relists: AtomicU64::new(0),
        })
    }

    /// Options in force.
    pub fn options(&self) -> &ClusterOptions {
        &self.opts
    }

    /// Key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Subscribe to health changes.
    pub fn health(&self) -> tokio::sync::watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// Record that `source` failed (`Some`) or works again (`None`).
    pub fn report(&self, source: &'static str, fault: Option<String>) {
        let mut f = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        match fault {
            Some(why) => {
                f.insert(source, why);
            }
            None => {
                f.remove(source);
            }
        }
        let h = Health {
            degraded: !f.is_empty(),
            reason: f.values().cloned().collect::<Vec<_>>().join("; "),
        };
        self.health.send_if_modified(|old| {
            let changed = old.degraded != h.degraded;
            *old = h;
            changed
        });
    }

    /// How many times the watcher listed the prefix.
    pub fn relists(&self) -> u64 {
        self.relists.load(Ordering::Relaxed)
    }

    /// What is remembered locally.
    pub async fn claims(&self) -> LocalClaims {
        self.inner.lock().await.claims.clone()
    }

    fn save(&self, claims: &LocalClaims) -> Result<()> {
        let Some(path) = &self.opts.state_file else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(claims).map_err(|e| ClusterError::Local(e.to_string()))?;
        let io = |e: std::io::Error| ClusterError::Local(format!("{}: {e}", path.display()));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Create the cluster config if absent (in one transaction), else check
    /// this node agrees with it.
    pub async fn ensure_config(&self) -> Result<()> {
        let key = self.keys.config();
        let mine = serde_json::to_vec(&self.opts.config)
            .map_err(|e| ClusterError::Local(e.to_string()))?;
        let put = Op::Put {
            key: key.clone(),
            value: mine,
            lease: 0,
        };
        if self
            .store
            .txn(vec![Compare::Version(key.clone(), 0)], vec![put])
            .await?
        {
            info!(prefix = %self.opts.prefix, "created the cluster config");
            return Ok(());
        }
        let kv = self.store.get(&key).await?.ok_or_else(|| {
            ClusterError::Store(crate::StoreError::Failed("cluster config vanished".into()))
        })?;
        let stored: ClusterConfig = serde_json::from_slice(&kv.value).map_err(|e| {
            ClusterError::ConfigMismatch(format!(
                "the cluster config at {key} is not readable: {e}"
            ))
        })?;
        match self.opts.config.disagreement(&stored) {
            None => Ok(()),
            Some(why) => Err(ClusterError::ConfigMismatch(format!(
                "{why}; configure this node like the cluster (or use another prefix)"
            ))),
        }
    }

    /// The claim lease: the remembered one if etcd still has it, else a new one.
    async fn claim_lease(&self, inner: &mut Inner) -> Result<i64> {
        let id = inner.claims.claim_lease;
        if id != 0 && self.store.keep_alive(id).await? > 0 {
            return Ok(id);
        }
        let id = self.store.grant(self.opts.claim_ttl_secs as i64).await?;
        inner.claims.claim_lease = id;
        self.save(&inner.claims)?;
        Ok(id)
    }

    fn cidr(&self, s: &str, what: &str) -> Result<IpNet> {
        s.parse()
            .map_err(|_| ClusterError::Invalid(format!("{what} {s:?} is not a CIDR")))
    }

    /// Claim this node's slice: `requested` exactly when given (another
    /// owner is an error), else the remembered one, else a free one.
    pub async fn claim_slice(&self, requested: Option<IpNet>, avoid: &[IpNet]) -> Result<IpNet> {
        let mut inner = self.inner.lock().await;
        let lease = self.claim_lease(&mut inner).await?;
        let remembered = inner.claims.slice.as_deref().and_then(|s| s.parse().ok());
        let range = self.cidr(&self.opts.config.cluster_cidr, "cluster_cidr")?;
        let prefix = self.keys.slices();
        let spec = ClaimSpec {
            prefix: &prefix,
            range,
            prefix_len: self.opts.config.slice_prefix_len,
            preferred: requested.or(remembered),
            exact: requested.is_some(),
            holder: &self.opts.node_name,
            start_hint: stable_hash(&self.opts.node_name),
            avoid,
            lease,
        };
        let net = claims::claim(self.store.as_ref(), &spec).await?;
        if let Some(old) = remembered.filter(|o| *o != net) {
            if requested.is_none() {
                warn!(%old, new = %net, "the remembered slice was taken by another node; claimed the next free one");
            }
            claims::release(self.store.as_ref(), &prefix, &old, &self.opts.node_name).await?;
        }
        inner.claims.slice = Some(net.to_string());
        self.save(&inner.claims)?;
        Ok(net)
    }

    /// Claim the subnet of a cross-node network (`service:<name>`).
    pub async fn claim_subnet(
        &self,
        network: &str,
        requested: Option<IpNet>,
        avoid: &[IpNet],
    ) -> Result<IpNet> {
        let mut inner = self.inner.lock().await;
        let lease = self.claim_lease(&mut inner).await?;
        let remembered = inner
            .claims
            .subnets
            .get(network)
            .and_then(|s| s.parse().ok());
        let range = self.cidr(&self.opts.config.service_range, "service range")?;
        let prefix = self.keys.subnets();
        let holder = format!("{}|{network}", self.opts.node_name);
        let spec = ClaimSpec {
            prefix: &prefix,
            range,
            prefix_len: self.opts.config.service_prefix_len,
            preferred: requested.or(remembered),
            exact: requested.is_some(),
            holder: &holder,
            start_hint: stable_hash(&holder),
            avoid,
            lease,
        };
        let net = claims::claim(self.store.as_ref(), &spec).await?;
        inner
            .claims
            .subnets
            .insert(network.to_string(), net.to_string());
        self.save(&inner.claims)?;
        Ok(net)
    }

    /// Give up the subnet of a network that was torn down.
    pub async fn release_subnet(&self, network: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let Some(net) = inner
            .claims
            .subnets
            .get(network)
            .and_then(|s| s.parse::<IpNet>().ok())
        else {
            return Ok(());
        };
        let holder = format!("{}|{network}", self.opts.node_name);
        claims::release(self.store.as_ref(), &self.keys.subnets(), &net, &holder).await?;
        inner.claims.subnets.remove(network);
        self.save(&inner.claims)
    }

    /// Publish (or update) this node's member record on the presence lease,
    /// in a transaction that holds only while the node still owns its slice.
    pub async fn register(&self, member: Member) -> Result<()> {
        let mut inner = self.inner.lock().await;
        inner.member = Some(member);
        self.publish(&mut inner).await
    }

    /// Set the DNS names this node serves to the cluster (full set).
    pub async fn set_dns(&self, records: BTreeMap<String, Vec<String>>) -> Result<()> {
        let mut inner = self.inner.lock().await;
        inner.dns = records;
        if !inner.registered {
            return Ok(());
        }
        self.write_dns(&mut inner).await
    }

    async fn write_dns(&self, inner: &mut Inner) -> Result<()> {
        let node = &self.opts.node_name;
        let mut ops = Vec::new();
        for (name, ips) in &inner.dns {
            if inner.written_dns.get(name) != Some(ips) {
                let e = DnsEntry {
                    name: name.clone(),
                    ips: ips.clone(),
                };
                ops.push(Op::Put {
                    key: self.keys.dns(node, name),
                    value: serde_json::to_vec(&e)
                        .map_err(|e| ClusterError::Local(e.to_string()))?,
                    lease: inner.presence,
                });
            }
        }
        for name in inner.written_dns.keys() {
            if !inner.dns.contains_key(name) {
                ops.push(Op::Delete(self.keys.dns(node, name)));
            }
        }
        if !ops.is_empty() {
            self.store.txn(vec![], ops).await?;
        }
        inner.written_dns = inner.dns.clone();
        Ok(())
    }

    async fn publish(&self, inner: &mut Inner) -> Result<()> {
        let Some(member) = inner.member.clone() else {
            return Ok(());
        };
        if inner.presence == 0 {
            inner.presence = self.store.grant(self.opts.presence_ttl_secs as i64).await?;
            inner.written_dns.clear();
        }
        let slice: IpNet = self.cidr(&member.slice, "slice")?;
        let node = self.opts.node_name.as_bytes().to_vec();
        let mut m = member;
        m.updated_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let put = Op::Put {
            key: self.keys.member(&self.opts.node_name),
            value: serde_json::to_vec(&m).map_err(|e| ClusterError::Local(e.to_string()))?,
            lease: inner.presence,
        };
        let fenced = Compare::Value(self.keys.slice(&slice), node);
        if !self.store.txn(vec![fenced], vec![put]).await? {
            inner.registered = false;
            return Err(ClusterError::Fenced(format!(
                "this node no longer owns its slice {slice} in etcd; not registering (another node may have claimed it while this one was away)"
            )));
        }
        inner.registered = true;
        self.write_dns(inner).await
    }

    /// One heartbeat: refresh the presence lease (re-registering when it
    /// expired, e.g. after a partition), and now and then the claim lease
    /// (re-claiming the same subnets if it expired).
    pub async fn heartbeat(&self) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let claim_every = Duration::from_secs((self.opts.claim_ttl_secs / 3).max(1));
        if inner
            .claim_checked
            .is_none_or(|t| t.elapsed() >= claim_every)
            && inner.claims.claim_lease != 0
        {
            let old = inner.claims.claim_lease;
            if self.store.keep_alive(old).await? == 0 {
                warn!("the claim lease expired; claiming the same subnets again");
                self.reclaim(&mut inner).await?;
            }
            inner.claim_checked = Some(Instant::now());
        }
        if inner.presence != 0 && self.store.keep_alive(inner.presence).await? > 0 {
            return Ok(());
        }
        if inner.presence != 0 {
            info!("presence lease expired; registering again");
        }
        inner.presence = 0;
        self.publish(&mut inner).await
    }

    /// Re-claim exactly the remembered subnets on a new claim lease.
    async fn reclaim(&self, inner: &mut Inner) -> Result<()> {
        inner.claims.claim_lease = 0;
        let lease = self.claim_lease(inner).await?;
        let mut wanted: Vec<(String, String, String)> = Vec::new();
        if let Some(s) = &inner.claims.slice {
            wanted.push((self.keys.slices(), s.clone(), self.opts.node_name.clone()));
        }
        for (net, s) in &inner.claims.subnets {
            wanted.push((
                self.keys.subnets(),
                s.clone(),
                format!("{}|{net}", self.opts.node_name),
            ));
        }
        for (prefix, s, holder) in wanted {
            let net: IpNet = self.cidr(&s, "claimed subnet")?;
            let key = format!("{prefix}{}", crate::keys::net_segment(&net));
            let put = Op::Put {
                key: key.clone(),
                value: holder.clone().into_bytes(),
                lease,
            };
            let ok = self
                .store
                .txn(vec![Compare::Version(key.clone(), 0)], vec![put.clone()])
                .await?
                || self
                    .store
                    .txn(vec![Compare::Value(key, holder.into_bytes())], vec![put])
                    .await?;
            if !ok {
                return Err(ClusterError::Fenced(format!(
                    "{net} was claimed by another node while this node's claim lease was expired"
                )));
            }
        }
        Ok(())
    }

    /// Leave: drop the presence (member record and DNS names go at once);
    /// with `release`, also give up the slice and subnets.
    pub async fn leave(&self, release: bool) -> Result<()> {
        let mut inner = self.inner.lock().await;
        if inner.presence != 0 {
            self.store.revoke(inner.presence).await?;
        }
        inner.presence = 0;
        inner.registered = false;
        inner.member = None;
        inner.written_dns.clear();
        if release {
            if inner.claims.claim_lease != 0 {
                self.store.revoke(inner.claims.claim_lease).await?;
            }
            inner.claims = LocalClaims::default();
            self.save(&inner.claims)?;
        }
        Ok(())
    }

    /// Whether the member record is currently published.
    pub async fn registered(&self) -> bool {
        self.inner.lock().await.registered
    }

    /// The member record last published (or to be published).
    pub async fn member(&self) -> Option<Member> {
        self.inner.lock().await.member.clone()
    }

    /// Remote members whose peers should be configured now.
    pub fn live_members(&self) -> Vec<Member> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).live()
    }

    /// Remote members as the watcher knows them.
    pub fn known_members(&self) -> Vec<crate::members::Known> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).known()
    }
}
