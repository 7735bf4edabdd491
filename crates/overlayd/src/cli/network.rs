//! `overlayd network ls | inspect OWNER`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use overlayd_proto::{Request, Response};

use super::{call, output, Cli};

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// List every marker entry (including kinds this platform cannot manage).
    Ls,
    /// Show one marker entry with its live state.
    Inspect {
        /// Owner key (`base`, `shared-nat`, `service:NAME`, `iso:NET`).
        owner: String,
    },
}

/// Run a `network` subcommand.
pub async fn run(cli: &Cli, cmd: &NetworkCmd) -> Result<ExitCode> {
    match cmd {
        NetworkCmd::Ls => call::call_and_print(cli, Request::ListNetworks).await,
        NetworkCmd::Inspect { owner } => {
            let Response::Networks { networks } = call::call(cli, Request::ListNetworks).await?
            else {
                bail!("unexpected answer to list_networks");
            };
            let Some(view) = networks.into_iter().find(|n| &n.owner == owner) else {
                bail!(
                    "no network with owner {owner:?} is recorded; `overlayd network ls` lists them"
                );
            };
            output::print_inspect(&view, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
