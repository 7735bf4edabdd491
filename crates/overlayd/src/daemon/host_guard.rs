//! Never touch what is not ours: every CIDR given to overlayd (cluster,
//! slice, network subnets, peer allowed IPs) is checked against the host's
//! own addresses in the daemon's namespace (uplink subnets, the default
//! route, loopback, link-local, multicast) and refused with the conflict
//! named.

use ipnet::IpNet;

use super::error::{OpError, OpResult};
use super::node::Node;
use super::plan;

/// Ranges no overlayd network may use, whatever the host has.
const SPECIAL: [(&str, &str); 8] = [
    ("0.0.0.0/8", "the IPv4 \"this network\" range"),
    ("127.0.0.0/8", "the loopback range"),
    ("169.254.0.0/16", "the link-local range"),
    ("224.0.0.0/4", "the multicast range"),
    ("255.255.255.255/32", "the broadcast address"),
    ("::1/128", "the loopback address"),
    ("fe80::/10", "the link-local range"),
    ("ff00::/8", "the multicast range"),
];

/// Why `net` may not be used, checking only the fixed special ranges and
/// the whole-space prefixes (`0.0.0.0/0`, `::/0`, which cover the host's
/// default route).
pub fn special_conflict(net: &IpNet) -> Option<String> {
    if net.prefix_len() == 0 {
        return Some(format!(
            "{net} covers every address, including the host's default route"
        ));
    }
    SPECIAL.iter().find_map(|(cidr, what)| {
        let s: IpNet = cidr.parse().ok()?;
        overlayd_engine::ipam::overlaps(net, &s).then(|| format!("{net} overlaps {what} {s}"))
    })
}

impl Node {
    /// Subnets of the addresses on links that are not overlayd's (the
    /// uplink and any other interface of the host), with a description.
    pub async fn host_subnets(&self) -> OpResult<Vec<(String, IpNet)>> {
        let mut out = Vec::new();
        for link in self.host.links().await? {
            // This instance's own links are not the host's; another
            // overlayd instance's networks are, like any other link's.
            let ours = link
                .alias
                .as_deref()
                .and_then(plan::parse_tag)
                .is_some_and(|t| t.belongs_to(&self.instance));
            if ours {
                continue;
            }
            for a in self.host.addresses(&link.name).await.unwrap_or_default() {
                out.push((format!("address {a} of {}", link.name), a.trunc()));
            }
        }
        if let Some(u) = self.host.uplink().await? {
            if let Some(gw) = u.gateway {
                let n = IpNet::from(gw);
                out.push((format!("the default gateway {gw} (via {})", u.name), n));
            }
        }
        Ok(out)
    }

    /// Refuse `nets` (described as `what`, e.g. `allowed IP`) when one of
    /// them overlaps a special range or a subnet the host itself uses.
    pub async fn refuse_host_conflicts(&self, what: &str, nets: &[IpNet]) -> OpResult<()> {
        for n in nets {
            if let Some(why) = special_conflict(n) {
                return Err(OpError::Invalid(format!(
                    "{what} {why}; overlayd never uses it"
                )));
            }
        }
        let host = self.host_subnets().await?;
        for n in nets {
            if let Some((desc, s)) = host
                .iter()
                .find(|(_, s)| overlayd_engine::ipam::overlaps(n, s))
            {
                return Err(OpError::Conflict(format!(
                    "{what} {n} overlaps {desc} ({s}) of this host; overlayd does not touch the host's own networks — choose a range the host does not use"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::special_conflict;

    #[test]
    fn special_ranges_are_refused_and_ordinary_ones_are_not() {
        for bad in [
            "0.0.0.0/0",
            "::/0",
            "127.0.0.0/8",
            "127.0.0.1/32",
            "169.254.0.0/16",
            "224.0.0.0/24",
            "fe80::/64",
            "ff02::/16",
            "::1/128",
        ] {
            assert!(special_conflict(&bad.parse().unwrap()).is_some(), "{bad}");
        }
        for ok in ["10.200.0.0/16", "192.168.77.0/24", "fd00::/64"] {
            assert!(special_conflict(&ok.parse().unwrap()).is_none(), "{ok}");
        }
    }
}
