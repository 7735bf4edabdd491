//! Client for the cross-platform WireGuard UAPI (`get=1` / `set=1` over a
//! Unix stream socket), as spoken by wg(8), wireguard-go and boringtun.
//!
//! Requests are built as values ([`SetRequest`]) and rendered to text, so they
//! are unit-tested without a device. Responses of both dialects are parsed:
//! wg(8)/wireguard-go report `private_key` and an *absolute* handshake time;
//! upstream boringtun reports `own_public_key` and the handshake time as the
//! *time elapsed since* the handshake.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use crate::error::{Result, WgError};
use crate::key::{self, KeyBytes};
use crate::types::{DeviceStatus, PeerStatus};

/// How long a single UAPI exchange may take before it is abandoned.
pub const UAPI_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response accepted from a device (guards against a runaway peer).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Path of the UAPI socket of device `name` inside `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sock"))
}

/// One peer section of a `set=1` request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PeerUpdate {
    /// The peer's public key; starts the section.
    pub public_key: KeyBytes,
    /// Remove the peer instead of configuring it.
    pub remove: bool,
    /// Only touch the peer if it already exists (not supported by boringtun).
    pub update_only: bool,
    /// Replace (rather than extend) the allowed IPs.
    pub replace_allowed_ips: bool,
    /// New endpoint.
    pub endpoint: Option<SocketAddr>,
    /// New keepalive interval (0 disables).
    pub persistent_keepalive: Option<u16>,
    /// Allowed IPs to add (or to set, with `replace_allowed_ips`).
    pub allowed_ips: Vec<IpNet>,
    /// Preshared key (never printed by `Debug`).
    pub preshared_key: Option<KeyBytes>,
}

impl std::fmt::Debug for PeerUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerUpdate")
            .field("public_key", &key::format_key(&self.public_key))
            .field("remove", &self.remove)
            .field("update_only", &self.update_only)
            .field("replace_allowed_ips", &self.replace_allowed_ips)
            .field("endpoint", &self.endpoint)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .field("allowed_ips", &self.allowed_ips)
            .field("preshared_key", &self.preshared_key.map(|_| "<redacted>"))
            .finish()
    }
}

/// A `set=1` request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SetRequest {
    /// New private key.
    pub private_key: Option<KeyBytes>,
    /// New listen port.
    pub listen_port: Option<u16>,
    /// New firewall mark (0 clears).
    pub fwmark: Option<u32>,
    /// Drop every peer not listed in this request.
    pub replace_peers: bool,
    /// Peer sections, in order.
    pub peers: Vec<PeerUpdate>,
}

impl std::fmt::Debug for SetRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetRequest")
            .field("private_key", &self.private_key.map(|_| "<redacted>"))
            .field("listen_port", &self.listen_port)
            .field("fwmark", &self.fwmark)
            .field("replace_peers", &self.replace_peers)
            .field("peers", &self.peers)
            .finish()
    }
}

impl SetRequest {
    /// Whether the request would change nothing.
    pub fn is_empty(&self) -> bool {
        self.private_key.is_none()
            && self.listen_port.is_none()
            && self.fwmark.is_none()
            && !self.replace_peers
            && self.peers.is_empty()
    }

    /// Renders the request in wire form, terminated by the blank line.
    pub fn encode(&self) -> String {
        let mut out = String::from("set=1\n");
        if let Some(k) = &self.private_key {
            out.push_str(&format!("private_key={}\n", key::to_hex(k)));
        }
        if let Some(p) = self.listen_port {
            out.push_str(&format!("listen_port={p}\n"));
        }
        if let Some(m) = self.fwmark {
            out.push_str(&format!("fwmark={m}\n"));
        }
        if self.replace_peers {
            out.push_str("replace_peers=true\n");
        }
        for p in &self.peers {
            out.push_str(&format!("public_key={}\n", key::to_hex(&p.public_key)));
            if p.remove {
                out.push_str("remove=true\n");
                continue;
            }
            if p.update_only {
                out.push_str("update_only=true\n");
            }
            if let Some(k) = &p.preshared_key {
                out.push_str(&format!("preshared_key={}\n", key::to_hex(k)));
            }
            if let Some(e) = p.endpoint {
                out.push_str(&format!("endpoint={e}\n"));
            }
            if let Some(k) = p.persistent_keepalive {
                out.push_str(&format!("persistent_keepalive_interval={k}\n"));
            }
            if p.replace_allowed_ips {
                out.push_str("replace_allowed_ips=true\n");
            }
            for ip in &p.allowed_ips {
                out.push_str(&format!("allowed_ip={ip}\n"));
            }
        }
        out.push('\n');
        out
    }
}

/// Sends `get=1` to the socket at `path` and parses the answer.
pub fn get(path: &Path) -> Result<DeviceStatus> {
    let text = exchange(path, "get=1\n\n")?;
    let (body, errno) = split_errno(&text)?;
    if errno != 0 {
        return Err(WgError::UapiErrno {
            op: "get",
            path: path.to_path_buf(),
            errno,
        });
    }
    parse_get(body, SystemTime::now())
}

/// Sends a `set=1` request to the socket at `path`.
pub fn set(path: &Path, req: &SetRequest) -> Result<()> {
    let text = exchange(path, &req.encode())?;
    let (_, errno) = split_errno(&text)?;
    if errno != 0 {
        return Err(WgError::UapiErrno {
            op: "set",
            path: path.to_path_buf(),
            errno,
        });
    }
    Ok(())
}

/// Writes `request` and reads the response up to and including `errno=N`.
fn exchange(path: &Path, request: &str) -> Result<String> {
    let io_err = |source| WgError::UapiIo {
        path: path.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(path).map_err(io_err)?;
    stream
        .set_read_timeout(Some(UAPI_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(UAPI_TIMEOUT))
        .map_err(io_err)?;
    (&stream).write_all(request.as_bytes()).map_err(io_err)?;
    read_response(&mut BufReader::new(&stream)).map_err(io_err)
}

/// Reads one UAPI response: lines up to and including the `errno=` line.
pub(crate) fn read_response<R: BufRead>(reader: &mut R) -> std::io::Result<String> {
    let mut text = String::new();
    loop {
        let start = text.len();
        let n = reader.read_line(&mut text)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before errno line",
            ));
        }
        if text[start..].starts_with("errno=") {
            return Ok(text);
        }
        if text.len() > MAX_RESPONSE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "response too large",
            ));
        }
    }
}

/// Splits the body from the trailing `errno=N` line.
fn split_errno(text: &str) -> Result<(&str, i32)> {
    let trimmed = text.trim_end_matches('\n');
    let (body, last) = match trimmed.rfind('\n') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    let errno = last
        .strip_prefix("errno=")
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| WgError::UapiProtocol(format!("missing errno line, got {last:?}")))?;
    Ok((body, errno))
}

/// Parses the body of a `get=1` answer (without the errno line) from either dialect.
pub fn parse_get(body: &str, now: SystemTime) -> Result<DeviceStatus> {
    let mut dev = DeviceStatus {
        public_key: None,
        listen_port: 0,
        fwmark: None,
        peers: Vec::new(),
    };
    // boringtun reports elapsed time; wg(8) an absolute UNIX time.
    let relative_handshake = body.lines().any(|l| l.starts_with("own_public_key="));
    let mut peer: Option<PeerStatus> = None;
    let mut hs_sec: Option<u64> = None;
    let mut hs_nsec: u32 = 0;

    let finish =
        |p: Option<PeerStatus>, sec: Option<u64>, nsec: u32, peers: &mut Vec<PeerStatus>| {
            if let Some(mut p) = p {
                p.last_handshake = handshake_time(sec, nsec, relative_handshake, now);
                peers.push(p);
            }
        };

    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| WgError::UapiProtocol(format!("line without '=': {line:?}")))?;
        let bad = |what: &str| WgError::UapiProtocol(format!("bad {what} value {v:?}"));
        match (k, peer.as_mut()) {
            ("public_key", _) => {
                finish(peer.take(), hs_sec.take(), hs_nsec, &mut dev.peers);
                hs_nsec = 0;
                peer = Some(PeerStatus {
                    public_key: key::from_hex(v, "public")?,
                    endpoint: None,
                    allowed_ips: Vec::new(),
                    persistent_keepalive: None,
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                });
            }
            ("private_key", None) => {
                dev.public_key = Some(key::public_key(&key::from_hex(v, "private")?));
            }
            ("own_public_key", None) => dev.public_key = Some(key::from_hex(v, "public")?),
            ("listen_port", None) => dev.listen_port = v.parse().map_err(|_| bad(k))?,
            ("fwmark", None) => {
                let m: u32 = v.parse().map_err(|_| bad(k))?;
                dev.fwmark = (m != 0).then_some(m);
            }
            ("endpoint", Some(p)) => p.endpoint = Some(parse_endpoint(v).ok_or_else(|| bad(k))?),
            ("allowed_ip", Some(p)) => p.allowed_ips.push(v.parse().map_err(|_| bad(k))?),
            ("persistent_keepalive_interval", Some(p)) => {
                let i: u16 = v.parse().map_err(|_| bad(k))?;
                p.persistent_keepalive = (i != 0).then_some(i);
            }
            ("rx_bytes", Some(p)) => p.rx_bytes = v.parse().map_err(|_| bad(k))?,
            ("tx_bytes", Some(p)) => p.tx_bytes = v.parse().map_err(|_| bad(k))?,
            ("last_handshake_time_sec", Some(_)) => hs_sec = Some(v.parse().map_err(|_| bad(k))?),
            ("last_handshake_time_nsec", Some(_)) => hs_nsec = v.parse().map_err(|_| bad(k))?,
            // protocol_version, preshared_key and keys of future versions.
            _ => {}
        }
    }
    finish(peer, hs_sec, hs_nsec, &mut dev.peers);
    Ok(dev)
}

fn handshake_time(
    sec: Option<u64>,
    nsec: u32,
    relative: bool,
    now: SystemTime,
) -> Option<SystemTime> {
    let sec = sec?;
    let d = Duration::new(sec, nsec.min(999_999_999));
    if relative {
        now.checked_sub(d)
    } else if d.is_zero() {
        None
    } else {
        UNIX_EPOCH.checked_add(d)
    }
}

/// Parses `1.2.3.4:5`, `[::1]:5` and `[fe80::1%eth0]:5`-style endpoints.
fn parse_endpoint(v: &str) -> Option<SocketAddr> {
    if let Ok(a) = v.parse() {
        return Some(a);
    }
    // Drop a scope id, which `SocketAddr` does not parse by name.
    let (host, port) = v.rsplit_once(':')?;
    let host = host.strip_prefix('[')?.strip_suffix(']')?;
    let host = host.split('%').next()?;
    Some(SocketAddr::new(host.parse().ok()?, port.parse().ok()?))
}

/// Parses the lines of a `set=1` request (after the `set=1` line, up to the
/// blank line). Errors are the errno a UAPI server answers with.
pub(crate) fn decode_set(body: &str) -> std::result::Result<SetRequest, i32> {
    let mut req = SetRequest::default();
    let mut peer: Option<PeerUpdate> = None;
    for line in body.lines() {
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once('=').ok_or(libc::EPROTO)?;
        let flag = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(libc::EINVAL),
        };
        let num = |v: &str| v.parse::<u64>().map_err(|_| libc::EINVAL);
        let hex = |v: &str| key::from_hex(v, "public").map_err(|_| libc::EINVAL);
        match (k, peer.as_mut()) {
            ("public_key", _) => {
                req.peers.extend(peer.take());
                peer = Some(PeerUpdate {
                    public_key: hex(v)?,
                    ..Default::default()
                });
            }
            ("private_key", None) => req.private_key = Some(hex(v)?),
            ("listen_port", None) => {
                req.listen_port = Some(u16::try_from(num(v)?).map_err(|_| libc::EINVAL)?)
            }
            ("fwmark", None) => {
                req.fwmark = Some(u32::try_from(num(v)?).map_err(|_| libc::EINVAL)?)
            }
            ("replace_peers", None) => req.replace_peers = flag(v)?,
            ("remove", Some(p)) => p.remove = flag(v)?,
            ("update_only", Some(p)) => p.update_only = flag(v)?,
            ("replace_allowed_ips", Some(p)) => p.replace_allowed_ips = flag(v)?,
            ("preshared_key", Some(p)) => p.preshared_key = Some(hex(v)?),
            ("endpoint", Some(p)) => p.endpoint = Some(parse_endpoint(v).ok_or(libc::EINVAL)?),
            ("persistent_keepalive_interval", Some(p)) => {
                p.persistent_keepalive = Some(u16::try_from(num(v)?).map_err(|_| libc::EINVAL)?)
            }
            ("allowed_ip", Some(p)) => p.allowed_ips.push(v.parse().map_err(|_| libc::EINVAL)?),
            ("protocol_version", Some(_)) if v == "1" => {}
            _ => return Err(libc::EINVAL),
        }
    }
    req.peers.extend(peer);
    Ok(req)
}

/// Renders a status in the wg(8) dialect of a `get=1` answer (absolute
/// handshake times), without the trailing `errno` line. The private key is
/// included only when known, as wg(8) derives the public key from it.
pub(crate) fn render_get(st: &DeviceStatus, private_key: Option<&KeyBytes>) -> String {
    let mut out = String::new();
    if let Some(k) = private_key {
        out.push_str(&format!("private_key={}\n", key::to_hex(k)));
    }
    if st.listen_port != 0 {
        out.push_str(&format!("listen_port={}\n", st.listen_port));
    }
    if let Some(m) = st.fwmark {
        out.push_str(&format!("fwmark={m}\n"));
    }
    for p in &st.peers {
        out.push_str(&format!("public_key={}\n", key::to_hex(&p.public_key)));
        out.push_str("protocol_version=1\n");
        if let Some(e) = p.endpoint {
            out.push_str(&format!("endpoint={e}\n"));
        }
        let hs = p
            .last_handshake
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        out.push_str(&format!(
            "last_handshake_time_sec={}\nlast_handshake_time_nsec={}\n",
            hs.as_secs(),
            hs.subsec_nanos()
        ));
        out.push_str(&format!(
            "tx_bytes={}\nrx_bytes={}\n",
            p.tx_bytes, p.rx_bytes
        ));
        out.push_str(&format!(
            "persistent_keepalive_interval={}\n",
            p.persistent_keepalive.unwrap_or(0)
        ));
        for ip in &p.allowed_ips {
            out.push_str(&format!("allowed_ip={ip}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
