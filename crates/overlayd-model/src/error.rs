//! Errors of the model: a marker whose content is not v1, a port band with
//! no free port.

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The marker's content is not a valid v1 marker.
    #[error("network-state marker is corrupt: {reason}")]
    CorruptMarker {
        /// Why the content was rejected.
        reason: String,
    },

    /// Two marker entries share an owner (owners are unique).
    #[error("network-state marker is corrupt: owner {owner:?} appears more than once")]
    DuplicateOwner {
        /// The repeated owner string.
        owner: String,
    },

    /// The marker was written by a newer overlayd. The state crate adds
    /// the file's path when it reports this.
    #[error(
        "network-state marker has version {found}, but this overlayd understands only up to \
         version {supported}"
    )]
    NewerVersion {
        /// Version found in the file.
        found: u64,
        /// Newest version this build understands.
        supported: u32,
    },

    /// The marker could not be encoded to JSON.
    #[error("cannot encode the network-state marker: {source}")]
    Encode {
        /// The encode error.
        #[source]
        source: serde_json::Error,
    },

    /// Every port of the dedicated WireGuard port band is in use.
    #[error(
        "dedicated WireGuard port band {first}-{last} is exhausted ({in_use} ports in use); \
         tear down an unused dedicated service"
    )]
    PortBandExhausted {
        /// First port of the band.
        first: u16,
        /// Last port of the band.
        last: u16,
        /// How many band ports are held.
        in_use: usize,
    },

    /// The global port leaves no room for a dedicated band above it.
    #[error(
        "global WireGuard port {global} leaves no room for the dedicated port band above it; \
         choose a global port of at most 65279"
    )]
    PortBandEmpty {
        /// The configured global WireGuard port.
        global: u16,
    },
}

impl ModelError {
    /// True when the error means the marker's content is bad (and should be
    /// quarantined), as opposed to a newer version.
    pub fn is_corrupt_marker(&self) -> bool {
        matches!(
            self,
            ModelError::CorruptMarker { .. } | ModelError::DuplicateOwner { .. }
        )
    }
}

/// Result of a model operation.
pub type Result<T> = std::result::Result<T, ModelError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn band_messages_say_what_to_do() {
        let e = ModelError::PortBandExhausted {
            first: 51821,
            last: 52076,
            in_use: 256,
        };
        assert_eq!(
            e.to_string(),
            "dedicated WireGuard port band 51821-52076 is exhausted (256 ports in use); \
             tear down an unused dedicated service"
        );
        assert!(ModelError::DuplicateOwner {
            owner: "base".into()
        }
        .is_corrupt_marker());
        let newer = ModelError::NewerVersion {
            found: 2,
            supported: 1,
        };
        assert!(!newer.is_corrupt_marker());
    }
}
