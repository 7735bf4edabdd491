//! Userspace backend: overlayd's own WireGuard device (the `device`
//! module: a TUN interface and UDP sockets around boringtun's Noise core)
//! inside this process.
//!
//! Each device is created on the backend's worker thread (see the `worker`
//! module), so its TUN queue, UDP sockets and threads live in the worker's
//! network namespace, and it serves the standard UAPI socket as
//! `{uapi_dir}/{name}.sock`. All configuration — ours and `wg set`'s — goes
//! through that socket, so status and peers look the same whoever
//! configured the device, and edits never reset a peer's session.
//!
//! A userspace device lives only as long as this process (the TUN file
//! descriptor is not persistent); after a restart [`WgBackend::create_or_adopt`]
//! recreates it with the same name, key and port.

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::device::Device;
use crate::error::{Result, WgError};
use crate::key::KeyBytes;
use crate::netlink::{self, NlSocket};
use crate::ops;
use crate::types::{
    validate_ifname, BackendKind, DeviceConfig, DeviceHandle, DeviceStatus, Disposition, PeerConfig,
};
use crate::uapi;
use crate::worker::Worker;
use crate::WgBackend;

/// How long to wait for a TUN link to disappear after its device stopped.
const LINK_GONE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait, at create, for a TUN link of the device's name that
/// this instance does not run to go away: right after a `kill -9` the dead
/// process's TUN device lingers until the kernel has closed its last file
/// descriptor.
pub const TUN_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// A device this backend runs.
struct Running {
    ifindex: u32,
    /// Dropping it stops the device's threads and closes its TUN.
    device: Device,
}

/// The userspace WireGuard backend.
pub struct UserspaceBackend {
    worker: Arc<Worker>,
    uapi_dir: PathBuf,
    devices: Mutex<HashMap<String, Running>>,
}

impl UserspaceBackend {
    /// A backend serving UAPI sockets in `uapi_dir` and creating devices in
    /// the calling thread's network namespace.
    pub fn new(uapi_dir: impl Into<PathBuf>) -> Result<Self> {
        Self::with_netns(uapi_dir, None)
    }

    /// Like [`UserspaceBackend::new`], but devices are created inside the
    /// network namespace at `netns` (e.g. `/run/netns/<name>`).
    pub fn with_netns(uapi_dir: impl Into<PathBuf>, netns: Option<&Path>) -> Result<Self> {
        let worker = Arc::new(Worker::spawn("userspace", netns)?);
        Ok(Self::from_worker(uapi_dir.into(), worker))
    }

    pub(crate) fn from_worker(uapi_dir: PathBuf, worker: Arc<Worker>) -> Self {
        UserspaceBackend {
            worker,
            uapi_dir,
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// The directory holding this instance's UAPI sockets.
    pub fn uapi_dir(&self) -> &Path {
        &self.uapi_dir
    }

    /// The UAPI socket path of device `name`.
    pub fn socket_path(&self, name: &str) -> PathBuf {
        uapi::socket_path(&self.uapi_dir, name)
    }

    /// Names of the devices this backend instance is running.
    pub fn running(&self) -> Vec<String> {
        self.lock()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<String, Running>>> {
        self.devices.lock().map_err(|_| WgError::WorkerGone)
    }

    fn ensure_dir(&self) -> Result<()> {
        let err = |e| WgError::io(format!("creating UAPI dir {}", self.uapi_dir.display()), e);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.uapi_dir)
            .map_err(err)?;
        std::fs::set_permissions(&self.uapi_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(err)
    }

    fn link(&self, name: &str) -> Result<Option<netlink::LinkFacts>> {
        let name = name.to_string();
        self.worker
            .run(move || netlink::link_by_name(&NlSocket::route()?, &name))
    }

    /// Starts a new device (on the worker thread, in its namespace).
    fn start(&self, cfg: &DeviceConfig) -> Result<Running> {
        let name = cfg.name.clone();
        let socket = self.socket_path(&cfg.name);
        let (device, ifindex) = self.worker.run(move || {
            let device = Device::start(&name, &socket)?;
            let facts = netlink::link_by_name(&NlSocket::route()?, &name)?.ok_or_else(|| {
                WgError::Userspace {
                    name: name.clone(),
                    detail: "TUN link vanished right after creation".into(),
                }
            })?;
            Ok((device, facts.index))
        })?;
        Ok(Running { ifindex, device })
    }

    fn configure(&self, cfg: &DeviceConfig, ifindex: u32, fresh: bool) -> Result<Disposition> {
        let path = self.socket_path(&cfg.name);
        let current = uapi::get(&path)?;
        let (req, changed) = ops::device_update(cfg, &current, fresh);
        if !req.is_empty() {
            uapi::set(&path, &req)?;
        }
        let mtu = cfg.mtu;
        self.worker
            .run(move || netlink::set_mtu_up(&NlSocket::route()?, ifindex, mtu))?;
        Ok(match (fresh, changed) {
            (true, _) => Disposition::Created,
            (false, false) => Disposition::Adopted,
            (false, true) => Disposition::Reconfigured,
        })
    }

    fn stop(&self, name: &str, running: Running) -> Result<()> {
        let ifindex = running.ifindex;
        tracing::debug!(device = name, socket = %running.device.socket().display(), "stopping userspace device");
        // Joins the device's threads and closes its TUN descriptor.
        drop(running);
        let deadline = Instant::now() + LINK_GONE_TIMEOUT;
        loop {
            match self.link(name)? {
                Some(f) if f.index == ifindex => {}
                _ => return Ok(()),
            }
            if Instant::now() >= deadline {
                // Still there (someone else holds the TUN open): remove the link directly.
                self.worker
                    .run(move || netlink::delete_link(&NlSocket::route()?, ifindex))?;
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A TUN link of this name that this instance does not run is the
    /// device of a process that died (a restart right after `kill -9`): it
    /// goes away once the kernel has released the dead process's file
    /// descriptor, so wait for that (up to [`TUN_RELEASE_TIMEOUT`]) instead
    /// of refusing. Links of other kinds are never waited for.
    fn wait_for_released_tun(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + TUN_RELEASE_TIMEOUT;
        let mut waited = false;
        loop {
            match self.link(name)? {
                Some(f) if f.kind.as_deref() == Some("tun") => {}
                _ => {
                    if waited {
                        tracing::info!(
                            device = name,
                            "previous process's TUN device released; recreating it"
                        );
                    }
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Ok(()); // create_or_adopt then refuses it as not ours
            }
            if !waited {
                tracing::info!(device = name, "TUN device of a previous process still exists; waiting for the kernel to release it");
                waited = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn path_for(&self, name: &str) -> Result<PathBuf> {
        validate_ifname(name)?;
        if self.lock()?.contains_key(name) {
            Ok(self.socket_path(name))
        } else {
            Err(WgError::NoSuchDevice(name.to_string()))
        }
    }
}

impl WgBackend for UserspaceBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Userspace
    }

    fn create_or_adopt(&self, cfg: &DeviceConfig) -> Result<DeviceHandle> {
        cfg.validate()?;
        self.ensure_dir()?;
        if !self.lock()?.contains_key(&cfg.name) {
            self.wait_for_released_tun(&cfg.name)?;
        }
        let mut devices = self.lock()?;
        let live = self.link(&cfg.name)?;
        let adopt = match (devices.get(&cfg.name), &live) {
            (Some(r), Some(f)) if r.ifindex == f.index => Some(r.ifindex),
            (Some(_), _) => {
                // Our device's link was removed behind our back: forget it.
                if let Some(stale) = devices.remove(&cfg.name) {
                    drop(stale);
                }
                None
            }
            (None, Some(f)) => {
                return Err(WgError::NameInUse {
                    name: cfg.name.clone(),
                    reason: format!(
                        "is a {} link not run by this overlayd instance",
                        f.kind.as_deref().unwrap_or("non-WireGuard")
                    ),
                })
            }
            (None, None) => None,
        };
        let (ifindex, disposition) = match adopt {
            Some(ifindex) => (ifindex, self.configure(cfg, ifindex, false)?),
            None => {
                let running = self.start(cfg)?;
                let ifindex = running.ifindex;
                match self.configure(cfg, ifindex, true) {
                    Ok(d) => {
                        devices.insert(cfg.name.clone(), running);
                        (ifindex, d)
                    }
                    Err(e) => {
                        // Roll back: leave no half-configured device behind.
                        if let Err(stop_err) = self.stop(&cfg.name, running) {
                            tracing::warn!(device = %cfg.name, error = %stop_err, "rollback failed");
                        }
                        return Err(e);
                    }
                }
            }
        };
        drop(devices);
        let st = uapi::get(&self.socket_path(&cfg.name))?;
        tracing::info!(device = %cfg.name, ifindex, ?disposition, port = st.listen_port, "userspace WireGuard device ready");
        Ok(DeviceHandle {
            name: cfg.name.clone(),
            ifindex,
            backend: BackendKind::Userspace,
            disposition,
            public_key: st.public_key.unwrap_or_else(|| cfg.public_key()),
            listen_port: st.listen_port,
        })
    }

    fn exists(&self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        let ours = self.lock()?.get(name).map(|r| r.ifindex);
        Ok(match (ours, self.link(name)?) {
            (Some(i), Some(f)) => i == f.index,
            _ => false,
        })
    }

    fn delete(&self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        let running = self.lock()?.remove(name);
        match running {
            Some(r) => {
                self.stop(name, r)?;
                Ok(true)
            }
            None => {
                // Not ours any more; still clear a stale socket file of this instance.
                let _ = std::fs::remove_file(self.socket_path(name));
                Ok(false)
            }
        }
    }

    fn set_peer(&self, name: &str, peer: &PeerConfig) -> Result<()> {
        uapi::set(&self.path_for(name)?, &ops::peer_update(peer))
    }

    fn remove_peer(&self, name: &str, public_key: &KeyBytes) -> Result<bool> {
        let path = self.path_for(name)?;
        let st = uapi::get(&path)?;
        if st.peer(public_key).is_none() {
            return Ok(false);
        }
        uapi::set(&path, &ops::peer_removal(public_key))?;
        Ok(true)
    }

    fn add_allowed_ip(&self, name: &str, public_key: &KeyBytes, net: IpNet) -> Result<()> {
        let path = self.path_for(name)?;
        let req = ops::allowed_ip_add(name, &uapi::get(&path)?, public_key, net)?;
        if let Some(req) = req {
            uapi::set(&path, &req)?;
        }
        Ok(())
    }

    fn remove_allowed_ip(&self, name: &str, public_key: &KeyBytes, net: IpNet) -> Result<bool> {
        let path = self.path_for(name)?;
        match ops::allowed_ip_removal(name, &uapi::get(&path)?, public_key, net)? {
            Some(req) => uapi::set(&path, &req).map(|()| true),
            None => Ok(false),
        }
    }

    fn status(&self, name: &str) -> Result<DeviceStatus> {
        uapi::get(&self.path_for(name)?)
    }
}

impl Drop for UserspaceBackend {
    fn drop(&mut self) {
        let devices = match self.devices.get_mut() {
            Ok(d) => std::mem::take(d),
            Err(_) => return,
        };
        for (name, running) in devices {
            if let Err(e) = self.stop(&name, running) {
                tracing::warn!(device = %name, error = %e, "stopping userspace device failed");
            }
        }
    }
}
