//! An in-memory [`WgBackend`] for tests of the daemon's logic without root:
//! devices and peers live in a map, and every call is recorded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use ipnet::IpNet;

use crate::error::{Result, WgError};
use crate::key::{public_key, KeyBytes};
use crate::types::{
    BackendKind, DeviceConfig, DeviceHandle, DeviceStatus, Disposition, PeerConfig, PeerStatus,
};
use crate::WgBackend;

#[derive(Debug, Clone)]
struct FakeDevice {
    private_key: KeyBytes,
    listen_port: u16,
    ifindex: u32,
    peers: Vec<PeerStatus>,
}

/// In-memory WireGuard backend.
#[derive(Debug, Default)]
pub struct FakeWg {
    devices: Mutex<BTreeMap<String, FakeDevice>>,
    calls: Mutex<Vec<String>>,
    next_index: Mutex<u32>,
    fail_set_peer: std::sync::atomic::AtomicBool,
    fail_delete: std::sync::atomic::AtomicBool,
}

impl FakeWg {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    /// Names of the calls made so far (`create_or_adopt:wg0`, …).
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Names of the devices that exist.
    pub fn devices(&self) -> Vec<String> {
        self.devices
            .lock()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Make the next `set_peer` fail (to test rollback).
    pub fn fail_next_set_peer(&self) {
        self.fail_set_peer
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Make the next `delete` fail (the device stays).
    pub fn fail_next_delete(&self) {
        self.fail_delete
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Set a peer's last handshake (as if the peer had talked to us).
    pub fn set_handshake(
        &self,
        name: &str,
        public_key: &KeyBytes,
        at: Option<std::time::SystemTime>,
    ) {
        let _ = self.with_device(name, |d| {
            if let Some(p) = d.peers.iter_mut().find(|p| &p.public_key == public_key) {
                p.last_handshake = at;
            }
        });
    }

    /// Set a peer's live endpoint (as if it had roamed).
    pub fn set_endpoint(&self, name: &str, public_key: &KeyBytes, at: std::net::SocketAddr) {
        let _ = self.with_device(name, |d| {
            if let Some(p) = d.peers.iter_mut().find(|p| &p.public_key == public_key) {
                p.endpoint = Some(at);
            }
        });
    }

    /// Peers of a device (empty if the device does not exist).
    pub fn peers(&self, name: &str) -> Vec<PeerStatus> {
        self.with_device(name, |d| d.peers.clone())
            .unwrap_or_default()
    }

    fn record(&self, what: &str, name: &str) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("{what}:{name}"));
        }
    }

    fn with_device<T>(&self, name: &str, f: impl FnOnce(&mut FakeDevice) -> T) -> Result<T> {
        let mut devs = self
            .devices
            .lock()
            .map_err(|_| WgError::InvalidConfig("fake backend lock poisoned".into()))?;
        let dev = devs
            .get_mut(name)
            .ok_or_else(|| WgError::NoSuchDevice(name.to_string()))?;
        Ok(f(dev))
    }
}

impl WgBackend for FakeWg {
    fn kind(&self) -> BackendKind {
        BackendKind::Userspace
    }

    fn create_or_adopt(&self, cfg: &DeviceConfig) -> Result<DeviceHandle> {
        cfg.validate()?;
        self.record("create_or_adopt", &cfg.name);
        let mut devs = self
            .devices
            .lock()
            .map_err(|_| WgError::InvalidConfig("fake backend lock poisoned".into()))?;
        let disposition = match devs.get_mut(&cfg.name) {
            Some(d) if d.private_key == cfg.private_key && d.listen_port == cfg.listen_port => {
                Disposition::Adopted
            }
            Some(d) => {
                d.private_key = cfg.private_key;
                d.listen_port = cfg.listen_port;
                Disposition::Reconfigured
            }
            None => {
                let mut n = self
                    .next_index
                    .lock()
                    .map_err(|_| WgError::InvalidConfig("fake backend lock poisoned".into()))?;
                *n += 1;
                devs.insert(
                    cfg.name.clone(),
                    FakeDevice {
                        private_key: cfg.private_key,
                        listen_port: cfg.listen_port,
                        ifindex: 1000 + *n,
                        peers: Vec::new(),
                    },
                );
                Disposition::Created
            }
        };
        let d = &devs[&cfg.name];
        Ok(DeviceHandle {
            name: cfg.name.clone(),
            ifindex: d.ifindex,
            backend: BackendKind::Userspace,
            disposition,
            public_key: public_key(&d.private_key),
            listen_port: d.listen_port,
        })
    }

    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .devices
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false))
    }

    fn delete(&self, name: &str) -> Result<bool> {
        self.record("delete", name);
        if self
            .fail_delete
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(WgError::InvalidConfig("injected delete failure".into()));
        }
        Ok(self
            .devices
            .lock()
            .map(|mut d| d.remove(name).is_some())
            .unwrap_or(false))
    }

    fn set_peer(&self, name: &str, peer: &PeerConfig) -> Result<()> {
        self.record("set_peer", name);
        if self
            .fail_set_peer
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(WgError::InvalidConfig("injected set_peer failure".into()));
        }
        self.with_device(name, |d| {
            d.peers.retain(|p| p.public_key != peer.public_key);
            d.peers.push(PeerStatus {
                public_key: peer.public_key,
                endpoint: peer.endpoint,
                allowed_ips: peer.allowed_ips.clone(),
                persistent_keepalive: peer.persistent_keepalive,
                last_handshake: None,
                rx_bytes: 0,
                tx_bytes: 0,
            });
        })
    }

    fn remove_peer(&self, name: &str, public_key: &KeyBytes) -> Result<bool> {
        self.record("remove_peer", name);
        self.with_device(name, |d| {
            let before = d.peers.len();
            d.peers.retain(|p| &p.public_key != public_key);
            before != d.peers.len()
        })
    }

    fn add_allowed_ip(&self, name: &str, pk: &KeyBytes, net: IpNet) -> Result<()> {
        self.record("add_allowed_ip", name);
        self.with_device(name, |d| {
            if let Some(p) = d.peers.iter_mut().find(|p| &p.public_key == pk) {
                if !p.allowed_ips.contains(&net) {
                    p.allowed_ips.push(net);
                }
            }
        })
    }

    fn remove_allowed_ip(&self, name: &str, pk: &KeyBytes, net: IpNet) -> Result<bool> {
        self.record("remove_allowed_ip", name);
        self.with_device(name, |d| {
            d.peers
                .iter_mut()
                .find(|p| &p.public_key == pk)
                .map(|p| {
                    let before = p.allowed_ips.len();
                    p.allowed_ips.retain(|n| *n != net);
                    before != p.allowed_ips.len()
                })
                .unwrap_or(false)
        })
    }

    fn status(&self, name: &str) -> Result<DeviceStatus> {
        self.with_device(name, |d| DeviceStatus {
            public_key: Some(public_key(&d.private_key)),
            listen_port: d.listen_port,
            fwmark: None,
            peers: d.peers.clone(),
        })
    }
}
