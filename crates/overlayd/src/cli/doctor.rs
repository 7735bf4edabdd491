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
    if cli.json {
        output::print(&Response::Networks { networks }, &cli.style(false))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = Vec::new();
    let mut drift = 0;
    for n in &networks {
        let (state, fix) = if !n.managed {
            (
                "foreign kind",
                "kept untouched; managed by the platform that wrote it".to_string(),
            )
        } else if !n.present {
            drift += 1;
            (
                "MISSING",
                "run `overlayd doctor --fix` (recreates it with the same name and identity)"
                    .to_string(),
            )
        } else if let Some(d) = n.extra.get("drift").and_then(|d| d.as_str()) {
            drift += 1;
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
    outln!(
        "{} recorded network(s), {} with drift",
        networks.len(),
        drift
    )?;
    Ok(if drift == 0 {
        ExitCode::SUCCESS
    } else {
        Exit::Drift.into()
    })
}
