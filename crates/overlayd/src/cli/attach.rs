//! `overlayd attach` / `overlayd detach`: containers by PID or netns path.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use overlayd_proto::{Handle, PortMapping, Request};

use super::suggest::{call_naming, NameKind};
use super::{call, Cli};

/// Which container.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A process in the container's network namespace.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The container's network namespace file (e.g. /run/netns/c1).
    #[arg(long)]
    pub netns: Option<String>,
}

impl Target {
    pub(crate) fn handle(&self) -> Handle {
        match (&self.pid, &self.netns) {
            (Some(pid), _) => Handle::LinuxPid { pid: *pid },
            (None, Some(path)) => Handle::NetnsPath { path: path.clone() },
            // clap's group makes one of the two required.
            (None, None) => Handle::LinuxPid { pid: 0 },
        }
    }
}

/// `overlayd attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    target: Target,
    /// Service the container belongs to.
    #[arg(long)]
    service: String,
    /// Attach to this isolation network instead of the service's network.
    #[arg(long)]
    iso: Option<String>,
    /// Also reach the node's base overlay.
    #[arg(long)]
    join_global: bool,
    /// DNS name to register for the container.
    #[arg(long)]
    name: Option<String>,
    /// Publish a container port on the host, docker syntax:
    /// [IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|udp|sctp] (repeatable).
    /// Without IP every host address but loopback answers; 127.0.0.1 must
    /// be given explicitly and is then reachable from this host only.
    #[arg(long, short = 'p', value_name = "[IP:]HOST_PORT:CONTAINER_PORT[/PROTO]", value_parser = parse_publish)]
    publish: Vec<PortMapping>,
}

fn parse_publish(s: &str) -> Result<PortMapping, String> {
    s.parse()
}

/// `overlayd detach`.
#[derive(Debug, Args)]
pub struct DetachArgs {
    #[command(flatten)]
    target: Target,
}

/// Attach a container.
pub async fn attach(cli: &Cli, a: &AttachArgs) -> Result<ExitCode> {
    let handle = a.target.handle();
    let req = Request::AttachContainer {
        handle: handle.clone(),
        service: a.service.clone(),
        join_global: a.join_global,
        dns_server: None,
        dns_domain: None,
        isolation: a.iso.clone(),
        name: a.name.clone(),
        publish: a.publish.clone(),
    };
    let (kind, name) = match &a.iso {
        Some(net) => (NameKind::Isolation, net.as_str()),
        None => (NameKind::Service, a.service.as_str()),
    };
    let r = call_naming(cli, req, kind, name).await?;
    if cli.json || cli.format.is_some() {
        super::output::print(&r, &cli.style(false))?;
        return Ok(ExitCode::SUCCESS);
    }
    // People also get what to write into the container's resolv.conf.
    call::call_and_print(cli, Request::InspectAttachment { handle }).await
}

/// Detach a container (idempotent).
pub async fn detach(cli: &Cli, a: &DetachArgs) -> Result<ExitCode> {
    call::call_and_print(
        cli,
        Request::DetachContainer {
            handle: a.target.handle(),
        },
    )
    .await
}
