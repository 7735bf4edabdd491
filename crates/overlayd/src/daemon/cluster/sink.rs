//! What the watcher drives: the node's peers and DNS names.

use std::sync::Arc;

use async_trait::async_trait;
use overlayd_cluster::{ClusterSink, DnsEntry, Member};
use tokio::sync::Mutex;

use crate::daemon::node::Node;

/// Applies the watcher's member set to the node.
pub struct NodeSink {
    /// The node.
    pub node: Arc<Mutex<Node>>,
}

#[async_trait]
impl ClusterSink for NodeSink {
    async fn members_changed(&self, members: Vec<Member>) {
        self.node.lock().await.apply_cluster_members(&members).await;
    }

    async fn dns_changed(&self, records: Vec<DnsEntry>) {
        self.node.lock().await.apply_cluster_dns(records);
    }
}
