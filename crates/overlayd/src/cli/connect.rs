//! `overlayd connect NET` / `overlayd disconnect NET`: a further network
//! for an attached container, on its own interface (`eth1`, …).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use overlayd_proto::{Request, Response};

use super::attach::Target;
use super::{call, output, Cli};

/// `overlayd connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The network: an isolation network name, or iso:NET, service:NAME, shared-nat.
    pub network: String,
    #[command(flatten)]
    target: Target,
    /// Interface name inside the container (default: the lowest free ethN).
    #[arg(long)]
    pub ifname: Option<String>,
    /// DNS name on that network (default: the container's own name).
    #[arg(long)]
    pub name: Option<String>,
}

/// `overlayd disconnect`.
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// The network the container was connected to.
    pub network: String,
    #[command(flatten)]
    target: Target,
}

/// Connect an attached container to a further network.
pub async fn connect(cli: &Cli, a: &ConnectArgs) -> Result<ExitCode> {
    let req = Request::ConnectContainer {
        handle: a.target.handle(),
        network: a.network.clone(),
        ifname: a.ifname.clone(),
        name: a.name.clone(),
    };
    match call::call(cli, req).await? {
        Response::Attached { ip, .. } if !cli.json && cli.format.is_none() => {
            output::line(&format!("connected to {} with address {ip}", a.network))?;
            Ok(ExitCode::SUCCESS)
        }
        r => {
            output::print(&r, &cli.style(false))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Disconnect a container from a network it was connected to.
pub async fn disconnect(cli: &Cli, a: &DisconnectArgs) -> Result<ExitCode> {
    call::call_and_print(
        cli,
        Request::DisconnectContainer {
            handle: a.target.handle(),
            network: a.network.clone(),
        },
    )
    .await
}
