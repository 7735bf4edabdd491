//! `overlayd iso up NET [--subnet CIDR]... [--ipv6] [--internal] | down NET`:
//! isolation networks, single- or dual-stack.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use overlayd_proto::Request;

use super::{call, Cli};

/// What `iso up` (and `network create`) takes.
#[derive(Debug, Args)]
pub struct IsoUpArgs {
    /// Network name.
    pub net: String,
    /// Subnet to use (default: the next free one from the local pool).
    /// Give it twice, once per family, for a dual-stack network; an
    /// IPv6 subnet alone stays single-stack unless `--ipv6` is given.
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Dual-stack: also give the network an IPv6 subnet (from
    /// `local_pool6` unless one is given with `--subnet`), so every
    /// member gets an IPv4 and an IPv6 address.
    #[arg(long)]
    pub ipv6: bool,
    /// No route or NAT to outside the host: members reach each other,
    /// the gateway and DNS only.
    #[arg(long)]
    pub internal: bool,
}

impl IsoUpArgs {
    /// The `setup_isolation_network` request.
    pub fn request(&self) -> Result<Request> {
        let (subnet, subnet_v6) = split_subnets(&self.subnet)?;
        Ok(Request::SetupIsolationNetwork {
            network: self.net.clone(),
            subnet,
            internal: self.internal,
            ipv6: self.ipv6,
            subnet_v6,
        })
    }
}

/// `iso` subcommands.
#[derive(Debug, Subcommand)]
pub enum IsoCmd {
    /// Create (or confirm) an isolation network.
    Up(IsoUpArgs),
    /// Remove an isolation network.
    Down {
        /// Network name.
        net: String,
    },
}

/// Run an `iso` subcommand.
pub async fn run(cli: &Cli, cmd: &IsoCmd) -> Result<ExitCode> {
    let req = match cmd {
        IsoCmd::Up(args) => args.request()?,
        IsoCmd::Down { net } => Request::TeardownIsolationNetwork {
            network: net.clone(),
        },
    };
    call::call_and_print(cli, req).await
}

/// The `--subnet` values as the request's `subnet` and `subnet_v6`: at
/// most one per family. One IPv6 subnet alone is sent as `subnet` (a
/// single-stack IPv6 network as before, or the IPv6 subnet with `--ipv6`);
/// with an IPv4 one beside it, it is `subnet_v6` (dual-stack).
pub fn split_subnets(given: &[String]) -> Result<(Option<String>, Option<String>)> {
    let mut v4 = None;
    let mut v6 = None;
    for s in given {
        let net: ipnet::IpNet = s
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--subnet {s:?} is not a CIDR (e.g. 10.201.3.0/24)"))?;
        let slot = if net.addr().is_ipv6() {
            &mut v6
        } else {
            &mut v4
        };
        if slot.replace(s.trim().to_string()).is_some() {
            anyhow::bail!(
                "--subnet given twice for one address family; a network has at most one IPv4 and one IPv6 subnet"
            );
        }
    }
    Ok(match (v4, v6) {
        (Some(v4), v6) => (Some(v4), v6),
        (None, v6) => (v6, None),
    })
}

#[cfg(test)]
mod tests {
    use super::split_subnets;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn subnets_split_by_family() {
        assert_eq!(split_subnets(&[]).unwrap(), (None, None));
        assert_eq!(
            split_subnets(&s(&["10.9.0.0/24"])).unwrap(),
            (Some("10.9.0.0/24".into()), None)
        );
        assert_eq!(
            split_subnets(&s(&["fd00:1::/64"])).unwrap(),
            (Some("fd00:1::/64".into()), None)
        );
        assert_eq!(
            split_subnets(&s(&["fd00:1::/64", "10.9.0.0/24"])).unwrap(),
            (Some("10.9.0.0/24".into()), Some("fd00:1::/64".into()))
        );
        assert!(split_subnets(&s(&["10.9.0.0/24", "10.8.0.0/24"])).is_err());
        assert!(split_subnets(&s(&["fd00:1::/64", "fd00:2::/64"])).is_err());
        assert!(split_subnets(&s(&["nope"])).is_err());
    }
}
