//! ADD: create the network on first use, attach the container with the
//! requested interface name, and answer a full result.

use overlayd_proto::{Handle, Request, Response};

use crate::config::{dns_label, NetConf};
use crate::daemon::{Daemon, NOT_FOUND_MARK};
use crate::env::CniEnv;
use crate::error::*;
use crate::result::{CniResult, Dns, Interface, IpConfig, Route};

/// Run ADD; returns the result JSON.
pub fn add(env: &CniEnv, conf: &NetConf) -> Result<serde_json::Value, CniError> {
    let container_id = super::container_id(env)?;
    let ifname = env.require_ifname()?;
    let netns = env.require_netns()?;
    let publish = conf.publish()?;
    let mut prev = match &conf.prev_result {
        Some(v) => CniResult::from_prev(v)?,
        None => CniResult::default(),
    };
    let mut d = Daemon::connect(conf.socket())?;
    d.call(Request::SetupServiceOverlay {
        service: conf.service().to_string(),
        mode: conf.mode(),
        recreate: false,
    })?;
    if let Some(net) = &conf.isolation {
        d.call(Request::SetupIsolationNetwork {
            network: net.clone(),
            subnet: None,
            internal: false,
            ipv6: conf.ipv6,
            subnet_v6: None,
        })?;
    }
    let handle = Handle::Cni {
        network: conf.name.clone(),
        container_id: container_id.to_string(),
        ifname: ifname.to_string(),
        netns: Some(netns.to_string()),
    };
    if d.inspect(&handle)?.is_some() {
        return Err(CniError::new(
            DAEMON_CONFLICT,
            format!(
                "container {container_id} already has {ifname} on network {}",
                conf.name
            ),
        )
        .with_details("a second ADD for the same container and interface; DEL it first"));
    }
    let name = dns_label(&conf.dns_name, env.arg("K8S_POD_NAME"), container_id);
    d.call(Request::AttachContainer {
        handle: handle.clone(),
        service: conf.service().to_string(),
        join_global: conf.join_global,
        dns_server: None,
        dns_domain: None,
        isolation: conf.isolation.clone(),
        name,
        publish,
    })
    .map_err(|e| {
        if e.details == NOT_FOUND_MARK && e.msg.contains("network namespace") {
            CniError::new(
                INVALID_CONFIG,
                format!("CNI_NETNS {netns} is not a usable network namespace"),
            )
            .with_details(e.msg)
        } else {
            e
        }
    })?;
    let ours = describe(&mut d, &handle, netns)?;
    prev.append(ours);
    Ok(prev.to_json(&conf.cni_version))
}

/// This plugin's part of the result, read back from the daemon.
fn describe(d: &mut Daemon, handle: &Handle, netns: &str) -> Result<CniResult, CniError> {
    let Some(Response::Attachment {
        ip,
        prefix_len,
        gateway,
        dns_server,
        dns_domain,
        ip_v6,
        prefix_len_v6,
        gateway_v6,
        ..
    }) = d.inspect(handle)?
    else {
        return Err(CniError::new(
            DAEMON_OTHER,
            "overlayd lost the attachment it just made",
        ));
    };
    let Response::Interface {
        ifname,
        host_ifname,
        mac,
        ..
    } = d.call(Request::InspectInterface {
        handle: handle.clone(),
    })?
    else {
        return Err(CniError::new(
            DAEMON_OTHER,
            "unexpected answer to inspect_interface",
        ));
    };
    let default_dst = |gw: &str| {
        if gw.contains(':') {
            "::/0"
        } else {
            "0.0.0.0/0"
        }
    };
    // Dual-stack: the IPv6 address (and its default route) after the IPv4 one.
    let mut ips = vec![IpConfig {
        address: format!("{ip}/{prefix_len}"),
        gateway: gateway.clone(),
        interface: Some(1),
        ..Default::default()
    }];
    if let (Some(ip6), Some(p6)) = (ip_v6, prefix_len_v6) {
        ips.push(IpConfig {
            address: format!("{ip6}/{p6}"),
            gateway: gateway_v6.clone(),
            interface: Some(1),
            ..Default::default()
        });
    }
    Ok(CniResult {
        interfaces: vec![
            Interface {
                name: host_ifname,
                ..Default::default()
            },
            Interface {
                name: ifname,
                mac,
                sandbox: Some(netns.to_string()),
                ..Default::default()
            },
        ],
        ips,
        routes: gateway
            .into_iter()
            .chain(gateway_v6)
            .map(|gw| Route {
                dst: default_dst(&gw).to_string(),
                gw: Some(gw),
                ..Default::default()
            })
            .collect(),
        dns: Dns {
            nameservers: vec![dns_server]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            search: vec![dns_domain]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            ..Default::default()
        },
    })
}
