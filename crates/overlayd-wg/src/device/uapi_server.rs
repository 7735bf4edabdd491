//! The device's UAPI socket (`{uapi_dir}/{name}.sock`, mode 0600): the
//! cross-platform `get=1` / `set=1` protocol of wg(8) and wireguard-go,
//! served from the device's own state, so `wg show` and `wg set` work and
//! a `set` edits peers in place.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use super::Shared;
use crate::error::{Result, WgError};
use crate::uapi::{self, UAPI_TIMEOUT};

/// Largest `set` request accepted from a client.
const MAX_REQUEST: u64 = 4 * 1024 * 1024;

/// A running UAPI server; dropping it stops the listener and removes the
/// socket file.
pub(crate) struct UapiServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl UapiServer {
    /// Binds `path` (replacing a stale socket of this instance) and serves it.
    pub(crate) fn start(path: &Path, shared: Arc<Shared>) -> Result<UapiServer> {
        let io = |source| WgError::UapiIo {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_t = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name(format!("wg-uapi-{}", shared.name))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop_t.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    if let Err(e) = handle(&conn, &shared) {
                        tracing::debug!(error = %e, "UAPI client connection failed");
                    }
                }
            })
            .map_err(|e| WgError::io("spawning UAPI thread", e))?;
        Ok(UapiServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UapiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn handle(conn: &UnixStream, shared: &Arc<Shared>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(UAPI_TIMEOUT))?;
    conn.set_write_timeout(Some(UAPI_TIMEOUT))?;
    let mut reader = BufReader::new(conn.take(MAX_REQUEST));
    let mut writer = conn;
    loop {
        let mut cmd = String::new();
        if reader.read_line(&mut cmd)? == 0 {
            return Ok(());
        }
        let reply = match cmd.trim_end_matches('\n') {
            "" => continue,
            "get=1" => {
                let (st, private) = shared.status();
                format!("{}errno=0\n\n", uapi::render_get(&st, private.as_ref()))
            }
            "set=1" => {
                let mut body = String::new();
                loop {
                    let start = body.len();
                    if reader.read_line(&mut body)? == 0 || &body[start..] == "\n" {
                        break;
                    }
                }
                let errno = match uapi::decode_set(&body) {
                    Ok(req) => shared.apply(&req),
                    Err(errno) => errno,
                };
                format!("errno={errno}\n\n")
            }
            _ => "errno=22\n\n".to_string(),
        };
        writer.write_all(reply.as_bytes())?;
    }
}
