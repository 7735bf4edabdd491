//! Watching nftables for changes: a netlink socket of the `NETLINK_NETFILTER`
//! family subscribed to the `NFNLGRP_NFTABLES` multicast group receives a
//! message for every table, chain, rule or set change in its namespace, so a
//! deleted or edited overlayd table is noticed at once, not on the next poll.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{HostError, Result};
use crate::linux::netns::run_in_ns;

/// `NFNLGRP_NFTABLES` from `linux/netfilter/nfnetlink.h`.
const NFNLGRP_NFTABLES: libc::c_int = 7;

fn last_os_error(what: &str) -> HostError {
    HostError::io(what.to_string(), std::io::Error::last_os_error())
}

/// Open the monitor socket in the calling thread's namespace.
fn open_monitor() -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(last_os_error("open nftables monitor socket"));
    }
    // SAFETY: fd is a freshly opened descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: addr is a valid sockaddr_nl of the given length.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_os_error("bind nftables monitor socket"));
    }
    let group = NFNLGRP_NFTABLES;
    // SAFETY: the option value is a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            std::ptr::addr_of!(group).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_os_error("join NFNLGRP_NFTABLES"));
    }
    // A receive timeout lets the reader thread notice the watcher is gone.
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: the option value is a timeval of the given size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(last_os_error("set monitor receive timeout"));
    }
    Ok(sock)
}

/// Start watching nftables changes in namespace `ns`. Every burst of changes
/// yields one `()` (bursts coalesce); the reader thread ends soon after the
/// receiver is dropped.
pub(crate) async fn watch(ns: Arc<OwnedFd>) -> Result<mpsc::Receiver<()>> {
    let sock = run_in_ns(Some(ns), "nft-monitor", open_monitor).await?;
    let (tx, rx) = mpsc::channel(1);
    std::thread::Builder::new()
        .name("ovl-nft-monitor".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // SAFETY: buf is a valid writable buffer of its length.
                let n =
                    unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
                if tx.is_closed() {
                    break;
                }
                if n > 0 {
                    // Full means a notification is already pending: coalesced.
                    let _ = tx.try_send(());
                    continue;
                }
                let err = std::io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                    // Messages were lost: something changed.
                    Some(libc::ENOBUFS) => {
                        let _ = tx.try_send(());
                    }
                    _ => break,
                }
            }
        })
        .map_err(|e| HostError::io("spawn nftables monitor thread", e))?;
    Ok(rx)
}
