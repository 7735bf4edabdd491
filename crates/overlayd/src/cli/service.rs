//! `overlayd service up NAME [--mode] [--recreate] | down NAME`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::{Request, ServiceMode};

use super::{call, Cli};

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
}

/// Run a `service` subcommand.
pub async fn run(cli: &Cli, cmd: &ServiceCmd) -> Result<ExitCode> {
    let req = match cmd {
        ServiceCmd::Up {
            name,
            mode,
            recreate,
        } => Request::SetupServiceOverlay {
            service: name.clone(),
            mode: *mode,
            recreate: *recreate,
        },
        ServiceCmd::Down { name } => Request::TeardownServiceOverlay {
            service: name.clone(),
        },
    };
    call::call_and_print(cli, req).await
}
