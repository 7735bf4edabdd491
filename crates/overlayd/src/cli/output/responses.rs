//! How each protocol response looks for people, and which item list,
//! columns and ids it offers to `-q` and `--format`.

use std::time::SystemTime;

use anyhow::Result;
use overlayd_proto::{
    AttachmentView, DedicatedServiceStatus, DnsRecordView, NetworkView, PeerStatus, Response,
    ServiceView, StatusInfo,
};

use super::{ago_unix, line, list, opt, render_table, single, Column, Style};

/// Print a response in the requested style.
pub fn print(r: &Response, style: &Style) -> Result<()> {
    match r {
        Response::Networks { networks } => {
            list(style, r, networks, NETWORK_COLUMNS, |n| n.owner.clone())
        }
        Response::DnsRecords { records, .. } => {
            list(style, r, records, DNS_COLUMNS, |d| d.name.clone())
        }
        Response::Services { services } => {
            list(style, r, services, SERVICE_COLUMNS, |s| s.name.clone())
        }
        Response::Attachments { attachments } => {
            list(style, r, attachments, ATTACHMENT_COLUMNS, |a| a.key.clone())
        }
        Response::Status(s) => single(style, r, || print_status(s)),
        other => single(style, other, || print_human(other)),
    }
}

/// Print one network in detail (`network inspect`): `--json` prints the
/// network view; people get its fields and its members with addresses.
pub fn print_inspect(n: &NetworkView, members: &[AttachmentView], style: &Style) -> Result<()> {
    single(style, n, || {
        let v = serde_json::to_value(n)?;
        let mut rows = Vec::new();
        if let Some(map) = v.as_object() {
            for (k, v) in map {
                rows.push(vec![
                    k.clone(),
                    match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                ]);
            }
        }
        for l in render_table(&["FIELD", "VALUE"], &rows) {
            line(&l)?;
        }
        if !members.is_empty() {
            line("")?;
            list(&Style::default(), &(), members, ATTACHMENT_COLUMNS, |a| {
                a.key.clone()
            })?;
        }
        Ok(())
    })
}

const NETWORK_COLUMNS: &[Column<NetworkView>] = &[
    Column {
        header: "OWNER",
        cell: |n| n.owner.clone(),
    },
    Column {
        header: "KIND",
        cell: |n| n.kind.clone(),
    },
    Column {
        header: "NAME",
        cell: |n| n.name.clone(),
    },
    Column {
        header: "SUBNET",
        // Both subnets of a dual-stack network.
        cell: |n| match n.extra.get("subnet_v6").and_then(|v| v.as_str()) {
            Some(s6) => format!("{},{s6}", n.subnet),
            None => n.subnet.clone(),
        },
    },
    Column {
        header: "WG PORT",
        cell: |n| opt(&n.wg_port),
    },
    Column {
        header: "STATE",
        cell: |n| {
            if !n.managed {
                "not managed here".into()
            } else if !n.present {
                "missing".into()
            } else if n.extra.contains_key("drift") {
                "drift".into()
            } else {
                "present".into()
            }
        },
    },
];

const DNS_COLUMNS: &[Column<DnsRecordView>] = &[
    Column {
        header: "NAME",
        cell: |d| d.name.clone(),
    },
    Column {
        header: "ADDRESSES",
        cell: |d| d.ips.join(","),
    },
];

const SERVICE_COLUMNS: &[Column<ServiceView>] = &[
    Column {
        header: "NAME",
        cell: |s| s.name.clone(),
    },
    Column {
        header: "MODE",
        cell: |s| s.mode.clone(),
    },
    Column {
        header: "NETWORK",
        cell: |s| s.network.clone(),
    },
    Column {
        header: "SUBNET",
        cell: |s| opt(&s.subnet),
    },
    Column {
        header: "BRIDGE",
        cell: |s| opt(&s.bridge),
    },
    Column {
        header: "WG DEVICE",
        cell: |s| opt(&s.interface),
    },
    Column {
        header: "WG PORT",
        cell: |s| opt(&s.wg_port),
    },
    Column {
        header: "CONTAINERS",
        cell: |s| s.attachments.to_string(),
    },
];

const ATTACHMENT_COLUMNS: &[Column<AttachmentView>] = &[
    Column {
        header: "CONTAINER",
        cell: |a| a.key.clone(),
    },
    Column {
        header: "SERVICE",
        cell: |a| a.service.clone(),
    },
    Column {
        header: "NETWORK",
        cell: |a| a.network.clone(),
    },
    Column {
        header: "INTERFACE",
        cell: |a| opt(&a.interface),
    },
    Column {
        header: "ADDRESSES",
        cell: |a| a.addresses.join(","),
    },
    Column {
        header: "DNS NAMES",
        cell: |a| {
            if a.dns_names.is_empty() {
                "-".into()
            } else {
                a.dns_names.join(",")
            }
        },
    },
    Column {
        header: "PORTS",
        cell: |a| {
            if a.ports.is_empty() {
                "-".into()
            } else {
                a.ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        },
    },
];

const PEER_COLUMNS: &[Column<PeerStatus>] = &[
    Column {
        header: "PEER",
        cell: |p| p.public_key.clone(),
    },
    Column {
        header: "ENDPOINT",
        cell: |p| p.endpoint.clone(),
    },
    Column {
        header: "ALLOWED IPS",
        cell: |p| p.allowed_ips.clone(),
    },
    Column {
        header: "LAST HANDSHAKE",
        cell: |p| ago_unix(p.last_handshake_unix_secs, SystemTime::now()),
    },
];

const DEDICATED_COLUMNS: &[Column<DedicatedServiceStatus>] = &[
    Column {
        header: "SERVICE",
        cell: |d| d.service.clone(),
    },
    Column {
        header: "INTERFACE",
        cell: |d| d.interface.clone(),
    },
    Column {
        header: "PORT",
        cell: |d| d.listen_port.to_string(),
    },
    Column {
        header: "SUBNET",
        cell: |d| d.subnet.clone(),
    },
    Column {
        header: "OVERLAY IP",
        cell: |d| d.overlay_ip.clone(),
    },
    Column {
        header: "PEERS",
        cell: |d| d.peer_count.to_string(),
    },
];

fn table(headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    for l in render_table(headers, rows) {
        line(&l)?;
    }
    Ok(())
}

fn print_status(s: &StatusInfo) -> Result<()> {
    table(
        &[
            "INTERFACE",
            "NODE IP",
            "CLUSTER",
            "SLICE",
            "PEERS",
            "SERVICES",
            "PUBLIC KEY",
        ],
        &[vec![
            opt(&s.interface),
            opt(&s.node_ip),
            opt(&s.overlay_cidr),
            opt(&s.slice_cidr),
            s.peer_count.to_string(),
            s.service_count.to_string(),
            opt(&s.public_key),
        ]],
    )?;
    let plain = Style::default();
    if let Some(peers) = s.peers.as_ref().filter(|p| !p.is_empty()) {
        line("")?;
        list(&plain, &(), peers, PEER_COLUMNS, |p| p.public_key.clone())?;
    }
    if let Some(svcs) = s.dedicated_services.as_ref().filter(|p| !p.is_empty()) {
        line("")?;
        list(&plain, &(), svcs, DEDICATED_COLUMNS, |d| d.service.clone())?;
    }
    Ok(())
}

fn print_human(r: &Response) -> Result<()> {
    match r {
        Response::Ok => line("ok")?,
        Response::Ip { ip } => line(ip)?,
        Response::Attached { ip, ip_v6, .. } => match ip_v6 {
            Some(ip6) => line(&format!("attached: {ip} {ip6}"))?,
            None => line(&format!("attached: {ip}"))?,
        },
        Response::BridgeName { name } => line(name)?,
        Response::Err { message, .. } => eprintln!("error: {message}"),
        Response::Hello {
            protocol_version,
            server_version,
            extensions,
        } => line(&format!(
            "overlayd {server_version}, protocol v{protocol_version}, extensions: {}",
            extensions.join(", ")
        ))?,
        Response::ServiceOverlay {
            name,
            mode,
            wg_public_key,
            wg_port,
            overlay_ip,
            subnet,
        } => table(
            &["BRIDGE", "MODE", "SUBNET", "OVERLAY IP", "WG PORT", "PUBLIC KEY"],
            &[vec![
                name.clone(),
                mode.clone(),
                opt(subnet),
                opt(overlay_ip),
                opt(wg_port),
                opt(wg_public_key),
            ]],
        )?,
        Response::Attachment {
            network,
            ip,
            prefix_len,
            gateway,
            dns_server,
            dns_domain,
            name,
            ip_v6,
            prefix_len_v6,
            gateway_v6,
            ..
        } => table(
            &["NETWORK", "ADDRESS", "GATEWAY", "DNS SERVER", "DNS DOMAIN", "NAME"],
            &[vec![
                network.clone(),
                match (ip_v6, prefix_len_v6) {
                    (Some(ip6), Some(p6)) => format!("{ip}/{prefix_len}, {ip6}/{p6}"),
                    _ => format!("{ip}/{prefix_len}"),
                },
                match gateway_v6 {
                    Some(g6) => format!("{}, {g6}", opt(gateway)),
                    None => opt(gateway),
                },
                dns_server.clone(),
                dns_domain.clone(),
                opt(name),
            ]],
        )?,
        Response::Interface {
            ifname,
            host_ifname,
            present,
            mac,
            addresses,
            gateways,
            ..
        } => table(
            &["INTERFACE", "HOST END", "PRESENT", "MAC", "ADDRESSES", "GATEWAYS"],
            &[vec![
                ifname.clone(),
                host_ifname.clone(),
                present.to_string(),
                opt(mac),
                addresses.join(", "),
                gateways.join(", "),
            ]],
        )?,
        Response::Reconciled {
            adopted,
            recreated,
            created,
            orphans,
            reclaimed,
            conflicts,
        } => line(&format!(
            "reconciled: {adopted} adopted, {recreated} recreated, {created} created, {orphans} orphan(s), {reclaimed} attachment(s) reclaimed, {conflicts} conflict(s)"
        ))?,
        Response::ClusterStatus {
            node_name,
            degraded,
            reason,
            slice,
            subnets,
            members,
            ..
        } => crate::cli::cluster::print_status(
            node_name,
            *degraded,
            reason,
            slice.as_deref(),
            subnets,
            members,
        )?,
        Response::IsolationNetwork {
            network,
            subnet,
            bridge,
            subnet_v6,
        } => table(
            &["NETWORK", "SUBNET", "BRIDGE"],
            &[vec![
                network.clone(),
                match subnet_v6 {
                    Some(s6) => format!("{subnet}, {s6}"),
                    None => subnet.clone(),
                },
                bridge.clone(),
            ]],
        )?,
        Response::Pruned {
            networks,
            services,
            errors,
        } => {
            for n in networks {
                line(&format!("removed isolation network {n}"))?;
            }
            for s in services {
                line(&format!("removed service {s}"))?;
            }
            for e in errors {
                line(&format!("not removed: {e}"))?;
            }
            if networks.is_empty() && services.is_empty() && errors.is_empty() {
                line("nothing to prune")?;
            }
        }
        Response::GuestConfig {
            overlay_ip,
            prefix_len,
            public_key,
            listen_port,
            peers,
            ..
        } => line(&format!(
            "guest {overlay_ip}/{prefix_len} port {listen_port} key {public_key} ({} peers)",
            peers.len()
        ))?,
        Response::Status(s) => print_status(s)?,
        Response::Networks { .. }
        | Response::DnsRecords { .. }
        | Response::Services { .. }
        | Response::Attachments { .. } => print(r, &Style::default())?,
    }
    Ok(())
}
