//! The firewall as a value: [`FirewallSpec`] says what overlayd's nftables table
//! must do; [`ruleset`] turns it into an nftables JSON batch, [`compare`]
//! checks a live table against it and [`elements`] builds the netlink batch
//! that adds or deletes published ports. Nothing here touches the kernel.

pub mod compare;
pub mod elements;
pub mod publish;
pub mod publish_rules;
pub mod ruleset;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};
use crate::types::validate_ifname;
pub use publish::{L4Proto, PublishedPort};

/// Default name of the nftables table (family `inet`) overlayd owns.
pub const DEFAULT_TABLE: &str = "overlayd";

/// A network whose outbound traffic is masqueraded to the node's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MasqueradeNet {
    /// Source subnet of the containers (e.g. the shared-NAT bridge subnet).
    pub subnet: IpNet,
    /// The network's bridge: traffic leaving through it is not masqueraded.
    pub bridge: String,
    /// Destinations reached without masquerading (e.g. the cluster overlay CIDR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<IpNet>,
}

/// Everything overlayd's nftables table has to do, as a value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallSpec {
    /// Networks masqueraded on their way out.
    #[serde(default)]
    pub masquerade: Vec<MasqueradeNet>,
    /// Isolation bridges: traffic between two different ones is dropped both ways.
    #[serde(default)]
    pub isolation_bridges: Vec<String>,
    /// Bridges whose forwarded traffic is explicitly accepted (in and out).
    #[serde(default)]
    pub accept_bridges: Vec<String>,
    /// Internal bridges: nothing is forwarded between them and any other
    /// interface (members reach each other and the host's gateway address).
    #[serde(default)]
    pub internal_bridges: Vec<String>,
    /// Bridges containers publish ports from: hairpin masquerade and the
    /// loopback guard apply to them (one rule each, whatever the ports).
    #[serde(default)]
    pub publish_bridges: Vec<String>,
    /// Published ports: map elements, not rules.
    #[serde(default)]
    pub published: Vec<PublishedPort>,
}

impl FirewallSpec {
    /// Checks bridge names and subnets.
    pub fn validate(&self) -> Result<()> {
        for m in &self.masquerade {
            validate_ifname(&m.bridge)?;
            if m.subnet.trunc() != m.subnet {
                return Err(HostError::InvalidArgument(format!(
                    "masquerade subnet {} has host bits set (did you mean {}?)",
                    m.subnet,
                    m.subnet.trunc()
                )));
            }
        }
        for b in self
            .isolation_bridges
            .iter()
            .chain(&self.accept_bridges)
            .chain(&self.internal_bridges)
            .chain(&self.publish_bridges)
        {
            validate_ifname(b)?;
        }
        for p in &self.published {
            p.validate()?;
        }
        Ok(())
    }

    /// The same spec in canonical order without duplicates, so equal intent
    /// gives an equal ruleset whatever order the caller listed things in.
    pub fn normalized(&self) -> FirewallSpec {
        let masquerade: BTreeSet<MasqueradeNet> = self
            .masquerade
            .iter()
            .map(|m| {
                let exclude: BTreeSet<IpNet> = m.exclude.iter().map(|n| n.trunc()).collect();
                MasqueradeNet {
                    subnet: m.subnet.trunc(),
                    bridge: m.bridge.clone(),
                    exclude: exclude.into_iter().collect(),
                }
            })
            .collect();
        let iso: BTreeSet<String> = self.isolation_bridges.iter().cloned().collect();
        let acc: BTreeSet<String> = self.accept_bridges.iter().cloned().collect();
        let internal: BTreeSet<String> = self.internal_bridges.iter().cloned().collect();
        let publish: BTreeSet<String> = self.publish_bridges.iter().cloned().collect();
        let published: BTreeSet<PublishedPort> = self.published.iter().cloned().collect();
        FirewallSpec {
            masquerade: masquerade.into_iter().collect(),
            isolation_bridges: iso.into_iter().collect(),
            accept_bridges: acc.into_iter().collect(),
            internal_bridges: internal.into_iter().collect(),
            publish_bridges: publish.into_iter().collect(),
            published: published.into_iter().collect(),
        }
    }

    /// Bridges that carry a loopback publish and so need `route_localnet`.
    pub fn localnet_bridges(&self) -> BTreeSet<String> {
        self.published
            .iter()
            .filter(|p| p.is_loopback())
            .map(|p| p.bridge.clone())
            .collect()
    }
}

/// Which firewall driver a [`LinuxHost`](crate::LinuxHost) uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirewallBackend {
    /// nftables: one `nft -j -f -` call per whole-table change, published
    /// ports as map elements over netlink.
    #[default]
    Nftables,
    /// No firewall: apply/remove do nothing and the live state always matches.
    None,
}

impl FromStr for FirewallBackend {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "nftables" | "nft" => Ok(FirewallBackend::Nftables),
            "none" | "off" => Ok(FirewallBackend::None),
            other => Err(HostError::InvalidArgument(format!(
                "unknown firewall backend {other:?} (expected nftables or none)"
            ))),
        }
    }
}

impl fmt::Display for FirewallBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FirewallBackend::Nftables => "nftables",
            FirewallBackend::None => "none",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_is_order_independent() {
        let a = FirewallSpec {
            masquerade: vec![
                MasqueradeNet {
                    subnet: "10.1.0.0/24".parse().unwrap(),
                    bridge: "b1".into(),
                    exclude: vec![],
                },
                MasqueradeNet {
                    subnet: "10.0.0.0/24".parse().unwrap(),
                    bridge: "b0".into(),
                    exclude: vec!["10.200.0.0/16".parse().unwrap()],
                },
            ],
            isolation_bridges: vec!["i2".into(), "i1".into(), "i2".into()],
            accept_bridges: vec!["b1".into(), "b0".into()],
            ..Default::default()
        };
        let mut b = a.clone();
        b.masquerade.reverse();
        b.isolation_bridges.reverse();
        b.accept_bridges.reverse();
        assert_eq!(a.normalized(), b.normalized());
        assert_eq!(a.normalized().isolation_bridges, vec!["i1", "i2"]);
    }

    #[test]
    fn validate_rejects_host_bits_and_bad_names() {
        let mut s = FirewallSpec {
            masquerade: vec![MasqueradeNet {
                subnet: "10.1.0.5/24".parse().unwrap(),
                bridge: "b1".into(),
                exclude: vec![],
            }],
            ..Default::default()
        };
        assert!(s.validate().is_err());
        s.masquerade[0].subnet = "10.1.0.0/24".parse().unwrap();
        s.validate().unwrap();
        s.isolation_bridges.push("bad name".into());
        assert!(s.validate().is_err());
    }

    #[test]
    fn backend_from_str() {
        assert_eq!(
            "nftables".parse::<FirewallBackend>().unwrap(),
            FirewallBackend::Nftables
        );
        assert_eq!(
            "none".parse::<FirewallBackend>().unwrap(),
            FirewallBackend::None
        );
        assert!("iptables".parse::<FirewallBackend>().is_err());
    }
}
