//! The markdown report printed at the end of a run.

use std::io::Write as _;
use std::time::Duration;

use crate::latency::LatencyReport;
use crate::publish::{PublishReport, PUBLISH_PAIRS};
use crate::restart::RestartReport;
use crate::stats::{median, Summary};
use crate::{ATTACHMENTS, HELLO_POLL, LATENCY_CONTAINERS, NETWORKS, PING_INTERVAL, SERVICE};

impl Summary {
    /// `| label | n | p50 | p95 | p99 | max |`.
    pub(crate) fn row(&self, label: &str) -> String {
        let cells = [self.p50, self.p95, self.p99, self.max].map(ms);
        let mut v = vec![label.to_string(), self.n.to_string()];
        v.extend(cells);
        row(&v)
    }
}

/// A duration in milliseconds, two decimals.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// `yes`, or a bold `NO`.
fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**NO**"
    }
}

/// One markdown table row.
fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// `| label | runs | median | max |` for a set of runs.
fn runs_row(label: &str, runs: &[Duration]) -> String {
    let max = runs.iter().max().copied().unwrap_or_default();
    row(&[
        label.into(),
        runs.len().to_string(),
        ms(median(runs)),
        ms(max),
    ])
}

/// Print the whole markdown report on stdout.
pub(crate) fn print_report(
    lat: &LatencyReport,
    publish: &PublishReport,
    rs: &RestartReport,
    cleanup: Duration,
    leftovers: &[String],
    total: Duration,
) {
    let mut s = format!(
        "\n## overlayd daemon benchmark\n\n\
         Client-side latency over one Unix-socket connection (request sent → response \
         received); containers are `ip netns add` namespaces attached by path, service \
         `{SERVICE}` is shared.\n\n\
         | operation | n | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|\n"
    );
    s += &lat
        .attach
        .row(&format!("attach (0 → {LATENCY_CONTAINERS} attached)"));
    s += &lat
        .detach
        .row(&format!("detach ({LATENCY_CONTAINERS} → 0 attached)"));
    s += &lat.pair.row("attach + detach, back to back");
    s += &rs.iso_attach.row(&format!(
        "attach into isolation network (0 → {ATTACHMENTS}, {NETWORKS} networks)"
    ));
    s += &format!(
        "\nPublished ports: {PUBLISH_PAIRS} attaches of each kind in alternation on the same \
         containers, each followed by an untimed detach.\n\n\
         | operation | n | p50 | p95 | p99 | max |\n|---|---|---|---|---|---|\n"
    );
    s += &publish.plain.row("attach, plain");
    s += &publish
        .published
        .row("attach with 2 published ports (tcp + udp)");
    s += &format!(
        "\nRatio of the medians, published / plain: **{:.2}×** (target ≤ 1.2×: {}).\n",
        publish.ratio(),
        yes_no(publish.ratio() <= 1.2)
    );
    s += &format!(
        "\nRestart with {NETWORKS} isolation networks and {ATTACHMENTS} attachments recorded \
         (SIGTERM, wait for exit, spawn `ip netns exec NODE overlayd run`, poll `hello` every \
         {} ms).\n\n| figure | runs | median | max |\n|---|---|---|---|\n",
        HELLO_POLL.as_millis()
    );
    s += &runs_row("spawn → `hello` answered (start-to-ready)", &rs.ready);
    s += &runs_row("SIGTERM → daemon exited", &rs.stop);
    s += &runs_row(
        "`ip netns exec NODE true` alone (part of start-to-ready)",
        &rs.wrapper,
    );
    s += &runs_row(
        "cold start on empty state (for reference)",
        &[rs.cold_start],
    );
    s += &runs_row(
        &format!("{NETWORKS} × `setup_isolation_network` (total)"),
        &[rs.setup_networks],
    );
    let unchanged = rs.unchanged_after.iter().all(|b| *b) && rs.ping.unchanged;
    let lost = rs.ping.sent.saturating_sub(rs.ping.received);
    s += "\n| check | result |\n|---|---|\n";
    s += &row(&[
        format!(
            "nothing recreated: {} tagged bridges and {} tagged veths, same names and \
             ifindexes after each of {} restarts",
            rs.bridges,
            rs.veths,
            rs.unchanged_after.len() + 1
        ),
        yes_no(unchanged).into(),
    ]);
    s += &row(&[
        "daemon log, last reconcile".into(),
        format!("`{}`", rs.reconcile),
    ]);
    s += &row(&[
        format!(
            "ping every {} ms between two containers of one isolation network across a restart",
            PING_INTERVAL.as_millis()
        ),
        format!(
            "{} sent, {} received, **{lost} lost**",
            rs.ping.sent, rs.ping.received
        ),
    ]);
    s += &row(&[
        "restart window (SIGTERM → ready) inside the ping stream".into(),
        format!(
            "{} ({} window in a {} stream)",
            yes_no(rs.ping.covered),
            ms(rs.ping.restart_window),
            ms(rs.ping.stream)
        ),
    ]);
    s += &row(&[
        "namespaces deleted on exit".into(),
        format!(
            "{} ({} left, cleanup {})",
            yes_no(leftovers.is_empty()),
            leftovers.len(),
            ms(cleanup)
        ),
    ]);
    s += &format!("\nTotal bench time: {:.1} s\n", total.as_secs_f64());
    print!("{s}");
    let _ = std::io::stdout().flush();
}
