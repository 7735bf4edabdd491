//! Prometheus metrics (opt-in: `metrics_listen`): request counts and
//! latencies, networks, attachments, leases, peers with handshake age and
//! traffic, reconcile actions, firewall restores, DNS answers and store
//! commit latency, served as OpenMetrics text over HTTP by the daemon.
//!
//! Counters and histograms live in one process-wide registry, updated where
//! things happen; gauges that describe state (networks, leases, peers) are
//! computed from the node at scrape time, so they are never stale.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, SystemTime};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request as HttpRequest, Response as HttpResponse, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::{watch, Mutex};
use tracing::{info, warn};

use super::node::Node;
use super::overlay::wg_call;
use super::reconcile::ReconcileReport;
use super::records::{Attachment, Lease, PeerRecord};
use overlayd_state::Table;

/// Labels of a request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpResultLabels {
    op: String,
    result: String,
}

/// Labels of a per-op histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: String,
}

/// A network kind (`base`, `shared-nat`, `service`, `iso`, or a foreign kind).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// One network, by owner.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NetworkLabels {
    network: String,
}

/// One peer on one network.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    network: String,
    peer: String,
}

/// A reconcile action.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: String,
}

/// Every metric overlayd exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<OpResultLabels, Counter>,
    request_seconds: Family<OpLabels, Histogram, fn() -> Histogram>,
    networks: Family<KindLabels, Gauge>,
    attachments: Gauge,
    leases: Family<NetworkLabels, Gauge>,
    peers: Family<NetworkLabels, Gauge>,
    handshake_age: Family<PeerLabels, Gauge<f64, AtomicU64>>,
    peer_rx: Family<PeerLabels, Gauge>,
    peer_tx: Family<PeerLabels, Gauge>,
    reconcile_actions: Family<ActionLabels, Counter>,
    firewall_restores: Counter,
    dns_queries: Counter,
    dns_answers: Counter,
    dns_servfail: Counter,
    dns_seen: StdMutex<overlayd_dns::DnsStatsSnapshot>,
    store_commit_seconds: Histogram,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("overlayd");
        let requests = Family::<OpResultLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests handled, by op and result (ok or err)",
            requests.clone(),
        );
        let request_seconds =
            Family::<OpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "request_duration_seconds",
            "Time to handle a request, by op (attach_container and detach_container are the attach/detach latency)",
            request_seconds.clone(),
        );
        let networks = Family::<KindLabels, Gauge>::default();
        registry.register(
            "networks",
            "Recorded host networks, by kind",
            networks.clone(),
        );
        let attachments = Gauge::default();
        registry.register(
            "attachments",
            "Attached containers and guests",
            attachments.clone(),
        );
        let leases = Family::<NetworkLabels, Gauge>::default();
        registry.register("leases", "Address leases, by network", leases.clone());
        let peers = Family::<NetworkLabels, Gauge>::default();
        registry.register(
            "peers",
            "Recorded WireGuard peers, by network",
            peers.clone(),
        );
        let handshake_age = Family::<PeerLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "peer_last_handshake_age_seconds",
            "Seconds since the last WireGuard handshake with a peer (absent: never)",
            handshake_age.clone(),
        );
        let peer_rx = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_receive_bytes",
            "Bytes received from a peer (device counter)",
            peer_rx.clone(),
        );
        let peer_tx = Family::<PeerLabels, Gauge>::default();
        registry.register(
            "peer_transmit_bytes",
            "Bytes sent to a peer (device counter)",
            peer_tx.clone(),
        );
        let reconcile_actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "reconcile_actions",
            "Objects reconcile adopted, recreated, created, collected as orphans, reclaimed, or found in conflict",
            reconcile_actions.clone(),
        );
        let firewall_restores = Counter::default();
        registry.register(
            "firewall_restores",
            "Times overlayd's nftables table was found changed and restored",
            firewall_restores.clone(),
        );
        let dns_queries = Counter::default();
        registry.register("dns_queries", "DNS queries received", dns_queries.clone());
        let dns_answers = Counter::default();
        registry.register(
            "dns_answers",
            "DNS responses with at least one answer",
            dns_answers.clone(),
        );
        let dns_servfail = Counter::default();
        registry.register(
            "dns_servfail",
            "DNS responses with SERVFAIL",
            dns_servfail.clone(),
        );
        let store_commit_seconds = latency_histogram();
        registry.register(
            "store_commit_duration_seconds",
            "Time of a state-store write transaction, commit included",
            store_commit_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            networks,
            attachments,
            leases,
            peers,
            handshake_age,
            peer_rx,
            peer_tx,
            reconcile_actions,
            firewall_restores,
            dns_queries,
            dns_answers,
            dns_servfail,
            dns_seen: StdMutex::new(Default::default()),
            store_commit_seconds,
        }
    }

    /// Count one handled request and its latency.
    pub fn request(&self, op: &str, ok: bool, took: Duration) {
        self.requests
            .get_or_create(&OpResultLabels {
                op: op.to_string(),
                result: if ok { "ok" } else { "err" }.to_string(),
            })
            .inc();
        self.request_seconds
            .get_or_create(&OpLabels { op: op.to_string() })
            .observe(took.as_secs_f64());
    }

    /// Count what one reconcile did.
    pub fn reconcile(&self, rep: &ReconcileReport) {
        for (action, n) in [
            ("adopted", rep.adopted),
            ("recreated", rep.recreated),
            ("created", rep.created),
            ("orphans", rep.orphans),
            ("reclaimed", rep.reclaimed),
            ("conflicts", rep.conflicts),
        ] {
            self.reconcile_actions
                .get_or_create(&ActionLabels {
                    action: action.to_string(),
                })
                .inc_by(n as u64);
        }
    }

    /// Count one restore of the firewall.
    pub fn firewall_restored(&self) {
        self.firewall_restores.inc();
    }

    fn store_commit(took: Duration) {
        global().store_commit_seconds.observe(took.as_secs_f64());
    }

    /// Refresh the state gauges from the node, then encode everything.
    async fn render(&self, node: &Node) -> String {
        self.refresh(node).await;
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            warn!(error = %e, "cannot encode metrics");
        }
        out
    }

    async fn refresh(&self, node: &Node) {
        self.networks.clear();
        for e in node.marker.iter() {
            let kind = if e.is_linux_managed() {
                match &e.owner {
                    overlayd_state::Owner::Base => "base".to_string(),
                    overlayd_state::Owner::SharedNat => "shared-nat".to_string(),
                    overlayd_state::Owner::Service(_) => "service".to_string(),
                    overlayd_state::Owner::Isolation(_) => "iso".to_string(),
                    overlayd_state::Owner::Other(_) => "other".to_string(),
                }
            } else {
                e.kind.clone()
            };
            self.networks.get_or_create(&KindLabels { kind }).inc();
        }
        let attachments: Vec<(String, Attachment)> = node
            .store
            .read(|tx| tx.list(Table::Attachments))
            .unwrap_or_default();
        self.attachments.set(attachments.len() as i64);
        self.leases.clear();
        let leases: Vec<(String, Lease)> = node
            .store
            .read(|tx| tx.list(Table::Leases))
            .unwrap_or_default();
        for (_, l) in leases {
            self.leases
                .get_or_create(&NetworkLabels { network: l.network })
                .inc();
        }
        self.peers.clear();
        let peers: Vec<(String, PeerRecord)> = node
            .store
            .read(|tx| tx.list(Table::Peers))
            .unwrap_or_default();
        for (_, p) in &peers {
            self.peers
                .get_or_create(&NetworkLabels {
                    network: p.network.clone(),
                })
                .inc();
        }
        self.handshake_age.clear();
        self.peer_rx.clear();
        self.peer_tx.clear();
        let now = SystemTime::now();
        for e in node.marker.iter() {
            let Some(dev) = e.interface.clone() else {
                continue;
            };
            let Ok(st) = wg_call(&node.wg, move |wg| wg.status(&dev)).await else {
                continue;
            };
            for p in st.peers {
                let labels = PeerLabels {
                    network: e.owner.to_string(),
                    peer: overlayd_wg::format_key(&p.public_key),
                };
                if let Some(age) = p.last_handshake.and_then(|t| now.duration_since(t).ok()) {
                    self.handshake_age
                        .get_or_create(&labels)
                        .set(age.as_secs_f64());
                }
                self.peer_rx
                    .get_or_create(&labels)
                    .set(i64::try_from(p.rx_bytes).unwrap_or(i64::MAX));
                self.peer_tx
                    .get_or_create(&labels)
                    .set(i64::try_from(p.tx_bytes).unwrap_or(i64::MAX));
            }
        }
        let now = node.dns.stats();
        if let Ok(mut seen) = self.dns_seen.lock() {
            self.dns_queries
                .inc_by(now.queries.saturating_sub(seen.queries));
            self.dns_answers
                .inc_by(now.answered.saturating_sub(seen.answered));
            self.dns_servfail
                .inc_by(now.servfail.saturating_sub(seen.servfail));
            *seen = now;
        }
    }
}

/// The process-wide metrics (created on first use; also hooks store commits).
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        overlayd_state::store::observe_commits(Metrics::store_commit);
        Metrics::new()
    })
}

/// Serve `GET /metrics` on `addr` until `stop` flips. Binding errors are
/// returned so a bad `metrics_listen` fails the start loudly.
pub async fn serve(
    addr: SocketAddr,
    node: Arc<Mutex<Node>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
    info!(%addr, "serving Prometheus metrics on /metrics");
    let _ = global();
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "metrics accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stop.changed() => break,
            };
            let node = node.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: HttpRequest<hyper::body::Incoming>| {
                        let node = node.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(req, node).await) }
                    });
                let io = hyper_util::rt::TokioIo::new(stream);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(io, svc);
                let _ = tokio::time::timeout(Duration::from_secs(30), conn).await;
            });
        }
    }))
}

async fn answer(
    req: HttpRequest<hyper::body::Incoming>,
    node: Arc<Mutex<Node>>,
) -> HttpResponse<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut r = HttpResponse::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(ctype),
        );
        r
    };
    if req.method() != hyper::Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served\n".into(),
        );
    }
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "overlayd serves /metrics\n".into(),
        );
    }
    let body = {
        let node = node.lock().await;
        global().render(&node).await
    };
    reply(
        StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        body,
    )
}
