//! Opening a TUN interface (`/dev/net/tun`, `IFF_TUN | IFF_NO_PI`): one
//! non-blocking queue whose descriptor is the interface's lifetime.

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};

/// Creates (or attaches to) TUN interface `name` and returns its queue.
pub(crate) fn open(name: &str) -> std::io::Result<OwnedFd> {
    let path = CString::new("/dev/net/tun").expect("static path has no NUL");
    // SAFETY: `path` is a valid C string; the result is checked.
    let raw = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= ifr.ifr_name.len() || name.bytes().any(|b| b == 0) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads a struct ifreq, which `ifr` is.
    if unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::TUNSETIFF, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}
