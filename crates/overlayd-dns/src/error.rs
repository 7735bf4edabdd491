//! The crate's single error type.

use std::net::SocketAddr;

/// Everything that can go wrong in overlayd-dns.
///
/// Validation variants (`InvalidName`, `OutsideZone`, `InvalidAddress`, …) are
/// returned before anything is stored, so a failed call never changes state.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The configured zone is not a valid DNS domain name.
    #[error("invalid DNS zone {zone:?}: {reason}")]
    InvalidZone {
        /// The zone as given.
        zone: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record name is not made of valid DNS labels.
    #[error(
        "invalid DNS name {name:?}: {reason} (use letters, digits and '-', labels of 1-63 characters)"
    )]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A record name lies outside the served zone (or is the zone apex itself).
    #[error(
        "DNS name {name:?} is outside the zone {zone}: give a relative name (\"web\") or a name ending in {zone}"
    )]
    OutsideZone {
        /// The name as given.
        name: String,
        /// The served zone.
        zone: String,
    },

    /// A string that should be an IP address is not one.
    #[error("{value:?} is not an IP address (expected e.g. 10.200.0.5 or fd00::5)")]
    InvalidAddress {
        /// The value as given.
        value: String,
    },

    /// An IP address that cannot be served as a host record (unspecified, multicast, broadcast).
    #[error("{addr} is not a host address and cannot be published in DNS")]
    UnusableAddress {
        /// The rejected address.
        addr: std::net::IpAddr,
    },

    /// `set` was called with no addresses; use `remove` to delete a name.
    #[error("no addresses given for {name:?}; use remove to delete a name")]
    NoAddresses {
        /// The name as given.
        name: String,
    },

    /// The record set handed to the server serves a different zone than the config.
    #[error("record set serves zone {records} but the DNS config asks for zone {config}")]
    ZoneMismatch {
        /// Zone of the record set.
        records: String,
        /// Zone in the configuration.
        config: String,
    },

    /// A listener could not be bound.
    #[error("cannot listen for DNS on {addr} ({proto}): {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        proto: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A listener with that address is already running.
    #[error("a DNS listener on {addr} is already running")]
    ListenerExists {
        /// The address in use.
        addr: SocketAddr,
    },

    /// No upstream answered within the forwarding timeout.
    #[error("no upstream DNS server answered within {timeout:?}")]
    UpstreamTimeout {
        /// The configured forwarding timeout.
        timeout: std::time::Duration,
    },

    /// Talking to one upstream failed.
    #[error("upstream DNS server {addr}: {reason}")]
    Upstream {
        /// The upstream.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },

    /// The DNS worker thread or its runtime could not be started.
    #[error("cannot start the DNS worker thread: {0}")]
    Runtime(#[source] std::io::Error),

    /// The server has been shut down and accepts no new listeners.
    #[error("the DNS server has been shut down")]
    ShutDown,
}
