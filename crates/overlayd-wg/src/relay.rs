//! The per-instance UAPI socket of a userspace device.
//!
//! Upstream boringtun hard-codes its socket directory (`/var/run/wireguard`),
//! which every network namespace on the machine shares. Instead the device is
//! created with a private socketpair as its UAPI channel (`uapi_fd`), and this
//! relay serves the standard UAPI protocol on `{uapi_dir}/{name}.sock`,
//! forwarding to that channel. The relay also absorbs boringtun's protocol
//! quirks so every client (this crate, `wg`, `wg set`) sees wg(8) semantics:
//!
//! * changing an existing peer panics boringtun, and `remove=true` leaks into
//!   the following peer section; set requests are therefore re-planned into one
//!   single-peer request per step, an existing peer being removed and re-added
//!   with its merged settings ([`plan_for_boringtun`]);
//! * `update_only` and `replace_allowed_ips` are honoured here;
//! * `get` answers are re-rendered in the wg(8) dialect (absolute handshake
//!   times, `private_key` so wg(8) can show the public key).
//!
//! Closing the relay closes the channel, which makes boringtun shut the device down.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use crate::error::{Result, WgError};
use crate::key::KeyBytes;
use crate::types::{DeviceStatus, PeerStatus};
use crate::uapi::{self, PeerUpdate, SetRequest, UAPI_TIMEOUT};

/// Largest `set` request accepted from a client.
const MAX_REQUEST: u64 = 4 * 1024 * 1024;

/// Called with the listen port after the device (re)bound its UDP sockets.
pub(crate) type PortHook = Box<dyn Fn(u16) + Send + Sync>;

/// The channel to the boringtun device, plus what the relay remembers.
struct DeviceChannel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Kept so wg(8) can display the public key; never logged.
    private_key: Option<KeyBytes>,
}

impl DeviceChannel {
    fn exchange(&mut self, request: &str) -> std::io::Result<(String, i32)> {
        self.writer.write_all(request.as_bytes())?;
        // boringtun ends each answer with "errno=N\n\n"; a blank line left over
        // from the previous answer may still be queued.
        let mut text = uapi::read_response(&mut self.reader)?;
        let trimmed = text.trim_start_matches('\n').len();
        text.drain(..text.len() - trimmed);
        let (body, last) = match text.trim_end_matches('\n').rsplit_once('\n') {
            Some((b, l)) => (format!("{b}\n"), l.to_string()),
            None => (String::new(), text.trim_end().to_string()),
        };
        let errno = last
            .strip_prefix("errno=")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad errno line")
            })?;
        Ok((body, errno))
    }

    fn get(&mut self) -> std::io::Result<(DeviceStatus, i32)> {
        let (body, errno) = self.exchange("get=1\n")?;
        let st = uapi::parse_get(&body, SystemTime::now())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        Ok((st, errno))
    }
}

/// A running relay; dropping it stops the listener, removes the socket file
/// and closes the device channel.
pub(crate) struct UapiRelay {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl UapiRelay {
    /// Binds `path` (mode 0600) and serves it, forwarding to `device`.
    pub(crate) fn start(path: &Path, device: UnixStream, on_port: PortHook) -> Result<UapiRelay> {
        let io = |source| WgError::UapiIo {
            path: path.to_path_buf(),
            source,
        };
        // A stale socket of a previous run of this instance is ours to replace.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let reader = BufReader::new(device.try_clone().map_err(io)?);
        let chan = DeviceChannel {
            reader,
            writer: device,
            private_key: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stop_t = Arc::clone(&stop);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let thread = thread::Builder::new()
            .name(format!("uapi-{name}"))
            .spawn(move || serve(listener, chan, on_port, stop_t))
            .map_err(|e| WgError::io("spawning UAPI relay thread", e))?;
        Ok(UapiRelay {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    /// The socket path served.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UapiRelay {
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

fn serve(
    listener: UnixListener,
    mut chan: DeviceChannel,
    on_port: PortHook,
    stop: Arc<AtomicBool>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(conn) = conn else { continue };
        if let Err(e) = handle(&conn, &mut chan, &on_port) {
            tracing::debug!(error = %e, "UAPI client connection failed");
        }
    }
}

fn handle(conn: &UnixStream, chan: &mut DeviceChannel, on_port: &PortHook) -> std::io::Result<()> {
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
                // Consume the request's terminating blank line if the client sent it.
                if reader.buffer().first() == Some(&b'\n') {
                    reader.consume(1);
                }
                match chan.get()? {
                    (st, 0) => format!(
                        "{}errno=0\n\n",
                        uapi::render_get(&st, chan.private_key.as_ref())
                    ),
                    (_, errno) => format!("errno={errno}\n\n"),
                }
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
                    Ok(req) => apply_set(chan, &req, on_port)?,
                    Err(errno) => errno,
                };
                format!("errno={errno}\n\n")
            }
            _ => "errno=22\n\n".to_string(),
        };
        writer.write_all(reply.as_bytes())?;
    }
}

/// Applies a client's set request to the device, step by step.
fn apply_set(
    chan: &mut DeviceChannel,
    req: &SetRequest,
    on_port: &PortHook,
) -> std::io::Result<i32> {
    let (current, errno) = chan.get()?;
    if errno != 0 {
        return Ok(errno);
    }
    let steps = plan_for_boringtun(req, &current);
    for step in &steps {
        let text = step.encode();
        let (_, errno) = chan.exchange(&text)?;
        if errno != 0 {
            return Ok(errno);
        }
        if let Some(k) = step.private_key {
            chan.private_key = Some(k);
        }
        if let Some(p) = step.listen_port {
            // Port 0 means "kernel's choice": look the real one up.
            let port = if p == 0 { chan.get()?.0.listen_port } else { p };
            on_port(port);
        }
    }
    Ok(0)
}

/// Rewrites one wg(8)-semantics set request into boringtun-safe steps: the
/// device-level part first, then at most one peer section per step, an
/// existing peer being removed and re-added with merged settings.
/// A listen port equal to the current one is dropped (boringtun would rebind).
pub(crate) fn plan_for_boringtun(req: &SetRequest, current: &DeviceStatus) -> Vec<SetRequest> {
    let mut steps = Vec::new();
    let device = SetRequest {
        private_key: req.private_key,
        listen_port: req
            .listen_port
            .filter(|p| *p != current.listen_port || *p == 0),
        fwmark: req.fwmark,
        replace_peers: req.replace_peers,
        peers: Vec::new(),
    };
    if !device.is_empty() {
        steps.push(device);
    }
    let mut live: HashMap<KeyBytes, PeerStatus> = if req.replace_peers {
        HashMap::new()
    } else {
        current
            .peers
            .iter()
            .map(|p| (p.public_key, p.clone()))
            .collect()
    };
    let one = |p: PeerUpdate| SetRequest {
        peers: vec![p],
        ..Default::default()
    };
    for p in &req.peers {
        let existing = live.get(&p.public_key).cloned();
        if p.remove {
            if existing.is_some() {
                live.remove(&p.public_key);
                steps.push(one(PeerUpdate {
                    public_key: p.public_key,
                    remove: true,
                    ..Default::default()
                }));
            }
            continue;
        }
        let merged = match &existing {
            None if p.update_only => continue,
            None => PeerUpdate {
                public_key: p.public_key,
                endpoint: p.endpoint,
                persistent_keepalive: p.persistent_keepalive.filter(|k| *k != 0),
                allowed_ips: dedup(p.allowed_ips.clone()),
                preshared_key: p.preshared_key,
                ..Default::default()
            },
            Some(old) => {
                let mut ips = if p.replace_allowed_ips {
                    Vec::new()
                } else {
                    old.allowed_ips.clone()
                };
                ips.extend(p.allowed_ips.iter().copied());
                let keepalive = match p.persistent_keepalive {
                    Some(0) => None,
                    Some(k) => Some(k),
                    None => old.persistent_keepalive,
                };
                PeerUpdate {
                    public_key: p.public_key,
                    endpoint: p.endpoint.or(old.endpoint),
                    persistent_keepalive: keepalive,
                    allowed_ips: dedup(ips),
                    preshared_key: p.preshared_key,
                    ..Default::default()
                }
            }
        };
        if existing.is_some() {
            steps.push(one(PeerUpdate {
                public_key: p.public_key,
                remove: true,
                ..Default::default()
            }));
        }
        live.insert(
            p.public_key,
            PeerStatus {
                public_key: p.public_key,
                endpoint: merged.endpoint,
                allowed_ips: merged.allowed_ips.clone(),
                persistent_keepalive: merged.persistent_keepalive,
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            },
        );
        steps.push(one(merged));
    }
    steps
}

fn dedup(ips: Vec<ipnet::IpNet>) -> Vec<ipnet::IpNet> {
    let mut out: Vec<ipnet::IpNet> = Vec::with_capacity(ips.len());
    for ip in ips {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn status_with_peer() -> DeviceStatus {
        DeviceStatus {
            public_key: None,
            listen_port: 51820,
            fwmark: None,
            peers: vec![PeerStatus {
                public_key: [1; 32],
                endpoint: Some("192.0.2.2:51820".parse().unwrap()),
                allowed_ips: vec![net("10.99.0.2/32")],
                persistent_keepalive: Some(25),
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            }],
        }
    }

    #[test]
    fn new_peer_is_one_step_and_same_port_is_dropped() {
        let req = SetRequest {
            listen_port: Some(51820),
            peers: vec![PeerUpdate {
                public_key: [2; 32],
                allowed_ips: vec![net("10.99.0.3/32")],
                ..Default::default()
            }],
            ..Default::default()
        };
        let steps = plan_for_boringtun(&req, &status_with_peer());
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].peers[0].public_key, [2; 32]);
        assert_eq!(steps[0].listen_port, None);
    }

    #[test]
    fn existing_peer_is_removed_then_readded_merged() {
        let req = SetRequest {
            peers: vec![PeerUpdate {
                public_key: [1; 32],
                allowed_ips: vec![net("10.99.1.0/24"), net("10.99.0.2/32")],
                ..Default::default()
            }],
            ..Default::default()
        };
        let steps = plan_for_boringtun(&req, &status_with_peer());
        assert_eq!(steps.len(), 2);
        assert!(steps[0].peers[0].remove);
        let add = &steps[1].peers[0];
        assert!(!add.remove);
        assert_eq!(add.endpoint, Some("192.0.2.2:51820".parse().unwrap()));
        assert_eq!(add.persistent_keepalive, Some(25));
        assert_eq!(
            add.allowed_ips,
            vec![net("10.99.0.2/32"), net("10.99.1.0/24")]
        );
        // Every step carries at most one peer section.
        assert!(steps.iter().all(|s| s.peers.len() <= 1));
    }

    #[test]
    fn replace_allowed_ips_update_only_and_remove() {
        let st = status_with_peer();
        let req = SetRequest {
            peers: vec![
                PeerUpdate {
                    public_key: [1; 32],
                    replace_allowed_ips: true,
                    persistent_keepalive: Some(0),
                    allowed_ips: vec![net("10.0.0.0/8")],
                    ..Default::default()
                },
                PeerUpdate {
                    public_key: [3; 32],
                    update_only: true,
                    ..Default::default()
                },
                PeerUpdate {
                    public_key: [4; 32],
                    remove: true,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let steps = plan_for_boringtun(&req, &st);
        assert_eq!(steps.len(), 2, "{steps:?}");
        let add = &steps[1].peers[0];
        assert_eq!(add.allowed_ips, vec![net("10.0.0.0/8")]);
        assert_eq!(add.persistent_keepalive, None);

        let rm = SetRequest {
            peers: vec![PeerUpdate {
                public_key: [1; 32],
                remove: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let steps = plan_for_boringtun(&rm, &st);
        assert_eq!(steps.len(), 1);
        assert!(steps[0].peers[0].remove);
    }

    #[test]
    fn replace_peers_clears_known_state() {
        let req = SetRequest {
            replace_peers: true,
            peers: vec![PeerUpdate {
                public_key: [1; 32],
                allowed_ips: vec![net("10.1.0.0/16")],
                ..Default::default()
            }],
            ..Default::default()
        };
        let steps = plan_for_boringtun(&req, &status_with_peer());
        assert_eq!(steps.len(), 2);
        assert!(steps[0].replace_peers);
        assert_eq!(steps[1].peers[0].allowed_ips, vec![net("10.1.0.0/16")]);
        assert_eq!(steps[1].peers[0].endpoint, None);
    }
}
