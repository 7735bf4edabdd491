//! The dedicated WireGuard port band (SPEC §2): ports `global+1 ..= global+256`
//! handed out lowest-free first, deterministically, never the global port,
//! rehydrated from the marker's `wg_port`s at start.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use crate::error::{ModelError, Result};
use crate::marker::Marker;

/// How many ports the band holds above the global port.
pub const BAND_SIZE: u16 = 256;

/// Allocator of dedicated-overlay UDP listen ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBand {
    global: u16,
    /// Every held port, in band or not (out-of-band reservations are kept so
    /// they stay held if the band later moves over them).
    used: BTreeSet<u16>,
}

impl PortBand {
    /// An empty band above `global_port`. Near the top of the port range the
    /// band is cut at 65535 (and is empty for 65535).
    pub fn new(global_port: u16) -> Self {
        PortBand {
            global: global_port,
            used: BTreeSet::new(),
        }
    }

    /// A band whose held set is every `wg_port` recorded in `marker`, so each
    /// dedicated network re-binds the port it had.
    pub fn from_marker(global_port: u16, marker: &Marker) -> Self {
        let mut band = PortBand::new(global_port);
        for port in marker.iter().filter_map(|e| e.wg_port) {
            band.reserve(port);
        }
        band
    }

    /// The node's global WireGuard port.
    pub fn global_port(&self) -> u16 {
        self.global
    }

    /// The band's ports, or `None` when the global port leaves no room.
    pub fn range(&self) -> Option<RangeInclusive<u16>> {
        let first = self.global.checked_add(1)?;
        let last = self.global.saturating_add(BAND_SIZE);
        Some(first..=last)
    }

    /// Hand out the lowest free band port (never the global port).
    pub fn allocate(&mut self) -> Result<u16> {
        let Some(range) = self.range() else {
            return Err(ModelError::PortBandEmpty {
                global: self.global,
            });
        };
        let (first, last) = (*range.start(), *range.end());
        let port = range
            .into_iter()
            .find(|p| *p != self.global && !self.used.contains(p))
            .ok_or_else(|| ModelError::PortBandExhausted {
                first,
                last,
                in_use: self.used.range(first..=last).count(),
            })?;
        self.used.insert(port);
        Ok(port)
    }

    /// Give `port` back; it is the first handed out again if lowest.
    /// Returns whether it was held.
    pub fn release(&mut self, port: u16) -> bool {
        self.used.remove(&port)
    }

    /// Mark `port` as held (e.g. recorded in the marker). Out-of-band ports
    /// are accepted and recorded but never handed out. Returns whether it
    /// was newly held.
    pub fn reserve(&mut self, port: u16) -> bool {
        self.used.insert(port)
    }

    /// Whether `port` is held.
    pub fn is_used(&self, port: u16) -> bool {
        self.used.contains(&port)
    }

    /// Held ports, ascending.
    pub fn used(&self) -> impl Iterator<Item = u16> + '_ {
        self.used.iter().copied()
    }

    /// Move the band above a new global port. Held ports stay held; the new
    /// global port is never handed out even if it falls in the band.
    pub fn set_global_port(&mut self, global_port: u16) {
        self.global = global_port;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{NetworkEntry, KIND_LINUX_WIREGUARD};
    use crate::owner::Owner;
    use proptest::prelude::*;

    #[test]
    fn default_band_is_51821_to_52076() {
        let mut b = PortBand::new(51820);
        assert_eq!(b.range(), Some(51821..=52076));
        for want in 51821..=52076 {
            assert_eq!(b.allocate().unwrap(), want);
        }
        let e = b.allocate().unwrap_err();
        assert_eq!(
            e.to_string(),
            "dedicated WireGuard port band 51821-52076 is exhausted (256 ports in use); \
             tear down an unused dedicated service"
        );
        assert!(b.release(51900));
        assert_eq!(b.allocate().unwrap(), 51900);
    }

    #[test]
    fn top_of_range_is_clamped_or_empty() {
        let mut b = PortBand::new(65500);
        assert_eq!(b.range(), Some(65501..=65535));
        assert_eq!((0..35).filter(|_| b.allocate().is_ok()).count(), 35);
        assert!(matches!(
            b.allocate(),
            Err(ModelError::PortBandExhausted {
                first: 65501,
                last: 65535,
                in_use: 35
            })
        ));
        let mut b = PortBand::new(65535);
        assert_eq!(b.range(), None);
        assert!(matches!(
            b.allocate(),
            Err(ModelError::PortBandEmpty { global: 65535 })
        ));
    }

    #[test]
    fn rehydrates_from_marker_and_skips_new_global() {
        let mut m = Marker::new();
        for (i, port) in [51821u16, 51823, 40000].into_iter().enumerate() {
            let mut e = NetworkEntry::new(
                Owner::service(&format!("s{i}")).unwrap(),
                KIND_LINUX_WIREGUARD,
                "n",
                "i",
                "10.0.0.0/24",
            );
            e.wg_port = Some(port);
            m.upsert(e);
        }
        let mut b = PortBand::from_marker(51820, &m);
        assert!(b.is_used(40000));
        assert_eq!(b.allocate().unwrap(), 51822);
        assert_eq!(b.allocate().unwrap(), 51824);
        // The global port moves onto a held port: the band moves with it.
        b.set_global_port(51821);
        assert_eq!(b.range(), Some(51822..=52077));
        assert_eq!(b.allocate().unwrap(), 51825);
        // The global port moves onto a free port: it is still never handed out.
        b.release(51821);
        b.set_global_port(51820);
        assert_eq!(b.allocate().unwrap(), 51821);
        b.release(51822);
        b.set_global_port(51821);
        assert_eq!(b.allocate().unwrap(), 51822);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Allocate,
        Release(u16),
        Reserve(u16),
        SetGlobal(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => Just(Op::Allocate),
            2 => (51700u16..52200).prop_map(Op::Release),
            1 => (51700u16..52200).prop_map(Op::Reserve),
            1 => prop_oneof![Just(51820u16), 51800u16..51900, 65400u16..=65535]
                .prop_map(Op::SetGlobal),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a model: never a held port, always the lowest free one,
        /// never outside the band, never the global port.
        #[test]
        fn allocation_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
            let mut band = PortBand::new(51820);
            let mut held: BTreeSet<u16> = BTreeSet::new();
            let mut global = 51820u16;
            for op in ops {
                match op {
                    Op::Allocate => {
                        let first = global.checked_add(1);
                        let expect = first.and_then(|f| {
                            (f..=global.saturating_add(BAND_SIZE))
                                .find(|p| *p != global && !held.contains(p))
                        });
                        match band.allocate() {
                            Ok(p) => {
                                prop_assert_eq!(Some(p), expect);
                                prop_assert!(p != global);
                                prop_assert!(p > global && u32::from(p) <= u32::from(global) + 256);
                                prop_assert!(held.insert(p), "port {} handed out twice", p);
                            }
                            Err(_) => prop_assert_eq!(expect, None),
                        }
                    }
                    Op::Release(p) => prop_assert_eq!(band.release(p), held.remove(&p)),
                    Op::Reserve(p) => prop_assert_eq!(band.reserve(p), held.insert(p)),
                    Op::SetGlobal(g) => {
                        band.set_global_port(g);
                        global = g;
                    }
                }
                for p in &held {
                    prop_assert!(band.is_used(*p));
                }
            }
        }
    }
}
