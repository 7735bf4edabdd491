//! [`LinuxHost`]: the real [`Host`] over rtnetlink, nsfs and nftables.
//!
//! One rtnetlink connection, opened in the daemon's network namespace when the
//! host is built, serves every link/address/route call; attach opens one more,
//! short-lived, inside the container's namespace. No `ip` is ever spawned; `nft`
//! runs once per whole-table write or check, and published ports (the only
//! per-attach firewall change) are written over a netfilter socket.

mod addr;
mod attach;
mod inspect;
mod links;
mod netns;
mod nft;
mod nft_elements;
mod nft_monitor;

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use ipnet::IpNet;

use crate::error::{HostError, Result};
use crate::firewall::{FirewallBackend, FirewallSpec, PublishedPort, DEFAULT_TABLE};
use crate::host::Host;
use crate::types::{
    validate_alias, validate_ifname, validate_mtu, ContainerInterface, Forwarding, LinkInfo,
    NetnsId, NetnsTarget, Uplink, VethAttachment, VethSpec,
};

use self::netns::{NlConn, NsHandle};
use self::nft::NftRunner;

/// Settings of a [`LinuxHost`].
#[derive(Debug, Clone)]
pub struct LinuxHostConfig {
    /// Firewall driver.
    pub firewall: FirewallBackend,
    /// Name of overlayd's nftables table (family `inet`).
    pub nft_table: String,
    /// The `nft` program (looked up in `PATH` when not absolute).
    pub nft_program: PathBuf,
}

impl Default for LinuxHostConfig {
    fn default() -> Self {
        LinuxHostConfig {
            firewall: FirewallBackend::Nftables,
            nft_table: DEFAULT_TABLE.to_string(),
            nft_program: PathBuf::from("nft"),
        }
    }
}

/// The Linux implementation of [`Host`].
#[derive(Debug)]
pub struct LinuxHost {
    ns: NsHandle,
    conn: NlConn,
    config: LinuxHostConfig,
    nft: NftRunner,
}

impl LinuxHost {
    /// A host for the calling thread's network namespace, default settings.
    /// Must be called inside a tokio runtime.
    pub async fn new() -> Result<Self> {
        Self::with_config(LinuxHostConfig::default()).await
    }

    /// A host for the calling thread's network namespace.
    pub async fn with_config(config: LinuxHostConfig) -> Result<Self> {
        let ns = netns::current_thread_ns()?;
        Self::build(ns, config).await
    }

    /// A host for the network namespace at `path` (e.g. `/run/netns/NAME`),
    /// default settings. The process itself may stay in another namespace.
    pub async fn new_in_netns(path: impl AsRef<Path>) -> Result<Self> {
        Self::new_in_netns_with_config(path, LinuxHostConfig::default()).await
    }

    /// A host for the network namespace at `path`.
    pub async fn new_in_netns_with_config(
        path: impl AsRef<Path>,
        config: LinuxHostConfig,
    ) -> Result<Self> {
        let ns = netns::open_ns_path(path.as_ref())?;
        Self::build(ns, config).await
    }

    async fn build(ns: NsHandle, config: LinuxHostConfig) -> Result<Self> {
        if config.nft_table.is_empty() || config.nft_table.len() > 64 {
            return Err(HostError::InvalidArgument(format!(
                "nftables table name {:?} must be 1..=64 bytes",
                config.nft_table
            )));
        }
        let conn = netns::connect_in(Some(ns.fd.clone())).await?;
        let nft = NftRunner {
            ns: ns.fd.clone(),
            program: config.nft_program.clone(),
            table: config.nft_table.clone(),
            elements: nft_elements::ElementSocket::new(ns.fd.clone()),
        };
        Ok(LinuxHost {
            ns,
            conn,
            config,
            nft,
        })
    }

    /// The settings this host was built with.
    pub fn config(&self) -> &LinuxHostConfig {
        &self.config
    }

    fn h(&self) -> &rtnetlink::Handle {
        &self.conn.handle
    }

    async fn index_of(&self, name: &str) -> Result<u32> {
        validate_ifname(name)?;
        Ok(links::require(self.h(), name).await?.index)
    }
}

const IPV4_FORWARD: &str = "net.ipv4.ip_forward";
const IPV6_FORWARD: &str = "net.ipv6.conf.all.forwarding";

#[async_trait]
impl Host for LinuxHost {
    async fn links(&self) -> Result<Vec<LinkInfo>> {
        links::dump_links(self.h()).await
    }

    async fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        validate_ifname(name)?;
        links::get_by_name(self.h(), name).await
    }

    async fn create_bridge(&self, name: &str, alias: &str, mtu: Option<u32>) -> Result<LinkInfo> {
        validate_ifname(name)?;
        validate_alias(alias)?;
        if let Some(m) = mtu {
            validate_mtu(m)?;
        }
        links::create_bridge(self.h(), name, alias, mtu).await
    }

    async fn delete_link(&self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        match links::get_by_name(self.h(), name).await? {
            Some(l) => links::delete_index(self.h(), l.index).await,
            None => Ok(false),
        }
    }

    async fn set_alias(&self, name: &str, alias: &str) -> Result<()> {
        validate_alias(alias)?;
        let idx = self.index_of(name).await?;
        links::set_props(self.h(), idx, Some(alias), None, None, None).await
    }

    async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        validate_mtu(mtu)?;
        let idx = self.index_of(name).await?;
        links::set_props(self.h(), idx, None, Some(mtu), None, None).await
    }

    async fn set_up(&self, name: &str, up: bool) -> Result<()> {
        let idx = self.index_of(name).await?;
        links::set_props(self.h(), idx, None, None, Some(up), None).await
    }

    async fn add_address(&self, name: &str, addr: IpNet) -> Result<()> {
        let idx = self.index_of(name).await?;
        addr::add_address(self.h(), idx, addr).await
    }

    async fn delete_address(&self, name: &str, addr: IpNet) -> Result<bool> {
        let idx = self.index_of(name).await?;
        addr::delete_address(self.h(), idx, addr).await
    }

    async fn addresses(&self, name: &str) -> Result<Vec<IpNet>> {
        let idx = self.index_of(name).await?;
        addr::addresses_of(self.h(), idx).await
    }

    async fn add_route(&self, dest: IpNet, dev: &str) -> Result<()> {
        let idx = self.index_of(dev).await?;
        addr::create_route(self.h(), dest.trunc(), idx).await
    }

    async fn delete_route(&self, dest: IpNet, dev: &str) -> Result<bool> {
        validate_ifname(dev)?;
        match links::get_by_name(self.h(), dev).await? {
            Some(l) => addr::delete_route(self.h(), dest, l.index).await,
            None => Ok(false),
        }
    }

    async fn uplink(&self) -> Result<Option<Uplink>> {
        addr::uplink(self.h()).await
    }

    async fn forwarding(&self) -> Result<Forwarding> {
        let got = nft::read_sysctls(self.ns.fd.clone(), vec![IPV4_FORWARD, IPV6_FORWARD]).await?;
        Ok(Forwarding {
            ipv4: got[0],
            ipv6: got[1],
        })
    }

    async fn set_forwarding(&self, f: Forwarding) -> Result<()> {
        for (key, optional, want) in [(IPV4_FORWARD, false, f.ipv4), (IPV6_FORWARD, true, f.ipv6)] {
            if let Some(on) = want {
                let value = if on { "1" } else { "0" };
                nft::write_sysctls(self.ns.fd.clone(), vec![(key, optional)], value).await?;
            }
        }
        Ok(())
    }

    async fn attach_veth(&self, spec: &VethSpec) -> Result<VethAttachment> {
        attach::attach(self.h(), &self.ns, spec).await
    }

    async fn detach_veth(&self, host_ifname: &str) -> Result<bool> {
        attach::detach(self.h(), host_ifname).await
    }

    async fn netns_alive(&self, target: &NetnsTarget) -> Result<bool> {
        netns::target_alive(target)
    }

    async fn netns_identity(&self, target: &NetnsTarget) -> Result<Option<NetnsId>> {
        match netns::open_target(target) {
            Ok(h) => Ok(Some(NetnsId {
                dev: h.dev,
                ino: h.ino,
            })),
            Err(HostError::NetnsGone { .. }) | Err(HostError::NotANetns { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn watch_firewall(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>> {
        match self.config.firewall {
            FirewallBackend::Nftables => nft_monitor::watch(self.ns.fd.clone()).await.map(Some),
            FirewallBackend::None => Ok(None),
        }
    }

    async fn container_interface(
        &self,
        target: &NetnsTarget,
        ifname: &str,
    ) -> Result<Option<ContainerInterface>> {
        inspect::container_interface(target, ifname).await
    }

    async fn apply_firewall(&self, fw: &FirewallSpec) -> Result<()> {
        match self.config.firewall {
            FirewallBackend::Nftables => self.nft.apply(fw).await,
            FirewallBackend::None => Ok(()),
        }
    }

    async fn firewall_matches(&self, fw: &FirewallSpec) -> Result<bool> {
        match self.config.firewall {
            FirewallBackend::Nftables => self.nft.matches(fw).await,
            FirewallBackend::None => Ok(true),
        }
    }

    async fn remove_firewall(&self) -> Result<bool> {
        match self.config.firewall {
            FirewallBackend::Nftables => self.nft.remove().await,
            FirewallBackend::None => Ok(false),
        }
    }

    async fn update_published(
        &self,
        add: &[PublishedPort],
        remove: &[PublishedPort],
    ) -> Result<()> {
        match self.config.firewall {
            FirewallBackend::Nftables => self.nft.update_published(add, remove).await,
            FirewallBackend::None => Ok(()),
        }
    }

    async fn set_route_localnet(&self, name: &str, on: bool) -> Result<()> {
        crate::types::validate_ifname(name)?;
        nft::write_conf_sysctl(self.ns.fd.clone(), name, "route_localnet", on).await
    }
}
