//! `overlayd status`.

use std::process::ExitCode;

use anyhow::Result;
use overlayd_proto::Request;

use super::{call, Cli};

/// Print the daemon's status.
pub async fn run(cli: &Cli) -> Result<ExitCode> {
    call::call_and_print(cli, Request::Status).await
}
