//! `overlayd wg ARGS…`: run wg(8) against this instance's devices. Userspace
//! devices serve their UAPI sockets from the instance's own directory
//! (`{run_dir}/wireguard`), which plain `wg` does not look in; this runs it
//! in a private mount namespace where that directory is `/run/wireguard`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::run::resolve_config;
use super::{Cli, WgArgs};

/// Run `wg` with the given arguments.
pub fn run(cli: &Cli, args: &WgArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    let dir = cfg.run_dir().join("wireguard");
    let mut cmd = if dir.is_dir() {
        overlayd_wg::wgtool::wg_command(&dir).context("cannot prepare wg")?
    } else {
        std::process::Command::new("wg")
    };
    let status = cmd
        .args(&args.args)
        .status()
        .context("cannot run wg (is wireguard-tools installed?)")?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}
