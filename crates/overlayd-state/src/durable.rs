//! Crash-safe file replacement shared by the marker and the node key:
//! temp file (mode fixed from the first byte) → write → fsync → rename over
//! the target → fsync the directory. A crash at any instant leaves either the
//! complete old or the complete new file, plus at most a stale temp file that
//! [`remove_stale_temps`] cleans at the next start.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, StateError};

/// Mode of every state file that may hold secrets.
pub const FILE_MODE: u32 = 0o600;
/// Mode of state directories.
pub const DIR_MODE: u32 = 0o700;

/// The points between the steps of a durable save, where a test hook may
/// inject a failure (see [`write_file_atomic_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStep {
    /// The temp file exists (empty) with its final mode.
    AfterTempCreate,
    /// The new content is written to the temp file (not yet fsynced).
    AfterWrite,
    /// The temp file is fsynced.
    AfterFsync,
    /// The temp file has been renamed over the target (directory not yet fsynced).
    AfterRename,
}

impl SaveStep {
    /// Every step, in order.
    pub const ALL: [SaveStep; 4] = [
        SaveStep::AfterTempCreate,
        SaveStep::AfterWrite,
        SaveStep::AfterFsync,
        SaveStep::AfterRename,
    ];
}

/// Distinguishes temp files of concurrent saves within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The prefix every temp file of `target` starts with: `.{file_name}.tmp`.
pub fn temp_prefix(target: &Path) -> OsString {
    let mut p = OsString::from(".");
    p.push(target.file_name().unwrap_or_default());
    p.push(".tmp");
    p
}

fn temp_path(target: &Path) -> PathBuf {
    let mut name = temp_prefix(target);
    name.push(format!(
        ".{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    parent_of(target).join(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsync a directory so a rename or unlink inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("fsync directory", dir, e))
}

/// Create `dir` (and missing parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(StateError::io("create directory", dir, e)),
    }
}

/// Atomically replace `target` with `bytes`, the file having `mode` from its
/// first byte. See [`write_file_atomic_with`] for the steps.
pub fn write_file_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_file_atomic_with(target, bytes, mode, &mut |_| Ok(()))
}

/// [`write_file_atomic`] with a hook called after each [`SaveStep`]; an
/// error from the hook aborts the save there, as a failing syscall would.
/// Before the rename the temp file is removed (best effort) and the target
/// is untouched; from the rename on, the target holds the new content.
pub fn write_file_atomic_with(
    target: &Path,
    bytes: &[u8],
    mode: u32,
    hook: &mut dyn FnMut(SaveStep) -> io::Result<()>,
) -> Result<()> {
    let dir = parent_of(target);
    let tmp = temp_path(target);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&tmp)
        .map_err(|e| StateError::io("create temp file", &tmp, e))?;
    // The umask can only narrow the mode; make it exact without ever widening
    // it beyond what was requested.
    let fix_mode = file
        .metadata()
        .map(|m| m.permissions().mode() & 0o7777 != mode)
        .unwrap_or(true);
    let before_rename = (|| -> Result<()> {
        if fix_mode {
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| StateError::io("chmod temp file", &tmp, e))?;
        }
        hook(SaveStep::AfterTempCreate).map_err(|e| StateError::io("create temp file", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| StateError::io("write", &tmp, e))?;
        hook(SaveStep::AfterWrite).map_err(|e| StateError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| StateError::io("fsync", &tmp, e))?;
        hook(SaveStep::AfterFsync).map_err(|e| StateError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, target).map_err(|e| StateError::io("rename temp file over", target, e))
    })();
    drop(file);
    if let Err(e) = before_rename {
        // Best effort: a leftover is also removed at the next start.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    hook(SaveStep::AfterRename).map_err(|e| StateError::io("fsync directory", dir, e))?;
    fsync_dir(dir)
}

/// Remove leftover temp files of `target` (`.{name}.tmp*` in its directory)
/// from saves interrupted by a crash. Returns how many were removed. A
/// missing directory counts as nothing to clean.
pub fn remove_stale_temps(target: &Path) -> Result<usize> {
    let dir = parent_of(target);
    let prefix = temp_prefix(target);
    let prefix = prefix.as_encoded_bytes();
    let entries = match fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StateError::io("list directory", dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io("list directory", dir, e))?;
        if !entry.file_name().as_encoded_bytes().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed stale temp file of an interrupted save");
                removed += 1;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io("remove stale temp file", &path, e)),
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// If the open file `file` (at `path`) is readable or writable by group or
/// others, narrow it to 0600 and warn. Returns whether it was tightened.
pub fn tighten_mode(file: &File, path: &Path) -> Result<bool> {
    let mode = file
        .metadata()
        .map_err(|e| StateError::io("stat", path, e))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & !FILE_MODE == 0 {
        return Ok(false);
    }
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .map_err(|e| StateError::io("chmod", path, e))?;
    tracing::warn!(
        path = %path.display(),
        found_mode = format_args!("{mode:04o}"),
        "state file holding secrets had permissions wider than 0600; tightened to 0600"
    );
    Ok(true)
}

/// Open `path` read-only without following a symlink. `Ok(None)` if missing.
pub fn open_existing(path: &Path) -> Result<Option<File>> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io("open", path, e)),
    }
}

/// Remove `path` if it exists; `Ok(true)` when something was removed.
pub fn remove_if_exists(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StateError::io("remove", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_exact_mode_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f.json");
        write_file_atomic(&target, b"one", 0o600).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one");
        write_file_atomic(&target, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn failed_step_before_rename_leaves_old_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        write_file_atomic(&target, b"old", 0o600).unwrap();
        for step in [
            SaveStep::AfterTempCreate,
            SaveStep::AfterWrite,
            SaveStep::AfterFsync,
        ] {
            let err = write_file_atomic_with(&target, b"new", 0o600, &mut |s| {
                if s == step {
                    Err(io::Error::other("injected"))
                } else {
                    Ok(())
                }
            });
            assert!(err.is_err());
            assert_eq!(fs::read(&target).unwrap(), b"old");
            assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn stale_temps_of_this_target_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("m.json");
        fs::write(dir.path().join(".m.json.tmp.1.2"), b"x").unwrap();
        fs::write(dir.path().join(".m.json.tmp"), b"x").unwrap();
        fs::write(dir.path().join(".other.tmp.1"), b"x").unwrap();
        assert_eq!(remove_stale_temps(&target).unwrap(), 2);
        assert!(dir.path().join(".other.tmp.1").exists());
        assert_eq!(
            remove_stale_temps(&dir.path().join("missing/x")).unwrap(),
            0
        );
    }
}
