//! Plain data exchanged with a WireGuard backend: device and peer
//! configuration, status snapshots and the backend selector.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::SystemTime;

use ipnet::IpNet;

use crate::error::{Result, WgError};
use crate::key::{self, KeyBytes};

/// Linux `IFNAMSIZ - 1`: the longest interface name the kernel accepts.
pub const MAX_IFNAME_LEN: usize = 15;

/// Default WireGuard MTU (1500 minus the worst-case IPv6 + UDP + WireGuard overhead).
pub const DEFAULT_MTU: u32 = 1420;

/// Checks that `name` is a usable Linux interface name: 1–15 bytes, no `/`,
/// whitespace, `:` or NUL, and not `.` or `..`.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(WgError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("contains '/', ':', NUL or whitespace");
    }
    Ok(())
}

/// Desired configuration of one WireGuard device.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Interface name (≤ 15 bytes).
    pub name: String,
    /// The device's private key. Never logged: `Debug` prints only the public key.
    pub private_key: KeyBytes,
    /// UDP listen port; 0 lets the kernel pick one.
    pub listen_port: u16,
    /// Link MTU (see [`DEFAULT_MTU`]).
    pub mtu: u32,
    /// Firewall mark put on the encrypted UDP packets, if any.
    pub fwmark: Option<u32>,
}

impl DeviceConfig {
    /// Checks the name and value ranges before anything touches the host.
    pub fn validate(&self) -> Result<()> {
        validate_ifname(&self.name)?;
        if !(576..=65535).contains(&self.mtu) {
            return Err(WgError::InvalidConfig(format!(
                "mtu {} out of range 576..=65535",
                self.mtu
            )));
        }
        if self.private_key == [0u8; 32] {
            return Err(WgError::InvalidConfig("private key is all zeroes".into()));
        }
        Ok(())
    }

    /// The public key derived from [`DeviceConfig::private_key`].
    pub fn public_key(&self) -> KeyBytes {
        key::public_key(&self.private_key)
    }
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("name", &self.name)
            .field("public_key", &key::format_key(&self.public_key()))
            .field("listen_port", &self.listen_port)
            .field("mtu", &self.mtu)
            .field("fwmark", &self.fwmark)
            .finish_non_exhaustive()
    }
}

/// Desired configuration of one peer of a device.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's public key (its identity on the device).
    pub public_key: KeyBytes,
    /// Where to send the first handshake; learnt from traffic when `None`.
    pub endpoint: Option<SocketAddr>,
    /// Source addresses accepted from, and destinations routed to, this peer.
    pub allowed_ips: Vec<IpNet>,
    /// Keepalive interval in seconds (`None` or `Some(0)` disables it).
    pub persistent_keepalive: Option<u16>,
}

impl fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConfig")
            .field("public_key", &key::format_key(&self.public_key))
            .field("endpoint", &self.endpoint)
            .field("allowed_ips", &self.allowed_ips)
            .field("persistent_keepalive", &self.persistent_keepalive)
            .finish()
    }
}

/// Live state of one peer as reported by the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's public key.
    pub public_key: KeyBytes,
    /// Current endpoint (configured or roamed to).
    pub endpoint: Option<SocketAddr>,
    /// Allowed IPs, in the device's order.
    pub allowed_ips: Vec<IpNet>,
    /// Keepalive interval, when enabled.
    pub persistent_keepalive: Option<u16>,
    /// Wall-clock time of the last completed handshake.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

/// Live state of one device as reported by the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The device's public key (`None` when no private key is set yet).
    pub public_key: Option<KeyBytes>,
    /// The UDP port the device listens on.
    pub listen_port: u16,
    /// Firewall mark, when set.
    pub fwmark: Option<u32>,
    /// The device's peers.
    pub peers: Vec<PeerStatus>,
}

impl DeviceStatus {
    /// The peer with `public_key`, if configured.
    pub fn peer(&self, public_key: &KeyBytes) -> Option<&PeerStatus> {
        self.peers.iter().find(|p| &p.public_key == public_key)
    }
}

/// What [`crate::WgBackend::create_or_adopt`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// A new link was created.
    Created,
    /// An existing link with the same key and port was kept; other
    /// parameters (MTU, fwmark) were applied in place.
    Adopted,
    /// An existing link was kept but its key or port differed and was
    /// changed in place (no recreate; peers see a new identity).
    Reconfigured,
}

/// Identity of a device after [`crate::WgBackend::create_or_adopt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceHandle {
    /// Interface name.
    pub name: String,
    /// Kernel interface index.
    pub ifindex: u32,
    /// Which backend drives it ([`BackendKind::Kernel`] or [`BackendKind::Userspace`]).
    pub backend: BackendKind,
    /// Whether the link was created or adopted.
    pub disposition: Disposition,
    /// The device's public key.
    pub public_key: KeyBytes,
    /// The UDP port actually in use.
    pub listen_port: u16,
}

/// Which WireGuard implementation to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Kernel when the `wireguard` generic netlink family resolves, else userspace.
    #[default]
    Auto,
    /// In-kernel WireGuard driven over generic netlink.
    Kernel,
    /// In-process boringtun on a TUN device, exposing a UAPI socket.
    Userspace,
}

impl BackendKind {
    /// The lowercase name accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Auto => "auto",
            BackendKind::Kernel => "kernel",
            BackendKind::Userspace => "userspace",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = WgError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(BackendKind::Auto),
            "kernel" => Ok(BackendKind::Kernel),
            "userspace" | "user" | "boringtun" => Ok(BackendKind::Userspace),
            _ => Err(WgError::UnknownBackend(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("wg0").is_ok());
        assert!(validate_ifname("ovl-0123456789a").is_ok()); // 15 bytes
        assert!(validate_ifname("ovl-0123456789ab").is_err()); // 16 bytes
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("a b").is_err());
        assert!(validate_ifname("..").is_err());
    }

    #[test]
    fn backend_kind_parses() {
        assert_eq!("auto".parse::<BackendKind>().unwrap(), BackendKind::Auto);
        assert_eq!(
            "Kernel".parse::<BackendKind>().unwrap(),
            BackendKind::Kernel
        );
        assert_eq!(
            "userspace".parse::<BackendKind>().unwrap(),
            BackendKind::Userspace
        );
        for k in [
            BackendKind::Auto,
            BackendKind::Kernel,
            BackendKind::Userspace,
        ] {
            assert_eq!(k.to_string().parse::<BackendKind>().unwrap(), k);
        }
        assert!("wireguard-go".parse::<BackendKind>().is_err());
    }

    #[test]
    fn config_debug_hides_private_key() {
        let cfg = DeviceConfig {
            name: "wg0".into(),
            private_key: [0x41; 32],
            listen_port: 51820,
            mtu: DEFAULT_MTU,
            fwmark: None,
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains(&key::format_key(&cfg.private_key)));
        assert!(shown.contains(&key::format_key(&cfg.public_key())));
        assert!(cfg.validate().is_ok());
        let bad = DeviceConfig { mtu: 100, ..cfg };
        assert!(bad.validate().is_err());
    }
}
