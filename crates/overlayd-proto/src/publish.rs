//! Published ports (**ext**): the `publish` field of `attach_container`, and
//! the docker/podman `-p` syntax the CLI accepts for it:
//! `[IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|udp|sctp]`.
//!
//! A host range with one container port (`8000-8010:80`) means "the first
//! free host port of the range", as docker does; a host range with a
//! container range of the same length (`8000-8001:9000-9001`) maps them one
//! to one. An IPv6 host address is written in brackets (`[fd00::1]:80:80`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl PortProtocol {
    /// The name nft and docker use.
    pub fn as_str(self) -> &'static str {
        match self {
            PortProtocol::Tcp => "tcp",
            PortProtocol::Udp => "udp",
            PortProtocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PortProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(PortProtocol::Tcp),
            "udp" => Ok(PortProtocol::Udp),
            "sctp" => Ok(PortProtocol::Sctp),
            other => Err(format!(
                "unknown protocol {other:?} (expected tcp, udp or sctp)"
            )),
        }
    }
}

fn is_default_proto(p: &PortProtocol) -> bool {
    *p == PortProtocol::Tcp
}

/// One `publish` entry: host port(s) forwarded to a container port(s).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address the port is bound to; absent means every address of
    /// the host except loopback. `127.0.0.1` must be asked for explicitly
    /// and is then reachable from the host only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Host port (first of the range).
    pub host_port: u16,
    /// Last host port of a range (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port_end: Option<u16>,
    /// Container port (first of the range).
    pub container_port: u16,
    /// Last container port of a one-to-one range (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port_end: Option<u16>,
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(default, skip_serializing_if = "is_default_proto")]
    pub protocol: PortProtocol,
}

impl PortMapping {
    /// A single TCP port `host_port` → `container_port` on every address.
    pub fn tcp(host_port: u16, container_port: u16) -> Self {
        PortMapping {
            host_ip: None,
            host_port,
            host_port_end: None,
            container_port,
            container_port_end: None,
            protocol: PortProtocol::Tcp,
        }
    }

    /// Checks ports, ranges and the host address; says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.host_port == 0 || self.container_port == 0 {
            return Err(format!("{self}: port 0 cannot be published"));
        }
        let host_end = self.host_port_end.unwrap_or(self.host_port);
        if host_end < self.host_port {
            return Err(format!("{self}: host port range ends before it starts"));
        }
        if let Some(end) = self.container_port_end {
            if end < self.container_port {
                return Err(format!(
                    "{self}: container port range ends before it starts"
                ));
            }
            if end - self.container_port != host_end - self.host_port {
                return Err(format!(
                    "{self}: host and container port ranges must have the same length"
                ));
            }
        }
        if let Some(ip) = &self.host_ip {
            ip.parse::<IpAddr>()
                .map_err(|_| format!("{self}: host_ip {ip:?} is not an IP address"))?;
        }
        Ok(())
    }

    /// The host address, parsed (`None` = every address).
    pub fn host_addr(&self) -> Option<IpAddr> {
        self.host_ip.as_deref().and_then(|s| s.parse().ok())
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_addr() {
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            Some(IpAddr::V4(a)) => write!(f, "{a}:")?,
            None => {
                if let Some(s) = &self.host_ip {
                    write!(f, "{s}:")?;
                }
            }
        }
        write!(f, "{}", self.host_port)?;
        if let Some(e) = self.host_port_end {
            write!(f, "-{e}")?;
        }
        write!(f, ":{}", self.container_port)?;
        if let Some(e) = self.container_port_end {
            write!(f, "-{e}")?;
        }
        write!(f, "/{}", self.protocol)
    }
}

fn parse_range(s: &str, what: &str) -> Result<(u16, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("{what} {p:?} is not a port number (1-65535)"))
    };
    match s.split_once('-') {
        Some((a, b)) => Ok((port(a)?, Some(port(b)?))),
        None => Ok((port(s)?, None)),
    }
}

impl FromStr for PortMapping {
    type Err = String;

    /// Docker's `-p` syntax: `[IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = "expected [IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|udp|sctp], e.g. 8080:80 or 127.0.0.1:5353:53/udp";
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, p)) => (r, p.parse()?),
            None => (s, PortProtocol::Tcp),
        };
        let (host_ip, ports) = if let Some(after) = rest.strip_prefix('[') {
            let (ip, ports) = after
                .split_once("]:")
                .ok_or_else(|| format!("{s:?}: unterminated [IPv6] host address; {usage}"))?;
            (Some(ip.to_string()), ports)
        } else {
            match rest.matches(':').count() {
                0 => {
                    return Err(format!(
                    "{s:?}: a host port is required (overlayd does not pick random ports); {usage}"
                ))
                }
                1 => (None, rest),
                2 => {
                    let (ip, ports) = rest.split_once(':').unwrap_or_default();
                    (Some(ip.to_string()), ports)
                }
                _ => return Err(format!("{s:?}: {usage}")),
            }
        };
        let (host, container) = ports
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: a host port is required; {usage}"))?;
        if host.is_empty() {
            return Err(format!(
                "{s:?}: a host port is required (overlayd does not pick random ports); {usage}"
            ));
        }
        let (host_port, host_port_end) = parse_range(host, "host port")?;
        let (container_port, container_port_end) = parse_range(container, "container port")?;
        let m = PortMapping {
            host_ip: host_ip.filter(|ip| !ip.is_empty()),
            host_port,
            host_port_end,
            container_port,
            container_port_end,
            protocol,
        };
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortMapping {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_forms_parse() {
        assert_eq!(p("8080:80"), PortMapping::tcp(8080, 80));
        let m = p("127.0.0.1:5353:53/udp");
        assert_eq!(m.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!((m.host_port, m.container_port), (5353, 53));
        assert_eq!(m.protocol, PortProtocol::Udp);
        let m = p("[fd00::1]:8443:443/sctp");
        assert_eq!(m.host_ip.as_deref(), Some("fd00::1"));
        assert_eq!(m.protocol, PortProtocol::Sctp);
        let m = p("8000-8010:80");
        assert_eq!((m.host_port, m.host_port_end), (8000, Some(8010)));
        assert_eq!(m.container_port_end, None);
        let m = p("0.0.0.0:9000-9001:7000-7001/TCP");
        assert_eq!(m.container_port_end, Some(7001));
        assert_eq!(m.host_ip.as_deref(), Some("0.0.0.0"));
    }

    #[test]
    fn bad_forms_say_why() {
        for (s, why) in [
            ("80", "host port is required"),
            (":80", "host port is required"),
            ("8080:80/icmp", "unknown protocol"),
            ("x:80", "not a port"),
            ("70000:80", "not a port"),
            ("1.2.3:80:80", "not an IP"),
            ("0:80", "port 0"),
            ("9000-8000:80", "ends before"),
            ("8000-8002:80-81", "same length"),
            ("[fd00::1:80:80", "unterminated"),
            ("a:b:c:d", "expected"),
        ] {
            let e = s.parse::<PortMapping>().unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "8080:80/tcp",
            "127.0.0.1:5353:53/udp",
            "[fd00::1]:8443-8444:443-444/sctp",
            "8000-8010:80/tcp",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
    }

    #[test]
    fn wire_shape_omits_defaults() {
        let v = serde_json::to_value(PortMapping::tcp(8080, 80)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"host_port": 8080, "container_port": 80})
        );
        let m: PortMapping = serde_json::from_value(serde_json::json!({
            "host_ip": "127.0.0.1", "host_port": 1, "container_port": 2, "protocol": "udp"
        }))
        .unwrap();
        assert_eq!(m.protocol, PortProtocol::Udp);
    }
}
