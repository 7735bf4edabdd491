//! `overlayd events`: stream the daemon's events (attach, detach, networks,
//! peers, reconciles, peer health) until interrupted; one line per event,
//! human or `--json` (the event frame's body) or `--format`.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use overlayd_proto::{Event, Request, Response};

use super::exit::{Exit, Failure};
use super::{call, output, Cli};

/// Subscribe and print events as they come.
pub async fn run(cli: &Cli) -> Result<ExitCode> {
    let mut client = call::connect(cli).await?;
    match client.call(Request::SubscribeEvents).await? {
        Response::Ok => {}
        Response::Err { message, code } => {
            return Err(Failure::new(Exit::from_code(code), message).into())
        }
        other => bail!("unexpected answer to subscribe_events: {other:?}"),
    }
    let style = cli.style(false);
    loop {
        let event = client.next_event().await.map_err(|e| {
            Failure::new(
                Exit::Unreachable,
                format!("the event stream ended: {e}; the daemon stopped or restarted, run `overlayd events` again"),
            )
        })?;
        output::single(&style, &event, || {
            output::line(&format!("{} {}", clock(SystemTime::now()), human(&event)))?;
            Ok(())
        })?;
    }
}

/// UTC time of day, `HH:MM:SSZ`.
fn clock(t: SystemTime) -> String {
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        % 86_400;
    format!("{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// One event for people: its name, then its fields as `key=value`.
pub fn human(e: &Event) -> String {
    let v = serde_json::to_value(e).unwrap_or_default();
    let Some(map) = v.as_object() else {
        return v.to_string();
    };
    let name = map.get("event").and_then(|n| n.as_str()).unwrap_or("event");
    let mut s = name.to_string();
    for (k, v) in map.iter().filter(|(k, _)| *k != "event") {
        let text = match v {
            serde_json::Value::String(x) => x.clone(),
            other => other.to_string(),
        };
        s.push_str(&format!(" {k}={text}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_name_and_fields() {
        let e = Event::ContainerAttached {
            key: "pid:42".into(),
            service: "web".into(),
            network: "shared-nat".into(),
            ip: "10.201.0.2".into(),
        };
        assert_eq!(
            human(&e),
            "container_attached key=pid:42 service=web network=shared-nat ip=10.201.0.2"
        );
        assert_eq!(
            clock(UNIX_EPOCH + std::time::Duration::from_secs(3_723)),
            "01:02:03Z"
        );
    }
}
