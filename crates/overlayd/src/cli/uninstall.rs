//! `overlayd uninstall [--purge]`: stop a running daemon (networks stay);
//! with `--purge` also delete every host object and file of overlayd.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use overlayd_client::Client;
use overlayd_proto::Request;
use overlayd_state::InstanceLock;

use super::run::resolve_config;
use super::{Cli, UninstallArgs};
use crate::daemon::purge;

/// How long to wait for a running daemon to let go of its lock.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Stop the daemon, then purge if asked.
pub async fn uninstall(cli: &Cli, args: &UninstallArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    if let Ok(mut c) = Client::connect(&cfg.socket).await {
        let _ = c
            .call_timeout(Request::Shutdown, Duration::from_secs(10))
            .await;
        println!("asked the running daemon to stop");
    }
    let lock = wait_for_lock(&cfg.data_dir).await?;
    if !args.purge {
        drop(lock);
        println!("overlayd stopped; host networks, marker, store and keys left in place (use --purge to remove them)");
        return Ok(ExitCode::SUCCESS);
    }
    let host = overlayd_host::LinuxHost::new()
        .await
        .context("cannot open netlink")?;
    let report = purge::purge(&cfg, Arc::new(host), lock).await;
    for line in &report.lines {
        println!("{line}");
    }
    let _ = std::fs::remove_file(&cfg.socket);
    if report.errors.is_empty() {
        println!("purge complete: nothing of overlayd is left on this host");
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
