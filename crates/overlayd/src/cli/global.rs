//! `overlayd global up | down`: the node's base overlay.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::Request;

use super::{call, Cli};

/// `global` subcommands.
#[derive(Debug, Subcommand)]
pub enum GlobalCmd {
    /// Bring up (or update in place) the base overlay.
    Up {
        /// Cluster CIDR.
        #[arg(long)]
        cidr: String,
        /// This node's slice of the cluster CIDR; without it the address
        /// plan derives one unique to this node (and keeps it).
        #[arg(long)]
        slice: Option<String>,
        /// WireGuard listen port.
        #[arg(long, default_value_t = crate::config::DEFAULT_WG_PORT)]
        port: u16,
        /// Masquerade outbound traffic of the overlay.
        #[arg(long)]
        nat: bool,
        /// Deployment name.
        #[arg(long, default_value = "default")]
        deployment: String,
        /// Instance id.
        #[arg(long, default_value = "cli")]
        instance_id: String,
    },
    /// Tear the base overlay down.
    Down,
}

/// Run a `global` subcommand.
pub async fn run(cli: &Cli, cmd: &GlobalCmd) -> Result<ExitCode> {
    let req = match cmd {
        GlobalCmd::Up {
            cidr,
            slice,
            port,
            nat,
            deployment,
            instance_id,
        } => Request::SetupGlobalOverlay {
            deployment: deployment.clone(),
            instance_id: instance_id.clone(),
            cluster_cidr: cidr.clone(),
            slice_cidr: slice.clone(),
            wg_port: *port,
            nat_enabled: *nat,
        },
        GlobalCmd::Down => Request::TeardownGlobalOverlay,
    };
    call::call_and_print(cli, req).await
}
