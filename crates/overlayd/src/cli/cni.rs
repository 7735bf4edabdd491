//! `overlayd cni install`: put the CNI plugin where runtimes look for it
//! and write an example network configuration list.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use super::Cli;

/// The plugin's file name (the `type` in a network configuration).
pub const PLUGIN_NAME: &str = "overlayd-cni";

/// `cni` subcommands.
#[derive(Debug, Subcommand)]
pub enum CniCmd {
    /// Install the `overlayd-cni` plugin and an example conflist.
    Install {
        /// Directory runtimes load CNI plugins from.
        #[arg(long, default_value = "/opt/cni/bin")]
        bin_dir: PathBuf,
        /// Directory runtimes read network configurations from.
        #[arg(long, default_value = "/etc/cni/net.d")]
        conf_dir: PathBuf,
        /// Network name (and overlayd service) of the example configuration.
        #[arg(long, default_value = "overlayd")]
        network: String,
        /// Replace an existing example configuration.
        #[arg(long)]
        force: bool,
    },
}

/// Run a `cni` subcommand.
pub fn run(cli: &Cli, cmd: &CniCmd) -> Result<ExitCode> {
    match cmd {
        CniCmd::Install {
            bin_dir,
            conf_dir,
            network,
            force,
        } => {
            let plugin = install_plugin(bin_dir)?;
            println!("installed {}", plugin.display());
            let conf = conf_dir.join(format!("10-{network}.conflist"));
            if conf.exists() && !force {
                println!("kept {} (it exists; --force replaces it)", conf.display());
            } else {
                let body = example_conflist(network, &cli.socket);
                write_atomic(conf_dir, &conf, body.as_bytes(), 0o644)?;
                println!("wrote {}", conf.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The plugin binary to install: `overlayd-cni` beside this executable when
/// it exists, else this executable itself (it runs the plugin when invoked
/// under that name).
fn plugin_source() -> Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find the overlayd executable")?;
    let beside = me.with_file_name(PLUGIN_NAME);
    Ok(if beside.is_file() { beside } else { me })
}

fn install_plugin(bin_dir: &Path) -> Result<PathBuf> {
    let src = plugin_source()?;
    let bytes = std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
    let dest = bin_dir.join(PLUGIN_NAME);
    write_atomic(bin_dir, &dest, &bytes, 0o755)?;
    Ok(dest)
}

/// Write `dest` through a temporary file in the same directory and a
/// rename, so a runtime never executes or reads a half-written file.
fn write_atomic(dir: &Path, dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("cannot move {} into place", dest.display()))?;
    Ok(())
}

/// An example conflist: one `overlayd-cni` plugin on the network `network`
/// (also the overlayd service), every key at its default.
pub fn example_conflist(network: &str, socket: &Path) -> String {
    let v = json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [{
            "type": PLUGIN_NAME,
            "service": network,
            "mode": "auto",
            "join_global": false,
            "dns_name": true,
            "socket": socket,
            "capabilities": {"portMappings": true},
        }],
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_writes_an_executable_plugin_and_a_conflist_once() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let plugin = install_plugin(&bin).unwrap();
        let mode = std::fs::metadata(&plugin).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let conf = example_conflist("web", Path::new("/run/x.sock"));
        let v: serde_json::Value = serde_json::from_str(&conf).unwrap();
        assert_eq!(v["name"], "web");
        assert_eq!(v["plugins"][0]["type"], "overlayd-cni");
        assert_eq!(v["plugins"][0]["socket"], "/run/x.sock");
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(&bin).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
