//! The daemon connection: one short-lived connection per invocation, and
//! the mapping of overlayd's `err` codes to CNI error codes.

use std::time::Duration;

use overlayd_client::{Client, ClientError};
use overlayd_proto::{ErrorCode, Handle, Request, Response};
use tokio::runtime::Runtime;

use crate::error::*;

/// How long one request may take before the plugin gives up (code 11).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to overlayd, driven from synchronous code.
pub struct Daemon {
    rt: Runtime,
    client: Client,
}

impl Daemon {
    /// Connect to the socket; unreachable → code 11 (try again later).
    pub fn connect(socket: &str) -> Result<Daemon, CniError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                CniError::new(IO_FAILURE, "cannot start the I/O runtime")
                    .with_details(e.to_string())
            })?;
        let client = rt
            .block_on(Client::connect(socket))
            .map_err(|e| unreachable(socket, &e))?;
        Ok(Daemon { rt, client })
    }

    /// Send a request; an `err` answer becomes a CNI error.
    pub fn call(&mut self, request: Request) -> Result<Response, CniError> {
        let op = request.op();
        let resp = self
            .rt
            .block_on(self.client.call_timeout(request, CALL_TIMEOUT))
            .map_err(|e| {
                CniError::new(TRY_AGAIN_LATER, format!("overlayd did not answer {op}"))
                    .with_details(e.to_string())
            })?;
        match resp {
            Response::Err { message, code } => Err(from_daemon(op, code, message)),
            r => Ok(r),
        }
    }

    /// `inspect_attachment`: `None` when the handle is not attached.
    pub fn inspect(&mut self, handle: &Handle) -> Result<Option<Response>, CniError> {
        match self.call(Request::InspectAttachment {
            handle: handle.clone(),
        }) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.code == INVALID_CONFIG && e.details == NOT_FOUND_MARK => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `details` of an error mapped from overlayd's `not_found`, so callers can
/// tell it from `invalid` (both are code 7 on the CNI side).
pub const NOT_FOUND_MARK: &str = "overlayd: not_found";

fn unreachable(socket: &str, e: &ClientError) -> CniError {
    CniError::new(TRY_AGAIN_LATER, format!("overlayd is not reachable at {socket}"))
        .with_details(format!(
            "{e}; start the daemon (`overlayd run`) or set the `socket` key of the network configuration"
        ))
}

/// overlayd `err` code → CNI code. `not_found` and `invalid` mean a bad
/// request (a namespace that is not one, a bad name: 7); `unavailable` is
/// worth retrying (11); the rest are this plugin's own codes.
pub fn from_daemon(op: &str, code: Option<ErrorCode>, message: String) -> CniError {
    let (cni, details) = match code {
        Some(ErrorCode::Invalid) => (INVALID_CONFIG, format!("overlayd: invalid ({op})")),
        Some(ErrorCode::NotFound) => (INVALID_CONFIG, NOT_FOUND_MARK.to_string()),
        Some(ErrorCode::Unavailable) => (TRY_AGAIN_LATER, format!("overlayd: unavailable ({op})")),
        Some(ErrorCode::Conflict) => (DAEMON_CONFLICT, format!("overlayd: conflict ({op})")),
        Some(ErrorCode::Host) => (DAEMON_HOST_FAILURE, format!("overlayd: host ({op})")),
        Some(ErrorCode::State) => (DAEMON_STATE_FAILURE, format!("overlayd: state ({op})")),
        Some(ErrorCode::Unsupported) => {
            (UNSUPPORTED_FIELD, format!("overlayd: unsupported ({op})"))
        }
        _ => (DAEMON_OTHER, format!("overlayd ({op})")),
    };
    CniError::new(cni, message).with_details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_codes_map_to_cni_codes() {
        let m = |c| from_daemon("attach_container", c, "m".into()).code;
        assert_eq!(m(Some(ErrorCode::Invalid)), INVALID_CONFIG);
        assert_eq!(m(Some(ErrorCode::NotFound)), INVALID_CONFIG);
        assert_eq!(m(Some(ErrorCode::Unavailable)), TRY_AGAIN_LATER);
        assert_eq!(m(Some(ErrorCode::Conflict)), DAEMON_CONFLICT);
        assert_eq!(m(Some(ErrorCode::Host)), DAEMON_HOST_FAILURE);
        assert_eq!(m(Some(ErrorCode::State)), DAEMON_STATE_FAILURE);
        assert_eq!(m(None), DAEMON_OTHER);
        assert_eq!(m(Some(ErrorCode::Other)), DAEMON_OTHER);
    }

    #[test]
    fn a_missing_socket_is_try_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("none.sock");
        let e = Daemon::connect(sock.to_str().unwrap()).err().unwrap();
        assert_eq!(e.code, TRY_AGAIN_LATER);
        assert!(e.msg.contains("none.sock"));
    }
}
