//! One peer of a userspace device, and the device's configuration state:
//! peers by key and by session index, and the allowed-IP routing table.
//!
//! Edits change this state in place: a peer's [`Tunn`] (its handshake and
//! sessions) survives endpoint, keepalive and allowed-IP changes, so an
//! edit never costs a handshake.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};
use ipnet::IpNet;

use super::udp::UdpSet;
use crate::key::KeyBytes;

/// Handshakes per second the whole device verifies before it answers
/// initiations with cookies (the under-load mode of the WireGuard paper).
const DEVICE_HANDSHAKE_LIMIT: u64 = 100;

/// Locks a mutex, taking over a poisoned one (the data are counters and
/// protocol state that stay consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A configured peer.
pub(crate) struct Peer {
    /// The peer's public key.
    pub key: KeyBytes,
    /// Our 24-bit session index for this peer (`receiver_idx >> 8` of its packets).
    pub index: u32,
    /// The Noise state; `None` while the device has no private key.
    pub tunn: Mutex<Option<Tunn>>,
    /// Where to send: configured, or the source of the last authenticated packet.
    pub endpoint: Mutex<Option<SocketAddr>>,
    /// Persistent keepalive interval in seconds (0: off).
    pub keepalive: AtomicU16,
    /// Preshared key the current `tunn` was built with.
    pub preshared: Mutex<Option<KeyBytes>>,
    /// Allowed IPs in the order they were added (the routing table is
    /// rebuilt from these).
    pub ips: Mutex<Vec<IpNet>>,
    /// Wire bytes received from / sent to the peer.
    pub rx_bytes: AtomicU64,
    /// See `rx_bytes`.
    pub tx_bytes: AtomicU64,
    /// Milliseconds since the device's epoch of the last authenticated packet
    /// sent or received (`u64::MAX`: none yet), for persistent keepalive.
    pub last_traffic_ms: AtomicU64,
}

impl Peer {
    /// Notes authenticated traffic at `now_ms`.
    pub fn touch(&self, now_ms: u64) {
        self.last_traffic_ms.store(now_ms, Ordering::Relaxed);
    }

    /// The current endpoint.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        *lock(&self.endpoint)
    }
}

/// The device's identity and peers. Read on every packet (under a read
/// lock), written by configuration requests.
pub(crate) struct State {
    /// The private key as configured.
    pub private: Option<KeyBytes>,
    /// Derived key pair, for identifying initiators.
    pub secret: Option<(StaticSecret, PublicKey)>,
    /// Device-wide handshake rate limiter (mac1 check and cookies).
    pub limiter: Option<Arc<RateLimiter>>,
    /// Firewall mark of the UDP sockets (0: none).
    pub fwmark: u32,
    /// Peers by public key.
    pub peers: HashMap<KeyBytes, Arc<Peer>>,
    /// Peers by session index.
    pub by_index: HashMap<u32, Arc<Peer>>,
    /// Allowed IPs, longest prefix first.
    routes: Vec<(IpNet, Arc<Peer>)>,
    /// The bound UDP sockets, once a port is set.
    pub udp: Option<Arc<UdpSet>>,
    next_index: u32,
    /// Reference point of the peers' millisecond clocks.
    pub epoch: Instant,
}

impl State {
    /// Empty state: no key, no peers, no sockets.
    pub fn new() -> State {
        State {
            private: None,
            secret: None,
            limiter: None,
            fwmark: 0,
            peers: HashMap::new(),
            by_index: HashMap::new(),
            routes: Vec::new(),
            udp: None,
            next_index: rand_index(),
            epoch: Instant::now(),
        }
    }

    /// Milliseconds since [`State::epoch`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// The peer whose allowed IPs hold `addr` (longest prefix wins).
    pub fn route(&self, addr: IpAddr) -> Option<&Arc<Peer>> {
        self.routes
            .iter()
            .find(|(net, _)| net.contains(&addr))
            .map(|(_, p)| p)
    }

    /// Sets (or clears) the private key; every peer gets a new Noise state
    /// for the new identity.
    pub fn set_private_key(&mut self, key: Option<KeyBytes>) {
        if self.private == key {
            return;
        }
        self.private = key;
        self.secret = key.map(|k| {
            let s = StaticSecret::from(k);
            let p = PublicKey::from(&s);
            (s, p)
        });
        self.limiter = self
            .secret
            .as_ref()
            .map(|(_, p)| Arc::new(RateLimiter::new(p, DEVICE_HANDSHAKE_LIMIT)));
        for peer in self.peers.values() {
            let psk = *lock(&peer.preshared);
            *lock(&peer.tunn) = self.new_tunn(peer.key, psk, peer.index);
        }
    }

    fn new_tunn(&self, key: KeyBytes, psk: Option<KeyBytes>, index: u32) -> Option<Tunn> {
        let (secret, _) = self.secret.as_ref()?;
        Some(Tunn::new(
            secret.clone(),
            PublicKey::from(key),
            psk,
            None, // persistent keepalive is kept by the device, changeable in place
            index,
            None, // per-peer handshake limiter; the device-wide one is `limiter`
        ))
    }

    /// The peer with `key`, created when missing.
    pub fn peer_or_insert(&mut self, key: KeyBytes) -> Arc<Peer> {
        if let Some(p) = self.peers.get(&key) {
            return Arc::clone(p);
        }
        let index = loop {
            let i = self.next_index & 0x00ff_ffff;
            self.next_index = self.next_index.wrapping_add(1);
            if !self.by_index.contains_key(&i) {
                break i;
            }
        };
        let peer = Arc::new(Peer {
            key,
            index,
            tunn: Mutex::new(self.new_tunn(key, None, index)),
            endpoint: Mutex::new(None),
            keepalive: AtomicU16::new(0),
            preshared: Mutex::new(None),
            ips: Mutex::new(Vec::new()),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            last_traffic_ms: AtomicU64::new(u64::MAX),
        });
        self.peers.insert(key, Arc::clone(&peer));
        self.by_index.insert(index, Arc::clone(&peer));
        peer
    }

    /// Replaces the peer's preshared key (a new Noise state: the key is
    /// part of the handshake). Unchanged keys keep the sessions.
    pub fn set_preshared(&mut self, peer: &Arc<Peer>, psk: Option<KeyBytes>) {
        let psk = psk.filter(|k| *k != [0u8; 32]);
        let mut cur = lock(&peer.preshared);
        if *cur == psk {
            return;
        }
        *cur = psk;
        *lock(&peer.tunn) = self.new_tunn(peer.key, psk, peer.index);
    }

    /// Removes a peer and its allowed IPs.
    pub fn remove_peer(&mut self, key: &KeyBytes) -> bool {
        let Some(peer) = self.peers.remove(key) else {
            return false;
        };
        self.by_index.remove(&peer.index);
        self.rebuild_routes();
        true
    }

    /// Removes every peer.
    pub fn clear_peers(&mut self) {
        self.peers.clear();
        self.by_index.clear();
        self.routes.clear();
    }

    /// Sets the peer's allowed IPs: `replace` drops its old ones first; an
    /// allowed IP another peer holds moves to this one (as in wg(8)).
    pub fn set_allowed_ips(&mut self, peer: &Arc<Peer>, replace: bool, add: &[IpNet]) {
        if replace {
            lock(&peer.ips).clear();
        }
        for net in add {
            let net = net.trunc();
            for other in self.peers.values() {
                if !Arc::ptr_eq(other, peer) {
                    lock(&other.ips).retain(|n| *n != net);
                }
            }
            let mut ips = lock(&peer.ips);
            if !ips.contains(&net) {
                ips.push(net);
            }
        }
        self.rebuild_routes();
    }

    fn rebuild_routes(&mut self) {
        let mut routes: Vec<(IpNet, Arc<Peer>)> = self
            .peers
            .values()
            .flat_map(|p| {
                let ips = lock(&p.ips).clone();
                ips.into_iter().map(move |n| (n, Arc::clone(p)))
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.0.prefix_len()));
        self.routes = routes;
    }

    /// The peers in the order they were added.
    pub fn peers_in_order(&self) -> Vec<Arc<Peer>> {
        let mut v: Vec<Arc<Peer>> = self.peers.values().cloned().collect();
        let base = self.next_index;
        // Indices are handed out increasing (mod 2^24) from `next_index`'s start.
        v.sort_by_key(|p| (p.index.wrapping_sub(base)) & 0x00ff_ffff);
        v
    }
}

fn rand_index() -> u32 {
    let mut b = [0u8; 4];
    // A failing getrandom leaves indices starting at 0, which only makes
    // them guessable, not wrong.
    let _ = getrandom(&mut b);
    u32::from_le_bytes(b)
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: the buffer is valid for `buf.len()` writable bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boringtun::noise::TunnResult;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_and_ips_move_between_peers() {
        let mut st = State::new();
        st.set_private_key(Some([7; 32]));
        let a = st.peer_or_insert([1; 32]);
        let b = st.peer_or_insert([2; 32]);
        st.set_allowed_ips(&a, true, &[net("10.0.0.0/8")]);
        st.set_allowed_ips(&b, true, &[net("10.1.0.0/16")]);
        let r = |st: &State, ip: &str| st.route(ip.parse().unwrap()).map(|p| p.key);
        assert_eq!(r(&st, "10.1.2.3"), Some([2; 32]));
        assert_eq!(r(&st, "10.2.2.3"), Some([1; 32]));
        assert_eq!(r(&st, "192.0.2.1"), None);
        // Host bits are masked; an IP taken by another peer moves.
        st.set_allowed_ips(&a, false, &[net("10.1.9.9/16")]);
        assert_eq!(r(&st, "10.1.2.3"), Some([1; 32]));
        assert!(lock(&b.ips).is_empty());
        assert_eq!(*lock(&a.ips), vec![net("10.0.0.0/8"), net("10.1.0.0/16")]);
        assert!(st.remove_peer(&[1; 32]));
        assert_eq!(r(&st, "10.1.2.3"), None);
        assert!(!st.remove_peer(&[1; 32]));
    }

    #[test]
    fn peers_without_key_have_no_noise_state_until_one_is_set() {
        let mut st = State::new();
        let a = st.peer_or_insert([1; 32]);
        assert!(lock(&a.tunn).is_none(), "no key yet: no Noise state");
        st.set_private_key(Some([7; 32]));
        assert!(lock(&a.tunn).is_some());
        let b = st.peer_or_insert([2; 32]);
        assert_eq!(
            st.peers_in_order()
                .iter()
                .map(|p| p.key)
                .collect::<Vec<_>>(),
            vec![[1; 32], [2; 32]]
        );
        assert_ne!(a.index, b.index);
    }

    /// Runs a handshake between `a`'s peer for `b` and `b`'s peer for `a`.
    fn handshake(a: &Arc<Peer>, b: &Arc<Peer>) {
        let mut buf = vec![0u8; 2048];
        let mut buf2 = vec![0u8; 2048];
        let mut ta = lock(&a.tunn);
        let mut tb = lock(&b.tunn);
        let (ta, tb) = (ta.as_mut().unwrap(), tb.as_mut().unwrap());
        let init = match ta.format_handshake_initiation(&mut buf, false) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("no initiation: {other:?}"),
        };
        let resp = match tb.decapsulate(None, &init, &mut buf2) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            other => panic!("no response: {other:?}"),
        };
        let _ = ta.decapsulate(None, &resp, &mut buf);
    }

    /// What encrypting one packet produces: `true` for a data packet of an
    /// existing session, `false` for a handshake initiation.
    fn sends_data(p: &Arc<Peer>) -> bool {
        let mut out = vec![0u8; 2048];
        let packet = [0x45u8; 40];
        match lock(&p.tunn)
            .as_mut()
            .unwrap()
            .encapsulate(&packet, &mut out)
        {
            TunnResult::WriteToNetwork(w) => w.len() != 148,
            other => panic!("nothing to send: {other:?}"),
        }
    }

    #[test]
    fn edits_keep_the_session_and_new_keys_replace_it() {
        let (ka, kb) = ([7u8; 32], [9u8; 32]);
        let pub_of = |k: [u8; 32]| PublicKey::from(&StaticSecret::from(k)).to_bytes();
        let (mut a, mut b) = (State::new(), State::new());
        a.set_private_key(Some(ka));
        b.set_private_key(Some(kb));
        let pa = a.peer_or_insert(pub_of(kb));
        let pb = b.peer_or_insert(pub_of(ka));
        let mut c = State::new();
        c.set_private_key(Some(ka));
        let fresh = c.peer_or_insert(pub_of(kb));
        assert!(!sends_data(&fresh), "no session yet: a handshake goes out");
        handshake(&pa, &pb);
        assert!(sends_data(&pa), "a session after the handshake");

        // Allowed IPs, endpoint and keepalive edits: same session.
        a.set_allowed_ips(&pa, true, &[net("10.0.0.2/32")]);
        a.set_allowed_ips(&pa, false, &[net("10.9.0.0/16")]);
        a.set_allowed_ips(&pa, true, &[net("10.0.0.2/32")]);
        *lock(&pa.endpoint) = Some("192.0.2.9:1".parse().unwrap());
        pa.keepalive.store(25, std::sync::atomic::Ordering::Relaxed);
        a.set_preshared(&pa, None);
        assert!(sends_data(&pa), "an edit reset the session");

        // A new preshared key or private key is a new identity: new handshake.
        a.set_preshared(&pa, Some([3; 32]));
        assert!(
            !sends_data(&pa),
            "a new preshared key must start a handshake"
        );
        let pa2 = b.peer_or_insert(pub_of(ka));
        assert!(Arc::ptr_eq(&pa2, &pb));
        a.set_private_key(Some([8; 32]));
        assert!(!sends_data(&pa));
    }
}
