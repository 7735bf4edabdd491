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
    /// A kernel operation failed (after rollback).
    #[error("host operation failed: {0}")]
    Host(String),
    /// Durable state could not be read or written.
    #[error("state error: {0}")]
    State(String),
    /// A service the daemon depends on (etcd in cluster mode) cannot answer now.
    #[error("{0}")]
    Unavailable(String),
}

impl From<overlayd_state::StateError> for OpError {
    fn from(e: overlayd_state::StateError) -> Self {
        OpError::State(e.to_string())
    }
}

impl From<overlayd_host::HostError> for OpError {
    fn from(e: overlayd_host::HostError) -> Self {
        OpError::Host(e.to_string())
    }
}

impl From<overlayd_state::owner::OwnerError> for OpError {
    fn from(e: overlayd_state::owner::OwnerError) -> Self {
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
            OpError::Host(_) => ErrorCode::Host,
            OpError::State(_) => ErrorCode::State,
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
