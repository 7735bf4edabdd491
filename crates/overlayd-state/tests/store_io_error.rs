//! The store recovers from an I/O error without a restart. redb refuses
//! every change after one failed write ("Previous I/O error occurred") until
//! the database is reopened; the store must do that itself once the cause is
//! gone. The failure is a file-size limit (`RLIMIT_FSIZE`, EFBIG), which acts
//! like a full disk for this process only — so this test lives alone in its
//! own test binary.

use overlayd_state::{Store, Table};

fn set_fsize_limit(bytes: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; no other preconditions.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
}

#[test]
fn store_recovers_from_an_io_error_once_the_cause_is_gone() {
    // SAFETY: ignoring SIGXFSZ makes an over-limit write fail with EFBIG
    // instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .write(|tx| tx.put(Table::Leases, "kept", &"before"))
        .unwrap();
    let size = std::fs::metadata(store.path()).unwrap().len();
    set_fsize_limit(size as libc::rlim_t + 256 * 1024);
    let big = "x".repeat(128 * 1024);
    let mut failed_at = None;
    for i in 0..200 {
        if let Err(e) = store.write(|tx| tx.put(Table::Dns, &format!("fill{i}"), &big)) {
            println!("write {i} failed as the disk filled: {e}");
            failed_at = Some(i);
            break;
        }
    }
    let failed_at = failed_at.expect("the file-size limit must make a write fail");
    // The cause goes away (space freed): the very next change must work.
    set_fsize_limit(libc::RLIM_INFINITY);
    store
        .write(|tx| tx.put(Table::Leases, "after", &"recovered"))
        .expect("store accepts changes again without a restart");
    store
        .read(|tx| {
            assert_eq!(
                tx.get::<String>(Table::Leases, "kept")?.as_deref(),
                Some("before")
            );
            assert_eq!(
                tx.get::<String>(Table::Leases, "after")?.as_deref(),
                Some("recovered")
            );
            assert_eq!(
                tx.count(Table::Dns)?,
                failed_at as u64,
                "committed fills kept"
            );
            Ok(())
        })
        .unwrap();
}
