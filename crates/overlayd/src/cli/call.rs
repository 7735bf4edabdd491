//! The one place a CLI verb talks to the daemon: connect (with a plain
//! message when it is not running or the socket is not ours to use), call,
//! and turn an `err` response into a [`Failure`] whose exit code comes from
//! the frame's `code`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use overlayd_client::{Client, ClientError};
use overlayd_proto::{Request, Response};

use super::exit::{Exit, Failure};
use super::{output, Cli};

/// How long a CLI verb waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Connect to the daemon, explaining what to do when that fails.
pub async fn connect(cli: &Cli) -> Result<Client> {
    match Client::connect(&cli.socket).await {
        Ok(c) => Ok(c),
        Err(ClientError::Connect { path, source }) => {
            let p = path.display();
            Err(match source.kind() {
                std::io::ErrorKind::PermissionDenied => Failure::new(
                    Exit::Permission,
                    format!(
                        "permission denied on overlayd's socket {p}: run this as root (sudo overlayd …) or as a member of the group named by socket_group in the daemon's config"
                    ),
                ),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    Failure::new(
                        Exit::Unreachable,
                        format!(
                            "overlayd is not running: nothing listens on {p}; start it (`systemctl start overlayd` or `overlayd run`) or point --socket at the right path"
                        ),
                    )
                }
                _ => Failure::new(
                    Exit::Unreachable,
                    format!("cannot connect to overlayd at {p}: {source}; is the daemon running and is --socket right?"),
                ),
            }
            .into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Send one request and return the response; `err` becomes a [`Failure`].
pub async fn call(cli: &Cli, request: Request) -> Result<Response> {
    let mut client = connect(cli).await?;
    let op = request.op();
    match client.call_timeout(request, CALL_TIMEOUT).await {
        Ok(Response::Err { message, code }) => Err(Failure::new(Exit::from_code(code), message).into()),
        Ok(r) => Ok(r),
        Err(ClientError::Timeout(t)) => Err(Failure::new(
            Exit::Unreachable,
            format!("overlayd did not answer {op} within {t:?}; check `journalctl -u overlayd` and try again"),
        )
        .into()),
        Err(ClientError::Closed) => Err(Failure::new(
            Exit::Unreachable,
            format!("overlayd closed the connection before answering {op} (it may be stopping or have crashed); check `journalctl -u overlayd`"),
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// Send one request and print the response in the requested style.
pub async fn call_and_print(cli: &Cli, request: Request) -> Result<ExitCode> {
    let response = call(cli, request).await?;
    output::print(&response, &cli.style(false))?;
    Ok(ExitCode::SUCCESS)
}
