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
/// Default `local_pool6`: a ULA /48 ("ovld" in hex), split into /64s.
pub const DEFAULT_LOCAL_POOL6: &str = "fd42:6f76:6c64::/48";

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
    /// IPv6 pool the IPv6 subnets of dual-stack networks are carved from
    /// (a ULA range: node-local networks are masqueraded, never routed by
    /// other nodes).
    pub local_pool6: String,
    /// Prefix length of each IPv6 subnet of a dual-stack network.
    pub local_prefix_len6: u8,
    /// Create the shared NAT network dual-stack (an IPv6 subnet from
    /// `local_pool6` beside the IPv4 one). Applies when it is created; a
    /// recorded one keeps what it is.
    pub shared_nat_ipv6: bool,
    /// Prefix length of this node's slice of an IPv4 cluster CIDR when the
    /// caller of `setup_global_overlay` gives none (the slice is then
    /// derived from the node identity: docs/architecture.md, "Address
    /// plan"); slices of an IPv6 cluster CIDR are /64.
    pub slice_prefix_len: u8,
    /// Range dedicated service subnets are derived from (per service and
    /// node); must not overlap `local_pool`.
    pub service_range: String,
    /// Prefix length of a dedicated service's subnet on one node.
    pub service_prefix_len: u8,
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
    /// Serve Prometheus metrics over HTTP on this address (`ip:port`, e.g.
    /// `127.0.0.1:9469`); absent = no metrics endpoint.
    pub metrics_listen: Option<String>,
    /// Cluster mode on etcd v3 (`[cluster]`); absent = standalone.
    pub cluster: Option<ClusterConfig>,
}

/// Default presence lease TTL of cluster mode.
pub const DEFAULT_PRESENCE_TTL_SECS: u64 = 15;
/// Default grace before a vanished member's peers are removed.
pub const DEFAULT_PEER_GRACE_SECS: u64 = 60;
/// Name of the cluster in the default prefix.
pub const DEFAULT_CLUSTER_NAME: &str = "default";

/// The `[cluster]` table: cluster mode on etcd v3.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://10.0.0.1:2379`).
    pub etcd_endpoints: Vec<String>,
    /// Key prefix (default `/overlayd/v1/default`).
    pub prefix: Option<String>,
    /// This node's name (default: the hostname `uname -n` reports).
    pub node_name: Option<String>,
    /// `ip:port` other nodes dial (default: the uplink's address and the global port).
    pub endpoint: Option<String>,
    /// Presence lease TTL in seconds.
    pub presence_ttl_secs: u64,
    /// Seconds a vanished member's peers are kept before removal.
    pub peer_grace_secs: u64,
    /// CA bundle (PEM) that signed etcd's server certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for etcd.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for etcd.
    pub key_file: Option<PathBuf>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            etcd_endpoints: Vec::new(),
            prefix: None,
            node_name: None,
            endpoint: None,
            presence_ttl_secs: DEFAULT_PRESENCE_TTL_SECS,
            peer_grace_secs: DEFAULT_PEER_GRACE_SECS,
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl ClusterConfig {
    /// The key prefix in force.
    pub fn prefix(&self) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| format!("/overlayd/v1/{DEFAULT_CLUSTER_NAME}"))
    }

    /// The node name in force (`uname -n` when not configured).
    pub fn node_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(hostname)
    }

    /// Check values that cannot be typed.
    pub fn validate(&self) -> Result<()> {
        if self.etcd_endpoints.is_empty() {
            bail!("[cluster] etcd_endpoints is empty; give at least one etcd URL (e.g. \"http://10.0.0.1:2379\")");
        }
        let prefix = self.prefix();
        if !prefix.starts_with('/') || prefix.len() < 2 {
            bail!(
                "[cluster] prefix {prefix:?} must be an absolute key path like /overlayd/v1/prod"
            );
        }
        let name = self.node_name();
        if name.is_empty() || name.contains('/') || name.contains('|') {
            bail!("[cluster] node_name {name:?} must be non-empty and contain no '/' or '|'");
        }
        if self.presence_ttl_secs < 2 {
            bail!("[cluster] presence_ttl_secs must be at least 2 (etcd's minimum lease TTL)");
        }
        if let Some(ep) = &self.endpoint {
            let ok = ep
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                bail!("[cluster] endpoint {ep:?} must be HOST:PORT (e.g. 192.0.2.10:51820)");
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            bail!("[cluster] cert_file and key_file must be given together");
        }
        Ok(())
    }
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
            local_pool6: DEFAULT_LOCAL_POOL6.into(),
            local_prefix_len6: 64,
            shared_nat_ipv6: false,
            slice_prefix_len: overlayd_engine::ipam::plan::DEFAULT_SLICE_PREFIX,
            service_range: overlayd_engine::ipam::plan::DEFAULT_SERVICE_RANGE.into(),
            service_prefix_len: overlayd_engine::ipam::plan::DEFAULT_SERVICE_PREFIX,
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
            metrics_listen: None,
            cluster: None,
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
        let pool = self
            .local_pool
            .parse::<ipnet::IpNet>()
            .with_context(|| format!("local_pool {:?} is not a CIDR", self.local_pool))?;
        let range = self
            .service_range
            .parse::<ipnet::IpNet>()
            .with_context(|| {
                format!(
                    "service_range {:?} is not a CIDR (e.g. {})",
                    self.service_range,
                    overlayd_engine::ipam::plan::DEFAULT_SERVICE_RANGE
                )
            })?;
        if overlayd_engine::ipam::overlaps(&pool, &range) {
            bail!(
                "local_pool {pool} overlaps service_range {range}: dedicated service subnets are routed by other nodes, node-local networks are not, so the two ranges must be disjoint; change one of them"
            );
        }
        overlayd_engine::ipam::SubnetPlanner::new(range, self.service_prefix_len)
            .map_err(|e| anyhow::anyhow!("service_prefix_len {}: {e}", self.service_prefix_len))?;
        if !(8..=30).contains(&self.slice_prefix_len) {
            bail!(
                "slice_prefix_len {} must be between 8 and 30 (it applies to IPv4 cluster CIDRs; IPv6 ones get /64 slices)",
                self.slice_prefix_len
            );
        }
        let max_len = match pool {
            ipnet::IpNet::V4(_) => 30,
            ipnet::IpNet::V6(_) => 126,
        };
        if self.local_prefix_len < pool.prefix_len() || self.local_prefix_len > max_len {
            bail!(
                "local_prefix_len {} is out of range: it must be between the pool's /{} and /{max_len} (local_pool {})",
                self.local_prefix_len,
                pool.prefix_len(),
                self.local_pool
            );
        }
        let pool6 = self
            .local_pool6
            .parse::<ipnet::IpNet>()
            .with_context(|| format!("local_pool6 {:?} is not a CIDR", self.local_pool6))?;
        if !pool6.addr().is_ipv6() || pool6.trunc() != pool6 {
            bail!(
                "local_pool6 {pool6} must be an IPv6 network address (e.g. {DEFAULT_LOCAL_POOL6})"
            );
        }
        if self.local_prefix_len6 < pool6.prefix_len() || self.local_prefix_len6 > 126 {
            bail!(
                "local_prefix_len6 {} is out of range: it must be between the pool's /{} and /126 (local_pool6 {pool6})",
                self.local_prefix_len6,
                pool6.prefix_len()
            );
        }
        if self.wg_port == 0 {
            bail!("wg_port must not be 0");
        }
        if self.max_connections == 0 {
            bail!("max_connections must be at least 1");
        }
        if let Some(mtu) = self.mtu {
            if !(1280..=9000).contains(&mtu) {
                bail!("mtu {mtu} is out of range: it must be between 1280 and 9000");
            }
        }
        if !(1..=3600).contains(&self.check_interval_secs) {
            bail!(
                "check_interval_secs {} is out of range: it must be between 1 and 3600",
                self.check_interval_secs
            );
        }
        if let Some(m) = &self.metrics_listen {
            m.parse::<std::net::SocketAddr>().with_context(|| {
                format!("metrics_listen {m:?} is not an ip:port address (e.g. 127.0.0.1:9469)")
            })?;
        }
        if let Some(c) = &self.cluster {
            c.validate()?;
        }
        Ok(())
    }

    /// The effective configuration on one line, for the start-up log.
    pub fn summary(&self) -> String {
        format!(
            "data_dir={} socket={} run_dir={} interface_prefix={} local_pool={} local_prefix_len={} local_pool6={} local_prefix_len6={} shared_nat_ipv6={} wg_port={} wg_backend={} mtu={} gc={} check_interval_secs={} dns_zone={} dns_port={} dns_listen=[{}] dns_upstreams=[{}] metrics_listen={}",
            self.data_dir.display(),
            self.socket.display(),
            self.run_dir().display(),
            self.interface_prefix,
            self.local_pool,
            self.local_prefix_len,
            self.local_pool6,
            self.local_prefix_len6,
            self.shared_nat_ipv6,
            self.wg_port,
            self.wg_backend,
            self.mtu.map(|m| m.to_string()).unwrap_or_else(|| "auto".into()),
            self.gc,
            self.check_interval_secs,
            self.dns_zone,
            self.dns_port,
            self.dns_listen.join(","),
            self.dns_upstreams.join(","),
            self.metrics_listen.as_deref().unwrap_or("off"),
        )
    }

    /// overlayd's nftables table (family `inet`): `overlayd` for the default
    /// `interface_prefix`, `overlayd_<prefix>` otherwise (`-` as `_`), so two
    /// instances in one namespace — which need two prefixes — never
    /// replace or delete each other's table.
    pub fn nft_table(&self) -> String {
        if self.interface_prefix == "ovl" {
            overlayd_host::DEFAULT_TABLE.to_string()
        } else {
            format!(
                "{}_{}",
                overlayd_host::DEFAULT_TABLE,
                self.interface_prefix.replace('-', "_")
            )
        }
    }

    /// The Linux host backend's settings for this instance.
    pub fn host_config(&self) -> overlayd_host::LinuxHostConfig {
        overlayd_host::LinuxHostConfig {
            nft_table: self.nft_table(),
            ..Default::default()
        }
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

/// The node name `uname -n` reports (the UTS namespace's hostname, which
/// the kernel also exposes as `/proc/sys/kernel/hostname`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
