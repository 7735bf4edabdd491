//! The crate's single error type, [`HostError`], and its `Result` alias.

use std::io;
use std::path::PathBuf;

use crate::types::NetnsTarget;

/// Result alias used by every fallible call of this crate.
pub type Result<T, E = HostError> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to the host kernel (or the fake).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A netlink request was refused by the kernel or could not be sent.
    #[error("netlink {op} failed: {source}")]
    Netlink {
        /// What was being done, e.g. `create bridge ovl-br0`.
        op: String,
        /// The rtnetlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A named link does not exist.
    #[error("link {name:?} does not exist")]
    LinkNotFound {
        /// Interface name.
        name: String,
    },
    /// A link exists but is of the wrong kind for the requested operation.
    #[error("link {name:?} is a {actual} link, expected {expected}")]
    WrongLinkKind {
        /// Interface name.
        name: String,
        /// The kind that was required.
        expected: String,
        /// The kind that was found.
        actual: String,
    },
    /// A link with the requested name exists and does not carry our tag.
    #[error(
        "link {name:?} already exists and is not ours (ifalias {alias:?}); \
         refusing to adopt or delete it — rename or remove it, or pick another name"
    )]
    ForeignLink {
        /// Interface name.
        name: String,
        /// The ifalias found on the link, if any.
        alias: Option<String>,
    },
    /// An interface name is not acceptable to Linux.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An argument was rejected before anything was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The container network namespace does not exist (any more).
    #[error("network namespace of {target} is gone: {reason}")]
    NetnsGone {
        /// The target that was asked for.
        target: NetnsTarget,
        /// What was observed.
        reason: String,
    },
    /// The given path exists but is not a network namespace handle.
    #[error("{path:?} is not a network namespace (not an nsfs file)")]
    NotANetns {
        /// The offending path.
        path: PathBuf,
    },
    /// The target is the daemon's own network namespace.
    #[error("{target} is the daemon's own network namespace; refusing to attach into it")]
    SameNetns {
        /// The target that was asked for.
        target: NetnsTarget,
    },
    /// Entering a network namespace (setns) failed.
    #[error("cannot enter network namespace ({context}): {source}")]
    Setns {
        /// Which namespace.
        context: String,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// A file-system or OS call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The `nft` program failed or printed something unexpected.
    #[error("nftables {op} failed: {message}")]
    Nft {
        /// What was being done (`apply`, `list`, `remove`).
        op: &'static str,
        /// The error, including nft's stderr when there is one.
        message: String,
    },
    /// A helper thread died unexpectedly.
    #[error("helper thread for {0} panicked or vanished")]
    Thread(&'static str),
    /// A failure injected into the fake host by a test.
    #[error("injected failure in {0:?}")]
    Injected(crate::fake::Op),
}

impl HostError {
    /// Wraps an rtnetlink error with a description of the operation.
    pub(crate) fn netlink(op: impl Into<String>, source: rtnetlink::Error) -> Self {
        HostError::Netlink {
            op: op.into(),
            source,
        }
    }

    /// Wraps an I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        HostError::Io {
            context: context.into(),
            source,
        }
    }

    /// The positive errno carried by a netlink error, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            HostError::Netlink { source, .. } => netlink_errno(source),
            HostError::Io { source, .. } => source.raw_os_error(),
            HostError::Setns { source, .. } => Some(*source as i32),
            _ => None,
        }
    }
}

/// Extracts the positive errno from an rtnetlink error (`None` for non-kernel errors).
pub(crate) fn netlink_errno(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}
