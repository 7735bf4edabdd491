//! `overlayd ps`: attached containers, backed by the `list_attachments` op.

use std::process::ExitCode;

use anyhow::Result;
use overlayd_proto::Request;

use super::{call, output, Cli, ListArgs};

/// List attached containers.
pub async fn run(cli: &Cli, args: &ListArgs) -> Result<ExitCode> {
    let r = call::call(cli, Request::ListAttachments).await?;
    output::print(&r, &cli.style(args.quiet))?;
    Ok(ExitCode::SUCCESS)
}
