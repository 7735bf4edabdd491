//! `overlayd service up NAME [--mode] [--recreate] | down NAME | ls`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::{Request, ServiceMode};

use super::suggest::{call_naming, NameKind};
use super::{call, output, Cli, ListArgs};

/// `service` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServiceCmd {
    /// Set up a service's network.
    Up {
        /// Service name.
        name: String,
        /// auto | shared | dedicated.
        #[arg(long, default_value = "auto")]
        mode: ServiceMode,
        /// Replace the service's recorded identity: change its mode, or mint a
        /// new WireGuard key, port and subnet for a dedicated service (peers on
        /// other nodes must then be given the new key).
        #[arg(long)]
        recreate: bool,
    },
    /// Tear a service's network down.
    Down {
        /// Service name.
        name: String,
    },
    /// List services with their networks and attached containers.
    #[command(alias = "list")]
    Ls(ListArgs),
}

/// Run a `service` subcommand.
pub async fn run(cli: &Cli, cmd: &ServiceCmd) -> Result<ExitCode> {
    match cmd {
        ServiceCmd::Up {
            name,
            mode,
            recreate,
        } => {
            call::call_and_print(
                cli,
                Request::SetupServiceOverlay {
                    service: name.clone(),
                    mode: *mode,
                    recreate: *recreate,
                },
            )
            .await
        }
        ServiceCmd::Down { name } => {
            let req = Request::TeardownServiceOverlay {
                service: name.clone(),
            };
            let r = call_naming(cli, req, NameKind::Service, name).await?;
            output::print(&r, &cli.style(false))?;
            Ok(ExitCode::SUCCESS)
        }
        ServiceCmd::Ls(a) => {
            let r = call::call(cli, Request::ListServices).await?;
            output::print(&r, &cli.style(a.quiet))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
