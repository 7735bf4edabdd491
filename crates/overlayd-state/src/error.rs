//! The crate's single error type. Messages reach operators verbatim, so each
//! one names the file or range involved and, where it helps, what to do.

use std::io;
use std::path::PathBuf;

use crate::store::Table;

/// Result alias used throughout the crate.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// What to do about a store that cannot be opened.
fn open_hint(source: &redb::Error) -> &'static str {
    match source {
        redb::Error::Io(_) | redb::Error::PreviousIo => {
            "; if the disk is full, free space: the store reopens by itself on the next request"
        }
        _ => {
            "; restore it from a backup, or start once with `overlayd run --rebuild-store` to set \
             it aside and rebuild from the marker and the live host"
        }
    }
}

/// Everything that can go wrong while reading or writing overlayd state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "rename", "fsync directory", …).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },

    /// The marker was written by a newer overlayd; it is left untouched.
    #[error(
        "network-state marker {} has version {found}, but this overlayd understands only up to \
         version {supported}; it was left untouched — run the overlayd release that wrote it \
         (or a newer one)",
        path.display()
    )]
    NewerVersion {
        /// The marker file.
        path: PathBuf,
        /// Version found in the file.
        found: u64,
        /// Newest version this build understands.
        supported: u32,
    },

    /// Another overlayd instance holds the data-dir lock.
    #[error(
        "another overlayd instance{} holds the lock {}; stop it first \
         (or point this instance at a different data dir)",
        match pid { Some(p) => format!(" (pid {p})"), None => String::new() },
        path.display()
    )]
    Locked {
        /// The holder's pid, when it could be read from the lock file.
        pid: Option<u32>,
        /// The lock file.
        path: PathBuf,
    },

    /// The model refused a value: a marker whose content is not v1 (the
    /// file is quarantined by [`crate::MarkerFile::load`], never silently
    /// replaced), an exhausted port band.
    #[error(transparent)]
    Model(#[from] overlayd_model::ModelError),

    /// The transactional store could not be opened.
    #[error("cannot open the state store {}: {source}{}", path.display(), open_hint(source))]
    StoreOpen {
        /// The store file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::Error>,
    },

    /// A store transaction failed.
    #[error("state store {} failed: {source}", path.display())]
    Store {
        /// The store file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::Error>,
    },

    /// A stored record could not be decoded as the requested type.
    #[error("state store record {table}/{key} is unreadable: {source}")]
    CorruptRecord {
        /// The table holding it.
        table: Table,
        /// Its key.
        key: String,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },

    /// A value could not be encoded to JSON.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The encode error.
        #[source]
        source: serde_json::Error,
    },

    /// A WireGuard key string is not 32 bytes of standard base64.
    #[error("invalid WireGuard key: {reason}")]
    InvalidKey {
        /// What is wrong with it (never the key itself).
        reason: String,
    },

    /// The node key file exists but does not hold a usable key.
    #[error(
        "node key file {} is unreadable: {reason}; restore it from a backup, or run \
         `overlayd rotate-key` to replace it (peers must then learn the new public key)",
        path.display()
    )]
    CorruptKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl StateError {
    /// Build an [`StateError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StateError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error means the marker's content is bad (and should be
    /// quarantined), as opposed to an I/O failure or a newer version.
    pub fn is_corrupt_marker(&self) -> bool {
        matches!(self, StateError::Model(m) if m.is_corrupt_marker())
    }

    /// True when a store operation failed on I/O (a full disk, say): the
    /// store must be closed and reopened before it accepts changes again.
    pub fn is_store_io(&self) -> bool {
        match self {
            StateError::Store { source, .. } | StateError::StoreOpen { source, .. } => {
                matches!(**source, redb::Error::Io(_) | redb::Error::PreviousIo)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn error_is_send_sync() {
        assert_send_sync::<StateError>();
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = StateError::from(overlayd_model::ModelError::DuplicateOwner {
            owner: "base".into(),
        });
        assert!(e.is_corrupt_marker());
        assert!(e.to_string().contains("appears more than once"));
        let e = StateError::Locked {
            pid: Some(42),
            path: "/d/lock".into(),
        };
        assert!(e.to_string().contains("(pid 42)"));
        assert!(e.to_string().contains("/d/lock"));
    }
}
