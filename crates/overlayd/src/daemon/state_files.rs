//! Start-up checks of the state files against each other: a store that is
//! missing, empty or unreadable while the marker records networks is refused
//! (an empty store would forget every lease, attachment and peer and let gc
//! delete live containers' veths), unless the operator asked to rebuild it;
//! a node key that is missing or does not match the base public key the
//! marker records is refused (the node identity never changes silently).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use overlayd_state::{DataDir, KeyPair, Marker, NodeKeyFile, Owner, Store};
use tracing::{error, warn};

/// The flag that lets an operator start over a lost store.
pub const REBUILD_FLAG: &str = "--rebuild-store";

/// Open the store, refusing one that cannot be the store the marker was
/// written with. Returns the store and whether it was started afresh (only
/// with `rebuild`).
pub fn open_store(data_dir: &Path, marker: &Marker, rebuild: bool) -> Result<(Store, bool)> {
    let dir = DataDir::new(data_dir);
    dir.ensure()?;
    let path = dir.store_path();
    // Entries of other platforms' kinds have no state in this store.
    let recorded = marker.iter().filter(|e| e.is_linux_managed()).count();
    let problem = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("is missing".to_string()),
        Err(e) => Some(format!("cannot be read ({e})")),
        Ok(m) if m.len() == 0 => Some("is empty (0 bytes)".to_string()),
        Ok(_) => None,
    };
    if let Some(problem) = problem {
        if recorded > 0 {
            if !rebuild {
                bail!(
                    "the state store {} {problem} while the marker records {recorded} network(s): \
                     refusing to start with an empty store, which would forget every lease, \
                     attachment, peer and DNS record. Restore the store from a backup, or start \
                     once with `overlayd run {REBUILD_FLAG}` to rebuild it from the marker and the \
                     live host (leases and peers only the store knew are lost)",
                    path.display()
                );
            }
            error!(path = %path.display(), %problem, "state store lost; rebuilding it as the operator asked ({REBUILD_FLAG})");
            set_aside(&dir, &path)?;
            let store = Store::open(data_dir)?;
            return Ok((store, true));
        }
        if path.exists() {
            // Nothing recorded anywhere: an empty file is just a new store.
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove empty store {}", path.display()))?;
        }
        return Ok((Store::open(data_dir)?, false));
    }
    match Store::open(data_dir) {
        Ok(store) => Ok((store, false)),
        Err(e) if rebuild => {
            error!(path = %path.display(), error = %e, "state store damaged; rebuilding it as the operator asked ({REBUILD_FLAG})");
            set_aside(&dir, &path)?;
            Ok((Store::open(data_dir)?, true))
        }
        Err(e) => bail!(
            "the state store {} cannot be opened: {e}. It was left untouched. Restore it from a \
             backup, or start once with `overlayd run {REBUILD_FLAG}` to set it aside and rebuild \
             from the marker and the live host (leases and peers only the store knew are lost)",
            path.display()
        ),
    }
}

/// Move a lost or damaged store into the quarantine directory.
fn set_aside(dir: &DataDir, path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let qdir = dir.quarantine_dir();
    std::fs::create_dir_all(&qdir).with_context(|| format!("cannot create {}", qdir.display()))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let to = qdir.join(format!("state.redb.{nanos}.corrupt"));
    std::fs::rename(path, &to)
        .with_context(|| format!("cannot move {} to {}", path.display(), to.display()))?;
    warn!(moved_to = %to.display(), "old state store set aside");
    Ok(())
}

/// Load the node key, refusing to create a new identity when the marker
/// records the base overlay's public key, and refusing a key that does not
/// match it.
pub fn load_node_key(data_dir: &Path, marker: &Marker) -> Result<KeyPair> {
    let recorded = marker
        .get(&Owner::Base)
        .and_then(|e| e.wg_public_key.clone())
        .filter(|k| !k.is_empty());
    let path = NodeKeyFile::path(data_dir);
    if let Some(public) = &recorded {
        if std::fs::symlink_metadata(&path).is_err() {
            bail!(
                "the node key {} is missing, but the marker records this node's base overlay \
                 public key {public}: refusing to start as a new node identity. Restore node.key \
                 from a backup; to change identity on purpose run `overlayd rotate-key`",
                path.display()
            );
        }
    }
    let key = NodeKeyFile::load_or_create(data_dir)
        .with_context(|| format!("cannot load the node key {}", path.display()))?;
    if let Some(public) = recorded {
        if key.public_base64() != public {
            bail!(
                "the node key {} belongs to public key {}, but the marker records this node's \
                 base overlay public key {public}: refusing to start with a different identity. \
                 Restore the matching node.key (a private key, as `wg genkey` prints), or change \
                 identity on purpose with `overlayd rotate-key`",
                path.display(),
                key.public_base64()
            );
        }
    }
    Ok(key)
}
