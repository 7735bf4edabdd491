//! Attachments seen from the container side, for CNI runtimes: the `cni`
//! handle's rules and `inspect_interface` (the live interface inside the
//! container's namespace).

use overlayd_host::format_mac;
use overlayd_proto::{Handle, Response};
use overlayd_state::Table;

use super::attach::{netns_target, CONTAINER_IFNAME};
use super::error::{OpError, OpResult};
use super::node::Core;
use super::records::Attachment;

/// Longest CNI network name or container id accepted in a `cni` handle.
const MAX_CNI_ID_LEN: usize = 253;

/// Checks the names a `cni` handle carries: the network name and container
/// id as the CNI spec allows them (alphanumeric first, then alphanumerics,
/// `_`, `.`, `-`), and the interface name as Linux allows it.
pub fn validate_cni_handle(handle: &Handle) -> OpResult<()> {
    let Handle::Cni {
        network,
        container_id,
        ifname,
        ..
    } = handle
    else {
        return Ok(());
    };
    validate_cni_id("network", network)?;
    validate_cni_id("container_id", container_id)?;
    overlayd_host::validate_ifname(ifname)
        .map_err(|e| OpError::Invalid(format!("ifname {ifname:?}: {e}")))
}

fn validate_cni_id(what: &str, v: &str) -> OpResult<()> {
    let bad = |why: &str| Err(OpError::Invalid(format!("{what} {v:?} {why}")));
    if v.is_empty() {
        return bad("is empty");
    }
    if v.len() > MAX_CNI_ID_LEN {
        return bad(&format!("is longer than {MAX_CNI_ID_LEN} bytes"));
    }
    if !v.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return bad("must start with a letter or digit");
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return bad("may only contain letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

impl Core {
    fn attachment_of(&self, handle: &Handle) -> OpResult<Attachment> {
        let key = handle.key();
        self.store
            .read(|tx| tx.get::<Attachment>(Table::Attachments, &key))?
            .ok_or_else(|| OpError::NotFound(format!("{key} is not attached")))
    }

    /// `inspect_interface`: the container end of an attachment as it is
    /// right now inside the namespace recorded at attach (the request's
    /// handle only selects the attachment). `present` is false when the
    /// namespace or the interface is gone.
    pub async fn inspect_interface(&self, handle: &Handle) -> OpResult<Response> {
        let a = self.attachment_of(handle)?;
        if a.guest_private_key.is_some() {
            return Err(OpError::Invalid(format!(
                "{} is a guest that runs its own WireGuard: it has no interface to inspect",
                a.handle.key()
            )));
        }
        let ifname = a.handle.ifname().unwrap_or(CONTAINER_IFNAME).to_string();
        let live = match netns_target(&a.handle) {
            Ok(target) => self.host.container_interface(&target, &ifname).await?,
            Err(_) => None,
        };
        let (present, mac, up, addresses, gateways) = match live {
            Some(i) => (
                true,
                i.mac.as_ref().map(format_mac),
                i.up,
                i.addresses.iter().map(|a| a.to_string()).collect(),
                i.default_gateways.iter().map(|g| g.to_string()).collect(),
            ),
            None => (false, None, false, Vec::new(), Vec::new()),
        };
        Ok(Response::Interface {
            handle: a.handle.clone(),
            ifname,
            host_ifname: a.host_ifname,
            present,
            mac,
            up,
            addresses,
            gateways,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cni(network: &str, id: &str, ifname: &str) -> Handle {
        Handle::Cni {
            network: network.into(),
            container_id: id.into(),
            ifname: ifname.into(),
            netns: None,
        }
    }

    #[test]
    fn cni_handle_names_follow_the_spec() {
        validate_cni_handle(&cni("overlay", "default-web1", "eth0")).unwrap();
        validate_cni_handle(&cni("net_1.a", "0123abc", "net1")).unwrap();
        for bad in [
            cni("", "c", "eth0"),
            cni("-x", "c", "eth0"),
            cni("a/b", "c", "eth0"),
            cni("n", "", "eth0"),
            cni("n", "a b", "eth0"),
            cni("n", "c", ""),
            cni("n", "c", "a/b"),
            cni("n", "c", "sixteen-bytes-xx"),
            cni("n", "c", ".."),
        ] {
            assert!(
                matches!(validate_cni_handle(&bad), Err(OpError::Invalid(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn cni_key_ignores_the_netns() {
        let a = cni("n", "c", "eth0");
        let mut b = a.clone();
        if let Handle::Cni { netns, .. } = &mut b {
            *netns = Some("/proc/1/ns/net".into());
        }
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), "cni:n/c/eth0");
        assert_ne!(a.key(), cni("n", "c", "eth1").key());
        assert_ne!(a.key(), cni("m", "c", "eth0").key());
    }
}
