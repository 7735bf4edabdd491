//! Skip-or-fail decisions for tests whose environment may be missing.

use std::process::{Command, Stdio};

/// Environment variable that turns every skip into a failure.
pub const REQUIRE_ENV: &str = "OVERLAYD_REQUIRE_ROOT";

/// Whether skipping is forbidden (`OVERLAYD_REQUIRE_ROOT=1`).
pub fn required() -> bool {
    required_by(std::env::var(REQUIRE_ENV).ok().as_deref())
}

fn required_by(value: Option<&str>) -> bool {
    matches!(value.map(str::trim), Some("1" | "true" | "yes"))
}

/// Gate a test on a condition: `true` when `available`; otherwise prints
/// `SKIPPED <test>: <why>` and returns `false`, or panics with the same
/// message when [`required`] (so CI cannot mistake a skip for a pass).
pub fn need(test: &str, available: bool, why: &str) -> bool {
    decide(test, available, why, required())
}

fn decide(test: &str, available: bool, why: &str, required: bool) -> bool {
    if available {
        return true;
    }
    if required {
        panic!("{test} cannot run: {why} ({REQUIRE_ENV}=1 forbids skipping)");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Gate a test on running as root (network namespaces need it).
pub fn need_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    need(test, root, "needs root to create network namespaces")
}

/// Gate a test on an external program being installed (`program` run with
/// `version_arg` must start).
pub fn need_tool(test: &str, program: &str, version_arg: &str) -> bool {
    let present = Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    need(
        test,
        present,
        &format!("`{program}` is not installed (run scripts/setup.sh)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values() {
        assert!(required_by(Some("1")));
        assert!(required_by(Some("true")));
        assert!(!required_by(Some("0")));
        assert!(!required_by(Some("")));
        assert!(!required_by(None));
    }

    #[test]
    fn available_runs_missing_skips_when_not_required() {
        assert!(decide("t", true, "x", true));
        assert!(!decide("t", false, "x", false));
    }

    #[test]
    #[should_panic(expected = "forbids skipping")]
    fn missing_fails_when_required() {
        decide("t", false, "needs root", true);
    }
}
