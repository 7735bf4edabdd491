//! Phase 1: client-side attach, detach and attach+detach latency on the
//! shared service.

use overlayd_proto::{Request, ServiceMode};
use tokio::runtime::Runtime;

use crate::calls::{attach, check, detach, timed_call};
use crate::interrupt::progress;
use crate::lab::Lab;
use crate::stats::Summary;
use crate::{LATENCY_CONTAINERS, SERVICE, WARMUP_PAIRS};

/// Latency samples of phase 1.
pub(crate) struct LatencyReport {
    /// Attach latency, 0 → all attached.
    pub(crate) attach: Summary,
    /// Detach latency, all → 0 attached.
    pub(crate) detach: Summary,
    /// Attach immediately followed by detach of the same container.
    pub(crate) pair: Summary,
}

/// Set up the shared service, warm up, then time attaches, detaches and
/// back-to-back pairs.
pub(crate) fn bench_latency(rt: &Runtime, lab: &mut Lab) -> LatencyReport {
    let mut client = lab.daemon.client(rt);
    let (resp, _) = timed_call(
        rt,
        &mut client,
        Request::SetupServiceOverlay {
            service: SERVICE.into(),
            mode: ServiceMode::Shared,
            recreate: false,
        },
    );
    check(&resp, "setup_service_overlay", &lab.daemon);
    for i in 0..WARMUP_PAIRS {
        attach(rt, &mut client, lab, i, None);
        detach(rt, &mut client, lab, i);
    }

    // Attach all, then detach all: each op timed on its own.
    let mut attach_samples = Vec::with_capacity(LATENCY_CONTAINERS);
    for i in 0..LATENCY_CONTAINERS {
        attach_samples.push(attach(rt, &mut client, lab, i, None).1);
    }
    let mut detach_samples = Vec::with_capacity(LATENCY_CONTAINERS);
    for i in 0..LATENCY_CONTAINERS {
        detach_samples.push(detach(rt, &mut client, lab, i));
    }
    progress(&format!(
        "timed {LATENCY_CONTAINERS} attaches and {LATENCY_CONTAINERS} detaches"
    ));

    // Attach immediately followed by detach of the same container.
    let mut pair_samples = Vec::with_capacity(LATENCY_CONTAINERS);
    for i in 0..LATENCY_CONTAINERS {
        let a = attach(rt, &mut client, lab, i, None).1;
        let d = detach(rt, &mut client, lab, i);
        pair_samples.push(a + d);
    }
    progress(&format!("timed {LATENCY_CONTAINERS} attach+detach pairs"));
    LatencyReport {
        attach: Summary::of(attach_samples),
        detach: Summary::of(detach_samples),
        pair: Summary::of(pair_samples),
    }
}
