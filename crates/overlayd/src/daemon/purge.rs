//! Purge: delete every recorded host object of every kind this platform
//! handles, sweep anything carrying overlayd's tag, drop overlayd's nftables
//! tables, and remove the marker, store and keys. Best-effort: it goes on
//! past a failure and reports every error; running it again is harmless.

use std::sync::Arc;

use overlayd_host::Host;
use overlayd_state::{DataDir, InstanceLock, LoadOutcome, MarkerFile};

use super::plan;
use crate::config::Config;

/// What a purge did.
#[derive(Debug, Default)]
pub struct PurgeReport {
    /// Human-readable lines, one per action.
    pub lines: Vec<String>,
    /// Errors met on the way (the purge went on past them).
    pub errors: Vec<String>,
    /// Tagged links of other overlayd instances, left in place.
    pub kept_other_instances: usize,
}

/// `Table::Meta` key of the nftables table the daemon last ran with, so a
/// purge without the daemon's config file still removes the right table.
pub const NFT_TABLE_KEY: &str = "host|nft_table";

/// A value the daemon recorded in `Table::Meta` of the store under
/// `data_dir`, read without the daemon (it must not be running); `None`
/// when there is no store or no such value.
pub fn read_meta<T: serde::de::DeserializeOwned>(
    data_dir: &std::path::Path,
    key: &str,
) -> Result<Option<T>, String> {
    if !DataDir::new(data_dir).store_path().exists() {
        return Ok(None);
    }
    // A daemon that just released its instance lock may still hold the
    // database for the moment it takes its process to end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let store = loop {
        match overlayd_state::Store::open(data_dir) {
            Ok(s) => break s,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(format!("cannot open the store: {e}")),
        }
    };
    store
        .read(|tx| tx.get(overlayd_state::Table::Meta, key))
        .map_err(|e| format!("cannot read {key} from the store: {e}"))
}

/// The nftables table to remove for the instance under `data_dir`: the
/// one its daemon recorded, else the one `cfg` names.
pub fn nft_table(cfg: &Config) -> String {
    read_meta::<String>(&cfg.data_dir, NFT_TABLE_KEY)
        .ok()
        .flatten()
        .unwrap_or_else(|| cfg.nft_table())
}

/// Purge everything of this instance. Holds `lock` until done.
pub async fn purge(cfg: &Config, host: Arc<dyn Host>, lock: InstanceLock) -> PurgeReport {
    let mut r = PurgeReport::default();
    let inst = plan::instance_id(&cfg.data_dir);
    let marker_file = MarkerFile::new(&cfg.data_dir);
    let entries = match marker_file.load() {
        Ok(LoadOutcome::Loaded(m)) => m.iter().cloned().collect::<Vec<_>>(),
        Ok(LoadOutcome::Missing) => Vec::new(),
        Ok(LoadOutcome::Quarantined {
            moved_to,
            reason,
            salvaged,
        }) => {
            r.lines.push(format!(
                "marker was corrupt ({reason}); moved to {}; {} readable entries kept, sweeping tagged objects for the rest",
                moved_to.display(),
                salvaged.len()
            ));
            salvaged.iter().cloned().collect()
        }
        Err(e) => {
            r.errors.push(format!("cannot read the marker: {e}"));
            Vec::new()
        }
    };
    for e in &entries {
        if !e.is_linux_managed() {
            r.lines.push(format!(
                "kept {} ({}, kind {}): this platform cannot delete that kind",
                e.owner, e.name, e.kind
            ));
        }
    }
    let links = match host.links().await {
        Ok(l) => l,
        Err(e) => {
            r.errors.push(format!("cannot list links: {e}"));
            Vec::new()
        }
    };
    // Recorded objects are deleted only when the live link carries our tag;
    // then every other tagged link (orphans, attachment veths) is swept.
    let mut others = 0;
    for link in &links {
        let Some(alias) = link.alias.as_deref() else {
            continue;
        };
        match plan::parse_tag(alias) {
            None => continue,
            Some(t) if !t.belongs_to(&inst) => {
                others += 1;
                r.lines.push(format!(
                    "kept {} ({alias}): another overlayd instance's",
                    link.name
                ));
                continue;
            }
            Some(_) => {}
        }
        match host.delete_link(&link.name).await {
            Ok(_) => r.lines.push(format!("deleted {} ({alias})", link.name)),
            Err(e) => r.errors.push(format!("cannot delete {}: {e}", link.name)),
        }
    }
    for e in entries.iter().filter(|e| e.is_linux_managed()) {
        if !links.iter().any(|l| l.name == e.name) {
            r.lines
                .push(format!("{} ({}) was already gone", e.owner, e.name));
        }
    }
    match host.remove_firewall().await {
        Ok(true) => r.lines.push("removed overlayd's nftables tables".into()),
        Ok(false) => {}
        Err(e) => r.errors.push(format!("cannot remove nftables tables: {e}")),
    }
    r.kept_other_instances = others;
    if others > 0 {
        // Another instance's networks still need forwarding.
        r.lines.push(
            "kept the forwarding sysctls: another overlayd instance in this namespace still has networks".into(),
        );
    } else {
        match super::forwarding::restore(&cfg.data_dir, host.as_ref()).await {
            Ok(Some(line)) => r.lines.push(line),
            Ok(None) => {}
            Err(e) => r.errors.push(e),
        }
    }
    let data = DataDir::new(&cfg.data_dir);
    let keep_foreign: Vec<_> = entries
        .into_iter()
        .filter(|e| !e.is_linux_managed())
        .collect();
    if keep_foreign.is_empty() {
        match data.purge_files() {
            Ok(()) => r
                .lines
                .push(format!("removed state files in {}", cfg.data_dir.display())),
            Err(e) => r.errors.push(format!("cannot remove state files: {e}")),
        }
    } else {
        // Entries of other platforms' kinds stay recorded; everything else goes.
        let mut m = overlayd_state::Marker::default();
        for e in keep_foreign {
            m.upsert(e);
        }
        if let Err(e) = marker_file.save(&m) {
            r.errors.push(format!("cannot rewrite the marker: {e}"));
        }
        match data.purge_files_except_marker() {
            Ok(()) => r.lines.push(
                "removed store and keys; the marker keeps only entries of other platforms".into(),
            ),
            Err(e) => r.errors.push(format!("cannot remove state files: {e}")),
        }
    }
    let uapi = cfg.run_dir().join("wireguard");
    if uapi.exists() {
        match std::fs::remove_dir_all(&uapi) {
            Ok(()) => r.lines.push(format!(
                "removed WireGuard socket directory {}",
                uapi.display()
            )),
            Err(e) => r
                .errors
                .push(format!("cannot remove {}: {e}", uapi.display())),
        }
    }
    // The lock file goes last, while still held, so no daemon starts in
    // the middle of the purge.
    let _ = std::fs::remove_file(data.lock_path());
    let _ = std::fs::remove_dir(data.root());
    drop(lock);
    r
}
