//! Network namespace handles and running code inside another namespace.
//!
//! Namespaces are entered only on short-lived dedicated threads: the thread
//! `setns`es into the namespace, does its work (create a netlink socket, spawn
//! `nft`, write a sysctl) and exits. A thread that entered a foreign namespace
//! never goes back to a pool, so no other code ever runs in the wrong namespace.
//! A netlink socket stays bound to the namespace it was created in, so a
//! connection built that way serves the namespace for its whole life.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};
use rtnetlink::Handle;
use tokio::task::JoinHandle;

use crate::error::{HostError, Result};
use crate::types::NetnsTarget;

/// An open network namespace handle with its identity (device and inode).
#[derive(Debug, Clone)]
pub(crate) struct NsHandle {
    /// The open nsfs file.
    pub fd: Arc<OwnedFd>,
    /// Device number of the nsfs inode.
    pub dev: u64,
    /// Inode number: two handles name the same namespace iff dev and ino match.
    pub ino: u64,
}

impl NsHandle {
    /// Whether both handles refer to the same namespace.
    pub fn same_ns(&self, other: &NsHandle) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

/// Opens `path` without ever blocking (a FIFO or a device given as a netns
/// path must not stall the caller until someone opens its other end) and
/// reports whether it is an nsfs file.
fn open_nsfs(path: &Path) -> std::io::Result<(File, bool)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let is_nsfs = match fstatfs(file.as_fd()) {
        Ok(st) => st.filesystem_type() == NSFS_MAGIC,
        Err(e) => return Err(std::io::Error::from(e)),
    };
    Ok((file, is_nsfs))
}

/// Opens a namespace file and checks that it is an nsfs handle.
pub(crate) fn open_ns_path(path: &Path) -> Result<NsHandle> {
    let (file, is_nsfs) =
        open_nsfs(path).map_err(|e| HostError::io(format!("open {}", path.display()), e))?;
    if !is_nsfs {
        return Err(HostError::NotANetns {
            path: path.to_path_buf(),
        });
    }
    handle_from_file(file, path)
}

fn handle_from_file(file: File, path: &Path) -> Result<NsHandle> {
    let meta = file
        .metadata()
        .map_err(|e| HostError::io(format!("stat {}", path.display()), e))?;
    Ok(NsHandle {
        dev: meta.dev(),
        ino: meta.ino(),
        fd: Arc::new(OwnedFd::from(file)),
    })
}

/// The network namespace of the calling thread.
pub(crate) fn current_thread_ns() -> Result<NsHandle> {
    open_ns_path(Path::new("/proc/thread-self/ns/net"))
}

/// Opens a container's namespace: by pid (`/proc/PID/ns/net`) or by nsfs path.
/// A process or path that does not exist gives [`HostError::NetnsGone`].
pub(crate) fn open_target(target: &NetnsTarget) -> Result<NsHandle> {
    if let NetnsTarget::Pid(0) = target {
        return Err(HostError::InvalidArgument("pid 0 is not a process".into()));
    }
    let path = target.ns_path();
    match open_nsfs(&path) {
        Ok((file, true)) => handle_from_file(file, &path),
        Ok((_, false)) => Err(HostError::NotANetns { path }),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH)) => {
            Err(HostError::NetnsGone {
                target: target.clone(),
                reason: match target {
                    NetnsTarget::Pid(_) => "no such process".to_string(),
                    NetnsTarget::Path(_) => "no such file".to_string(),
                },
            })
        }
        Err(e) => Err(HostError::io(format!("open {}", path.display()), e)),
    }
}

/// Whether the target namespace exists: `Ok(false)` for a gone process/path,
/// an error only for unexpected failures (permissions, not an nsfs file).
pub(crate) fn target_alive(target: &NetnsTarget) -> Result<bool> {
    match open_target(target) {
        Ok(_) => Ok(true),
        Err(HostError::NetnsGone { .. }) => Ok(false),
        Err(HostError::NotANetns { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

fn enter(ns: &OwnedFd, what: &str) -> Result<()> {
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source: Errno| {
        HostError::Setns {
            context: what.to_string(),
            source,
        }
    })
}

/// Runs `f` on a fresh thread that first enters `ns` (or stays in the calling
/// process's namespace when `ns` is `None`). The thread exits afterwards.
pub(crate) async fn run_in_ns<T, F>(ns: Option<Arc<OwnedFd>>, what: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("ovl-ns-{what}"))
        .spawn(move || {
            let result = match &ns {
                Some(fd) => enter(fd, what).and_then(|()| f()),
                None => f(),
            };
            // The receiver only disappears if the caller was cancelled.
            let _ = tx.send(result);
        })
        .map_err(|e| HostError::io(format!("spawn thread for {what}"), e))?;
    rx.await.map_err(|_| HostError::Thread(what))?
}

/// A netlink connection whose socket lives in one network namespace. The
/// connection task is aborted when this is dropped.
#[derive(Debug)]
pub(crate) struct NlConn {
    /// Request handle.
    pub handle: Handle,
    task: JoinHandle<()>,
}

impl Drop for NlConn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens an rtnetlink connection inside `ns` (the calling thread's namespace
/// when `None`). Must be called from within a tokio runtime.
pub(crate) async fn connect_in(ns: Option<Arc<OwnedFd>>) -> Result<NlConn> {
    let rt = tokio::runtime::Handle::current();
    let socket = run_in_ns(ns, "netlink", move || {
        // Register the socket with the runtime's reactor from this thread; the
        // socket itself is bound to the namespace the thread is in right now.
        let _guard = rt.enter();
        TokioSocket::new(NETLINK_ROUTE).map_err(|e| HostError::io("open netlink socket", e))
    })
    .await?;
    let (conn, handle, _unsolicited) = rtnetlink::from_socket(socket);
    let task = tokio::spawn(conn);
    Ok(NlConn { handle, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A FIFO given as a netns path is refused at once; a blocking open would
    /// wait until someone opened its other end, holding up every request.
    #[test]
    fn fifo_netns_path_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("not-a-netns");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let target = NetnsTarget::Path(fifo.clone());
        std::thread::spawn(move || {
            let _ = tx.send(open_target(&target).map(|_| ()));
        });
        let r = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("opening a FIFO as a netns must not block");
        assert!(matches!(r, Err(HostError::NotANetns { .. })), "{r:?}");
        assert!(!target_alive(&NetnsTarget::Path(fifo)).unwrap());
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let r = open_target(&NetnsTarget::Path(f.path().to_path_buf()));
        assert!(matches!(r, Err(HostError::NotANetns { .. })), "{r:?}");
    }
}
