//! Running wg(8) against this instance's UAPI sockets.
//!
//! wg(8) only looks for userspace devices in the compile-time directory
//! `/var/run/wireguard`, which all network namespaces on a host share. Each
//! overlayd instance instead serves its sockets from its own `uapi_dir`, so
//! two daemons in two namespaces can run devices of the same name. To inspect
//! them, wg(8) is run in a private mount namespace in which a fresh tmpfs
//! covers `/run` and the instance's `uapi_dir` is bind-mounted on
//! `/run/wireguard`; the host's mounts are untouched. Unix-socket paths are
//! not scoped by network namespace, so this works from any netns.
//!
//! Shell equivalent, for an operator (`DIR` is the instance's `uapi_dir`):
//!
//! ```text
//! unshare --mount --propagation private sh -c \
//!   'exec 3<"$DIR"; mount -t tmpfs tmpfs /run; mkdir /run/wireguard;
//!    mount --bind /proc/self/fd/3 /run/wireguard; wg show'
//! ```

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::error::{Result, WgError};

/// Builds a `wg` command (add arguments such as `show wg0`) that sees the
/// sockets of `uapi_dir` as `/var/run/wireguard`. Needs `CAP_SYS_ADMIN`.
pub fn wg_command(uapi_dir: &Path) -> Result<Command> {
    command_with_dir("wg", uapi_dir)
}

/// Like [`wg_command`] for any program that expects `/var/run/wireguard`.
pub fn command_with_dir(program: &str, uapi_dir: &Path) -> Result<Command> {
    let dir_abs = std::fs::canonicalize(uapi_dir)
        .map_err(|e| WgError::io(format!("resolving UAPI dir {}", uapi_dir.display()), e))?;
    // /var/run is usually a symlink to /run; cover whatever it resolves to.
    let run = std::fs::canonicalize("/var/run").unwrap_or_else(|_| "/run".into());
    let cstr =
        |b: &[u8]| CString::new(b).map_err(|_| WgError::InvalidConfig("path contains NUL".into()));
    let run_c = cstr(run.as_os_str().as_bytes())?;
    let wg_dir_c = cstr(run.join("wireguard").as_os_str().as_bytes())?;
    let dir_c = cstr(dir_abs.as_os_str().as_bytes())?;
    let root_c = cstr(b"/")?;
    let tmpfs_c = cstr(b"tmpfs")?;
    let opts_c = cstr(b"mode=0755")?;

    let mut cmd = Command::new(program);
    // SAFETY: the closure runs between fork and exec and only makes raw
    // system calls on pre-built C strings (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: libc::c_int| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                root_c.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // Open the directory inside the new namespace (a descriptor from
            // the old one cannot be a bind source), before /run is covered.
            let fd = libc::open(
                dir_c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let src = fd_path(fd);
            check(libc::mount(
                tmpfs_c.as_ptr(),
                run_c.as_ptr(),
                tmpfs_c.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                opts_c.as_ptr().cast(),
            ))?;
            check(libc::mkdir(wg_dir_c.as_ptr(), 0o700))?;
            check(libc::mount(
                src.as_ptr().cast(),
                wg_dir_c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            ))?;
            Ok(())
        });
    }
    Ok(cmd)
}

/// `/proc/self/fd/<fd>` as a NUL-terminated buffer, built without allocating
/// (it runs between fork and exec).
fn fd_path(fd: libc::c_int) -> [u8; 40] {
    let mut out = [0u8; 40];
    let prefix = b"/proc/self/fd/";
    out[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 12];
    let mut n = fd.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[prefix.len() + i] = digits[len - 1 - i];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths() {
        let p = fd_path(0);
        assert_eq!(&p[..16], b"/proc/self/fd/0\0");
        let p = fd_path(1234);
        assert_eq!(&p[..19], b"/proc/self/fd/1234\0");
    }
}
