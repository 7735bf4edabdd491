//! Requests in, responses out: each op is routed to the node, and every
//! error becomes an `err` response here, in one place.

use std::sync::Arc;

use overlayd_proto::{Request, Response, EXTENSIONS, PROTOCOL_VERSION};
use tokio::sync::{watch, Mutex};
use tracing::{debug, warn};

use super::error::{OpError, OpResult};
use super::node::Node;

/// Routes requests: read-only ones to the [`super::views::ReadView`]
/// (no lock), the rest to the node. Mutations are serialised by the node
/// lock; connections only hold it while their request runs.
pub struct Dispatcher {
    node: Arc<Mutex<Node>>,
    view: super::views::ReadView,
    stop: watch::Sender<bool>,
}

impl Dispatcher {
    /// A dispatcher over a node; `stop` is set by the `shutdown` op.
    /// `status` is answered from `view`, without the node lock.
    pub fn new(
        node: Arc<Mutex<Node>>,
        view: super::views::ReadView,
        stop: watch::Sender<bool>,
    ) -> Self {
        Dispatcher { node, view, stop }
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
}
