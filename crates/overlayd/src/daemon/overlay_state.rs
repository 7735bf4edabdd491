//! The overlay service's own state: the node's WireGuard keypair, the band
//! of dedicated WireGuard ports, and the last known health of every peer.
//! Other parts of the daemon reach it only through these methods: the key
//! is read, never replaced (a new identity is `rotate-key`, offline); ports
//! are handed out, reserved and released here; health transitions are
//! noted here and become events in `health.rs`.

use std::collections::{HashMap, HashSet};

use overlayd_state::{KeyPair, PortBand};

/// The node key, the dedicated port band and peer health.
pub struct OverlayState {
    key: KeyPair,
    ports: PortBand,
    /// Last known health per peer (`<network>|<pubkey>`).
    peer_health: HashMap<String, bool>,
}

impl OverlayState {
    /// The state of a node with `key` whose recorded ports are `ports`.
    pub fn new(key: KeyPair, ports: PortBand) -> Self {
        OverlayState {
            key,
            ports,
            peer_health: HashMap::new(),
        }
    }

    /// The node's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.public
    }

    /// The node's public key, base64 as WireGuard writes it.
    pub fn public_base64(&self) -> String {
        self.key.public_base64()
    }

    /// The node's private key (for the base device; never logged).
    pub fn private_key(&self) -> [u8; 32] {
        self.key.private
    }

    /// The port band as it is now: plans choose a port on a copy, and
    /// their steps reserve or release it here.
    pub fn ports(&self) -> &PortBand {
        &self.ports
    }

    /// Mark a recorded port as in use.
    pub fn reserve_port(&mut self, port: u16) {
        self.ports.reserve(port);
    }

    /// Give a port back to the band.
    pub fn release_port(&mut self, port: u16) {
        self.ports.release(port);
    }

    /// The band follows the node's global port.
    pub fn set_global_port(&mut self, port: u16) {
        self.ports.set_global_port(port);
    }

    /// Start over from the ports the marker records (start-up reconcile).
    pub fn reset_ports(&mut self, ports: PortBand) {
        self.ports = ports;
    }

    /// Note a peer's health; the previous value, `None` the first time.
    pub fn note_health(&mut self, peer: &str, healthy: bool) -> Option<bool> {
        self.peer_health.insert(peer.to_string(), healthy)
    }

    /// Forget the health of peers that are gone.
    pub fn keep_health_of(&mut self, seen: &HashSet<String>) {
        self.peer_health.retain(|k, _| seen.contains(k));
    }
}
