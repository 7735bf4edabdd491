//! `overlayd version`: the client's version and protocol, and the running
//! daemon's (from `hello`), side by side.

use std::process::ExitCode;

use anyhow::Result;
use overlayd_proto::{Request, Response, PROTOCOL_VERSION};
use serde_json::json;

use super::{call, output, Cli};
use crate::outln;

/// Print client and daemon versions. The client part is printed even when
/// the daemon cannot be reached; then the command fails with that error.
pub async fn run(cli: &Cli) -> Result<ExitCode> {
    let client = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "protocol_version": PROTOCOL_VERSION,
    });
    let daemon = call::call(
        cli,
        Request::Hello {
            protocol_version: PROTOCOL_VERSION,
        },
    )
    .await;
    let daemon_json = match &daemon {
        Ok(Response::Hello {
            protocol_version,
            server_version,
            extensions,
        }) => json!({
            "version": server_version,
            "protocol_version": protocol_version,
            "extensions": extensions,
        }),
        _ => serde_json::Value::Null,
    };
    let payload = json!({ "client": client, "daemon": daemon_json });
    output::single(&cli.style(false), &payload, || {
        outln!("Client:")?;
        outln!(" Version:   {}", env!("CARGO_PKG_VERSION"))?;
        outln!(" Protocol:  v{PROTOCOL_VERSION}")?;
        if !daemon_json.is_null() {
            outln!()?;
            outln!("Daemon:")?;
            outln!(
                " Version:   {}",
                daemon_json["version"].as_str().unwrap_or("?")
            )?;
            outln!(" Protocol:  v{}", daemon_json["protocol_version"])?;
            let ext: Vec<&str> = daemon_json["extensions"]
                .as_array()
                .map(|a| a.iter().filter_map(|e| e.as_str()).collect())
                .unwrap_or_default();
            outln!(" Extensions: {}", ext.join(", "))?;
        }
        Ok(())
    })?;
    daemon?;
    Ok(ExitCode::SUCCESS)
}
