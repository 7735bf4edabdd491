//! A dedicated OS thread that runs a backend's host operations, optionally
//! inside a given network namespace.
//!
//! Netlink sockets, TUN devices and UDP sockets belong to the network
//! namespace of the thread that creates them, and threads spawned from a
//! thread inherit its namespace. Running every host-touching operation on one
//! long-lived thread therefore (a) lets a backend serve a namespace other than
//! the caller's, (b) keeps the userspace device's own threads in that
//! namespace, and (c) keeps any signal-mask side effects of device creation
//! away from the daemon's main and runtime threads.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;

use crate::error::{Result, WgError};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Handle to the worker thread; dropping it stops the thread.
pub(crate) struct Worker {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Worker {
    /// Starts the worker, entering `netns` (a path such as
    /// `/run/netns/<name>` or `/proc/<pid>/ns/net`) first when given.
    pub(crate) fn spawn(label: &str, netns: Option<&Path>) -> Result<Worker> {
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<()>>(1);
        let ns_thread: Option<PathBuf> = netns.map(Path::to_path_buf);
        let thread = thread::Builder::new()
            .name(format!("wg-{label}"))
            .spawn(move || {
                let entered = match &ns_thread {
                    Some(path) => enter_netns(path),
                    None => Ok(()),
                };
                let ok = entered.is_ok();
                // The spawner waits for this; if it has gone there is nobody to serve.
                if ready_tx.send(entered).is_err() || !ok {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|e| WgError::io("spawning WireGuard worker thread", e))?;
        ready_rx.recv().map_err(|_| WgError::WorkerGone)??;
        Ok(Worker {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `f` on the worker thread and waits for its result.
    pub(crate) fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let (rtx, rrx) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move || {
            // The caller may have given up waiting; nothing to do then.
            let _ = rtx.send(f());
        });
        {
            let guard = self.tx.lock().map_err(|_| WgError::WorkerGone)?;
            let tx = guard.as_ref().ok_or(WgError::WorkerGone)?;
            tx.send(job).map_err(|_| WgError::WorkerGone)?;
        }
        rrx.recv().map_err(|_| WgError::WorkerGone)?
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Ok(mut t) = self.thread.lock() {
            if let Some(t) = t.take() {
                if t.thread().id() != thread::current().id() {
                    let _ = t.join();
                }
            }
        }
    }
}

fn enter_netns(path: &Path) -> Result<()> {
    let err = |source| WgError::Netns {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(err)?;
    nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| err(std::io::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_and_reports_results() {
        let w = Worker::spawn("test", None).unwrap();
        assert_eq!(w.run(|| Ok(21 * 2)).unwrap(), 42);
        let e = w
            .run(|| -> Result<()> { Err(WgError::Timeout("x".into())) })
            .unwrap_err();
        assert!(matches!(e, WgError::Timeout(_)));
    }

    #[test]
    fn bad_netns_path_fails_spawn() {
        let e = Worker::spawn("test", Some(Path::new("/nonexistent/netns")))
            .err()
            .unwrap();
        assert!(matches!(e, WgError::Netns { .. }));
    }
}
