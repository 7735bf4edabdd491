//! overlayd-dns: the daemon's DNS server.
//!
//! An authoritative server for one zone (default `overlay.internal.`) with
//! A/AAAA records for registered names, answered over UDP and TCP on every
//! listen address the daemon adds (network gateways, the node's overlay
//! address). Names outside the zone are forwarded to the host's upstream
//! resolvers; when no upstream answers in time the client gets SERVFAIL.
//!
//! Built on [`hickory_server`] (request handler, TCP listener, response
//! building) and [`hickory_proto`] (messages, records). UDP is driven by this
//! crate on one dedicated thread that answers in-zone queries inline (see
//! `udp.rs`); out-of-zone queries are forwarded from tasks on that thread.
//!
//! ```no_run
//! # async fn demo() -> Result<(), overlayd_dns::DnsError> {
//! use overlayd_dns::{DnsConfig, DnsServer, Records};
//!
//! let records = Records::new("overlay.internal")?;
//! records.add("web", "10.200.1.5".parse().unwrap())?;
//! let config = DnsConfig {
//!     upstreams: overlayd_dns::system_upstreams(),
//!     ..DnsConfig::default()
//! };
//! let server = DnsServer::start(config, records.clone()).await?;
//! server.add_listener("10.200.1.1:53".parse().unwrap()).await?;
//! records.remove("web")?; // visible to the next query
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Note: `hickory_server` logs one line per query at `info` level under the
//! `hickory_server` target; a daemon should filter that target to `warn`.

mod config;
mod error;
mod forward;
mod handler;
mod name;
mod records;
mod scope;
mod server;
mod udp;

pub use config::{
    parse_resolv_conf, system_upstreams, upstreams_from_resolv_conf, DnsConfig,
    DEFAULT_TCP_IDLE_TIMEOUT, DEFAULT_UPSTREAM_TIMEOUT, DEFAULT_ZONE, DNS_PORT, RESOLV_CONF,
    SYSTEMD_RESOLV_CONF,
};
pub use error::DnsError;
pub use handler::{DnsStats, DnsStatsSnapshot};
pub use name::normalize_name;
pub use records::{parse_ip, RecordEntry, Records, DEFAULT_TTL};
pub use scope::Visibility;
pub use server::DnsServer;
