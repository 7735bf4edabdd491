//! `overlayd wg show [base|SERVICE|service:NAME|DEV]`: this instance's
//! WireGuard devices, printed like wg(8) prints them. Names resolve through
//! the daemon's network list (`base`, a service name, an owner key or the
//! device itself), so nobody has to know the hashed device names. Devices
//! are read directly: a userspace device through its UAPI socket in the
//! instance's `{run_dir}/wireguard`, a kernel device over generic netlink.
//!
//! Any other `wg` arguments (`overlayd wg showconf DEV`, `overlayd wg show
//! DEV peers`) still run wg(8) in a private mount namespace where that
//! directory is `/run/wireguard`, with the device name resolved the same way.

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use overlayd_proto::{Request, Response};
use overlayd_wg::{format_key, DeviceStatus, KernelBackend, WgBackend, WgError};
use serde::Serialize;

use super::exit::{classify, Exit, Failure};
use super::output::{self, Column};
use super::run::resolve_config;
use super::{call, network, Cli, WgArgs};
use crate::outln;

/// One device as `overlayd wg show --json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct WgDeviceView {
    /// Owner of the network the device carries (`base`, `service:db`), or
    /// `-` when the daemon could not be asked.
    pub owner: String,
    /// Device name.
    pub interface: String,
    /// Base64 public key.
    pub public_key: Option<String>,
    /// UDP listen port.
    pub listen_port: u16,
    /// Firewall mark.
    pub fwmark: Option<u32>,
    /// Peers.
    pub peers: Vec<WgPeerView>,
}

/// One peer of a [`WgDeviceView`].
#[derive(Debug, Clone, Serialize)]
pub struct WgPeerView {
    /// Base64 public key.
    pub public_key: String,
    /// Current endpoint.
    pub endpoint: Option<String>,
    /// Allowed IPs.
    pub allowed_ips: Vec<String>,
    /// Last handshake, Unix seconds (0 = never).
    pub latest_handshake_unix_secs: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
}

/// The `--json` payload: every device shown.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    devices: &'a [WgDeviceView],
}

/// Run `overlayd wg …`.
pub async fn run(cli: &Cli, args: &WgArgs) -> Result<ExitCode> {
    let cfg = resolve_config(cli, args.config.as_deref())?;
    let uapi_dir = cfg.run_dir().join("wireguard");
    let a: Vec<&str> = args.args.iter().map(String::as_str).collect();
    match a.as_slice() {
        [] | ["show"] | ["show", "all"] => show(cli, &uapi_dir, None, false).await,
        ["show", "interfaces"] => show(cli, &uapi_dir, None, true).await,
        ["show", target] => show(cli, &uapi_dir, Some(target), false).await,
        [verb, target, rest @ ..] if !target.starts_with('-') => {
            let devs = devices(cli, Some(target)).await?;
            let dev = devs.first().map(|(_, d)| d.as_str()).unwrap_or(target);
            let mut full = vec![*verb, dev];
            full.extend(rest);
            passthrough(&uapi_dir, &full)
        }
        other => passthrough(&uapi_dir, other),
    }
}

/// Print the resolved devices.
async fn show(
    cli: &Cli,
    uapi_dir: &Path,
    target: Option<&str>,
    names_only: bool,
) -> Result<ExitCode> {
    let devs = devices(cli, target).await?;
    let dir = uapi_dir.to_path_buf();
    let views = tokio::task::spawn_blocking(move || {
        devs.into_iter()
            .map(|(owner, dev)| read(&dir, &owner, &dev))
            .collect::<Result<Vec<_>>>()
    })
    .await??;
    let style = cli.style(names_only);
    if style.json || style.quiet || style.format.is_some() {
        let columns = [
            Column {
                header: "INTERFACE",
                cell: |d: &WgDeviceView| d.interface.clone(),
            },
            Column {
                header: "OWNER",
                cell: |d: &WgDeviceView| d.owner.clone(),
            },
        ];
        output::list(
            &style,
            &Payload { devices: &views },
            &views,
            &columns,
            |d| d.interface.clone(),
        )?;
    } else {
        let now = SystemTime::now();
        for (i, v) in views.iter().enumerate() {
            if i > 0 {
                outln!()?;
            }
            print_device(v, now)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `(owner, device)` pairs for `target` (every device when `None`).
async fn devices(cli: &Cli, target: Option<&str>) -> Result<Vec<(String, String)>> {
    let networks = match call::call(cli, Request::ListNetworks).await {
        Ok(Response::Networks { networks }) => networks,
        Ok(_) => anyhow::bail!("unexpected answer to list_networks"),
        // Without a daemon a device name still works (the device may
        // outlive it); anything else needs the daemon's names.
        Err(e) if classify(&e) == Exit::Unreachable => match target {
            Some(dev) if overlayd_wg::validate_ifname(dev).is_ok() => {
                return Ok(vec![("-".into(), dev.to_string())])
            }
            _ => return Err(e),
        },
        Err(e) => return Err(e),
    };
    let Some(target) = target else {
        return Ok(networks
            .into_iter()
            .filter_map(|n| n.interface.map(|d| (n.owner, d)))
            .collect());
    };
    let view = match network::resolve(networks, target) {
        Ok(v) => v,
        Err(e) => return Err(shared_service_hint(cli, target, e).await),
    };
    match view.interface {
        Some(dev) => Ok(vec![(view.owner, dev)]),
        None => Err(Failure::new(
            Exit::NotFound,
            format!(
                "{} has no WireGuard device of its own: its traffic to other nodes goes over the base overlay; try `overlayd wg show base`",
                view.owner
            ),
        )
        .into()),
    }
}

/// A shared service has no network of its own; say so instead of "no
/// network" when `target` names one.
async fn shared_service_hint(cli: &Cli, target: &str, e: anyhow::Error) -> anyhow::Error {
    let name = target.strip_prefix("service:").unwrap_or(target);
    if let Ok(Response::Services { services }) = call::call(cli, Request::ListServices).await {
        if services.iter().any(|s| s.name == name) {
            return Failure::new(
                Exit::NotFound,
                format!(
                    "service {name:?} has no WireGuard device of its own (it is shared or not set up on this node): its traffic to other nodes goes over the base overlay; try `overlayd wg show base`"
                ),
            )
            .into();
        }
    }
    e
}

/// Read one device: through its UAPI socket when it is a userspace device
/// of this instance, else from the kernel.
fn read(uapi_dir: &Path, owner: &str, dev: &str) -> Result<WgDeviceView> {
    let sock = overlayd_wg::uapi::socket_path(uapi_dir, dev);
    let status = if sock.exists() {
        overlayd_wg::uapi::get(&sock)
            .with_context(|| format!("cannot read {dev} through {}", sock.display()))?
    } else {
        let kernel = KernelBackend::new().with_context(|| {
            format!(
                "WireGuard device {dev} has no UAPI socket in {} and the kernel has no WireGuard",
                uapi_dir.display()
            )
        })?;
        match kernel.status(dev) {
            Ok(s) => s,
            Err(WgError::NoSuchDevice(_)) => {
                return Err(Failure::new(
                    Exit::NotFound,
                    format!(
                        "WireGuard device {dev} does not exist in this network namespace; `overlayd doctor --fix` recreates a recorded one"
                    ),
                )
                .into())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {dev}")),
        }
    };
    Ok(view(owner, dev, status))
}

fn view(owner: &str, dev: &str, s: DeviceStatus) -> WgDeviceView {
    WgDeviceView {
        owner: owner.to_string(),
        interface: dev.to_string(),
        public_key: s.public_key.as_ref().map(format_key),
        listen_port: s.listen_port,
        fwmark: s.fwmark,
        peers: s
            .peers
            .into_iter()
            .map(|p| WgPeerView {
                public_key: format_key(&p.public_key),
                endpoint: p.endpoint.map(|e| e.to_string()),
                allowed_ips: p.allowed_ips.iter().map(ToString::to_string).collect(),
                latest_handshake_unix_secs: p
                    .last_handshake
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                persistent_keepalive: p.persistent_keepalive.filter(|k| *k > 0),
            })
            .collect(),
    }
}

/// The wg(8) layout, with the owner added.
fn print_device(v: &WgDeviceView, now: SystemTime) -> Result<()> {
    outln!("interface: {}", v.interface)?;
    outln!("  overlay: {}", v.owner)?;
    if let Some(k) = &v.public_key {
        outln!("  public key: {k}")?;
        outln!("  private key: (hidden)")?;
    }
    outln!("  listening port: {}", v.listen_port)?;
    if let Some(m) = v.fwmark {
        outln!("  fwmark: {m:#x}")?;
    }
    for p in &v.peers {
        outln!()?;
        outln!("peer: {}", p.public_key)?;
        if let Some(e) = &p.endpoint {
            outln!("  endpoint: {e}")?;
        }
        let ips = if p.allowed_ips.is_empty() {
            "(none)".to_string()
        } else {
            p.allowed_ips.join(", ")
        };
        outln!("  allowed ips: {ips}")?;
        let secs = i64::try_from(p.latest_handshake_unix_secs).unwrap_or(i64::MAX);
        outln!("  latest handshake: {}", output::ago_unix(secs, now))?;
        if p.rx_bytes > 0 || p.tx_bytes > 0 {
            outln!(
                "  transfer: {} received, {} sent",
                bytes(p.rx_bytes),
                bytes(p.tx_bytes)
            )?;
        }
        if let Some(k) = p.persistent_keepalive {
            outln!("  persistent keepalive: every {k} seconds")?;
        }
    }
    Ok(())
}

/// Bytes as wg(8) shows them: B, KiB, MiB, GiB, TiB with two decimals.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// Run wg(8) with `args` against this instance's devices.
fn passthrough(uapi_dir: &Path, args: &[&str]) -> Result<ExitCode> {
    let mut cmd = if uapi_dir.is_dir() {
        overlayd_wg::wgtool::wg_command(uapi_dir).context("cannot prepare wg")?
    } else {
        std::process::Command::new("wg")
    };
    let status = cmd
        .args(args)
        .status()
        .context("cannot run wg (is wireguard-tools installed?)")?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_like_wg() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.00 MiB");
    }
}
