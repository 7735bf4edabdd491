//! [`ClusterStore`] on etcd v3 through the `etcd-client` crate (gRPC).
//! Works against etcd 3.4 (Debian's `etcd-server`) and later.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare as ECompare, CompareOp, ConnectOptions, EventType, GetOptions,
    Identity, LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::{mpsc, Mutex};

use crate::store::{
    ClusterStore, Compare, KeyValue, Op, StoreError, StoreResult, WatchEvent, WatchItem,
};

/// TLS material for talking to etcd (PEM files).
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// CA bundle that signed the etcd servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate.
    pub cert_file: Option<PathBuf>,
    /// Client private key.
    pub key_file: Option<PathBuf>,
}

/// One open keep-alive stream per lease.
type Keepers = HashMap<i64, (LeaseKeeper, LeaseKeepAliveStream)>;

/// A connection to an etcd cluster.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    /// Keep-alive streams are long-lived (etcd expects one stream per
    /// lease; opening and dropping one per refresh breaks the connection).
    keepers: Arc<Mutex<Keepers>>,
    timeout: Duration,
    /// How many more times a request that never reached a member is sent.
    retries: usize,
}

/// Whether a request failed before it reached any etcd member (the
/// connection to the endpoint the balancer picked was refused). Such a
/// request is safe to send again, and the balancer picks an endpoint at
/// random, so another try likely reaches a live member — without this, one
/// dead member of three fails a share of every operation.
fn never_sent(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            s.code() == tonic::Code::Unavailable && s.message().contains("connect error")
        }
        _ => false,
    }
}

/// Pause between tries of a request that never reached a member.
const RESEND_PAUSE: Duration = Duration::from_millis(50);

fn unavailable(e: etcd_client::Error) -> StoreError {
    match &e {
        etcd_client::Error::GRpcStatus(s)
            if !matches!(
                s.code(),
                tonic_code::Unavailable | tonic_code::DeadlineExceeded | tonic_code::Cancelled
            ) =>
        {
            StoreError::Failed(s.message().to_string())
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

/// gRPC status codes, re-exported by etcd-client's error through tonic.
mod tonic_code {
    pub use tonic::Code::{Cancelled, DeadlineExceeded, Unavailable};
}

fn kv(k: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(k.key()).into_owned(),
        value: k.value().to_vec(),
        version: k.version(),
        mod_revision: k.mod_revision(),
        lease: k.lease(),
    }
}

impl EtcdStore {
    /// Connect to `endpoints` (URLs such as `http://10.0.0.1:2379`). The
    /// connection is made lazily; each request times out after `timeout`.
    pub async fn connect(
        endpoints: &[String],
        tls: &EtcdTls,
        timeout: Duration,
    ) -> StoreResult<Self> {
        if endpoints.is_empty() {
            return Err(StoreError::Failed("etcd_endpoints is empty".into()));
        }
        let mut opts = ConnectOptions::new()
            .with_timeout(timeout)
            .with_connect_timeout(timeout)
            .with_keep_alive(Duration::from_secs(2), timeout)
            .with_keep_alive_while_idle(true);
        if tls.ca_file.is_some() || tls.cert_file.is_some() {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| StoreError::Failed(format!("{}: {e}", p.display())))
            };
            let mut t = TlsOptions::new();
            if let Some(ca) = &tls.ca_file {
                t = t.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            match (&tls.cert_file, &tls.key_file) {
                (Some(c), Some(k)) => t = t.identity(Identity::from_pem(read(c)?, read(k)?)),
                (None, None) => {}
                _ => {
                    return Err(StoreError::Failed(
                        "cert_file and key_file must be given together".into(),
                    ))
                }
            }
            opts = opts.with_tls(t);
        }
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(unavailable)?;
        Ok(EtcdStore {
            client,
            keepers: Arc::new(Mutex::new(HashMap::new())),
            timeout,
            retries: 2 * endpoints.len(),
        })
    }

    /// Run `call`, sending it again while it fails without having reached
    /// a member ([`never_sent`]).
    async fn resend<T, F, Fut>(&self, mut call: F) -> StoreResult<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut left = self.retries;
        loop {
            match call(self.client.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if left > 0 && never_sent(&e) => {
                    left -= 1;
                    tokio::time::sleep(RESEND_PAUSE).await;
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
    }

    /// Compact history at `revision` (tests and operators use this).
    pub async fn compact(&self, revision: i64) -> StoreResult<()> {
        self.client
            .kv_client()
            .compact(revision, None)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl ClusterStore for EtcdStore {
    async fn get(&self, key: &str) -> StoreResult<Option<KeyValue>> {
        let r = self
            .resend(|c| async move { c.kv_client().get(key, None).await })
            .await?;
        Ok(r.kvs().first().map(kv))
    }

    async fn list(&self, prefix: &str) -> StoreResult<(Vec<KeyValue>, i64)> {
        let r = self
            .resend(|c| async move {
                c.kv_client()
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
            })
            .await?;
        let rev = r.header().map_or(0, |h| h.revision());
        Ok((r.kvs().iter().map(kv).collect(), rev))
    }

    async fn txn(&self, compares: Vec<Compare>, ops: Vec<Op>) -> StoreResult<bool> {
        let cmps: Vec<ECompare> = compares
            .into_iter()
            .map(|c| match c {
                Compare::Version(k, v) => ECompare::version(k, CompareOp::Equal, v),
                Compare::Value(k, v) => ECompare::value(k, CompareOp::Equal, v),
            })
            .collect();
        let ops: Vec<TxnOp> = ops
            .into_iter()
            .map(|o| match o {
                Op::Put { key, value, lease } => {
                    let opts = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                    TxnOp::put(key, value, opts)
                }
                Op::Delete(k) => TxnOp::delete(k, None),
            })
            .collect();
        let txn = Txn::new().when(cmps).and_then(ops);
        let r = self
            .resend(|c| {
                let txn = txn.clone();
                async move { c.kv_client().txn(txn).await }
            })
            .await?;
        Ok(r.succeeded())
    }

    async fn grant(&self, ttl_secs: i64) -> StoreResult<i64> {
        let r = self
            .resend(|c| async move { c.lease_client().grant(ttl_secs, None).await })
            .await?;
        Ok(r.id())
    }

    async fn keep_alive(&self, lease: i64) -> StoreResult<i64> {
        let mut keepers = self.keepers.lock().await;
        let reply = match keepers.get_mut(&lease) {
            Some((keeper, stream)) => match keeper.keep_alive().await {
                Ok(()) => tokio::time::timeout(self.timeout, stream.message())
                    .await
                    .unwrap_or_else(|_| {
                        Err(etcd_client::Error::LeaseKeepAliveError("timed out".into()))
                    }),
                Err(e) => Err(e),
            },
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "no stream yet".into(),
            )),
        };
        let reply = match reply {
            Ok(Some(r)) => r,
            _ => {
                // No stream yet, or it broke: open a fresh one. Opening
                // consumes the first answer (and fails for a gone lease);
                // refresh once more on it to learn the TTL.
                keepers.remove(&lease);
                let (mut keeper, mut stream) =
                    match self.client.lease_client().keep_alive(lease).await {
                        Ok(ks) => ks,
                        Err(etcd_client::Error::LeaseKeepAliveError(m))
                            if m.contains("not found") =>
                        {
                            return Ok(0)
                        }
                        Err(e) => return Err(unavailable(e)),
                    };
                keeper.keep_alive().await.map_err(unavailable)?;
                let r = tokio::time::timeout(self.timeout, stream.message())
                    .await
                    .map_err(|_| StoreError::Unavailable("keep-alive timed out".into()))?
                    .map_err(unavailable)?
                    .ok_or_else(|| StoreError::Unavailable("keep-alive stream closed".into()))?;
                keepers.insert(lease, (keeper, stream));
                r
            }
        };
        let ttl = reply.ttl().max(0);
        if ttl == 0 {
            keepers.remove(&lease);
        }
        Ok(ttl)
    }

    async fn revoke(&self, lease: i64) -> StoreResult<()> {
        self.keepers.lock().await.remove(&lease);
        self.resend(|c| async move {
            match c.lease_client().revoke(lease).await {
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => {
                    Ok(())
                }
                r => r.map(|_| ()),
            }
        })
        .await
    }

    async fn watch(
        &self,
        prefix: &str,
        from_revision: i64,
    ) -> StoreResult<mpsc::Receiver<WatchItem>> {
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from_revision);
        let mut stream = self
            .resend(|c| {
                let opts = opts.clone();
                async move { c.watch_client().watch(prefix, Some(opts)).await }
            })
            .await?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = stream.message() => m,
                    _ = tx.closed() => return,
                };
                let item = match msg {
                    Ok(Some(r)) if r.compact_revision() > 0 => {
                        Err(StoreError::Compacted(r.compact_revision()))
                    }
                    Ok(Some(r)) if r.canceled() => Err(StoreError::Failed(format!(
                        "watch canceled: {}",
                        r.cancel_reason()
                    ))),
                    Ok(Some(r)) => {
                        let events: Vec<WatchEvent> = r
                            .events()
                            .iter()
                            .filter_map(|e| {
                                let k = e.kv()?;
                                Some(match e.event_type() {
                                    EventType::Put => WatchEvent::Put(kv(k)),
                                    EventType::Delete => WatchEvent::Delete {
                                        key: String::from_utf8_lossy(k.key()).into_owned(),
                                        revision: k.mod_revision(),
                                    },
                                })
                            })
                            .collect();
                        if events.is_empty() {
                            continue;
                        }
                        Ok(events)
                    }
                    Ok(None) => Err(StoreError::Unavailable("watch stream closed".into())),
                    Err(e) => Err(unavailable(e)),
                };
                let end = item.is_err();
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(rx)
    }
}
