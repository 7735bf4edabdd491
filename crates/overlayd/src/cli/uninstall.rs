//! `overlayd uninstall [--purge]`: stop a running daemon (networks stay);
//! with `--purge` also delete every host object and file of overlayd. With
//! no daemon and no `--purge` it says so and creates nothing.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use overlayd_client::Client;
use overlayd_proto::Request;
use overlayd_state::InstanceLock;

use super::run::{require_privileges, resolve_config};
use super::{Cli, UninstallArgs};
use crate::daemon::purge;
use crate::outln;

/// How long to wait for a running daemon to let go of its lock.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Stop the daemon, then purge if asked.
pub async fn uninstall(cli: &Cli, args: &UninstallArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    if args.purge {
        require_privileges("uninstall --purge")?;
    }
    let lock_path = overlayd_state::DataDir::new(&cfg.data_dir).lock_path();
    let asked = match Client::connect(&cfg.socket).await {
        Ok(_) if args.purge && !lock_path.exists() => {
            // Every daemon keeps a lock file in its data dir: the one on
            // this socket keeps its state elsewhere, and a purge here would
            // remove nothing of it and leave its networks.
            bail!(
                "the daemon on {} does not use {} (no lock file there); nothing was stopped or purged — \
                 run `overlayd --socket {} --data-dir <its data dir> uninstall --purge`",
                cfg.socket.display(),
                cfg.data_dir.display(),
                cfg.socket.display()
            );
        }
        Ok(mut c) => {
            let _ = c
                .call_timeout(Request::Shutdown, Duration::from_secs(10))
                .await;
            outln!("asked the running daemon to stop")?;
            true
        }
        Err(_) => false,
    };
    if !args.purge && !asked && !lock_path.exists() {
        outln!(
            "overlayd is not running (nothing listens on {}) and {} holds no state; nothing to stop",
            cfg.socket.display(),
            cfg.data_dir.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let lock = wait_for_lock(&cfg.data_dir).await?;
    if !args.purge {
        drop(lock);
        if asked {
            outln!("overlayd stopped; host networks, marker, store and keys left in place (use --purge to remove them)")?;
        } else {
            outln!("overlayd was not running; host networks, marker, store and keys left in place (use --purge to remove them)")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let host_cfg = overlayd_host::LinuxHostConfig {
        nft_table: purge::nft_table(&cfg),
        ..cfg.host_config()
    };
    let host = overlayd_host::LinuxHost::with_config(host_cfg)
        .await
        .context("cannot open netlink")?;
    let report = purge::purge(&cfg, Arc::new(host), lock).await;
    for line in &report.lines {
        outln!("{line}")?;
    }
    let _ = std::fs::remove_file(&cfg.socket);
    if report.errors.is_empty() {
        if report.kept_other_instances > 0 {
            outln!(
                "purge complete: nothing of the instance using {} is left; {} link(s) of other overlayd instances were kept (purge each with its own --data-dir)",
                cfg.data_dir.display(),
                report.kept_other_instances
            )?;
        } else {
            outln!("purge complete: nothing of overlayd is left on this host")?;
        }
        Ok(ExitCode::SUCCESS)
    } else {
        for e in &report.errors {
            eprintln!("overlayd: purge error: {e}");
        }
        bail!(
            "purge finished with {} error(s); fix them and run `overlayd uninstall --purge` again (it is idempotent)",
            report.errors.len()
        )
    }
}

/// Acquire the instance lock, waiting for a stopping daemon to release it.
async fn wait_for_lock(data_dir: &std::path::Path) -> Result<InstanceLock> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match InstanceLock::acquire(data_dir) {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "waiting for the daemon to stop");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => bail!("{e}; the daemon did not stop within {STOP_TIMEOUT:?}"),
        }
    }
}
