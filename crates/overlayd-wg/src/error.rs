//! The crate's single error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while driving a WireGuard device.
#[derive(Debug, thiserror::Error)]
pub enum WgError {
    /// A key string was not 32 bytes of standard base64 (or hex for UAPI).
    #[error("{what} key must be 32 bytes of standard base64")]
    InvalidKey {
        /// Which key: "public", "private" or "preshared".
        what: &'static str,
    },

    /// An interface name was empty, too long or contained illegal bytes.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A configuration value was out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// An unknown backend name was given (see `BackendKind`).
    #[error("unknown WireGuard backend {0:?} (expected auto, kernel or userspace)")]
    UnknownBackend(String),

    /// The named WireGuard device does not exist.
    #[error("WireGuard device {0:?} does not exist")]
    NoSuchDevice(String),

    /// The device has no peer with the given public key.
    #[error("WireGuard device {device:?} has no peer {public_key}")]
    NoSuchPeer {
        /// Device name.
        device: String,
        /// The peer's public key (base64).
        public_key: String,
    },

    /// A link with the requested name exists but is not a device this backend may adopt.
    #[error("interface {name:?} exists but {reason}; delete it or pick another name")]
    NameInUse {
        /// The conflicting interface name.
        name: String,
        /// What is wrong with the existing link.
        reason: String,
    },

    /// The kernel WireGuard backend was requested but the kernel has no
    /// `wireguard` generic netlink family.
    #[error("kernel WireGuard is not available (no \"wireguard\" generic netlink family); load the wireguard module or use the userspace backend")]
    KernelUnavailable,

    /// A netlink request failed with an errno from the kernel.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// The operation that failed.
        op: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },

    /// A netlink reply could not be decoded.
    #[error("malformed netlink reply to {op}: {detail}")]
    NetlinkDecode {
        /// The operation whose reply was bad.
        op: &'static str,
        /// Decoder message.
        detail: String,
    },

    /// Talking to a UAPI socket failed at the transport level.
    #[error("UAPI socket {path}: {source}")]
    UapiIo {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },

    /// The UAPI peer answered with a non-zero errno.
    #[error("UAPI {op} on {path} returned errno {errno} ({})", io::Error::from_raw_os_error(*errno))]
    UapiErrno {
        /// `get` or `set`.
        op: &'static str,
        /// Socket path.
        path: PathBuf,
        /// The errno reported by the device.
        errno: i32,
    },

    /// The UAPI answer could not be parsed.
    #[error("malformed UAPI response: {0}")]
    UapiProtocol(String),

    /// Creating the userspace (TUN) device failed.
    #[error("creating userspace WireGuard device {name:?} failed: {detail}")]
    Userspace {
        /// Device name.
        name: String,
        /// What the userspace implementation reported.
        detail: String,
    },

    /// Entering the configured network namespace failed.
    #[error("network namespace {path}: {source}")]
    Netns {
        /// The namespace path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: io::Error,
    },

    /// The backend's worker thread is gone (it panicked or was shut down).
    #[error("WireGuard backend worker thread is not running")]
    WorkerGone,

    /// A condition was not reached before its deadline.
    #[error("timed out waiting for {0}")]
    Timeout(String),

    /// Any other I/O failure (socket options, directories).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
}

impl WgError {
    /// Shorthand for [`WgError::Io`].
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        WgError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = WgError> = std::result::Result<T, E>;
