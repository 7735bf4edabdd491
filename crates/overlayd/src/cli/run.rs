//! `overlayd run`: check privileges, resolve the configuration and run the
//! daemon.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::exit::{Exit, Failure};
use super::{Cli, RunArgs};
use crate::config::Config;
use crate::daemon::{self, RunOptions};

/// Resolve configuration from file and flags.
pub fn resolve_config(cli: &Cli, file: Option<&std::path::Path>) -> Result<Config> {
    let usage = |e: anyhow::Error| Failure::new(Exit::Usage, format!("{e:#}"));
    let mut cfg = match file {
        Some(f) => Config::from_file(f).map_err(usage)?,
        None => Config::default(),
    };
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    if cli.socket.as_os_str() != overlayd_client::DEFAULT_SOCKET || file.is_none() {
        cfg.socket = cli.socket.clone();
    }
    cfg.validate().map_err(usage)?;
    Ok(cfg)
}

/// Capabilities the daemon needs: bit number and name.
const NEEDED_CAPS: &[(u32, &str)] = &[(12, "CAP_NET_ADMIN"), (21, "CAP_SYS_ADMIN")];

/// The effective capability set of this process, from `/proc/self/status`.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Refuse to start `what` without root or the capabilities it needs, with
/// a plain message instead of a netlink `EPERM` deep inside.
pub fn require_privileges(what: &str) -> Result<()> {
    let caps = effective_caps();
    let missing: Vec<&str> = NEEDED_CAPS
        .iter()
        .filter(|(bit, _)| caps & (1 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        Exit::Permission,
        format!(
            "overlayd {what} needs root (or {}): it creates network interfaces, firewall rules and enters network namespaces; run it as root (sudo overlayd {what}) or through the systemd unit",
            missing.join(" and ")
        ),
    )
    .into())
}

/// Run the daemon in the current network namespace.
pub async fn run(cli: &Cli, args: &RunArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    require_privileges("run")?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        protocol = overlayd_proto::PROTOCOL_VERSION,
        config = %cfg.summary(),
        "overlayd starting"
    );
    let host = overlayd_host::LinuxHost::with_config(cfg.host_config())
        .await
        .context("cannot open netlink")?;
    let kind: overlayd_wg::BackendKind = cfg
        .wg_backend
        .parse()
        .map_err(|e| anyhow::anyhow!("wg_backend: {e}"))?;
    let uapi_dir = cfg.run_dir().join("wireguard");
    let wg = overlayd_wg::select(kind, &uapi_dir).context("cannot start the WireGuard backend")?;
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
