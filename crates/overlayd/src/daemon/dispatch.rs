//! Requests in, responses out: each op is routed to the node, and every
//! error becomes an `err` response here, in one place.

use std::sync::Arc;

use overlayd_proto::{Request, Response, EXTENSIONS, PROTOCOL_VERSION};
use tokio::sync::{watch, Mutex};
use tracing::{debug, warn};

use super::attach::Begun;
use super::container_ops::container_handle;
use super::error::{OpError, OpResult};
use super::node::Node;

/// Routes requests: read-only ones to the [`super::views::ReadView`]
/// (no lock), container requests through their three steps
/// ([`super::container_ops`]: the node lock released while the kernel
/// makes or deletes veths), the rest to the node. Mutations are serialised
/// by the node lock; connections only hold it while their request runs.
pub struct Dispatcher {
    node: Arc<Mutex<Node>>,
    view: super::views::ReadView,
    inflight: super::inflight::InFlight,
    stop: watch::Sender<bool>,
}

impl Dispatcher {
    /// A dispatcher over a node; `stop` is set by the `shutdown` op.
    /// `status` is answered from `view`, without the node lock.
    /// `inflight` is the node's registry ([`Node::inflight`]).
    pub fn new(
        node: Arc<Mutex<Node>>,
        view: super::views::ReadView,
        inflight: super::inflight::InFlight,
        stop: watch::Sender<bool>,
    ) -> Self {
        Dispatcher {
            node,
            view,
            inflight,
            stop,
        }
    }

    /// Handle one request.
    pub async fn handle(&self, request: Request) -> Response {
        let op = request.op();
        let started = std::time::Instant::now();
        let result = self.route(request).await;
        super::metrics::global().request(op, result.is_ok(), started.elapsed());
        match result {
            Ok(r) => {
                debug!(op, "request done");
                r
            }
            Err(e) => {
                let error = e.to_string();
                warn!(op, error = %super::error::clip(&error, super::error::LOG_ECHO_MAX), "request failed");
                Response::err_with_code(e.code(), e.to_string())
            }
        }
    }

    async fn route(&self, request: Request) -> OpResult<Response> {
        match request {
            Request::Hello { protocol_version } => {
                if protocol_version == 0 {
                    return Err(OpError::Invalid(format!(
                        "protocol version 0 is not supported; this daemon speaks v{PROTOCOL_VERSION}"
                    )));
                }
                Ok(Response::Hello {
                    protocol_version: protocol_version.min(PROTOCOL_VERSION),
                    server_version: env!("CARGO_PKG_VERSION").to_string(),
                    extensions: EXTENSIONS.iter().map(|s| s.to_string()).collect(),
                })
            }
            Request::Shutdown => {
                let _ = self.stop.send(true);
                Ok(Response::Ok)
            }
            Request::SubscribeEvents => Ok(Response::Ok),
            Request::NatTick => {
                let mut node = self.node.lock().await;
                node.check_peer_health(std::time::SystemTime::now()).await;
                Ok(Response::Ok)
            }
            Request::AddPeer {
                public_key,
                endpoint,
                allowed_ips,
                persistent_keepalive_secs,
                scope,
            } if endpoint.parse::<std::net::SocketAddr>().is_err() => {
                // Name resolution outside the node lock: a slow or dead
                // resolver holds up only this request.
                let ep = super::overlay::parse_endpoint(&endpoint).await?;
                let mut node = self.node.lock().await;
                node.handle(Request::AddPeer {
                    public_key,
                    endpoint: ep.to_string(),
                    allowed_ips,
                    persistent_keepalive_secs,
                    scope,
                })
                .await
            }
            other if container_handle(&other).is_some() => self.container_op(other).await,
            other => {
                // Read-only requests are answered from the published
                // snapshot: never behind a mutation's lock.
                if let Some(answer) = self.view.answer(&other).await {
                    return answer;
                }
                let mut node = self.node.lock().await;
                let r = node.handle(other).await;
                node.cluster_changed();
                r
            }
        }
    }

    /// Attach, connect, detach, disconnect: begun and finished under the
    /// node lock, the veth work between without it, so other containers'
    /// requests (and every other mutation) run meanwhile. Requests on one
    /// container wait for each other.
    async fn container_op(&self, request: Request) -> OpResult<Response> {
        let key = container_handle(&request)
            .map(|h| h.key())
            .unwrap_or_default();
        let mut held = self.inflight.hold(&key).await;
        let mut node = self.node.lock().await;
        let probe = node.probe(&request);
        let begun = node.begin_container_op(request).await;
        let work = match begun {
            Ok(Begun::Pending(work)) => work,
            Ok(Begun::Done(r)) => {
                node.announce(probe, &r);
                node.cluster_changed();
                return Ok(r);
            }
            Err(e) => {
                node.cluster_changed();
                return Err(e);
            }
        };
        // Claimed before the lock is released: no check sees the intent
        // record unclaimed and takes it for a crash's.
        for a in work.records() {
            held.claim(a);
        }
        let (host, instance) = (node.host.clone(), node.instance.clone());
        drop(node);
        let outcome = work.run(host.as_ref(), &instance).await;
        let mut node = self.node.lock().await;
        let r = node.finish_container_op(work, outcome).await;
        if let Ok(resp) = &r {
            node.announce(probe, resp);
        }
        node.cluster_changed();
        // The claims end while the node lock is still held, so no check
        // sees the committed record with its veth still hidden as in flight.
        drop(held);
        drop(node);
        r
    }
}
