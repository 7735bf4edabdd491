//! The cluster driver: join (agree on the config, lease the slice, bring up
//! the base overlay if it is not, re-lease recorded service subnets,
//! publish the member record), retrying with capped backoff while etcd is
//! unreachable; then keep the leases alive, watch the members, republish
//! when the node changes, and turn health changes into `cluster_degraded`
//! events. Nothing here ever tears the data plane down.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use overlayd_cluster::ClusterError;
use overlayd_proto::{Event, Request};
use overlayd_state::Owner;
use tokio::sync::{broadcast, watch, Mutex};
use tracing::{error, info, warn};

use super::ClusterHandle;
use crate::daemon::node::Node;
use crate::daemon::records::GlobalRecord;

enum JoinError {
    /// Permanent: this node may not join (config disagrees, slice taken).
    Refused(String),
    /// etcd unreachable or busy: retry.
    Retry(String),
}

impl From<ClusterError> for JoinError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Store(_) | ClusterError::Local(_) => JoinError::Retry(e.to_string()),
            _ => JoinError::Refused(e.to_string()),
        }
    }
}

/// Start cluster mode's background work; it ends when `stop` turns true.
pub fn spawn(
    handle: Arc<ClusterHandle>,
    node: Arc<Mutex<Node>>,
    events: broadcast::Sender<Event>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(drive(handle, node, events, stop))
}

async fn drive(
    h: Arc<ClusterHandle>,
    node: Arc<Mutex<Node>>,
    events: broadcast::Sender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let c = h.cluster.clone();
    let mut health = c.health();
    let ev = events.clone();
    let mut hstop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = health.changed() => if r.is_err() { return },
                _ = hstop.changed() => return,
            }
            let hs = health.borrow_and_update().clone();
            if hs.degraded {
                warn!(reason = %hs.reason, "cluster mode degraded: keeping every peer and network, retrying");
            } else {
                info!("cluster mode healthy again");
            }
            let _ = ev.send(Event::ClusterDegraded {
                degraded: hs.degraded,
                reason: hs.reason,
            });
        }
    });

    let mut backoff = overlayd_cluster::watcher::BACKOFF_MIN;
    loop {
        match join(&h, &node).await {
            Ok(()) => break,
            Err(JoinError::Refused(why)) => {
                error!(reason = %why, "refusing to join the cluster; running standalone");
                c.report("join", Some(format!("not joined: {why}")));
                return;
            }
            Err(JoinError::Retry(why)) => {
                c.report("join", Some(why));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(overlayd_cluster::watcher::BACKOFF_MAX);
            }
        }
    }
    c.report("join", None);
    info!(node = %c.options().node_name, prefix = %c.options().prefix, "joined the cluster");
    let sink: Arc<dyn overlayd_cluster::ClusterSink> =
        Arc::new(super::sink::NodeSink { node: node.clone() });
    tokio::spawn(c.clone().heartbeat_loop(stop.clone()));
    tokio::spawn(c.clone().watch_loop(sink.clone(), stop.clone()));
    loop {
        tokio::select! {
            _ = h.changed.notified() => {}
            _ = stop.changed() => return,
        }
        if h.left.load(Ordering::SeqCst) {
            continue;
        }
        // Local changes may add a dedicated service (peers of the other
        // members' halves) and change what this node publishes.
        let members = c.live_members();
        sink.members_changed(members).await;
        if let Err(e) = publish(&h, &node).await {
            warn!(error = %e, "cannot publish this node's member record; retrying at the next change or heartbeat");
            c.report("publish", Some(e.to_string()));
        } else {
            c.report("publish", None);
        }
    }
}

/// Publish the member record and DNS names as the node is now.
async fn publish(h: &ClusterHandle, node: &Mutex<Node>) -> Result<(), ClusterError> {
    let (member, dns) = {
        let n = node.lock().await;
        let m = n
            .cluster_member()
            .await
            .map_err(|e| ClusterError::Local(e.to_string()))?;
        let d = n
            .cluster_local_dns()
            .map_err(|e| ClusterError::Local(e.to_string()))?;
        (m, d)
    };
    if let Some(m) = member {
        if h.cluster.member().await.as_ref() != Some(&m) || !h.cluster.registered().await {
            h.cluster.register(m).await?;
        }
    }
    h.cluster.set_dns(dns).await
}

async fn join(h: &ClusterHandle, node: &Mutex<Node>) -> Result<(), JoinError> {
    let c = &h.cluster;
    c.ensure_config().await?;
    {
        let mut n = node.lock().await;
        let cfg = &c.options().config;
        match n.global().map_err(|e| JoinError::Retry(e.to_string()))? {
            Some(GlobalRecord {
                cluster_cidr,
                slice_cidr,
                ..
            }) => {
                if cluster_cidr != cfg.cluster_cidr {
                    return Err(JoinError::Refused(format!(
                        "the global overlay was set up with cluster CIDR {cluster_cidr}, the cluster uses {}; `overlayd global down` first",
                        cfg.cluster_cidr
                    )));
                }
                let slice = slice_cidr.parse().map_err(|_| {
                    JoinError::Refused(format!("recorded slice {slice_cidr:?} is not a CIDR"))
                })?;
                n.cluster_slice(&cluster_cidr, Some(slice))
                    .await
                    .map_err(|e| match e {
                        // etcd went away between the config check and the
                        // lease (a leader election, a partition): retry.
                        crate::daemon::error::OpError::Unavailable(m) => JoinError::Retry(m),
                        e => JoinError::Refused(format!("recorded slice {slice}: {e}")),
                    })?;
            }
            None => {
                let req = Request::SetupGlobalOverlay {
                    deployment: "cluster".into(),
                    instance_id: c.options().node_name.clone(),
                    cluster_cidr: cfg.cluster_cidr.clone(),
                    slice_cidr: None,
                    wg_port: cfg.global_port,
                    nat_enabled: false,
                };
                n.handle(req).await.map_err(|e| match e {
                    crate::daemon::error::OpError::Unavailable(m) => JoinError::Retry(m),
                    e => JoinError::Refused(format!("cannot bring up the base overlay: {e}")),
                })?;
            }
        }
        // Dedicated services recorded before: keep their subnets.
        let services: Vec<(String, ipnet::IpNet)> = n
            .marker
            .iter()
            .filter(|e| matches!(e.owner, Owner::Service(_)))
            .filter_map(|e| Some((e.owner.to_string(), e.subnet.parse().ok()?)))
            .collect();
        for (owner, subnet) in services {
            match c.claim_subnet(&owner, Some(subnet), &[]).await {
                Ok(_) => {}
                Err(ClusterError::Store(e)) => return Err(JoinError::Retry(e.to_string())),
                Err(e) => {
                    warn!(%owner, %subnet, error = %e, "a recorded service subnet is leased by another node: peers of that service will collide")
                }
            }
        }
    }
    publish(h, node).await?;
    Ok(())
}
