//! `overlayd iso up NET [--subnet] | down NET`: isolation networks.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::Request;

use super::{call, Cli};

/// `iso` subcommands.
#[derive(Debug, Subcommand)]
pub enum IsoCmd {
    /// Create (or confirm) an isolation network.
    Up {
        /// Network name.
        net: String,
        /// Subnet to use (default: the next free one from the local pool).
        #[arg(long)]
        subnet: Option<String>,
        /// No route or NAT to outside the host: members reach each other,
        /// the gateway and DNS only.
        #[arg(long)]
        internal: bool,
    },
    /// Remove an isolation network.
    Down {
        /// Network name.
        net: String,
    },
}

/// Run an `iso` subcommand.
pub async fn run(cli: &Cli, cmd: &IsoCmd) -> Result<ExitCode> {
    let req = match cmd {
        IsoCmd::Up {
            net,
            subnet,
            internal,
        } => Request::SetupIsolationNetwork {
            network: net.clone(),
            subnet: subnet.clone(),
            internal: *internal,
        },
        IsoCmd::Down { net } => Request::TeardownIsolationNetwork {
            network: net.clone(),
        },
    };
    call::call_and_print(cli, req).await
}
