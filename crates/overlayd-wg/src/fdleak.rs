//! Work-around for boringtun's descriptor leak (boringtun issue #170): a
//! dropped `DeviceHandle` never closes the eventfds and timerfds its event
//! loop registered (two notifiers, two timers: four descriptors per device
//! up/down), so a daemon that brings devices up and down runs out of them.
//!
//! The device's descriptors are found without guessing: its epoll instance
//! is the one that has the device's UAPI descriptor (a number only that
//! device holds) registered, and `/proc/self/fdinfo` of that epoll lists
//! every registered descriptor. Of those, the eventfds and timerfds are
//! recorded at start and closed once the device is gone for good (its TUN
//! link vanished, so no boringtun thread runs any more). boringtun is pinned
//! to the exact version whose leak this undoes.

use std::os::fd::RawFd;

const EVENTPOLL: &str = "anon_inode:[eventpoll]";
const LEAKED_KINDS: [&str; 2] = ["anon_inode:[eventfd]", "anon_inode:[timerfd]"];

fn target(fd: RawFd) -> Option<String> {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Descriptors registered in epoll instance `epfd`.
fn registered(epfd: RawFd) -> Vec<RawFd> {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{epfd}"))
        .map(|info| {
            info.lines()
                .filter_map(|l| {
                    let mut t = l.split_whitespace();
                    (t.next() == Some("tfd:"))
                        .then(|| t.next()?.parse().ok())
                        .flatten()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The eventfds and timerfds of the boringtun device whose UAPI descriptor
/// is `uapi_fd` (empty when its epoll cannot be identified).
pub(crate) fn device_event_fds(uapi_fd: RawFd) -> Vec<RawFd> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if target(fd).as_deref() != Some(EVENTPOLL) {
            continue;
        }
        let fds = registered(fd);
        if fds.contains(&uapi_fd) {
            return fds
                .into_iter()
                .filter(|f| target(*f).is_some_and(|t| LEAKED_KINDS.contains(&t.as_str())))
                .collect();
        }
    }
    Vec::new()
}

/// Whether any epoll instance of the process still has one of `fds`
/// registered: the device's event loop still exists.
fn still_registered(fds: &[RawFd]) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return true;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()))
        .filter(|fd| target(*fd).as_deref() == Some(EVENTPOLL))
        .any(|ep| registered(ep).iter().any(|f| fds.contains(f)))
}

/// Close the recorded event descriptors of a device that is gone, waiting
/// up to `wait` for its epoll instance to be released first (a device whose
/// event loop still exists keeps them: leaking beats closing a descriptor in
/// use). Each is checked to still be an eventfd or timerfd.
pub(crate) fn close_event_fds(fds: &[RawFd], wait: std::time::Duration) -> usize {
    if fds.is_empty() {
        return 0;
    }
    let deadline = std::time::Instant::now() + wait;
    while still_registered(fds) {
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                ?fds,
                "boringtun device's event loop still exists; its descriptors are left open"
            );
            return 0;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut closed = 0;
    for &fd in fds {
        if target(fd).is_some_and(|t| LEAKED_KINDS.contains(&t.as_str())) {
            // SAFETY: the descriptor was registered by the device's event loop,
            // which boringtun never closes; that loop's epoll is gone (checked
            // above), so nothing uses or will close it.
            if unsafe { libc::close(fd) } == 0 {
                closed += 1;
            }
        }
    }
    closed
}
