//! overlayd's own userspace WireGuard device: a TUN interface, UDP sockets
//! and a few threads around boringtun's sans-IO Noise core
//! ([`boringtun::noise::Tunn`]; no boringtun `device` module).
//!
//! * `tx` / `rx` — the packet loops, batched: TUN (TSO super-packets split)
//!   → encrypt → UDP GSO, and UDP (recvmmsg + GRO) → decrypt → TUN (TCP
//!   segments coalesced); `io` — what they share, and the timer tick;
//! * `peer` — peers, session indices and the allowed-IP table, edited in
//!   place so configuration changes never reset a session;
//! * `udp` — the IPv4/IPv6 socket pair of the listen port (`quinn-udp`);
//! * `tun` — opening the TUN interface with offloads (`tun-rs`);
//! * `uapi_server` — the standard UAPI socket (`wg show` / `wg set`).
//!
//! Create a [`Device`] on the thread whose network namespace it should live
//! in: its TUN, sockets and threads (including sockets rebound later by
//! `wg set listen-port`) belong to that namespace.

mod io;
mod peer;
mod rx;
mod tun;
mod tx;
mod uapi_server;
mod udp;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::error::{Result, WgError};
use crate::key::{self, KeyBytes};
use crate::types::{DeviceStatus, PeerStatus};
use crate::uapi::SetRequest;

use self::io::Stop;
use self::peer::{lock, State};
use self::udp::UdpSet;

/// What the device's threads share.
pub(crate) struct Shared {
    /// Interface name, for logs.
    name: String,
    /// The TUN queue (non-blocking, virtio-net headers).
    tun: tun::SyncDevice,
    /// Stops the TUN and timer threads.
    stop: Stop,
    /// Keys, peers, routes and sockets.
    state: RwLock<State>,
}

impl Shared {
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies one UAPI `set` request with wg(8) semantics; the answer is
    /// an errno (0: applied). Peers keep their sessions across edits.
    fn apply(self: &Arc<Self>, req: &SetRequest) -> i32 {
        let mut old_udp = None;
        let errno = {
            let mut st = self.write();
            self.apply_locked(&mut st, req, &mut old_udp)
        };
        // Joined outside the lock: the old receive threads may be waiting for it.
        if let Some(old) = old_udp {
            old.shutdown();
        }
        errno
    }

    fn apply_locked(
        self: &Arc<Self>,
        st: &mut State,
        req: &SetRequest,
        old_udp: &mut Option<Arc<UdpSet>>,
    ) -> i32 {
        if let Some(k) = req.private_key {
            st.set_private_key((k != [0u8; 32]).then_some(k));
        }
        if let Some(mark) = req.fwmark {
            st.fwmark = mark;
            if let Some(u) = &st.udp {
                u.set_fwmark(mark);
            }
        }
        if let Some(port) = req.listen_port {
            let current = st.udp.as_ref().map(|u| u.port);
            if current.is_none() || (port != 0 && Some(port) != current) {
                match self.bind(port, st.fwmark) {
                    Ok(new) => *old_udp = st.udp.replace(new),
                    Err(e) => {
                        tracing::warn!(device = %self.name, port, error = %e, "binding the listen port failed");
                        return libc::EADDRINUSE;
                    }
                }
            }
        }
        if req.replace_peers {
            st.clear_peers();
        }
        for p in &req.peers {
            if p.remove {
                st.remove_peer(&p.public_key);
                continue;
            }
            if p.update_only && !st.peers.contains_key(&p.public_key) {
                continue;
            }
            let peer = st.peer_or_insert(p.public_key);
            if p.preshared_key.is_some() {
                st.set_preshared(&peer, p.preshared_key);
            }
            if let Some(ep) = p.endpoint {
                *lock(&peer.endpoint) = Some(ep);
            }
            if let Some(k) = p.persistent_keepalive {
                let was = peer.keepalive.swap(k, Ordering::Relaxed);
                if was == 0 && k != 0 {
                    // Turning keepalive on sends one right away (as the kernel does).
                    peer.last_traffic_ms.store(u64::MAX, Ordering::Relaxed);
                }
            }
            if p.replace_allowed_ips || !p.allowed_ips.is_empty() {
                st.set_allowed_ips(&peer, p.replace_allowed_ips, &p.allowed_ips);
            }
        }
        0
    }

    /// Binds a new socket set and starts its receive threads.
    fn bind(self: &Arc<Self>, port: u16, fwmark: u32) -> std::io::Result<Arc<UdpSet>> {
        let set = Arc::new(UdpSet::bind(port, fwmark)?);
        for v6 in [false, true] {
            if v6 && set.v6.is_none() {
                continue;
            }
            let (sh, s) = (Arc::clone(self), Arc::clone(&set));
            let t = std::thread::Builder::new()
                .name(format!("wg-udp{}-{}", if v6 { 6 } else { 4 }, self.name))
                .spawn(move || rx::udp_loop(sh, s, v6))?;
            set.add_thread(t);
        }
        Ok(set)
    }

    /// A snapshot in the shape every backend reports.
    fn status(&self) -> (DeviceStatus, Option<KeyBytes>) {
        let st = self.read();
        let now = SystemTime::now();
        let peers = st
            .peers_in_order()
            .into_iter()
            .map(|p| {
                let since = lock(&p.tunn)
                    .as_ref()
                    .and_then(|t| t.time_since_last_handshake());
                PeerStatus {
                    public_key: p.key,
                    endpoint: p.endpoint(),
                    allowed_ips: lock(&p.ips).clone(),
                    persistent_keepalive: Some(p.keepalive.load(Ordering::Relaxed))
                        .filter(|k| *k != 0),
                    last_handshake: since.and_then(|d: Duration| now.checked_sub(d)),
                    rx_bytes: p.rx_bytes.load(Ordering::Relaxed),
                    tx_bytes: p.tx_bytes.load(Ordering::Relaxed),
                }
            })
            .collect();
        let status = DeviceStatus {
            public_key: st.private.as_ref().map(key::public_key),
            listen_port: st.udp.as_ref().map_or(0, |u| u.port),
            fwmark: (st.fwmark != 0).then_some(st.fwmark),
            peers,
        };
        (status, st.private)
    }
}

/// A running userspace WireGuard device. Dropping it stops its threads,
/// removes its UAPI socket and closes the TUN (which removes the link).
pub(crate) struct Device {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    uapi: Option<uapi_server::UapiServer>,
    socket: PathBuf,
}

impl Device {
    /// Creates TUN interface `name` in the calling thread's network
    /// namespace, binds a UDP port of the kernel's choice (set the real one
    /// over UAPI) and serves the UAPI socket at `socket`.
    pub(crate) fn start(name: &str, socket: &Path) -> Result<Device> {
        let err = |detail: String| WgError::Userspace {
            name: name.to_string(),
            detail,
        };
        let tun = tun::open(name).map_err(|e| err(format!("creating TUN device: {e}")))?;
        let stop = Stop::new().map_err(|e| err(format!("eventfd: {e}")))?;
        let shared = Arc::new(Shared {
            name: name.to_string(),
            tun,
            stop,
            state: RwLock::new(State::new()),
        });
        let mut dev = Device {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
            uapi: None,
            socket: socket.to_path_buf(),
        };
        let spawn = |label: &str, f: fn(Arc<Shared>)| {
            let sh = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("wg-{label}-{name}"))
                .spawn(move || f(sh))
                .map_err(|e| err(format!("spawning thread: {e}")))
        };
        dev.threads.push(spawn("tun", tx::tun_loop)?);
        dev.threads.push(spawn("timer", io::timer_loop)?);
        dev.uapi = Some(uapi_server::UapiServer::start(socket, Arc::clone(&shared))?);
        Ok(dev)
    }

    /// The UAPI socket path served.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // The UAPI server first: no configuration arrives while stopping.
        self.uapi.take();
        self.shared.stop.signal();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let udp = self.shared.write().udp.take();
        if let Some(u) = udp {
            u.shutdown();
        }
        // The last reference to `shared` (and so the TUN descriptor) goes
        // with `self`; every thread holding one has been joined.
    }
}
