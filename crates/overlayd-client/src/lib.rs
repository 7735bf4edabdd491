//! overlayd client library: connect to the daemon's Unix socket, send
//! requests, await their responses, and receive pushed events. The CLI uses
//! it; orchestrators written in Rust can too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use overlayd_proto::{
    decode_frame, encode_frame, read_frame, write_frame, Event, Frame, FrameError, Request,
    Response,
};
use tokio::net::UnixStream;

/// Default socket path of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/overlayd/overlayd.sock";

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to overlayd at {path} (is the daemon running (`overlayd run`) and is --socket right?)")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Framing failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The daemon hung up.
    #[error("overlayd closed the connection before answering")]
    Closed,
    /// The daemon sent something that is not a valid frame.
    #[error("overlayd sent an invalid frame: {0}")]
    Protocol(String),
    /// No answer in time.
    #[error("overlayd did not answer within {0:?}")]
    Timeout(Duration),
}

/// One connection to the daemon.
pub struct Client {
    stream: UnixStream,
    next_id: u64,
    pending_events: Vec<Event>,
}

impl Client {
    /// Connect to the daemon's socket.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| ClientError::Connect {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Client {
            stream,
            next_id: 1,
            pending_events: Vec::new(),
        })
    }

    /// Whether a daemon answers `hello` on the socket at `path` within
    /// `timeout` (what "ready" means for a daemon just started).
    pub async fn answers(path: impl AsRef<Path>, timeout: Duration) -> bool {
        let Ok(mut c) = Client::connect(path).await else {
            return false;
        };
        matches!(
            c.call_timeout(
                Request::Hello {
                    protocol_version: 1
                },
                timeout
            )
            .await,
            Ok(Response::Hello { .. })
        )
    }

    /// Send a request and wait for its response. Events that arrive in the
    /// meantime are kept for [`Client::next_event`].
    pub async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = encode_frame(&Frame::Request { id, request });
        write_frame(&mut self.stream, &body).await?;
        loop {
            match self.read().await? {
                Frame::Response { id: rid, response } if rid == id => return Ok(response),
                Frame::Response { id: 0, response } => return Ok(response),
                Frame::Response { .. } => continue,
                Frame::Event(e) => self.pending_events.push(e),
                Frame::Request { .. } => {
                    return Err(ClientError::Protocol("daemon sent a request".into()))
                }
            }
        }
    }

    /// Like [`Client::call`] with a deadline.
    pub async fn call_timeout(
        &mut self,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, ClientError> {
        tokio::time::timeout(timeout, self.call(request))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
    }

    /// Wait for the next pushed event (after `subscribe_events`).
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        if !self.pending_events.is_empty() {
            return Ok(self.pending_events.remove(0));
        }
        loop {
            if let Frame::Event(e) = self.read().await? {
                return Ok(e);
            }
        }
    }

    /// Send raw bytes as one frame body and read the next response (for
    /// tests of the daemon's handling of bad input).
    pub async fn call_raw(&mut self, body: &[u8]) -> Result<(u64, Response), ClientError> {
        write_frame(&mut self.stream, body).await?;
        loop {
            match self.read().await? {
                Frame::Response { id, response } => return Ok((id, response)),
                Frame::Event(e) => self.pending_events.push(e),
                Frame::Request { .. } => {
                    return Err(ClientError::Protocol("daemon sent a request".into()))
                }
            }
        }
    }

    /// The underlying stream (for tests that write malformed framing).
    pub fn stream_mut(&mut self) -> &mut UnixStream {
        &mut self.stream
    }

    async fn read(&mut self) -> Result<Frame, ClientError> {
        let body = read_frame(&mut self.stream)
            .await?
            .ok_or(ClientError::Closed)?;
        decode_frame(&body).map_err(|e| ClientError::Protocol(e.message))
    }
}
