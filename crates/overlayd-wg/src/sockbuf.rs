//! Raising the socket buffers of the userspace device's UDP sockets.
//!
//! boringtun keeps its sockets private and leaves the default buffer sizes
//! (~200 KiB), which drop datagrams under bulk load. The sockets are found by
//! walking this process's file descriptors for UDP sockets bound to the
//! device's listen port, and their buffers are raised (past `rmem_max` with
//! `SO_RCVBUFFORCE` when privileged).

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Target buffer size for both directions.
pub const UDP_BUFFER_BYTES: usize = 7 * 1024 * 1024;

/// Raises the buffers of every UDP socket of this process bound to `port`.
/// Best effort: sockets that refuse the option keep their size.
pub fn tune_udp_port(port: u16) {
    let n = tune_matching(port, UDP_BUFFER_BYTES);
    tracing::debug!(
        port,
        sockets = n,
        bytes = UDP_BUFFER_BYTES,
        "raised UDP socket buffers"
    );
}

fn tune_matching(port: u16, bytes: usize) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    let mut tuned = 0;
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        // SAFETY: the descriptor was open a moment ago; it is only borrowed
        // for the duration of the socket-option calls and never closed here.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if is_udp_on_port(fd, port) {
            set_buffers(fd.as_raw_fd(), bytes);
            tuned += 1;
        }
    }
    tuned
}

fn is_udp_on_port(fd: BorrowedFd<'_>, port: u16) -> bool {
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, SockaddrStorage};
    if getsockopt(&fd, sockopt::SockType).ok() != Some(SockType::Datagram) {
        return false;
    }
    let Ok(addr) = getsockname::<SockaddrStorage>(fd.as_raw_fd()) else {
        return false;
    };
    let bound = addr
        .as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| addr.as_sockaddr_in6().map(|a| a.port()));
    bound == Some(port)
}

/// Sets both buffers of socket `fd` to `bytes` (forced past the sysctl
/// limits when privileged).
pub(crate) fn set_buffers(fd: RawFd, bytes: usize) {
    let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        // SAFETY: `val` outlives the call and its size is passed alongside.
        let set = |opt| unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set(force) != 0 {
            // Unprivileged: capped at net.core.[rw]mem_max.
            let _ = set(plain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunes_only_the_bound_port() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        let before_b = rcvbuf(b.as_raw_fd());
        assert_eq!(tune_matching(port, 1 << 20), 1);
        // The kernel doubles the requested value; unprivileged it caps at rmem_max.
        assert!(rcvbuf(a.as_raw_fd()) >= rcvbuf(b.as_raw_fd()));
        assert_eq!(rcvbuf(b.as_raw_fd()), before_b);
    }

    fn rcvbuf(fd: RawFd) -> usize {
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::RcvBuf).unwrap()
    }
}
