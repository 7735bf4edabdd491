//! Output for people (aligned tables) and machines (`--json`: the response
//! payload exactly as the protocol carries it).

use anyhow::Result;
use overlayd_proto::{NetworkView, Response};

/// Print an aligned table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(T::to_string).unwrap_or_else(|| "-".into())
}

/// Print a response.
pub fn print(r: &Response, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    match r {
        Response::Ok => println!("ok"),
        Response::Ip { ip } => println!("{ip}"),
        Response::Attached { ip, .. } => println!("attached: {ip}"),
        Response::BridgeName { name } => println!("{name}"),
        Response::Err { message, .. } => eprintln!("error: {message}"),
        Response::Hello {
            protocol_version,
            server_version,
            extensions,
        } => println!(
            "overlayd {server_version}, protocol v{protocol_version}, extensions: {}",
            extensions.join(", ")
        ),
        Response::ServiceOverlay {
            name,
            mode,
            wg_public_key,
            wg_port,
            overlay_ip,
            subnet,
        } => table(
            &[
                "SERVICE",
                "MODE",
                "SUBNET",
                "OVERLAY IP",
                "WG PORT",
                "PUBLIC KEY",
            ],
            &[vec![
                name.clone(),
                mode.clone(),
                opt(subnet),
                opt(overlay_ip),
                opt(wg_port),
                opt(wg_public_key),
            ]],
        ),
        Response::Attachment {
            network,
            ip,
            prefix_len,
            gateway,
            dns_server,
            dns_domain,
            name,
            ..
        } => table(
            &["NETWORK", "ADDRESS", "GATEWAY", "DNS SERVER", "DNS DOMAIN", "NAME"],
            &[vec![
                network.clone(),
                format!("{ip}/{prefix_len}"),
                opt(gateway),
                dns_server.clone(),
                dns_domain.clone(),
                opt(name),
            ]],
        ),
        Response::Reconciled {
            adopted,
            recreated,
            created,
            orphans,
            reclaimed,
            conflicts,
        } => println!(
            "reconciled: {adopted} adopted, {recreated} recreated, {created} created, {orphans} orphan(s), {reclaimed} attachment(s) reclaimed, {conflicts} conflict(s)"
        ),
        Response::DnsRecords { records, .. } => {
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| vec![r.name.clone(), r.ips.join(", ")])
                .collect();
            table(&["NAME", "ADDRESSES"], &rows);
        }
        Response::ClusterStatus {
            node_name,
            degraded,
            reason,
            slice,
            subnets,
            members,
            ..
        } => super::cluster::print_status(
            node_name,
            *degraded,
            reason,
            slice.as_deref(),
            subnets,
            members,
        ),
        Response::IsolationNetwork {
            network,
            subnet,
            bridge,
        } => table(
            &["NETWORK", "SUBNET", "BRIDGE"],
            &[vec![network.clone(), subnet.clone(), bridge.clone()]],
        ),
        Response::GuestConfig {
            overlay_ip,
            prefix_len,
            public_key,
            listen_port,
            peers,
            ..
        } => println!(
            "guest {overlay_ip}/{prefix_len} port {listen_port} key {public_key} ({} peers)",
            peers.len()
        ),
        Response::Status(s) => {
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
            );
            if let Some(peers) = s.peers.as_ref().filter(|p| !p.is_empty()) {
                println!();
                let rows: Vec<Vec<String>> = peers
                    .iter()
                    .map(|p| {
                        vec![
                            p.public_key.clone(),
                            p.endpoint.clone(),
                            p.allowed_ips.clone(),
                            p.last_handshake_unix_secs.to_string(),
                        ]
                    })
                    .collect();
                table(
                    &["PEER", "ENDPOINT", "ALLOWED IPS", "LAST HANDSHAKE"],
                    &rows,
                );
            }
            if let Some(svcs) = s.dedicated_services.as_ref().filter(|p| !p.is_empty()) {
                println!();
                let rows: Vec<Vec<String>> = svcs
                    .iter()
                    .map(|d| {
                        vec![
                            d.service.clone(),
                            d.interface.clone(),
                            d.listen_port.to_string(),
                            d.subnet.clone(),
                            d.overlay_ip.clone(),
                            d.peer_count.to_string(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "SERVICE",
                        "INTERFACE",
                        "PORT",
                        "SUBNET",
                        "OVERLAY IP",
                        "PEERS",
                    ],
                    &rows,
                );
            }
        }
        Response::Networks { networks } => {
            let rows: Vec<Vec<String>> = networks
                .iter()
                .map(|n| {
                    vec![
                        n.owner.clone(),
                        n.kind.clone(),
                        n.name.clone(),
                        n.subnet.clone(),
                        opt(&n.wg_port),
                        if !n.managed {
                            "not managed here".into()
                        } else if n.present {
                            "present".into()
                        } else {
                            "missing".into()
                        },
                    ]
                })
                .collect();
            table(
                &["OWNER", "KIND", "NAME", "SUBNET", "WG PORT", "STATE"],
                &rows,
            );
        }
    }
    Ok(())
}

/// Print one network in detail.
pub fn print_inspect(n: &NetworkView, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(n)?);
        return Ok(());
    }
    let v = serde_json::to_value(n)?;
    if let Some(map) = v.as_object() {
        let rows: Vec<Vec<String>> = map
            .iter()
            .map(|(k, v)| {
                vec![
                    k.clone(),
                    match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                ]
            })
            .collect();
        table(&["FIELD", "VALUE"], &rows);
    }
    Ok(())
}
