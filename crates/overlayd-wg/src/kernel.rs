//! Kernel backend: an in-kernel `wireguard` link created over rtnetlink and
//! configured with generic netlink (`WG_CMD_SET_DEVICE` / `WG_CMD_GET_DEVICE`).
//!
//! Kernel devices outlive the daemon: on restart [`WgBackend::create_or_adopt`]
//! finds the link by name and keeps it (same ifindex, sessions and peers).

use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

use crate::error::{Result, WgError};
use crate::genl::{self, WgGenl};
use crate::key::KeyBytes;
use crate::netlink::{self, NlSocket};
use crate::ops;
use crate::types::{
    validate_ifname, BackendKind, DeviceConfig, DeviceHandle, DeviceStatus, Disposition, PeerConfig,
};
use crate::uapi::SetRequest;
use crate::worker::Worker;
use crate::WgBackend;

/// The in-kernel WireGuard backend.
pub struct KernelBackend {
    worker: Arc<Worker>,
}

impl KernelBackend {
    /// A backend for the calling thread's network namespace. Fails with
    /// [`WgError::KernelUnavailable`] when the kernel lacks WireGuard.
    pub fn new() -> Result<Self> {
        Self::with_netns(None)
    }

    /// A backend operating inside the network namespace at `netns`.
    pub fn with_netns(netns: Option<&Path>) -> Result<Self> {
        Self::from_worker(Arc::new(Worker::spawn("kernel", netns)?))
    }

    pub(crate) fn from_worker(worker: Arc<Worker>) -> Result<Self> {
        if !worker.run(|| Ok(genl::kernel_available()))? {
            return Err(WgError::KernelUnavailable);
        }
        Ok(KernelBackend { worker })
    }

    fn get(&self, name: &str) -> Result<DeviceStatus> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.worker.run(move || {
            let link = netlink::link_by_name(&NlSocket::route()?, &name)?;
            match link {
                Some(f) if f.kind.as_deref() == Some("wireguard") => WgGenl::open()?.get(&name),
                _ => Err(WgError::NoSuchDevice(name)),
            }
        })
    }

    fn set(&self, name: &str, req: SetRequest) -> Result<()> {
        let name = name.to_string();
        self.worker.run(move || WgGenl::open()?.set(&name, &req))
    }
}

impl WgBackend for KernelBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Kernel
    }

    fn create_or_adopt(&self, cfg: &DeviceConfig) -> Result<DeviceHandle> {
        cfg.validate()?;
        let cfg = cfg.clone();
        let handle = self.worker.run(move || {
            let nl = NlSocket::route()?;
            let wg = WgGenl::open()?;
            let existing = netlink::link_by_name(&nl, &cfg.name)?;
            let fresh = match &existing {
                Some(f) if f.kind.as_deref() == Some("wireguard") => false,
                Some(f) => {
                    return Err(WgError::NameInUse {
                        name: cfg.name.clone(),
                        reason: format!(
                            "is a {} link, not a WireGuard device",
                            f.kind.as_deref().unwrap_or("kind-less")
                        ),
                    })
                }
                None => {
                    netlink::create_wireguard_link(&nl, &cfg.name, cfg.mtu)?;
                    true
                }
            };
            let configure = || -> Result<(u32, Disposition, DeviceStatus)> {
                let facts = netlink::link_by_name(&nl, &cfg.name)?
                    .ok_or_else(|| WgError::NoSuchDevice(cfg.name.clone()))?;
                let current = wg.get(&cfg.name)?;
                let (req, changed) = ops::device_update(&cfg, &current, fresh);
                if !req.is_empty() {
                    wg.set(&cfg.name, &req)?;
                }
                netlink::set_mtu_up(&nl, facts.index, cfg.mtu)?;
                let disposition = match (fresh, changed) {
                    (true, _) => Disposition::Created,
                    (false, false) => Disposition::Adopted,
                    (false, true) => Disposition::Reconfigured,
                };
                Ok((facts.index, disposition, wg.get(&cfg.name)?))
            };
            let (ifindex, disposition, st) = match configure() {
                Ok(v) => v,
                Err(e) => {
                    if fresh {
                        // Roll back the link we just created.
                        if let Ok(Some(f)) = netlink::link_by_name(&nl, &cfg.name) {
                            let _ = netlink::delete_link(&nl, f.index);
                        }
                    }
                    return Err(e);
                }
            };
            Ok(DeviceHandle {
                name: cfg.name.clone(),
                ifindex,
                backend: BackendKind::Kernel,
                disposition,
                public_key: st.public_key.unwrap_or_else(|| cfg.public_key()),
                listen_port: st.listen_port,
            })
        })?;
        tracing::info!(device = %handle.name, ifindex = handle.ifindex, disposition = ?handle.disposition, port = handle.listen_port, "kernel WireGuard device ready");
        Ok(handle)
    }

    fn exists(&self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.worker.run(move || {
            Ok(netlink::link_by_name(&NlSocket::route()?, &name)?
                .is_some_and(|f| f.kind.as_deref() == Some("wireguard")))
        })
    }

    fn delete(&self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        let name = name.to_string();
        self.worker.run(move || {
            let nl = NlSocket::route()?;
            match netlink::link_by_name(&nl, &name)? {
                Some(f) if f.kind.as_deref() == Some("wireguard") => {
                    netlink::delete_link(&nl, f.index)
                }
                Some(_) => Err(WgError::NameInUse {
                    name: name.clone(),
                    reason: "is not a WireGuard device; refusing to delete it".into(),
                }),
                None => Ok(false),
            }
        })
    }

    fn set_peer(&self, name: &str, peer: &PeerConfig) -> Result<()> {
        self.get(name)?;
        self.set(name, ops::peer_update(peer))
    }

    fn remove_peer(&self, name: &str, public_key: &KeyBytes) -> Result<bool> {
        if self.get(name)?.peer(public_key).is_none() {
            return Ok(false);
        }
        self.set(name, ops::peer_removal(public_key)).map(|()| true)
    }

    fn add_allowed_ip(&self, name: &str, public_key: &KeyBytes, net: IpNet) -> Result<()> {
        match ops::allowed_ip_add(name, &self.get(name)?, public_key, net)? {
            Some(req) => self.set(name, req),
            None => Ok(()),
        }
    }

    fn remove_allowed_ip(&self, name: &str, public_key: &KeyBytes, net: IpNet) -> Result<bool> {
        match ops::allowed_ip_removal(name, &self.get(name)?, public_key, net)? {
            Some(req) => self.set(name, req).map(|()| true),
            None => Ok(false),
        }
    }

    fn status(&self, name: &str) -> Result<DeviceStatus> {
        self.get(name)
    }
}
