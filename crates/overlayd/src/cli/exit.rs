//! CLI exit codes, in one place (documented in docs/operations.md), and the
//! error type that carries one. `main` maps every error here.

use std::process::ExitCode;

use overlayd_client::ClientError;
use overlayd_proto::ErrorCode;

/// The documented exit codes of every client verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success (also when stdout was closed early, as `| head` does).
    Ok = 0,
    /// Bad command line or invalid arguments (nothing changed).
    Usage = 1,
    /// The daemon cannot be reached (not running, wrong socket, no answer).
    Unreachable = 2,
    /// `doctor` found drift between recorded and live state.
    Drift = 3,
    /// The named service, network, name, container or peer does not exist.
    NotFound = 4,
    /// Not allowed: needs root / CAP_NET_ADMIN, or socket access.
    Permission = 5,
    /// Taken or still in use (address, subnet, port, name, members).
    Conflict = 6,
    /// The operation failed (kernel, durable state, unsupported, other).
    Failed = 7,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

impl Exit {
    /// The exit code for a daemon `err` frame's `code`.
    pub fn from_code(code: Option<ErrorCode>) -> Exit {
        match code {
            Some(ErrorCode::Invalid | ErrorCode::Malformed) => Exit::Usage,
            Some(ErrorCode::NotFound) => Exit::NotFound,
            Some(ErrorCode::PermissionDenied) => Exit::Permission,
            Some(ErrorCode::Conflict) => Exit::Conflict,
            Some(ErrorCode::Unavailable) => Exit::Unreachable,
            Some(
                ErrorCode::Unsupported | ErrorCode::Host | ErrorCode::State | ErrorCode::Other,
            )
            | None => Exit::Failed,
        }
    }
}

/// An error with its exit code; the message says what happened and what
/// to do.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// Exit code.
    pub exit: Exit,
    /// What happened and what to do.
    pub message: String,
}

impl Failure {
    /// A failure with this exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }
}

/// The exit code for any error a verb returned.
pub fn classify(e: &anyhow::Error) -> Exit {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.exit;
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return match c {
                ClientError::Connect { source, .. }
                    if source.kind() == std::io::ErrorKind::PermissionDenied =>
                {
                    Exit::Permission
                }
                ClientError::Connect { .. }
                | ClientError::Closed
                | ClientError::Timeout(_)
                | ClientError::Frame(_) => Exit::Unreachable,
                ClientError::Protocol(_) => Exit::Failed,
            };
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return Exit::Permission;
            }
        }
    }
    Exit::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_codes_map_to_documented_exits() {
        assert_eq!(Exit::from_code(Some(ErrorCode::NotFound)), Exit::NotFound);
        assert_eq!(
            Exit::from_code(Some(ErrorCode::PermissionDenied)),
            Exit::Permission
        );
        assert_eq!(Exit::from_code(Some(ErrorCode::Invalid)), Exit::Usage);
        assert_eq!(Exit::from_code(Some(ErrorCode::Conflict)), Exit::Conflict);
        assert_eq!(
            Exit::from_code(Some(ErrorCode::Unavailable)),
            Exit::Unreachable
        );
        assert_eq!(Exit::from_code(None), Exit::Failed);
    }

    #[test]
    fn wrapped_failures_and_socket_errors_are_classified() {
        let e = anyhow::Error::new(Failure::new(Exit::NotFound, "x")).context("while listing");
        assert_eq!(classify(&e), Exit::NotFound);
        let denied = ClientError::Connect {
            path: "/run/x.sock".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(classify(&anyhow::Error::new(denied)), Exit::Permission);
        let absent = ClientError::Connect {
            path: "/run/x.sock".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(classify(&anyhow::Error::new(absent)), Exit::Unreachable);
        assert_eq!(classify(&anyhow::anyhow!("other")), Exit::Failed);
    }
}
