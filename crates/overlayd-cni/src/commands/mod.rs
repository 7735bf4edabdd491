//! One function per CNI command. ADD and CHECK have their own modules; DEL,
//! STATUS, GC and VERSION are short.

mod add;
mod check;

use std::collections::BTreeSet;

use overlayd_proto::{Handle, Request, Response};
use serde_json::{json, Value};

use crate::config::{NetConf, CURRENT_VERSION, SUPPORTED_VERSIONS};
use crate::daemon::Daemon;
use crate::env::{CniEnv, Command};
use crate::error::*;

pub use add::add;
pub use check::check;

/// Run `command`; `Some(json)` is printed on stdout.
pub fn run(command: Command, env: &CniEnv, conf: &NetConf) -> Result<Option<Value>, CniError> {
    match command {
        Command::Add => add(env, conf).map(Some),
        Command::Del => del(env, conf).map(|()| None),
        Command::Check => check(env, conf).map(|()| None),
        Command::Status => status(conf).map(|()| None),
        Command::Gc => gc(conf).map(|()| None),
        Command::Version => Ok(Some(version(&conf.cni_version))),
    }
}

/// `CNI_CONTAINERID`, required and made of the characters the spec allows.
fn container_id(env: &CniEnv) -> Result<&str, CniError> {
    let id = env.require_container_id()?;
    let ok = id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(CniError::new(
            INVALID_ENV,
            format!("CNI_CONTAINERID {id:?} is not a valid container id"),
        )
        .with_details("letters, digits, '_', '.' and '-', starting with a letter or digit"));
    }
    Ok(id)
}

/// VERSION: the versions this plugin speaks.
pub fn version(asked: &str) -> Value {
    let v = if SUPPORTED_VERSIONS.contains(&asked) {
        asked
    } else {
        CURRENT_VERSION
    };
    json!({ "cniVersion": v, "supportedVersions": SUPPORTED_VERSIONS })
}

/// DEL: release the attachment by (network, container id, interface name).
/// Succeeds when the namespace, the interface or the record is already gone.
pub fn del(env: &CniEnv, conf: &NetConf) -> Result<(), CniError> {
    let container_id = container_id(env)?;
    let ifname = env.require_ifname()?;
    let mut d = Daemon::connect(conf.socket())?;
    d.call(Request::DetachContainer {
        handle: Handle::Cni {
            network: conf.name.clone(),
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            netns: None,
        },
    })?;
    Ok(())
}

/// STATUS (1.1.0): ready when overlayd answers and the network the
/// configuration targets is either not created yet (ADD creates it) or
/// present without drift.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    need_1_1("STATUS", conf)?;
    // Without the daemon, existing containers keep their links but lose DNS.
    let limited =
        |e: CniError| CniError::new(PLUGIN_NOT_AVAILABLE_LIMITED, e.msg).with_details(e.details);
    let mut d = Daemon::connect(conf.socket()).map_err(limited)?;
    d.call(Request::Hello {
        protocol_version: overlayd_proto::PROTOCOL_VERSION,
    })
    .map_err(|e| CniError::new(PLUGIN_NOT_AVAILABLE, e.msg).with_details(e.details))?;
    let Response::Networks { networks } = d
        .call(Request::ListNetworks)
        .map_err(|e| CniError::new(PLUGIN_NOT_AVAILABLE, e.msg).with_details(e.details))?
    else {
        return Err(CniError::new(
            PLUGIN_NOT_AVAILABLE,
            "unexpected answer to list_networks",
        ));
    };
    let owner = match (&conf.isolation, conf.mode().resolve(), conf.join_global) {
        (Some(net), _, _) => format!("iso:{net}"),
        (None, overlayd_proto::ServiceMode::Dedicated, _) => format!("service:{}", conf.service()),
        (None, _, true) => "base".to_string(),
        (None, _, false) => "shared-nat".to_string(),
    };
    match networks.iter().find(|n| n.owner == owner) {
        None if owner == "base" => Err(CniError::new(
            PLUGIN_NOT_AVAILABLE,
            "join_global is set but the global overlay is not set up",
        )
        .with_details("run `overlayd global up` first")),
        None => Ok(()),
        Some(n) if !n.present => Err(CniError::new(
            PLUGIN_NOT_AVAILABLE_LIMITED,
            format!("the bridge {} of {owner} is missing", n.name),
        )
        .with_details("run `overlayd doctor --fix`")),
        Some(n) => match n.extra.get("drift").and_then(Value::as_str) {
            Some(drift) => Err(CniError::new(
                PLUGIN_NOT_AVAILABLE_LIMITED,
                format!("{owner} has drifted: {drift}"),
            )),
            None => Ok(()),
        },
    }
}

/// GC (1.1.0): release every attachment of this network that is not in
/// `cni.dev/valid-attachments` (or `cni.dev/attachments`). Best effort: every
/// release is tried, failures are reported together.
pub fn gc(conf: &NetConf) -> Result<(), CniError> {
    need_1_1("GC", conf)?;
    let keep: BTreeSet<(String, String)> = conf
        .valid_attachments()
        .into_iter()
        .map(|a| (a.container_id, a.ifname))
        .collect();
    let mut d = Daemon::connect(conf.socket())?;
    let Response::Attachments { attachments } = d.call(Request::ListAttachments)? else {
        return Err(CniError::new(
            DAEMON_OTHER,
            "unexpected answer to list_attachments",
        ));
    };
    let mut failures = Vec::new();
    for a in attachments {
        let Handle::Cni {
            network,
            container_id,
            ifname,
            ..
        } = &a.handle
        else {
            continue;
        };
        if *network != conf.name || keep.contains(&(container_id.clone(), ifname.clone())) {
            continue;
        }
        if let Err(e) = d.call(Request::DetachContainer {
            handle: a.handle.clone(),
        }) {
            failures.push(format!("{container_id}/{ifname}: {}", e.msg));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            DAEMON_OTHER,
            format!("GC could not release {} attachment(s)", failures.len()),
        )
        .with_details(failures.join("; ")))
    }
}

fn need_1_1(what: &str, conf: &NetConf) -> Result<(), CniError> {
    if conf.version_at_least("1.1.0") {
        Ok(())
    } else {
        Err(CniError::new(
            INCOMPATIBLE_VERSION,
            format!("{what} needs cniVersion 1.1.0, not {}", conf.cni_version),
        ))
    }
}
