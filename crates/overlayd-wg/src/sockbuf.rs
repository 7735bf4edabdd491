//! Socket buffer sizes of the userspace device's UDP sockets: the defaults
//! (~200 KiB) drop datagrams under bulk load, so they are raised, past
//! `rmem_max` / `wmem_max` with `SO_RCVBUFFORCE` when privileged.

use std::os::fd::RawFd;

/// Target buffer size for both directions.
pub const UDP_BUFFER_BYTES: usize = 7 * 1024 * 1024;

/// Sets both buffers of socket `fd` to `bytes` (forced past the sysctl
/// limits when privileged). Best effort: a socket that refuses keeps its size.
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
    use std::os::fd::{AsRawFd, BorrowedFd};

    #[test]
    fn raises_the_receive_buffer() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = rcvbuf(a.as_raw_fd());
        set_buffers(a.as_raw_fd(), 1 << 20);
        // The kernel doubles the requested value; unprivileged it caps at rmem_max.
        assert!(rcvbuf(a.as_raw_fd()) >= before);
    }

    fn rcvbuf(fd: RawFd) -> usize {
        // SAFETY: the socket outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::RcvBuf).unwrap()
    }
}
