//! Plain values exchanged with a [`Host`](crate::Host): links, namespace targets,
//! veth specifications and the uplink description, plus name validation.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;

/// Longest `ifalias` Linux stores (`IFALIASZ - 1`).
pub const MAX_ALIAS_LEN: usize = 255;

/// What kind of device a link is, from its `IFLA_INFO_KIND`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// One end of a veth pair.
    Veth,
    /// A kernel WireGuard device.
    Wireguard,
    /// A TUN/TAP device (for example a userspace WireGuard device).
    Tun,
    /// Any other kind the kernel reported, by its kind string.
    Other(String),
    /// No kind reported (physical NICs, loopback).
    Unknown,
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkKind::Bridge => f.write_str("bridge"),
            LinkKind::Veth => f.write_str("veth"),
            LinkKind::Wireguard => f.write_str("wireguard"),
            LinkKind::Tun => f.write_str("tun"),
            LinkKind::Other(s) => f.write_str(s),
            LinkKind::Unknown => f.write_str("unknown"),
        }
    }
}

/// A network interface as seen in the daemon's network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Device kind.
    pub kind: LinkKind,
    /// The `ifalias` string (overlayd writes its ownership tag here).
    pub alias: Option<String>,
    /// Index of the bridge (or other controller) this link is enslaved to.
    pub master: Option<u32>,
    /// Whether the administrative `UP` flag is set.
    pub up: bool,
    /// Current MTU.
    pub mtu: u32,
    /// Hardware address, when the device has one of Ethernet size.
    pub mac: Option<[u8; 6]>,
}

/// A container network namespace, named by a process or by an nsfs path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetnsTarget {
    /// The network namespace of this process (`/proc/PID/ns/net`).
    Pid(u32),
    /// An nsfs handle such as `/run/netns/NAME`.
    Path(PathBuf),
}

impl fmt::Display for NetnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsTarget::Pid(pid) => write!(f, "pid {pid}"),
            NetnsTarget::Path(p) => write!(f, "netns {}", p.display()),
        }
    }
}

impl NetnsTarget {
    /// The file to open to get a handle on the namespace.
    pub fn ns_path(&self) -> PathBuf {
        match self {
            NetnsTarget::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
            NetnsTarget::Path(p) => p.clone(),
        }
    }
}

/// The identity of a network namespace: device and inode of its nsfs file.
/// Two handles (a PID, `/proc/PID/ns/net`, a `/run/netns` bind mount) name
/// the same namespace exactly when their identities are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NetnsId {
    /// Device number of the nsfs file.
    pub dev: u64,
    /// Inode number of the nsfs file.
    pub ino: u64,
}

impl fmt::Display for NetnsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.dev, self.ino)
    }
}

impl std::str::FromStr for NetnsId {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a namespace identity (DEV:INODE)");
        let (d, i) = s.split_once(':').ok_or_else(bad)?;
        Ok(NetnsId {
            dev: d.parse().map_err(|_| bad())?,
            ino: i.parse().map_err(|_| bad())?,
        })
    }
}

/// Everything needed to attach one container to a bridge with a veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethSpec {
    /// Name of the host end (≤ 15 bytes).
    pub host_ifname: String,
    /// Ownership tag written into the host end's `ifalias`.
    pub alias: String,
    /// Bridge the host end is enslaved to; must exist.
    pub bridge: String,
    /// The container's network namespace.
    pub target: NetnsTarget,
    /// Name of the container end inside the namespace, usually `eth0`.
    pub container_ifname: String,
    /// Container address with the subnet's prefix length, e.g. `10.200.1.5/24`.
    pub address: IpNet,
    /// Default gateway for the container; `None` installs no default route.
    pub gateway: Option<IpAddr>,
    /// MTU for both ends; `None` uses the bridge's MTU.
    pub mtu: Option<u32>,
    /// Dual-stack: the container's IPv6 address with its prefix length,
    /// added beside `address` (without duplicate address detection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_v6: Option<IpNet>,
    /// IPv6 default gateway; `None` installs no IPv6 default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_v6: Option<IpAddr>,
}

/// Hardware address given to the host end of a veth whose tag is `alias`.
///
/// The kernel ignores `IFLA_IFALIAS` when it creates a veth, so the tag is
/// written one netlink call later; the MAC address, in contrast, is set by
/// the creating request itself. Deriving it from the tag (FNV-1a, stable
/// across Rust releases; locally administered, unicast) makes the host end
/// attributable from its first instant: a crash between creation and tagging
/// leaves a veth whose name and MAC prove whose it is.
pub fn veth_mac(alias: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in alias.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

impl VethSpec {
    /// Whether `link` is the host end this spec creates: a veth carrying the
    /// spec's tag, or (a crash between creation and tagging) an untagged veth
    /// with the MAC derived from the tag.
    pub fn owns(&self, link: &LinkInfo) -> bool {
        link.kind == LinkKind::Veth
            && match link.alias.as_deref() {
                Some(a) if !a.is_empty() => a == self.alias,
                _ => link.mac == Some(veth_mac(&self.alias)),
            }
    }

    /// Checks every field that can be checked without the kernel.
    pub fn validate(&self) -> Result<()> {
        validate_ifname(&self.host_ifname)?;
        validate_ifname(&self.container_ifname)?;
        validate_ifname(&self.bridge)?;
        validate_alias(&self.alias)?;
        if let Some(gw) = self.gateway {
            if gw.is_ipv4() != self.address.addr().is_ipv4() {
                return Err(HostError::InvalidArgument(format!(
                    "gateway {gw} and address {} are of different IP families",
                    self.address
                )));
            }
        }
        if let Some(mtu) = self.mtu {
            validate_mtu(mtu)?;
        }
        if let Some(a6) = self.address_v6 {
            if !a6.addr().is_ipv6() || self.address.addr().is_ipv6() {
                return Err(HostError::InvalidArgument(format!(
                    "dual-stack attach needs an IPv4 address and an IPv6 one, got {} and {a6}",
                    self.address
                )));
            }
        }
        if self.gateway_v6.is_some_and(|g| !g.is_ipv6())
            || (self.gateway_v6.is_some() && self.address_v6.is_none())
        {
            return Err(HostError::InvalidArgument(
                "an IPv6 gateway needs an IPv6 address".to_string(),
            ));
        }
        Ok(())
    }
}

/// The result of a successful attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VethAttachment {
    /// Index of the host end in the daemon's namespace.
    pub host_index: u32,
    /// Name of the host end.
    pub host_ifname: String,
    /// Name of the container end inside its namespace.
    pub container_ifname: String,
    /// Index of the container end inside its namespace.
    pub container_index: u32,
    /// Hardware address of the container end.
    pub container_mac: Option<[u8; 6]>,
}

/// A container's interface as read from inside its network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInterface {
    /// Interface name inside the namespace.
    pub name: String,
    /// Hardware address.
    pub mac: Option<[u8; 6]>,
    /// Whether the administrative `UP` flag is set.
    pub up: bool,
    /// Current MTU.
    pub mtu: u32,
    /// Addresses with prefix lengths.
    pub addresses: Vec<IpNet>,
    /// Next hops of the default routes out of this interface.
    pub default_gateways: Vec<IpAddr>,
}

/// The forwarding sysctls of a namespace: `net.ipv4.ip_forward` and
/// `net.ipv6.conf.all.forwarding`. Read, `ipv6` is `None` when IPv6 is
/// disabled; written, only the fields that are `Some` are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarding {
    /// `net.ipv4.ip_forward`.
    pub ipv4: Option<bool>,
    /// `net.ipv6.conf.all.forwarding`.
    pub ipv6: Option<bool>,
}

/// The link that carries the default route: where overlay and NAT traffic leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uplink {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Interface MTU.
    pub mtu: u32,
    /// First IPv4 address on the link, if any.
    pub ipv4: Option<Ipv4Addr>,
    /// Next hop of the default route, if it has one.
    pub gateway: Option<IpAddr>,
}

/// Checks that `name` is a valid Linux interface name.
pub fn validate_ifname(name: &str) -> Result<()> {
    let reject = |reason| {
        Err(HostError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return reject("empty");
    }
    if name.len() > MAX_IFNAME_LEN {
        return reject("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return reject("reserved name");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return reject("contains '/', ':', whitespace or a control character");
    }
    Ok(())
}

/// Checks that `alias` fits into `ifalias`.
pub fn validate_alias(alias: &str) -> Result<()> {
    if alias.len() > MAX_ALIAS_LEN {
        return Err(HostError::InvalidArgument(format!(
            "ifalias tag is {} bytes, the kernel keeps at most {MAX_ALIAS_LEN}",
            alias.len()
        )));
    }
    if alias.bytes().any(|b| b == 0) {
        return Err(HostError::InvalidArgument(
            "ifalias tag contains a NUL byte".to_string(),
        ));
    }
    Ok(())
}

/// Checks that an MTU is within what Ethernet-like devices accept.
pub fn validate_mtu(mtu: u32) -> Result<()> {
    if !(68..=65535).contains(&mtu) {
        return Err(HostError::InvalidArgument(format!(
            "MTU {mtu} is outside 68..=65535"
        )));
    }
    Ok(())
}

/// Formats a MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(validate_ifname("eth0").is_ok());
        assert!(validate_ifname("ovl-br-0123456").is_ok());
        assert!(validate_ifname("123456789012345").is_ok());
        assert!(validate_ifname("1234567890123456").is_err());
        assert!(validate_ifname("").is_err());
        assert!(validate_ifname("a/b").is_err());
        assert!(validate_ifname("a b").is_err());
        assert!(validate_ifname("a:b").is_err());
        assert!(validate_ifname("..").is_err());
    }

    #[test]
    fn veth_mac_is_stable_local_unicast_and_tag_specific() {
        let a = veth_mac("overlayd:1:attach=pid:1:id=x");
        assert_eq!(a, veth_mac("overlayd:1:attach=pid:1:id=x"));
        assert_ne!(a, veth_mac("overlayd:1:attach=pid:1:id=y"));
        assert_eq!(a[0] & 0x03, 0x02, "locally administered unicast");
        // Pinned: the MAC is identity on disk-less hosts, it must not change.
        assert_eq!(veth_mac(""), [0xca, 0xf2, 0x9c, 0xe4, 0x84, 0x22]);
    }

    #[test]
    fn spec_validation_rejects_family_mismatch() {
        let spec = VethSpec {
            host_ifname: "veth1".into(),
            alias: "overlayd:x".into(),
            bridge: "br0".into(),
            target: NetnsTarget::Pid(1),
            container_ifname: "eth0".into(),
            address: "10.0.0.2/24".parse().unwrap(),
            gateway: Some("fd00::1".parse().unwrap()),
            mtu: None,
            address_v6: None,
            gateway_v6: None,
        };
        assert!(matches!(
            spec.validate(),
            Err(HostError::InvalidArgument(_))
        ));
        let ok = VethSpec {
            gateway: Some("10.0.0.1".parse().unwrap()),
            ..spec
        };
        ok.validate().unwrap();
    }

    #[test]
    fn mac_format() {
        assert_eq!(format_mac(&[0, 0x1a, 2, 3, 4, 0xff]), "00:1a:02:03:04:ff");
    }

    #[test]
    fn alias_and_mtu_limits() {
        assert!(validate_alias(&"a".repeat(255)).is_ok());
        assert!(validate_alias(&"a".repeat(256)).is_err());
        assert!(validate_mtu(1500).is_ok());
        assert!(validate_mtu(10).is_err());
    }
}
