//! The [`Host`] trait: every kernel call overlayd makes for links, addresses,
//! routes, namespace moves, sysctls and the firewall goes through it.

use async_trait::async_trait;
use ipnet::IpNet;

use crate::error::Result;
use crate::firewall::{FirewallSpec, PublishedPort};
use crate::types::{
    ContainerInterface, Forwarding, LinkInfo, NetnsId, NetnsTarget, Uplink, VethAttachment,
    VethSpec,
};

/// The boundary between overlayd's logic and the kernel of the host it runs on.
///
/// All names are interface names in the daemon's own network namespace unless a
/// method says otherwise. Implementations: [`LinuxHost`](crate::LinuxHost)
/// (netlink + nftables) and [`FakeHost`](crate::FakeHost) (in memory, for tests).
#[async_trait]
pub trait Host: Send + Sync {
    /// All links of the daemon's network namespace.
    async fn links(&self) -> Result<Vec<LinkInfo>>;

    /// One link by name, `None` if absent.
    async fn link(&self, name: &str) -> Result<Option<LinkInfo>>;

    /// Creates a bridge, tags it with `alias` (ifalias), sets its MTU and brings it up.
    ///
    /// If a bridge of that name already exists with the same alias it is brought
    /// up and returned (adopted); any other existing link of that name is refused
    /// with [`HostError::ForeignLink`](crate::HostError::ForeignLink).
    async fn create_bridge(&self, name: &str, alias: &str, mtu: Option<u32>) -> Result<LinkInfo>;

    /// Deletes a link. Idempotent: returns `false` if it did not exist.
    async fn delete_link(&self, name: &str) -> Result<bool>;

    /// Sets a link's `ifalias`.
    async fn set_alias(&self, name: &str, alias: &str) -> Result<()>;

    /// Sets a link's MTU.
    async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()>;

    /// Sets a link administratively up or down.
    async fn set_up(&self, name: &str, up: bool) -> Result<()>;

    /// Adds an address (with prefix length) to a link. Already present is fine.
    async fn add_address(&self, name: &str, addr: IpNet) -> Result<()>;

    /// Removes an address from a link. Returns `false` if it was not there.
    async fn delete_address(&self, name: &str, addr: IpNet) -> Result<bool>;

    /// The addresses (with prefix lengths) on a link.
    async fn addresses(&self, name: &str) -> Result<Vec<IpNet>>;

    /// Creates a route to `dest` out of `dev` in the main table, never
    /// replacing one: the same route already there is fine, a route to `dest`
    /// out of another link (one overlayd did not add) is refused and kept.
    async fn add_route(&self, dest: IpNet, dev: &str) -> Result<()>;

    /// Removes the route to `dest` out of `dev`. Returns `false` if it was not there.
    async fn delete_route(&self, dest: IpNet, dev: &str) -> Result<bool>;

    /// The link carrying the IPv4 default route, if there is one.
    async fn uplink(&self) -> Result<Option<Uplink>>;

    /// The forwarding sysctls of the daemon's network namespace.
    async fn forwarding(&self) -> Result<Forwarding>;

    /// Sets the forwarding sysctls given as `Some` in the daemon's network
    /// namespace (IPv6 is skipped when IPv6 is disabled); the others are
    /// left as they are.
    async fn set_forwarding(&self, f: Forwarding) -> Result<()>;

    /// Attaches a container: creates the veth pair, configures the container end
    /// inside its namespace (name, address, `lo` up, default route) and enslaves
    /// the host end to the bridge. On any failure nothing is left behind.
    async fn attach_veth(&self, spec: &VethSpec) -> Result<VethAttachment>;

    /// Removes a container's veth pair by its host end. Idempotent: `false` if absent.
    async fn detach_veth(&self, host_ifname: &str) -> Result<bool>;

    /// Whether the target namespace still exists (process alive and its netns
    /// readable, or the path is an nsfs handle).
    async fn netns_alive(&self, target: &NetnsTarget) -> Result<bool>;

    /// The identity (nsfs device and inode) of the target's namespace, `None`
    /// when it does not exist. Handles of one namespace have equal identities.
    /// The default knows no identities (a backend without namespaces).
    async fn netns_identity(&self, target: &NetnsTarget) -> Result<Option<NetnsId>> {
        let _ = target;
        Ok(None)
    }

    /// Reads the interface `ifname` inside the target namespace (link,
    /// addresses, default gateways) without changing anything; `None` when the
    /// namespace or the interface is gone.
    async fn container_interface(
        &self,
        target: &NetnsTarget,
        ifname: &str,
    ) -> Result<Option<ContainerInterface>>;

    /// Replaces overlayd's firewall table(s) with the rules `fw` describes, atomically.
    async fn apply_firewall(&self, fw: &FirewallSpec) -> Result<()>;

    /// Whether the live firewall table(s) are exactly what `fw` describes.
    async fn firewall_matches(&self, fw: &FirewallSpec) -> Result<bool>;

    /// A stream that yields whenever the namespace's firewall changes (any
    /// nftables table, chain or rule — overlayd's own applies included), so
    /// drift is caught at once; `None` when the backend cannot watch.
    async fn watch_firewall(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }

    /// Removes overlayd's firewall table(s). Returns `false` if there were none.
    async fn remove_firewall(&self) -> Result<bool>;

    /// Adds and removes published ports as elements of the table applied
    /// before, without rebuilding it (one small transaction). Fails when the
    /// table is missing; the caller then applies the whole spec.
    async fn update_published(&self, add: &[PublishedPort], remove: &[PublishedPort])
        -> Result<()>;

    /// Sets `net.ipv4.conf.<name>.route_localnet` (needed on a bridge whose
    /// containers publish a port on `127.0.0.1`, and only there).
    async fn set_route_localnet(&self, name: &str, on: bool) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::Host;
    use std::sync::Arc;

    #[test]
    fn host_is_usable_as_a_shared_trait_object() {
        let host: Arc<dyn Host> = Arc::new(crate::FakeHost::new());
        fn needs_send_sync<T: Send + Sync + ?Sized>(_: &T) {}
        needs_send_sync(&*host);
    }
}
