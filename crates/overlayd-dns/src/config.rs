//! Server configuration and discovery of the host's upstream resolvers.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::time::Duration;

/// The standard DNS port, where the daemon listens on gateway and overlay addresses.
pub const DNS_PORT: u16 = 53;
/// The zone served when none is configured.
pub const DEFAULT_ZONE: &str = "overlay.internal.";
/// How long a forwarded query may take before the client gets SERVFAIL.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle TCP client connection is kept open.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The host's resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Where systemd-resolved lists the real upstreams behind its 127.0.0.53 stub.
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// Configuration of a [`DnsServer`](crate::DnsServer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The authoritative zone (`overlay.internal.`); must match the [`Records`](crate::Records) zone.
    pub zone: String,
    /// Where names outside the zone are forwarded, tried in order (staggered).
    /// Empty: out-of-zone queries are answered REFUSED (no recursion offered).
    pub upstreams: Vec<SocketAddr>,
    /// Total time budget of one forwarded query; past it the client gets SERVFAIL.
    pub upstream_timeout: Duration,
    /// Addresses to listen on at start (UDP and TCP each); more can be added at runtime.
    pub listen: Vec<SocketAddr>,
    /// Idle timeout of a TCP client connection.
    pub tcp_idle_timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            zone: DEFAULT_ZONE.to_owned(),
            upstreams: Vec::new(),
            upstream_timeout: DEFAULT_UPSTREAM_TIMEOUT,
            listen: Vec::new(),
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
        }
    }
}

/// Reads the `nameserver` lines of a resolv.conf file, port 53, skipping
/// loopback stubs (127.0.0.0/8, `::1`) that would point back at a local
/// stub resolver. A missing or unreadable file yields an empty list.
pub fn upstreams_from_resolv_conf(path: &Path) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_resolv_conf(&text),
        Err(error) => {
            tracing::debug!(path = %path.display(), %error, "cannot read resolver configuration");
            Vec::new()
        }
    }
}

/// The host's upstream resolvers: those of [`RESOLV_CONF`], or when it only
/// names loopback stubs (systemd-resolved), those of [`SYSTEMD_RESOLV_CONF`].
pub fn system_upstreams() -> Vec<SocketAddr> {
    let found = upstreams_from_resolv_conf(Path::new(RESOLV_CONF));
    if !found.is_empty() {
        return found;
    }
    upstreams_from_resolv_conf(Path::new(SYSTEMD_RESOLV_CONF))
}

/// Parses resolv.conf text; see [`upstreams_from_resolv_conf`].
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(value) = words.next() else { continue };
        let Some(addr) = parse_nameserver(value) else {
            tracing::debug!(value, "ignoring unparseable nameserver line");
            continue;
        };
        if addr.ip().is_loopback() || addr.ip().is_unspecified() {
            tracing::debug!(%addr, "skipping loopback stub resolver as upstream");
            continue;
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    out
}

fn parse_nameserver(value: &str) -> Option<SocketAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    // IPv6 link-local with a numeric scope (`fe80::1%2`); named scopes need a
    // lookup of the interface index and are skipped.
    let (ip, scope) = value.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope: u32 = scope.parse().ok()?;
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameservers_and_skips_stubs() {
        let text = "\
# comment nameserver 9.9.9.9
; another
nameserver 127.0.0.53
nameserver 192.0.2.1
nameserver   2001:db8::1  
nameserver ::1
nameserver fe80::1%3
nameserver fe80::1%eth0
nameserver not-an-ip
nameserver 192.0.2.1
search example.com
options edns0
";
        let got = parse_resolv_conf(text);
        let want: Vec<SocketAddr> = vec![
            "192.0.2.1:53".parse().unwrap(),
            "[2001:db8::1]:53".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 3)),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(upstreams_from_resolv_conf(&dir.path().join("nope")).is_empty());
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 198.51.100.7\n").unwrap();
        assert_eq!(
            upstreams_from_resolv_conf(&path),
            vec!["198.51.100.7:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
