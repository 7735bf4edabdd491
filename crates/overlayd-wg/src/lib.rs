//! WireGuard backends for overlayd: the node's base overlay and the
//! per-service dedicated overlays are driven through one trait,
//! [`WgBackend`], with two drivers chosen once at start ([`select`]):
//!
//! * [`KernelBackend`] — an in-kernel `wireguard` link (rtnetlink) configured
//!   over generic netlink. Survives daemon restarts and is adopted afterwards.
//! * [`UserspaceBackend`] — overlayd's own WireGuard device (boringtun's
//!   Noise core, our TUN/UDP loops) inside this process,
//!   exposing the standard UAPI socket in a per-instance directory
//!   (`uapi_dir`, e.g. `{run_dir}/wireguard`); see [`wgtool`] for running
//!   `wg show` against it.
//!
//! The trait is synchronous; from async code call it in `spawn_blocking`.
//! Every host-touching call runs on a backend-owned worker thread that may sit
//! in another network namespace ([`select_in`]).

mod device;
pub mod error;
pub mod fake;
mod genl;
pub mod kernel;
pub mod key;
mod netlink;
mod ops;
pub mod sockbuf;
pub mod types;
pub mod uapi;
pub mod userspace;
pub mod wgtool;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

pub use error::{Result, WgError};
pub use fake::FakeWg;
pub use kernel::KernelBackend;
pub use key::{
    format_key, generate_private_key, parse_private_key, parse_public_key, public_key, KeyBytes,
};
pub use types::{
    validate_ifname, BackendKind, DeviceConfig, DeviceHandle, DeviceStatus, Disposition,
    PeerConfig, PeerStatus, DEFAULT_MTU, MAX_IFNAME_LEN,
};
pub use userspace::UserspaceBackend;

/// One WireGuard implementation. All methods are idempotent where the name
/// says so and validate their inputs before touching the host.
pub trait WgBackend: Send + Sync {
    /// Which implementation this is ([`BackendKind::Kernel`] or [`BackendKind::Userspace`]).
    fn kind(&self) -> BackendKind;

    /// Creates device `cfg.name`, or adopts an existing one: a device with the
    /// same key and port is kept as it is (same ifindex, sessions, peers) and
    /// only MTU / fwmark are applied in place; a differing key or port is
    /// changed in place ([`Disposition::Reconfigured`]). The link is brought up.
    fn create_or_adopt(&self, cfg: &DeviceConfig) -> Result<DeviceHandle>;

    /// Whether a device of this backend named `name` exists.
    fn exists(&self, name: &str) -> Result<bool>;

    /// Deletes the device (and, for userspace, its UAPI socket). `Ok(false)`
    /// when there was nothing to delete.
    fn delete(&self, name: &str) -> Result<bool>;

    /// Adds a peer, or replaces its endpoint, keepalive and allowed IPs.
    fn set_peer(&self, name: &str, peer: &PeerConfig) -> Result<()>;

    /// Removes a peer; `Ok(false)` when it was not configured.
    fn remove_peer(&self, name: &str, public_key: &KeyBytes) -> Result<bool>;

    /// Adds one allowed IP to an existing peer (no-op when present).
    fn add_allowed_ip(&self, name: &str, public_key: &KeyBytes, net: IpNet) -> Result<()>;

    /// Removes one allowed IP from a peer; `Ok(false)` when it was not there.
    fn remove_allowed_ip(&self, name: &str, public_key: &KeyBytes, net: IpNet) -> Result<bool>;

    /// Reads the device's key, port and peers.
    fn status(&self, name: &str) -> Result<DeviceStatus>;
}

/// Whether the kernel (in the calling thread's network namespace) offers the
/// `wireguard` generic netlink family.
pub fn kernel_available() -> bool {
    genl::kernel_available()
}

/// Chooses a backend for the calling thread's network namespace.
/// `Auto` picks the kernel when its WireGuard family resolves, else userspace.
/// `uapi_dir` is where userspace devices put their sockets.
pub fn select(kind: BackendKind, uapi_dir: impl Into<PathBuf>) -> Result<Box<dyn WgBackend>> {
    select_in(kind, uapi_dir, None)
}

/// Like [`select`], for the network namespace at `netns` (`None`: the caller's).
pub fn select_in(
    kind: BackendKind,
    uapi_dir: impl Into<PathBuf>,
    netns: Option<&Path>,
) -> Result<Box<dyn WgBackend>> {
    let label = match kind {
        BackendKind::Auto => "auto",
        BackendKind::Kernel => "kernel",
        BackendKind::Userspace => "userspace",
    };
    let uapi_dir: PathBuf = uapi_dir.into();
    let uapi_dir_shown = uapi_dir.display().to_string();
    let worker = Arc::new(worker::Worker::spawn(label, netns)?);
    let backend: Box<dyn WgBackend> = match kind {
        BackendKind::Kernel => Box::new(KernelBackend::from_worker(worker)?),
        BackendKind::Userspace => Box::new(UserspaceBackend::from_worker(uapi_dir.clone(), worker)),
        BackendKind::Auto => match KernelBackend::from_worker(Arc::clone(&worker)) {
            Ok(k) => Box::new(k),
            Err(WgError::KernelUnavailable) => {
                tracing::info!("kernel WireGuard unavailable; using the userspace backend");
                Box::new(UserspaceBackend::from_worker(uapi_dir.clone(), worker))
            }
            Err(e) => return Err(e),
        },
    };
    tracing::info!(
        backend = %backend.kind(),
        uapi_dir = %uapi_dir_shown,
        netns = netns.map(|p| tracing::field::display(p.display())),
        "WireGuard backend selected"
    );
    Ok(backend)
}
