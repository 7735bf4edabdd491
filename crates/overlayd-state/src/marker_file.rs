//! Durable marker I/O (SPEC §2 durability rules): load with stale-temp
//! cleanup, permission tightening and quarantine of corrupt files; save via
//! temp → fsync → rename → fsync dir, mode 0600 from the first byte.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::durable::{self, SaveStep, FILE_MODE};
use crate::error::{Result, StateError};
use crate::marker::Marker;
use crate::paths::DataDir;
use overlayd_model::ModelError;

/// What [`MarkerFile::load`] found.
#[derive(Debug)]
pub enum LoadOutcome {
    /// A valid marker.
    Loaded(Marker),
    /// No marker file: the empty state.
    Missing,
    /// The marker was corrupt and has been moved aside; every entry that
    /// could be read on its own is in `salvaged` (already saved as the new
    /// marker when not empty); the caller rebuilds the rest from live host
    /// objects carrying the ownership tag.
    Quarantined {
        /// Where the corrupt file now is.
        moved_to: PathBuf,
        /// Why it was rejected.
        reason: String,
        /// The good entries, salvaged one by one (foreign kinds included).
        salvaged: Marker,
    },
}

/// The marker file `{data_dir}/agent_network.json`.
#[derive(Debug, Clone)]
pub struct MarkerFile {
    dir: DataDir,
}

impl MarkerFile {
    /// The marker of `data_dir` (nothing is touched until load or save).
    pub fn new(data_dir: impl AsRef<Path>) -> Self {
        MarkerFile {
            dir: DataDir::new(data_dir),
        }
    }

    /// Path of the marker file.
    pub fn path(&self) -> PathBuf {
        self.dir.marker_path()
    }

    /// Load the marker. Stale temp files of interrupted saves are removed
    /// first and a marker readable by group or others is tightened to 0600
    /// (with a warning). A corrupt marker is quarantined, never replaced;
    /// a marker of a newer version is an error and stays untouched.
    pub fn load(&self) -> Result<LoadOutcome> {
        let path = self.path();
        durable::remove_stale_temps(&path)?;
        let Some(mut file) = durable::open_existing(&path)? else {
            return Ok(LoadOutcome::Missing);
        };
        durable::tighten_mode(&file, &path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| StateError::io("read", &path, e))?;
        drop(file);
        match Marker::from_json_slice(&bytes) {
            Ok(m) => Ok(LoadOutcome::Loaded(m)),
            Err(ModelError::NewerVersion { found, supported }) => Err(StateError::NewerVersion {
                path,
                found,
                supported,
            }),
            Err(e) if e.is_corrupt_marker() => {
                let reason = e.to_string();
                let moved_to = self.quarantine()?;
                tracing::error!(
                    path = %path.display(),
                    moved_to = %moved_to.display(),
                    %reason,
                    "network-state marker is corrupt: moved it to quarantine; salvaging its good entries, rebuilding the rest from host objects"
                );
                let (salvaged, dropped) = Marker::salvage(&bytes).unwrap_or_default();
                for why in &dropped {
                    tracing::error!(%why, "marker entry dropped while salvaging");
                }
                if !salvaged.is_empty() {
                    self.save(&salvaged)?;
                    tracing::warn!(
                        kept = salvaged.len(),
                        dropped = dropped.len(),
                        "salvaged marker saved with every readable entry"
                    );
                }
                Ok(LoadOutcome::Quarantined {
                    moved_to,
                    reason,
                    salvaged,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Durably replace the marker with `marker`.
    pub fn save(&self, marker: &Marker) -> Result<()> {
        self.save_with(marker, &mut |_| Ok(()))
    }

    /// [`MarkerFile::save`] with a failure-injection hook called after each
    /// [`SaveStep`] (for crash-consistency tests).
    pub fn save_with(
        &self,
        marker: &Marker,
        hook: &mut dyn FnMut(SaveStep) -> io::Result<()>,
    ) -> Result<()> {
        let bytes = marker.to_json_vec()?;
        durable::create_private_dir(self.dir.root())?;
        durable::write_file_atomic_with(&self.path(), &bytes, FILE_MODE, hook)
    }

    /// Move the current marker into the quarantine directory as
    /// `agent_network.json.<unix-nanos>.corrupt` and return its new path.
    fn quarantine(&self) -> Result<PathBuf> {
        let from = self.path();
        let qdir = self.dir.quarantine_dir();
        durable::create_private_dir(&qdir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = from
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut to = qdir.join(format!("{name}.{nanos}.corrupt"));
        let mut n = 1u32;
        while fs::symlink_metadata(&to).is_ok() {
            to = qdir.join(format!("{name}.{nanos}-{n}.corrupt"));
            n += 1;
        }
        fs::rename(&from, &to).map_err(|e| StateError::io("move to quarantine", &from, e))?;
        durable::fsync_dir(&qdir)?;
        durable::fsync_dir(self.dir.root())?;
        Ok(to)
    }
}
