//! Interrupt handling and progress lines: SIGINT/SIGTERM set a flag that is
//! checked between steps, so an interrupted run unwinds through the cleanup
//! guards instead of dying with its namespaces still in place.

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by SIGINT/SIGTERM; checked between steps so that an interrupted run
/// unwinds through the guards and still deletes its namespaces.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to [`on_interrupt`].
pub(crate) fn catch_interrupts() {
    for sig in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let handler = nix::sys::signal::SigHandler::Handler(on_interrupt);
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        if let Err(e) = unsafe { nix::sys::signal::signal(sig, handler) } {
            progress(&format!("cannot catch {sig}: {e}"));
        }
    }
}

/// Unwind (running every cleanup guard) if the run was interrupted.
pub(crate) fn bail_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        panic!("interrupted; cleaning up");
    }
}

/// A progress line on stderr.
pub(crate) fn progress(msg: &str) {
    eprintln!("[daemon bench] {msg}");
    bail_if_interrupted();
}
