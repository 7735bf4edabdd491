//! The one place a CLI verb talks to the daemon: connect, call, and turn an
//! `err` response into a non-zero exit with the daemon's message.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use overlayd_client::Client;
use overlayd_proto::{Request, Response};

use super::output;
use super::Cli;

/// How long a CLI verb waits for an answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Send one request and return the response; `err` becomes an error.
pub async fn call(cli: &Cli, request: Request) -> Result<Response> {
    let mut client = Client::connect(&cli.socket).await?;
    match client.call_timeout(request, CALL_TIMEOUT).await? {
        Response::Err { message, .. } => bail!("{message}"),
        r => Ok(r),
    }
}

/// Send one request and print the response (table, or JSON with `--json`).
pub async fn call_and_print(cli: &Cli, request: Request) -> Result<ExitCode> {
    let response = call(cli, request).await?;
    output::print(&response, cli.json)?;
    Ok(ExitCode::SUCCESS)
}
