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
    /// Give a network another subnet (the explicit fix when two nodes use
    /// the same one); no container may be attached to it.
    Move {
        /// Owner key (`shared-nat`, `service:NAME`, `iso:NET`).
        owner: String,
        /// The subnet to move to; without it the next free one is taken.
        #[arg(long)]
        subnet: Option<String>,
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
        NetworkCmd::Move { owner, subnet } => {
            let req = Request::MoveNetwork {
                network: owner.clone(),
                subnet: subnet.clone(),
            };
            match call::call(cli, req).await? {
                Response::Networks { networks } if !cli.json => {
                    for n in &networks {
                        println!("{} moved to {}", n.owner, n.subnet);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                r => {
                    output::print(&r, cli.json)?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}
