//! overlayd cluster mode on etcd v3: nodes agree on one cluster config,
//! lease their slice and cross-node service subnets with compare-and-set,
//! publish a member record on a presence lease, and watch each other to
//! configure WireGuard peers themselves. etcd being unreachable never tears
//! anything down: the node keeps what it has and reports itself degraded.
//!
//! The logic talks to a [`ClusterStore`]; [`EtcdStore`] is the real one and
//! [`MemStore`] an in-memory fake for unit tests.

pub mod agent;
pub mod claims;
pub mod error;
pub mod etcd;
pub mod fake;
pub mod keys;
pub mod members;
pub mod store;
pub mod watcher;

pub use agent::{Cluster, ClusterOptions, Health, LocalClaims};
pub use error::{ClusterError, Result};
pub use etcd::{EtcdStore, EtcdTls};
pub use fake::MemStore;
pub use keys::{ClusterConfig, DnsEntry, Keys, Member, MemberService};
pub use members::{desired_peers, DesiredPeer, Known};
pub use store::{ClusterStore, Compare, KeyValue, Op, StoreError, StoreResult, WatchEvent};
pub use watcher::ClusterSink;
