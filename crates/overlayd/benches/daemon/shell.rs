//! Running `ip -batch` scripts and other commands the fixture is built and
//! inspected with.

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Run `ip [-force] -batch -` over `lines`; return success and stdout.
pub(crate) fn ip_batch_result(lines: &[String], force: bool) -> (bool, String, String) {
    let mut cmd = Command::new("ip");
    if force {
        cmd.arg("-force");
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ip -batch");
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = lines.join("\n");
        text.push('\n');
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("wait for ip -batch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run an `ip` batch that must succeed.
pub(crate) fn ip_batch(lines: &[String], force: bool) {
    let (ok, _, err) = ip_batch_result(lines, force);
    assert!(ok, "ip -batch failed: {err}");
}

/// Stdout of an `ip -force` batch, whatever its status.
pub(crate) fn ip_batch_output(lines: &[String]) -> String {
    ip_batch_result(lines, true).1
}

/// Stdout of a command that must succeed.
pub(crate) fn cmd_output(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether a command succeeded (output discarded).
pub(crate) fn cmd_ok(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
