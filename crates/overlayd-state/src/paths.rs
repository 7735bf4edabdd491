//! The data directory's layout: where the marker, lock, store, node key and
//! quarantine live, and the file removal behind `uninstall --purge`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable;
use crate::error::{Result, StateError};

/// File name of the network-state marker.
pub const MARKER_FILE: &str = "agent_network.json";
/// File name of the instance lock.
pub const LOCK_FILE: &str = "lock";
/// File name of the transactional store.
pub const STORE_FILE: &str = "state.redb";
/// File name of the node's WireGuard private key.
pub const NODE_KEY_FILE: &str = "node.key";
/// Directory name for quarantined corrupt markers.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A data directory (passed in, never hard-coded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        DataDir {
            root: root.as_ref().to_path_buf(),
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `{data_dir}/agent_network.json`.
    pub fn marker_path(&self) -> PathBuf {
        self.root.join(MARKER_FILE)
    }

    /// `{data_dir}/lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join(LOCK_FILE)
    }

    /// `{data_dir}/state.redb`.
    pub fn store_path(&self) -> PathBuf {
        self.root.join(STORE_FILE)
    }

    /// `{data_dir}/node.key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.root.join(NODE_KEY_FILE)
    }

    /// `{data_dir}/quarantine`.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join(QUARANTINE_DIR)
    }

    /// Create the directory with mode 0700 if missing.
    pub fn ensure(&self) -> Result<()> {
        durable::create_private_dir(&self.root)
    }

    /// Remove every state file for `uninstall --purge`: marker, store, node
    /// key, their temp files and the quarantine (corrupt markers hold keys
    /// too). The lock file stays (its holder is the purging process); the
    /// directory is removed too if nothing else is left in it. Idempotent.
    pub fn purge_files(&self) -> Result<()> {
        self.purge(true)
    }

    /// Like [`DataDir::purge_files`] but keeps the marker (used when it still
    /// records entries of kinds this platform cannot delete).
    pub fn purge_files_except_marker(&self) -> Result<()> {
        self.purge(false)
    }

    fn purge(&self, marker_too: bool) -> Result<()> {
        let mut errors = Vec::new();
        let mut files = vec![self.store_path(), self.node_key_path()];
        if marker_too {
            files.push(self.marker_path());
        }
        for f in &files {
            if let Err(e) = durable::remove_stale_temps(f) {
                errors.push(e);
            }
            if let Err(e) = durable::remove_if_exists(f) {
                errors.push(e);
            }
        }
        let q = self.quarantine_dir();
        match fs::remove_dir_all(&q) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push(StateError::io("remove", q, e)),
        }
        match fs::read_dir(&self.root) {
            Ok(mut it) => {
                if it.next().is_none() {
                    let _ = fs::remove_dir(&self.root);
                } else if let Err(e) = durable::fsync_dir(&self.root) {
                    errors.push(e);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push(StateError::io("list directory", &self.root, e)),
        }
        // Report the first failure; the rest were attempted regardless.
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_is_idempotent_and_keeps_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = DataDir::new(tmp.path().join("data"));
        d.ensure().unwrap();
        for p in [d.marker_path(), d.store_path(), d.node_key_path()] {
            fs::write(&p, b"x").unwrap();
        }
        fs::write(d.root().join(".agent_network.json.tmp.1.1"), b"x").unwrap();
        fs::create_dir(d.quarantine_dir()).unwrap();
        fs::write(d.quarantine_dir().join("q"), b"x").unwrap();
        fs::write(d.root().join("operator-notes"), b"x").unwrap();

        d.purge_files_except_marker().unwrap();
        assert!(d.marker_path().exists());
        assert!(!d.store_path().exists() && !d.node_key_path().exists());

        d.purge_files().unwrap();
        d.purge_files().unwrap();
        let left: Vec<_> = fs::read_dir(d.root())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["operator-notes"]);

        fs::remove_file(d.root().join("operator-notes")).unwrap();
        d.purge_files().unwrap();
        assert!(!d.root().exists());
        d.purge_files().unwrap();
    }
}
