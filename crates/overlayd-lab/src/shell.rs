//! Commands and waits: run a program (checked or not), a name unique to this
//! test run, and polling a condition against a deadline (never a bare sleep).

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A short name unique to this process run: `<prefix><tag><pid%100000><n>`.
/// With a prefix of 2 bytes and a tag of up to 4 it fits an interface name
/// (≤ 15 bytes).
pub fn unique_with(prefix: &str, tag: &str) -> String {
    format!(
        "{prefix}{tag}{}{}",
        std::process::id() % 100_000,
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// [`unique_with`] the prefix `ot` every overlayd test namespace carries.
pub fn unique(tag: &str) -> String {
    unique_with("ot", tag)
}

/// Run `args[0]` with the rest as arguments; its output whatever its status.
/// Panics only when the program cannot be started.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Run a command that must succeed; panics with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Standard output of a command that must succeed.
pub fn must(args: &[&str]) -> String {
    String::from_utf8_lossy(&sh(args).stdout).into_owned()
}

/// Whether a command succeeded (its output discarded; a program that
/// cannot start counts as a failure).
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Poll `cond` every 50 ms until it holds (true) or `within` passes (false).
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_until`], panicking with `what` at the deadline.
pub fn wait_for(what: &str, within: Duration, cond: impl FnMut() -> bool) {
    assert!(wait_until(within, cond), "timed out waiting for: {what}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_fit_an_interface_name() {
        let a = unique("abcd");
        let b = unique("abcd");
        assert_ne!(a, b);
        assert!(a.len() <= 15, "{a}");
    }

    #[test]
    fn waits_end_at_the_deadline_or_when_the_condition_holds() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            n += 1;
            n == 3
        }));
        assert!(!wait_until(Duration::from_millis(60), || false));
    }

    #[test]
    fn checked_and_unchecked_runs() {
        assert!(try_sh(&["true"]));
        assert!(!try_sh(&["false"]));
        assert!(!try_sh(&["/nonexistent/program"]));
        assert!(!run(&["false"]).status.success());
        assert_eq!(must(&["echo", "hi"]), "hi\n");
    }
}
