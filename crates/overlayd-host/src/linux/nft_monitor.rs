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
/// `NFNL_SUBSYS_NFTABLES`: the high byte of an nftables message's type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWSETELEM`, `NFT_MSG_GETSETELEM`, `NFT_MSG_DELSETELEM` and
/// `NFT_MSG_NEWGEN` (`linux/netfilter/nf_tables.h`): set element changes
/// and the generation bump every transaction ends with.
const ELEMENT_ONLY: [u16; 4] = [12, 13, 14, 15];

/// Whether a datagram from the monitor socket carries a change to tables,
/// chains, rules or sets — anything but set elements. Published ports are
/// elements of verdict maps that overlayd adds and removes on every attach
/// with a published port; those changes alone (its own, or someone
/// un-publishing a port, which fails closed) do not wake the watcher, so
/// an attach does not pay for a whole-table check. A datagram that cannot
/// be parsed counts as a change.
pub(crate) fn changes_rules(buf: &[u8]) -> bool {
    let mut rest = buf;
    let mut parsed_any = false;
    while rest.len() >= 16 {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < 16 || len > rest.len() {
            return true;
        }
        parsed_any = true;
        let (subsys, msg) = (kind >> 8, kind & 0xff);
        if subsys == NFNL_SUBSYS_NFTABLES && !ELEMENT_ONLY.contains(&msg) {
            return true;
        }
        // Messages are padded to 4 bytes.
        let next = (len + 3) & !3;
        rest = rest.get(next..).unwrap_or_default();
    }
    !parsed_any
}

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
                    let got = usize::try_from(n).unwrap_or(0).min(buf.len());
                    if changes_rules(&buf[..got]) {
                        // Full means a notification is already pending: coalesced.
                        let _ = tx.try_send(());
                    }
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

#[cfg(test)]
mod tests {
    use super::changes_rules;

    fn msg(kind: u16, payload: usize) -> Vec<u8> {
        let len = 16 + payload;
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&[0u8; 10]);
        v.extend(std::iter::repeat_n(0u8, payload));
        v.resize((len + 3) & !3, 0);
        v
    }

    const NFT: u16 = 10 << 8;

    #[test]
    fn element_changes_alone_do_not_count_and_rule_changes_do() {
        let elems = [msg(NFT | 12, 21), msg(NFT | 14, 8), msg(NFT | 15, 4)].concat();
        assert!(
            !changes_rules(&elems),
            "element adds/deletes and the generation bump"
        );
        let with_rule = [msg(NFT | 12, 20), msg(NFT | 8, 40), msg(NFT | 15, 4)].concat();
        assert!(changes_rules(&with_rule), "a deleted rule");
        assert!(changes_rules(&msg(NFT | 2, 12)), "a deleted table");
        assert!(changes_rules(&msg(NFT | 5, 12)), "a deleted chain");
        assert!(changes_rules(&[1, 2, 3]), "unparsable counts as a change");
        let mut bad = msg(NFT | 12, 8);
        bad[0] = 200; // a length past the datagram
        assert!(changes_rules(&bad));
    }
}
