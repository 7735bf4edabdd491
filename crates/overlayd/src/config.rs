//! Daemon configuration: defaults, an optional TOML file, and command-line
//! overrides, resolved once at start. Every directory is passed in here so
//! tests and the demo run instances side by side without colliding.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// Default data directory (marker, store, node key, lock).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/overlayd";
/// Default node-global WireGuard port.
pub const DEFAULT_WG_PORT: u16 = 51820;
/// Default cap on simultaneous client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default idle timeout of a client connection, in seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;

/// Resolved configuration of one daemon instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Socket path.
    pub socket: PathBuf,
    /// Group (name or gid) whose members may use the socket besides root.
    pub socket_group: Option<String>,
    /// Runtime directory (WireGuard UAPI sockets); defaults to the socket's directory.
    pub run_dir: Option<PathBuf>,
    /// Interface-name prefix (≤ 6 bytes).
    pub interface_prefix: String,
    /// Pool that node-local networks (shared-nat, isolation, service bridges) are carved from.
    pub local_pool: String,
    /// Prefix length of each node-local network.
    pub local_prefix_len: u8,
    /// Node-global WireGuard port; dedicated ports come from the band above it.
    pub wg_port: u16,
    /// MTU override for bridges and tunnels.
    pub mtu: Option<u32>,
    /// Delete tagged host objects nothing records (false = report only).
    pub gc: bool,
    /// Seconds between background checks (orphans, firewall drift).
    pub check_interval_secs: u64,
    /// WireGuard backend: auto, kernel or userspace.
    pub wg_backend: String,
    /// DNS zone.
    pub dns_zone: String,
    /// Extra DNS listen addresses (`ip:port`), besides gateways.
    pub dns_listen: Vec<String>,
    /// DNS port on gateway addresses (0: do not listen on gateways).
    pub dns_port: u16,
    /// Upstream resolvers (`ip:port`); empty = from /etc/resolv.conf.
    pub dns_upstreams: Vec<String>,
    /// Most client connections served at once; further ones get an `err`
    /// frame and are closed.
    pub max_connections: usize,
    /// Seconds a connection may stay silent between requests before it is
    /// closed (0: never); event subscribers are exempt.
    pub idle_timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            socket: PathBuf::from(overlayd_client::DEFAULT_SOCKET),
            socket_group: None,
            run_dir: None,
            interface_prefix: "ovl".into(),
            local_pool: "10.201.0.0/16".into(),
            local_prefix_len: 24,
            wg_port: DEFAULT_WG_PORT,
            mtu: None,
            gc: true,
            check_interval_secs: 10,
            wg_backend: "auto".into(),
            dns_zone: "overlay.internal".into(),
            dns_listen: Vec::new(),
            dns_port: 53,
            dns_upstreams: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout_secs: DEFAULT_IDLE_TIMEOUT_SECS,
        }
    }
}

impl Config {
    /// Load a TOML file (unknown keys are an error, so typos are caught).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let cfg: Config = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Check values that cannot be typed.
    pub fn validate(&self) -> Result<()> {
        if self.interface_prefix.is_empty()
            || self.interface_prefix.len() > 6
            || !self
                .interface_prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            bail!(
                "interface_prefix {:?} must be 1-6 characters of a-z, 0-9 or '-'",
                self.interface_prefix
            );
        }
        self.local_pool
            .parse::<ipnet::IpNet>()
            .with_context(|| format!("local_pool {:?} is not a CIDR", self.local_pool))?;
        if self.wg_port == 0 {
            bail!("wg_port must not be 0");
        }
        if self.max_connections == 0 {
            bail!("max_connections must be at least 1");
        }
        Ok(())
    }

    /// Runtime directory (UAPI sockets and other per-instance runtime files).
    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| {
            self.socket
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/run/overlayd"))
        })
    }
}
