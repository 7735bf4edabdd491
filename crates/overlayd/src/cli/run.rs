//! `overlayd run`: resolve the configuration and run the daemon.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::{Cli, RunArgs};
use crate::config::Config;
use crate::daemon::{self, RunOptions};

/// Resolve configuration from file and flags.
pub fn resolve_config(cli: &Cli, file: Option<&std::path::Path>) -> Result<Config> {
    let mut cfg = match file {
        Some(f) => Config::from_file(f)?,
        None => Config::default(),
    };
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    if cli.socket.as_os_str() != overlayd_client::DEFAULT_SOCKET || file.is_none() {
        cfg.socket = cli.socket.clone();
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Run the daemon in the current network namespace.
pub async fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    let host = overlayd_host::LinuxHost::new()
        .await
        .context("cannot open netlink")?;
    let kind: overlayd_wg::BackendKind = cfg
        .wg_backend
        .parse()
        .map_err(|e| anyhow::anyhow!("wg_backend: {e}"))?;
    let uapi_dir = cfg.run_dir().join("wireguard");
    let wg = overlayd_wg::select(kind, &uapi_dir).context("cannot start the WireGuard backend")?;
    tracing::info!(backend = %wg.kind(), uapi_dir = %uapi_dir.display(), "WireGuard backend selected");
    daemon::run(
        cfg,
        RunOptions {
            no_gc: args.no_gc,
            rebuild_store: args.rebuild_store,
        },
        Arc::new(host),
        Arc::from(wg),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
