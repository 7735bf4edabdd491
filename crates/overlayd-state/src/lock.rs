//! One daemon per data dir (SPEC §2 rule 5): an exclusive, non-blocking
//! `flock` on `{data_dir}/lock`, with the holder's pid written inside so a
//! second instance can say who holds it. Released when dropped (or when the
//! process dies, by the kernel).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::durable::{self, FILE_MODE};
use crate::error::{Result, StateError};
use crate::paths::DataDir;

/// The held instance lock of one data dir.
#[derive(Debug)]
pub struct InstanceLock {
    file: Flock<File>,
    path: PathBuf,
}

impl InstanceLock {
    /// Take the lock of `data_dir` (created 0700 if missing) without
    /// waiting. Fails with [`StateError::Locked`] naming the holder's pid
    /// when another open lock exists — also one in this same process.
    pub fn acquire(data_dir: impl AsRef<Path>) -> Result<Self> {
        let dir = DataDir::new(data_dir);
        dir.ensure()?;
        let path = dir.lock_path();
        // No truncation at open: the holder's pid must survive our attempt.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| StateError::io("open lock file", &path, e))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let pid = read_pid(&mut file);
                return Err(StateError::Locked { pid, path });
            }
            Err((_, errno)) => {
                return Err(StateError::io(
                    "lock",
                    &path,
                    std::io::Error::from_raw_os_error(errno as i32),
                ));
            }
        };
        write_pid(&mut file).map_err(|e| StateError::io("write pid to", &path, e))?;
        tracing::debug!(path = %path.display(), "instance lock taken");
        Ok(InstanceLock { file, path })
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Release the lock and delete the lock file (for `uninstall --purge`);
    /// also removes the data dir if that leaves it empty.
    pub fn release_and_remove(self) -> Result<()> {
        let path = self.path.clone();
        // Unlink while still holding it, so no one can lock the old inode
        // and believe they own the data dir afterwards.
        let removed = durable::remove_if_exists(&path);
        drop(self);
        removed?;
        let dir = durable::parent_of(&path);
        if std::fs::read_dir(dir)
            .map(|mut it| it.next().is_none())
            .unwrap_or(false)
        {
            let _ = std::fs::remove_dir(dir);
        }
        Ok(())
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        // Clear our pid so a stale number is never reported; the flock itself
        // is released when `file` is dropped right after.
        let _ = self.file.set_len(0);
        tracing::debug!(path = %self.path.display(), "instance lock released");
    }
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.sync_data()
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn second_acquire_names_holder_and_drop_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let lock = InstanceLock::acquire(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        match InstanceLock::acquire(&dir) {
            Err(StateError::Locked { pid, path }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(path, dir.join("lock"));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        let again = InstanceLock::acquire(&dir).unwrap();
        again.release_and_remove().unwrap();
        assert!(!dir.exists());
    }
}
