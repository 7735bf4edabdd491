//! Cluster mode in the daemon (`[cluster]` in the config): the node joins an
//! etcd v3 cluster, leases its slice and dedicated service subnets there
//! instead of picking them locally, and configures WireGuard peers for the
//! other members itself — through the same peer code paths as `add_peer`,
//! tagged as cluster-managed so hand-configured peers are never touched.
//! Standalone mode (no `[cluster]`) is unchanged.

pub mod driver;
pub mod ops;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use anyhow::{Context, Result};
use overlayd_cluster::{Cluster, ClusterOptions, EtcdStore, EtcdTls};
use tokio::sync::Notify;

use crate::config::Config;

/// Cluster CIDR every node of a cluster uses (the SPEC's default).
pub const CLUSTER_CIDR: &str = "10.200.0.0/16";
/// Per-request timeout towards etcd.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(2);
/// Keepalive of cluster-managed peers (keeps NAT mappings and health fresh).
pub const PEER_KEEPALIVE_SECS: u64 = 25;

/// The daemon's handle on cluster mode.
pub struct ClusterHandle {
    /// The membership logic.
    pub cluster: Arc<Cluster>,
    /// Poked after every request that may change what this node publishes.
    pub changed: Notify,
    /// Set by `cluster leave`: publish nothing until the next start.
    pub left: AtomicBool,
    /// Configured endpoint (None: the uplink's address and the global port).
    pub endpoint: Option<String>,
    /// DNS names served on behalf of other members (normalised name → ips).
    pub remote_dns: StdMutex<BTreeMap<String, Vec<String>>>,
}

/// The cluster-wide parameters this node brings: the address plan's ranges
/// (`slice_prefix_len`, `service_range`, `service_prefix_len`), leased from
/// etcd instead of derived, and the global port.
pub fn cluster_config(cfg: &Config) -> overlayd_cluster::ClusterConfig {
    overlayd_cluster::ClusterConfig {
        cluster_cidr: CLUSTER_CIDR.into(),
        slice_prefix_len: cfg.slice_prefix_len,
        service_range: cfg.service_range.clone(),
        service_prefix_len: cfg.service_prefix_len,
        global_port: cfg.wg_port,
    }
}

/// Connect to etcd when `[cluster]` is configured (lazily: an unreachable
/// etcd does not stop the daemon from starting).
pub async fn connect(cfg: &Config) -> Result<Option<Arc<ClusterHandle>>> {
    let Some(c) = &cfg.cluster else {
        return Ok(None);
    };
    let tls = EtcdTls {
        ca_file: c.ca_file.clone(),
        cert_file: c.cert_file.clone(),
        key_file: c.key_file.clone(),
    };
    let store = EtcdStore::connect(&c.etcd_endpoints, &tls, ETCD_TIMEOUT)
        .await
        .context("cannot set up the etcd client")?;
    let opts = ClusterOptions {
        prefix: c.prefix(),
        node_name: c.node_name(),
        presence_ttl_secs: c.presence_ttl_secs,
        peer_grace_secs: c.peer_grace_secs,
        claim_ttl_secs: overlayd_cluster::agent::DEFAULT_CLAIM_TTL_SECS,
        config: cluster_config(cfg),
        state_file: Some(cfg.data_dir.join("cluster.json")),
    };
    let cluster = Cluster::new(Arc::new(store), opts)?;
    Ok(Some(Arc::new(ClusterHandle {
        cluster: Arc::new(cluster),
        changed: Notify::new(),
        left: AtomicBool::new(false),
        endpoint: c.endpoint.clone(),
        remote_dns: StdMutex::new(BTreeMap::new()),
    })))
}
