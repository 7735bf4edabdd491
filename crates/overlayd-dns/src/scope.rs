//! Answer scoping: which registered addresses a client may learn depends on
//! where it asks from. Each listener (a network's gateway address) asks a
//! [`Visibility`] whether an address is visible from there; addresses that
//! are not are left out of the answer, as if never registered there.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use hickory_proto::rr::{RData, Record};

/// Decides, for a query that arrived on listener address `listener`,
/// whether an answer may carry `target`.
pub trait Visibility: Send + Sync + Debug {
    /// Whether a client asking on `listener` may learn `target`.
    fn visible(&self, listener: IpAddr, target: IpAddr) -> bool;
}

/// The visibility policy a server currently applies; shared by every
/// listener's handler and replaced as networks change.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScopeCell(Arc<RwLock<Option<Arc<dyn Visibility>>>>);

impl ScopeCell {
    pub(crate) fn set(&self, v: Option<Arc<dyn Visibility>>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = v;
    }

    pub(crate) fn get(&self) -> Option<Arc<dyn Visibility>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The address an A or AAAA record carries.
fn record_ip(r: &Record) -> Option<IpAddr> {
    match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// `records` without those `policy` hides from `listener`; the same set
/// (no copy) when nothing is hidden.
pub(crate) fn filter(
    records: Arc<[Record]>,
    policy: &dyn Visibility,
    listener: IpAddr,
) -> Arc<[Record]> {
    let shown = |r: &Record| record_ip(r).is_none_or(|ip| policy.visible(listener, ip));
    if records.iter().all(shown) {
        return records;
    }
    records.iter().filter(|r| shown(r)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::Name;

    #[derive(Debug)]
    struct OnlyTen;
    impl Visibility for OnlyTen {
        fn visible(&self, _listener: IpAddr, target: IpAddr) -> bool {
            matches!(target, IpAddr::V4(v4) if v4.octets()[0] == 10)
        }
    }

    fn a(ip: &str) -> Record {
        Record::from_rdata(Name::root(), 60, RData::A(A(ip.parse().unwrap())))
    }

    #[test]
    fn hidden_addresses_are_left_out_and_a_fully_visible_set_is_not_copied() {
        let all: Arc<[Record]> = Arc::from(vec![a("10.0.0.1"), a("10.0.0.2")]);
        let same = filter(all.clone(), &OnlyTen, "10.0.0.254".parse().unwrap());
        assert!(Arc::ptr_eq(&all, &same));
        let mixed: Arc<[Record]> = Arc::from(vec![a("10.0.0.1"), a("192.168.1.1")]);
        let out = filter(mixed, &OnlyTen, "10.0.0.254".parse().unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(record_ip(&out[0]), Some("10.0.0.1".parse().unwrap()));
    }
}
