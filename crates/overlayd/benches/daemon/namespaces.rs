//! RAII guard over the network namespaces a run creates, and the check for
//! any of them left behind.

use crate::shell::{cmd_output, ip_batch, ip_batch_output, ip_batch_result};

/// Network namespaces created by this run; all deleted on drop (every
/// process inside them killed first).
#[derive(Default)]
pub(crate) struct Namespaces {
    names: Vec<String>,
}

impl Namespaces {
    /// Create `names` (one `ip -batch` process for all of them).
    pub(crate) fn create(&mut self, names: &[String]) {
        // Recorded first so that a partial failure is still cleaned up.
        self.names.extend_from_slice(names);
        let lines: Vec<String> = names.iter().map(|n| format!("netns add {n}")).collect();
        ip_batch(&lines, false);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let pids: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("netns pids {n}"))
            .collect();
        let listed = ip_batch_output(&pids);
        for pid in listed
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let dels: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("netns del {n}"))
            .collect();
        let _ = ip_batch_result(&dels, true);
    }
}

/// Namespaces of this run still listed by `ip netns list`.
pub(crate) fn leftover_namespaces(prefix: &str) -> Vec<String> {
    cmd_output(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}
