//! Running `nft` and writing sysctls inside the daemon's network namespace.
//!
//! `nft` is spawned for whole-table writes, reads and removal (never per
//! attach) from a thread that entered the host namespace, so the child
//! process inherits it. Published-port elements, the only per-attach change,
//! go over netlink instead ([`super::nft_elements`]): no process at all.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use nftables::helper::{apply_ruleset_raw, get_current_ruleset_raw, NftablesError};

use crate::error::{HostError, Result};
use crate::firewall::compare::live_table_matches;
use crate::firewall::ruleset::{apply_batch, remove_batch};
use crate::firewall::{FirewallSpec, PublishedPort};
use crate::linux::netns::run_in_ns;
use crate::linux::nft_elements::ElementSocket;

/// Where and how to run `nft`.
#[derive(Debug, Clone)]
pub(crate) struct NftRunner {
    /// The daemon's namespace.
    pub ns: Arc<OwnedFd>,
    /// Program to run.
    pub program: PathBuf,
    /// Our table's name (family inet).
    pub table: String,
    /// The netfilter socket published-port elements are written through.
    pub elements: ElementSocket,
}

fn nft_error(op: &'static str, e: NftablesError) -> HostError {
    let message = match e {
        NftablesError::NftFailed { stderr, .. } => stderr.trim().to_string(),
        other => other.to_string(),
    };
    HostError::Nft { op, message }
}

fn is_missing(e: &NftablesError) -> bool {
    matches!(e, NftablesError::NftFailed { stderr, .. } if stderr.contains("No such file or directory"))
}

impl NftRunner {
    /// Replaces our table with the spec's rules in one transaction.
    pub async fn apply(&self, spec: &FirewallSpec) -> Result<()> {
        spec.validate()?;
        let payload =
            serde_json::to_string(&apply_batch(&self.table, spec)).map_err(|e| HostError::Nft {
                op: "apply",
                message: format!("cannot serialise ruleset: {e}"),
            })?;
        let program = self.program.clone();
        run_in_ns(Some(self.ns.clone()), "nft-apply", move || {
            apply_ruleset_raw(&payload, Some(&program), std::iter::empty::<&str>())
                .map(|_| ())
                .map_err(|e| nft_error("apply", e))
        })
        .await
    }

    /// The live table as nft prints it, `None` if it does not exist.
    pub async fn list(&self) -> Result<Option<String>> {
        let program = self.program.clone();
        let table = self.table.clone();
        run_in_ns(
            Some(self.ns.clone()),
            "nft-list",
            move || match get_current_ruleset_raw(
                Some(&program),
                ["list", "table", "inet", table.as_str()],
            ) {
                Ok(out) => Ok(Some(out)),
                Err(e) if is_missing(&e) => Ok(None),
                Err(e) => Err(nft_error("list", e)),
            },
        )
        .await
    }

    /// Whether the live table is exactly the spec's.
    pub async fn matches(&self, spec: &FirewallSpec) -> Result<bool> {
        Ok(match self.list().await? {
            Some(live) => live_table_matches(&self.table, spec, &live),
            None => false,
        })
    }

    /// Adds and deletes published-port map elements in one transaction,
    /// over netlink (one batch, no process).
    pub async fn update_published(
        &self,
        add: &[PublishedPort],
        remove: &[PublishedPort],
    ) -> Result<()> {
        for p in add.iter().chain(remove) {
            p.validate()?;
        }
        self.elements.update(&self.table, add, remove).await
    }

    /// Deletes our table; `false` if it did not exist.
    pub async fn remove(&self) -> Result<bool> {
        let existed = self.list().await?.is_some();
        if !existed {
            return Ok(false);
        }
        let payload =
            serde_json::to_string(&remove_batch(&self.table)).map_err(|e| HostError::Nft {
                op: "remove",
                message: format!("cannot serialise batch: {e}"),
            })?;
        let program = self.program.clone();
        run_in_ns(Some(self.ns.clone()), "nft-remove", move || {
            apply_ruleset_raw(&payload, Some(&program), std::iter::empty::<&str>())
                .map(|_| ())
                .map_err(|e| nft_error("remove", e))
        })
        .await?;
        Ok(true)
    }
}

/// Writes `value` to each `/proc/sys` key from inside `ns`. Keys whose file does
/// not exist (e.g. IPv6 disabled) are skipped when `optional`.
pub(crate) async fn write_sysctls(
    ns: Arc<OwnedFd>,
    entries: Vec<(&'static str, bool)>,
    value: &'static str,
) -> Result<()> {
    run_in_ns(Some(ns), "sysctl", move || {
        for (key, optional) in entries {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            match std::fs::write(&path, value) {
                Ok(()) => {}
                Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HostError::io(format!("write {value} to {path}"), e)),
            }
        }
        Ok(())
    })
    .await
}

/// Reads boolean `/proc/sys` keys from inside `ns`; a key whose file does
/// not exist (IPv6 disabled) reads as `None`.
pub(crate) async fn read_sysctls(
    ns: Arc<OwnedFd>,
    keys: Vec<&'static str>,
) -> Result<Vec<Option<bool>>> {
    run_in_ns(Some(ns), "sysctl", move || {
        keys.iter()
            .map(|key| {
                let path = format!("/proc/sys/{}", key.replace('.', "/"));
                match std::fs::read_to_string(&path) {
                    Ok(v) => Ok(Some(v.trim() != "0")),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(HostError::io(format!("read {path}"), e)),
                }
            })
            .collect()
    })
    .await
}

/// Writes `net.ipv4.conf.<ifname>.<key>` from inside `ns`.
pub(crate) async fn write_conf_sysctl(
    ns: Arc<OwnedFd>,
    ifname: &str,
    key: &'static str,
    on: bool,
) -> Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/{key}");
    let value = if on { "1" } else { "0" };
    run_in_ns(Some(ns), "sysctl", move || {
        std::fs::write(&path, value)
            .map_err(|e| HostError::io(format!("write {value} to {path}"), e))
    })
    .await
}
