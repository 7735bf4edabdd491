//! The device's UDP sockets: one IPv4 and (when the host has IPv6) one
//! IPv6-only socket on the same port, non-blocking, with large buffers and
//! the device's firewall mark; batched I/O through `quinn-udp` (`recvmmsg`
//! with UDP GRO on receive, UDP GSO on send). A set is replaced as a whole when the listen
//! port changes; its receive threads stop with it.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::thread::JoinHandle;

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn6};
use quinn_udp::{Transmit, UdpSocketState};

use super::io::Stop;
use super::peer::lock;
use crate::sockbuf;

/// A bound pair of sockets and the threads receiving on them.
pub(crate) struct UdpSet {
    /// The IPv4 socket.
    pub v4: UdpSocket,
    /// The IPv6 socket, absent when the host has no IPv6.
    pub v6: Option<UdpSocket>,
    /// quinn-udp's per-socket state (GSO/GRO support found at setup).
    pub state4: UdpSocketState,
    /// Same for `v6`.
    pub state6: Option<UdpSocketState>,
    /// The bound port.
    pub port: u16,
    /// Tells this set's receive threads to exit.
    pub stop: Stop,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl UdpSet {
    /// Binds `port` (0: the kernel's choice) on both families.
    pub fn bind(port: u16, fwmark: u32) -> std::io::Result<UdpSet> {
        let v4 = UdpSocket::bind(SocketAddr::from(([0, 0, 0, 0], port)))?;
        let port = v4.local_addr()?.port();
        let v6 = match bind_v6_only(port) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(port, error = %e, "no IPv6 socket; IPv4 only");
                None
            }
        };
        let state4 = UdpSocketState::new((&v4).into())?;
        let state6 = match &v6 {
            Some(s) => Some(UdpSocketState::new(s.into())?),
            None => None,
        };
        let set = UdpSet {
            v4,
            v6,
            state4,
            state6,
            port,
            stop: Stop::new()?,
            threads: Mutex::new(Vec::new()),
        };
        for s in set.sockets() {
            s.set_nonblocking(true)?;
            sockbuf::set_buffers(s.as_raw_fd(), sockbuf::UDP_BUFFER_BYTES);
        }
        set.set_fwmark(fwmark);
        Ok(set)
    }

    /// The bound sockets.
    pub fn sockets(&self) -> impl Iterator<Item = &UdpSocket> {
        std::iter::once(&self.v4).chain(self.v6.as_ref())
    }

    /// Applies a firewall mark (0 clears it) to both sockets; best effort.
    pub fn set_fwmark(&self, mark: u32) {
        for s in self.sockets() {
            if let Err(e) = socket::setsockopt(s, sockopt::Mark, &mark) {
                tracing::warn!(mark, error = %e, "setting SO_MARK on the WireGuard socket failed");
            }
        }
    }

    /// Sends one datagram to `to` from the socket of its family. Errors
    /// (unreachable, buffer full) are the network's loss, as for any UDP.
    pub fn send(&self, buf: &[u8], to: SocketAddr) {
        let sock = match to {
            SocketAddr::V4(_) => Some(&self.v4),
            SocketAddr::V6(_) => self.v6.as_ref(),
        };
        if let Some(s) = sock {
            let _ = s.send_to(buf, to);
        }
    }

    /// Sends `contents` to `to` as datagrams of `segment` bytes each (the
    /// last may be shorter) in one GSO send where the kernel offers it.
    pub fn send_segments(&self, contents: &[u8], segment: usize, to: SocketAddr) {
        let (sock, state) = match to {
            SocketAddr::V4(_) => (&self.v4, &self.state4),
            SocketAddr::V6(_) => match (&self.v6, &self.state6) {
                (Some(s), Some(st)) => (s, st),
                _ => return,
            },
        };
        let t = Transmit {
            destination: to,
            ecn: None,
            contents,
            segment_size: (contents.len() > segment).then_some(segment),
            src_ip: None,
        };
        if let Err(e) = state.send(sock.into(), &t) {
            tracing::trace!(error = %e, "UDP send failed");
        }
    }

    /// How many segments one GSO send may carry to `to`'s family.
    pub fn max_segments(&self, to: &SocketAddr) -> usize {
        match (to, &self.state6) {
            (SocketAddr::V6(_), Some(s)) => s.max_gso_segments(),
            _ => self.state4.max_gso_segments(),
        }
    }

    /// Records a receive thread to join at [`UdpSet::shutdown`].
    pub fn add_thread(&self, t: JoinHandle<()>) {
        lock(&self.threads).push(t);
    }

    /// Stops and joins the receive threads.
    pub fn shutdown(&self) {
        self.stop.signal();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn bind_v6_only(port: u16) -> std::io::Result<UdpSocket> {
    let fd: OwnedFd = socket::socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    let addr = SockaddrIn6::from(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        port,
        0,
        0,
    ));
    socket::bind(fd.as_raw_fd(), &addr)?;
    Ok(UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_both_families_on_one_port_and_sends() {
        let set = UdpSet::bind(0, 0).unwrap();
        assert_ne!(set.port, 0);
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        set.send(b"hi", rx.local_addr().unwrap());
        let mut buf = [0u8; 8];
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let (n, from) = rx.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(from.port(), set.port);
        set.shutdown();
    }
}
