//! Phase 1b: attach with two published ports against a plain attach, in
//! alternation on the same containers (plain, published, published, plain,
//! …; each followed by an untimed detach) so both see the same daemon and
//! host state. The target: publishing costs one map update (one
//! nfnetlink batch of element messages, no `nft` process), so the published
//! attach stays within 1.2× of a plain one.

use overlayd_proto::PortMapping;
use tokio::runtime::Runtime;

use crate::calls::{attach, attach_publishing, detach};
use crate::interrupt::progress;
use crate::lab::Lab;
use crate::stats::Summary;

/// Attaches of each kind.
pub(crate) const PUBLISH_PAIRS: usize = 100;

/// Samples of phase 1b.
pub(crate) struct PublishReport {
    /// Plain attach.
    pub(crate) plain: Summary,
    /// Attach with two published ports (TCP 18080→80, UDP 18081→81).
    pub(crate) published: Summary,
}

impl PublishReport {
    /// Median of the published attach over the median of the plain one.
    pub(crate) fn ratio(&self) -> f64 {
        let plain = self.plain.p50.as_secs_f64();
        if plain == 0.0 {
            return f64::NAN;
        }
        self.published.p50.as_secs_f64() / plain
    }
}

/// The two mappings every published attach asks for.
fn two_ports() -> Vec<PortMapping> {
    ["18080:80", "18081:81/udp"]
        .iter()
        .map(|m| m.parse().expect("a valid mapping"))
        .collect()
}

/// Time plain and published attaches in alternation.
pub(crate) fn bench_publish(rt: &Runtime, lab: &mut Lab) -> PublishReport {
    let mut client = lab.daemon.client(rt);
    let mut plain = Vec::with_capacity(PUBLISH_PAIRS);
    let mut published = Vec::with_capacity(PUBLISH_PAIRS);
    for i in 0..PUBLISH_PAIRS {
        let mut one = |with_ports: bool| {
            let took = if with_ports {
                attach_publishing(rt, &mut client, lab, i, None, two_ports()).1
            } else {
                attach(rt, &mut client, lab, i, None).1
            };
            detach(rt, &mut client, lab, i);
            took
        };
        // Alternate which goes first, so neither always follows a detach
        // of the same kind.
        if i % 2 == 0 {
            plain.push(one(false));
            published.push(one(true));
        } else {
            published.push(one(true));
            plain.push(one(false));
        }
    }
    progress(&format!(
        "timed {PUBLISH_PAIRS} plain and {PUBLISH_PAIRS} published attaches"
    ));
    PublishReport {
        plain: Summary::of(plain),
        published: Summary::of(published),
    }
}
