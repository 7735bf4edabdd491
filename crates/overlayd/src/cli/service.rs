//! `overlayd service up NAME [--mode] | down NAME`.

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
        ServiceCmd::Up { name, mode } => Request::SetupServiceOverlay {
            service: name.clone(),
            mode: *mode,
        },
        ServiceCmd::Down { name } => Request::TeardownServiceOverlay {
            service: name.clone(),
        },
    };
    call::call_and_print(cli, req).await
}
