//! CHECK: the container's interface, its address and default route exist
//! as `prevResult` and overlayd's record say. Prints nothing on success.

use overlayd_proto::{Handle, Request, Response};

use crate::config::NetConf;
use crate::daemon::Daemon;
use crate::env::CniEnv;
use crate::error::*;
use crate::result::CniResult;

/// Run CHECK.
pub fn check(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    if !conf.version_at_least("0.4.0") {
        return Err(CniError::new(
            INCOMPATIBLE_VERSION,
            format!(
                "CHECK needs cniVersion 0.4.0 or later, not {}",
                conf.cni_version
            ),
        ));
    }
    let container_id = super::container_id(env)?;
    let ifname = env.require_ifname()?;
    let netns = env.require_netns()?;
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            INVALID_CONFIG,
            "CHECK needs prevResult in the configuration",
        )
    })?;
    let prev = CniResult::from_prev(prev)?;
    let mut d = Daemon::connect(conf.socket())?;
    let handle = Handle::Cni {
        network: conf.name.clone(),
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        netns: Some(netns.to_string()),
    };
    let failed = |msg: String| CniError::new(CHECK_FAILED, msg);
    let Some(Response::Attachment {
        ip,
        prefix_len,
        gateway,
        ip_v6,
        prefix_len_v6,
        gateway_v6,
        ..
    }) = d.inspect(&handle)?
    else {
        return Err(failed(format!(
            "overlayd has no attachment of container {container_id} ({ifname}) on network {}",
            conf.name
        )));
    };
    let Response::Interface {
        present,
        up,
        addresses,
        gateways,
        ..
    } = d.call(Request::InspectInterface { handle })?
    else {
        return Err(CniError::new(
            DAEMON_OTHER,
            "unexpected answer to inspect_interface",
        ));
    };
    if !present {
        return Err(failed(format!("interface {ifname} is missing in {netns}")));
    }
    if !up {
        return Err(failed(format!("interface {ifname} in {netns} is down")));
    }
    let ours = format!("{ip}/{prefix_len}");
    // Dual-stack: the IPv6 address and default route are checked alike.
    let ours_v6 = ip_v6.zip(prefix_len_v6).map(|(i, p)| format!("{i}/{p}"));
    for a in std::iter::once(&ours).chain(ours_v6.as_ref()) {
        if !addresses.contains(a) {
            return Err(failed(format!("interface {ifname} lacks its address {a}")));
        }
    }
    for gw in gateway_v6.iter() {
        if !gateways.contains(gw) {
            return Err(failed(format!(
                "the IPv6 default route via {gw} on {ifname} is missing"
            )));
        }
    }
    if let Some(gw) = &gateway {
        if !gateways.contains(gw) {
            return Err(failed(format!(
                "the default route via {gw} on {ifname} is missing"
            )));
        }
    }
    // prevResult: our interface, and every address and default route it
    // lists for that interface, must be live.
    let Some(idx) = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.as_deref().is_none_or(|s| s == netns))
    else {
        return Err(failed(format!(
            "prevResult lists no interface {ifname} in {netns}"
        )));
    };
    let mut listed_ours = false;
    for a in prev.ips.iter().filter(|a| a.interface == Some(idx)) {
        if !addresses.contains(&a.address) {
            return Err(failed(format!(
                "prevResult address {} is not on {ifname}",
                a.address
            )));
        }
        listed_ours |= a.address == ours;
    }
    if !listed_ours {
        return Err(failed(format!(
            "prevResult does not list {ours}, the address overlayd gave {ifname}"
        )));
    }
    Ok(())
}
