//! The IPC server: a Unix socket created `0660` before anyone can connect,
//! peer credentials checked on accept, one task per connection so a slow
//! client never blocks the others, and events pushed to subscribers.
//!
//! Resources are bounded: at most [`ConnLimits::max_connections`] clients
//! are served at once (the next one gets an `err` frame and is closed), a
//! connection silent for [`ConnLimits::idle_timeout`] is closed, and a
//! failing `accept` (out of file descriptors, say) backs off instead of
//! spinning and logs at most once a second.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use overlayd_proto::{
    decode_frame, encode_frame, read_frame, write_frame, Event, Frame, FrameError, Request,
    Response,
};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::dispatch::Dispatcher;

/// Who may talk to the daemon.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// Uid the daemon runs as (always admitted, as is root).
    pub own_uid: u32,
    /// Members of this group are admitted.
    pub group: Option<u32>,
}

impl AccessPolicy {
    /// Whether a peer with these credentials is admitted.
    pub fn admits(&self, uid: u32, gid: u32, pid: Option<i32>) -> bool {
        if uid == 0 || uid == self.own_uid {
            return true;
        }
        let Some(group) = self.group else {
            return false;
        };
        gid == group || pid.is_some_and(|p| supplementary_groups(p).contains(&group))
    }
}

/// Supplementary groups of a process, from `/proc/PID/status`.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("Groups:")).map(|g| {
                g.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Bind the socket: bound under a temporary name, permissions and group set,
/// then renamed into place, so the final path is never connectable with
/// wider permissions. A stale socket left by a dead daemon is replaced (the
/// instance lock guarantees no live daemon owns it).
pub fn bind(path: &Path, group: Option<u32>) -> Result<UnixListener> {
    let dir = path
        .parent()
        .context("socket path has no parent directory")?;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create socket directory {}", dir.display()))?;
    let tmp: PathBuf = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)
        .with_context(|| format!("cannot bind socket {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
        .context("cannot set socket permissions")?;
    if let Some(gid) = group {
        nix::unistd::chown(&tmp, None, Some(nix::unistd::Gid::from_raw(gid)))
            .context("cannot set socket group")?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
    }
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move socket into place at {}", path.display()))?;
    Ok(listener)
}

/// Limits on client connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Close a connection silent this long between requests (event
    /// subscribers are exempt); `None` never does.
    pub idle_timeout: Option<Duration>,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Some(Duration::from_secs(
                crate::config::DEFAULT_IDLE_TIMEOUT_SECS,
            )),
        }
    }
}

/// First pause after a failed `accept`; doubled per further failure.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause after failed `accept`s.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Counts a served connection while alive.
struct Active(Arc<AtomicUsize>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serve connections until `stop` turns true.
pub async fn serve(
    listener: UnixListener,
    dispatcher: Arc<Dispatcher>,
    policy: AccessPolicy,
    events: broadcast::Sender<Event>,
    mut stop: watch::Receiver<bool>,
    limits: ConnLimits,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut backoff = Duration::ZERO;
    let mut last_warning: Option<Instant> = None;
    let mut failures = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() { break; }
            }
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => {
                        backoff = Duration::ZERO;
                        a
                    }
                    Err(e) => {
                        failures += 1;
                        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                            warn!(error = %e, failures, "accept failed; backing off");
                            last_warning = Some(Instant::now());
                            failures = 0;
                        }
                        backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                };
                let cred = match stream.peer_cred() {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "cannot read peer credentials; dropping connection");
                        continue;
                    }
                };
                if !policy.admits(cred.uid(), cred.gid(), cred.pid()) {
                    warn!(uid = cred.uid(), gid = cred.gid(), "connection refused: peer is neither root, the daemon's user, nor in the socket group");
                    tokio::spawn(reject(stream));
                    continue;
                }
                if active.load(Ordering::Acquire) >= limits.max_connections {
                    refuse_busy(stream, limits.max_connections, &refusing);
                    continue;
                }
                active.fetch_add(1, Ordering::AcqRel);
                let counted = Active(active.clone());
                let d = dispatcher.clone();
                let ev = events.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let _counted = counted;
                    if let Err(e) = connection(stream, d, ev, stop, limits.idle_timeout).await {
                        debug!(error = %e, "connection closed");
                    }
                });
            }
        }
    }
}

/// Most refused connections kept open at once while they are told why.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is kept open for its request to arrive.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// Tell a client over the connection cap why it is refused: the answer is
/// written at once, then its request is drained (bounded in time and size)
/// so its own write does not fail before it reads the answer. At most
/// [`MAX_REFUSING`] such connections linger; beyond that they are closed.
fn refuse_busy(stream: UnixStream, max: usize, refusing: &Arc<AtomicUsize>) {
    debug!(max, "connection refused: connection cap reached");
    if refusing.load(Ordering::Acquire) >= MAX_REFUSING {
        return;
    }
    refusing.fetch_add(1, Ordering::AcqRel);
    let counted = Active(refusing.clone());
    tokio::spawn(async move {
        let _counted = counted;
        let mut stream = stream;
        let body = encode_frame(&Frame::Response {
            id: 0,
            response: Response::err_with_code(
                overlayd_proto::ErrorCode::Unavailable,
                format!(
                    "overlayd is serving its maximum of {max} connections (max_connections); retry later"
                ),
            ),
        });
        let _ = tokio::time::timeout(REFUSE_LINGER, async {
            write_frame(&mut stream, &body).await?;
            let mut sink = [0u8; 4096];
            let mut total = 0usize;
            loop {
                use tokio::io::AsyncReadExt;
                let n = stream.read(&mut sink).await?;
                total += n;
                if n == 0 || total > 64 * 1024 {
                    return Ok::<(), FrameError>(());
                }
            }
        })
        .await;
    });
}

/// Refuse a peer: read its first request (briefly) so the answer can echo
/// its id and reach it, answer `err`, close.
async fn reject(mut stream: UnixStream) {
    let id = match tokio::time::timeout(std::time::Duration::from_secs(2), read_frame(&mut stream))
        .await
    {
        Ok(Ok(Some(body))) => decode_frame(&body).map_or_else(
            |e| e.id,
            |f| match f {
                Frame::Request { id, .. } => id,
                _ => 0,
            },
        ),
        _ => 0,
    };
    let body = encode_frame(&Frame::Response {
        id,
        response: Response::err_with_code(
            overlayd_proto::ErrorCode::PermissionDenied,
            "permission denied: the overlayd socket admits root and the configured socket group only",
        ),
    });
    let _ = write_frame(&mut stream, &body).await;
}

/// One connection: read frames, answer each, push events once subscribed.
async fn connection(
    stream: UnixStream,
    dispatcher: Arc<Dispatcher>,
    events: broadcast::Sender<Event>,
    mut stop: watch::Receiver<bool>,
    idle_timeout: Option<Duration>,
) -> Result<(), FrameError> {
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    // The writer runs on its own so a client slow to read only slows itself.
    let writer = tokio::spawn(async move {
        while let Some(body) = out_rx.recv().await {
            if write_frame(&mut wr, &body).await.is_err() {
                break;
            }
        }
    });
    let mut pump: Option<tokio::task::JoinHandle<()>> = None;
    let result = loop {
        // Subscribers wait for events, not requests: no idle limit for them.
        let idle = idle_timeout.filter(|_| pump.is_none());
        let body = tokio::select! {
            r = read_frame(&mut rd) => r,
            _ = stop.changed() => break Ok(()),
            _ = sleep_or_never(idle) => {
                debug!("closing a connection idle for {:?}", idle.unwrap_or_default());
                break Ok(());
            }
        };
        let body = match body {
            Ok(Some(b)) => b,
            Ok(None) => break Ok(()),
            Err(e) => {
                // Undecodable framing: tell the peer if we can, then close.
                let frame = Frame::Response {
                    id: 0,
                    response: Response::err_with_code(
                        overlayd_proto::ErrorCode::Malformed,
                        format!("{e}; closing this connection"),
                    ),
                };
                let _ = out_tx.send(encode_frame(&frame)).await;
                break Err(e);
            }
        };
        let (id, response) = match decode_frame(&body) {
            Ok(Frame::Request { id, request }) => {
                if matches!(request, Request::SubscribeEvents) && pump.is_none() {
                    pump = Some(spawn_event_pump(events.subscribe(), out_tx.clone()));
                }
                (id, dispatcher.handle(request).await)
            }
            Ok(_) => (
                0,
                Response::err("only request frames may be sent to overlayd"),
            ),
            Err(e) => (
                e.id,
                Response::err_with_code(overlayd_proto::ErrorCode::Malformed, e.message),
            ),
        };
        if out_tx
            .send(encode_frame(&Frame::Response { id, response }))
            .await
            .is_err()
        {
            break Ok(());
        }
    };
    // The pump holds a sender: stop it now, or the writer (and the socket)
    // would live on until the next event found the client gone.
    if let Some(p) = pump {
        p.abort();
        let _ = p.await;
    }
    drop(out_tx);
    let _ = writer.await;
    result
}

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

fn spawn_event_pump(
    mut rx: broadcast::Receiver<Event>,
    out: tokio::sync::mpsc::Sender<Vec<u8>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    if out.send(encode_frame(&Frame::Event(ev))).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "event subscriber too slow; events dropped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

/// Log the listening address.
pub fn announce(path: &Path) {
    info!(socket = %path.display(), "serving");
}
