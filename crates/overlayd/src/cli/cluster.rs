//! `overlayd cluster status | leave`: cluster mode on etcd.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::{ClusterMemberView, Request};

use super::output::{line, render_table};
use super::{call, Cli};

/// `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCmd {
    /// Members (name, slice, endpoint, public key, last seen), this node's
    /// leases and etcd health.
    Status,
    /// Leave gracefully: drop this node's presence now (other nodes remove
    /// its peers after their grace period); keep the slice lease unless --release.
    Leave {
        /// Also give up the slice and service subnet leases.
        #[arg(long)]
        release: bool,
    },
}

/// Run a `cluster` subcommand.
pub async fn run(cli: &Cli, cmd: &ClusterCmd) -> Result<ExitCode> {
    let req = match cmd {
        ClusterCmd::Status => Request::ClusterStatus,
        ClusterCmd::Leave { release } => Request::ClusterLeave { release: *release },
    };
    call::call_and_print(cli, req).await
}

/// Human output of `cluster status`.
pub fn print_status(
    node_name: &str,
    degraded: bool,
    reason: &str,
    slice: Option<&str>,
    subnets: &std::collections::BTreeMap<String, String>,
    members: &[ClusterMemberView],
) -> Result<()> {
    let health = if degraded {
        format!("DEGRADED ({reason})")
    } else {
        "ok".into()
    };
    line(&format!(
        "node {node_name}: etcd {health}; slice lease {}",
        slice.unwrap_or("-")
    ))?;
    for (net, s) in subnets {
        line(&format!("subnet lease {net}: {s}"))?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.slice.clone(),
                m.endpoint.clone(),
                m.public_key.clone(),
                format!("{}s ago", now.saturating_sub(m.last_seen)),
                m.state.clone(),
            ]
        })
        .collect();
    for l in render_table(
        &[
            "NAME",
            "SLICE",
            "ENDPOINT",
            "PUBLIC KEY",
            "LAST SEEN",
            "STATE",
        ],
        &rows,
    ) {
        line(&l)?;
    }
    Ok(())
}
