//! The IPC server: a Unix socket created `0660` before anyone can connect,
//! peer credentials checked on accept, one task per connection so a slow
//! client never blocks the others, and events pushed to subscribers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Serve connections until `stop` turns true.
pub async fn serve(
    listener: UnixListener,
    dispatcher: Arc<Dispatcher>,
    policy: AccessPolicy,
    events: broadcast::Sender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() { break; }
            }
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
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
                let d = dispatcher.clone();
                let ev = events.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, d, ev, stop).await {
                        debug!(error = %e, "connection closed");
                    }
                });
            }
        }
    }
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
        let body = tokio::select! {
            r = read_frame(&mut rd) => r,
            _ = stop.changed() => break Ok(()),
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
