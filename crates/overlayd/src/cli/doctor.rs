//! `overlayd doctor`: recorded versus live host state, the drift, and what
//! to do about it.

use std::process::ExitCode;

use anyhow::{bail, Result};

use super::exit::Exit;
use crate::outln;
use overlayd_proto::{Request, Response};

use super::{call, output, Cli, DoctorArgs};

/// Print each recorded network with its live state and a suggested fix.
pub async fn run(cli: &Cli, args: &DoctorArgs) -> Result<ExitCode> {
    if args.fix {
        let r = call::call(cli, Request::Reconcile).await?;
        if !cli.json {
            output::print(&r, &output::Style::default())?;
        }
    }
    let Response::Networks { networks } = call::call(cli, Request::ListNetworks).await? else {
        bail!("unexpected answer to list_networks");
    };
    let code = |drift: usize| {
        if drift == 0 {
            ExitCode::SUCCESS
        } else {
            Exit::Drift.into()
        }
    };
    if cli.json {
        // The exit code says the same as the text form: 3 on drift.
        let drift = networks.iter().map(drift_count).sum();
        output::print(&Response::Networks { networks }, &cli.style(false))?;
        return Ok(code(drift));
    }
    let mut rows = Vec::new();
    let drift: usize = networks.iter().map(drift_count).sum();
    let mut attachment_notes = Vec::new();
    for n in &networks {
        if let Some(list) = n.extra.get("attachment_drift").and_then(|d| d.as_array()) {
            for note in list.iter().filter_map(|d| d.as_str()) {
                attachment_notes.push(format!("{}: {note}", n.owner));
            }
        }
        let (state, fix) = if !n.managed {
            (
                "foreign kind",
                "kept untouched; managed by the platform that wrote it".to_string(),
            )
        } else if !n.present {
            (
                "MISSING",
                "run `overlayd doctor --fix` (recreates it with the same name and identity)"
                    .to_string(),
            )
        } else if let Some(d) = n.extra.get("drift").and_then(|d| d.as_str()) {
            ("DRIFT", d.to_string())
        } else {
            ("ok", String::new())
        };
        rows.push(vec![
            n.owner.clone(),
            n.kind.clone(),
            n.name.clone(),
            state.to_string(),
            fix,
        ]);
    }
    for l in output::render_table(&["OWNER", "KIND", "NAME", "STATE", "SUGGESTED FIX"], &rows) {
        outln!("{l}")?;
    }
    for note in &attachment_notes {
        outln!("ATTACHMENT DRIFT {note}")?;
    }
    outln!(
        "{} recorded network(s), {} with drift",
        networks.len(),
        drift
    )?;
    Ok(code(drift))
}

/// How many problems one network's view reports: each attachment problem,
/// a missing network, and its own drift.
fn drift_count(n: &overlayd_proto::NetworkView) -> usize {
    let attachments = n
        .extra
        .get("attachment_drift")
        .and_then(|d| d.as_array())
        .map_or(0, Vec::len);
    let own = if !n.managed {
        0
    } else if !n.present || n.extra.get("drift").is_some_and(|d| d.is_string()) {
        1
    } else {
        0
    };
    attachments + own
}
