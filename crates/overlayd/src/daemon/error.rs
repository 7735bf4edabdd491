//! Operation errors and the one place they become protocol `err` messages.

/// Why a request failed. Every variant's message reaches the caller verbatim,
/// so it says what was wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// Bad arguments; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A name or resource is taken.
    #[error("{0}")]
    Conflict(String),
    /// The capability is not available in this build or platform.
    #[error("{0}")]
    Unsupported(String),
    /// A kernel operation failed (after rollback); the netlink or nftables
    /// error is kept as the source.
    #[error("host operation failed: {0}")]
    Host(#[from] overlayd_host::HostError),
    /// The WireGuard backend failed (after rollback).
    #[error("host operation failed: {0}")]
    Wg(#[from] overlayd_wg::WgError),
    /// A host operation failed in a way no single source describes (several
    /// objects failed to go, a worker thread died).
    #[error("host operation failed: {0}")]
    HostFailed(String),
    /// Durable state could not be read or written; the store or marker
    /// error is kept as the source.
    #[error("state error: {0}")]
    Store(#[from] overlayd_state::StateError),
    /// The model refused a value (an exhausted port band, a marker that is
    /// not v1).
    #[error("{0}")]
    Model(#[from] overlayd_model::ModelError),
    /// Recorded state contradicts itself (an entry lacks a field it must
    /// have).
    #[error("state error: {0}")]
    State(String),
    /// A service the daemon depends on (etcd in cluster mode) cannot answer now.
    #[error("{0}")]
    Unavailable(String),
}

impl From<overlayd_model::owner::OwnerError> for OpError {
    fn from(e: overlayd_model::owner::OwnerError) -> Self {
        OpError::Invalid(e.to_string())
    }
}

impl OpError {
    /// The machine-readable code carried by the `err` frame.
    pub fn code(&self) -> overlayd_proto::ErrorCode {
        use overlayd_proto::ErrorCode;
        match self {
            OpError::Invalid(_) => ErrorCode::Invalid,
            OpError::NotFound(_) => ErrorCode::NotFound,
            OpError::Conflict(_) => ErrorCode::Conflict,
            OpError::Unsupported(_) => ErrorCode::Unsupported,
            OpError::Host(_) | OpError::Wg(_) | OpError::HostFailed(_) => ErrorCode::Host,
            OpError::Store(_) | OpError::State(_) => ErrorCode::State,
            OpError::Model(
                overlayd_model::ModelError::PortBandExhausted { .. }
                | overlayd_model::ModelError::PortBandEmpty { .. },
            ) => ErrorCode::Conflict,
            OpError::Model(_) => ErrorCode::State,
            OpError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }
}

/// Result of an operation.
pub type OpResult<T> = Result<T, OpError>;

/// Most bytes of client-supplied text a log line repeats.
pub const LOG_ECHO_MAX: usize = 256;

/// `s` cut to at most `max` bytes (on a character boundary) with a note of
/// how much was left out: error messages may echo a client's input, and a
/// log must not grow by a client's 8 MiB frame per request.
pub fn clip(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= max {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}… ({} more bytes)", &s[..end], s.len() - end))
}

#[cfg(test)]
mod clip_tests {
    use super::clip;

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        assert_eq!(clip("short", 256), "short");
        let long = "é".repeat(1000);
        let c = clip(&long, 255);
        assert!(c.len() < 300, "{}", c.len());
        assert!(c.ends_with("(1746 more bytes)"), "{c}");
    }
}

#[cfg(test)]
mod source_tests {
    use std::error::Error as _;

    use overlayd_model::ModelError;
    use overlayd_proto::ErrorCode;

    use super::OpError;

    #[test]
    fn wrapped_errors_keep_their_source_and_message() {
        let host = overlayd_host::HostError::InvalidArgument("bad name".into());
        let text = host.to_string();
        let e = OpError::from(host);
        assert_eq!(e.to_string(), format!("host operation failed: {text}"));
        assert_eq!(e.code(), ErrorCode::Host);
        let source = e.source().expect("the host error is kept as the source");
        assert_eq!(source.to_string(), text);

        let state = overlayd_state::StateError::io(
            "read",
            "/d/agent_network.json",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        let e = OpError::from(state);
        assert_eq!(e.code(), ErrorCode::State);
        // OpError → StateError → io::Error: the whole chain is walkable.
        let io = e.source().and_then(|s| s.source()).expect("io source");
        assert!(io.to_string().contains("ermission denied"), "{io}");
    }

    #[test]
    fn an_exhausted_port_band_is_a_conflict_like_a_full_pool_not_a_state_failure() {
        let e = OpError::from(ModelError::PortBandExhausted {
            first: 51821,
            last: 52076,
            in_use: 256,
        });
        assert_eq!(e.code(), ErrorCode::Conflict);
        assert!(e.to_string().starts_with("dedicated WireGuard port band"));
        let e = OpError::from(ModelError::DuplicateOwner {
            owner: "base".into(),
        });
        assert_eq!(e.code(), ErrorCode::State);
    }
}
