//! Start-up reconcile plans (SPEC §4): compare what the marker and store
//! record, what is live on the host and what is desired, and return a plan
//! of typed actions for the host layer to execute. Nothing here touches the
//! host; every decision is unit-testable data.
//!
//! - [`networks`]: adopt / recreate / create / delete-orphan / conflict for
//!   host-level networks;
//! - [`attachments`]: reclaim veths and leases of containers that are gone;
//! - [`rebuild`]: rebuild marker entries from tagged live links when the
//!   marker was lost or quarantined.

pub mod attachments;
pub mod network_plan;
pub mod networks;
pub mod rebuild;

use std::fmt;
use std::ops::Deref;

use overlayd_model::NetworkEntry;

pub use attachments::{plan_attachments, AttachAction, AttachPlan, AttachmentRecord};
pub use networks::{plan_networks, Action, Desired, NetworkInput, Plan};
pub use rebuild::{rebuild_from_live, Rebuilt, Skipped};

/// A marker entry carried inside a plan. Its `Debug` output never shows
/// the WireGuard private key, so plans can be logged.
#[derive(Clone, PartialEq)]
pub struct RecordedEntry(pub NetworkEntry);

impl Deref for RecordedEntry {
    type Target = NetworkEntry;

    fn deref(&self) -> &NetworkEntry {
        &self.0
    }
}

impl fmt::Debug for RecordedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.0;
        f.debug_struct("NetworkEntry")
            .field("owner", &e.owner.to_string())
            .field("kind", &e.kind)
            .field("name", &e.name)
            .field("id", &e.id)
            .field("subnet", &e.subnet)
            .field("wg_port", &e.wg_port)
            .field(
                "wg_private_key",
                &e.wg_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("wg_public_key", &e.wg_public_key)
            .field("interface", &e.interface)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use overlayd_model::Owner;

    use super::*;

    #[test]
    fn debug_redacts_private_key() {
        let mut e = NetworkEntry::new(Owner::Base, "linux-wireguard", "ovl-w", "id1", "");
        e.wg_private_key = Some("SECRETKEYMATERIAL".into());
        let s = format!("{:?}", RecordedEntry(e));
        assert!(!s.contains("SECRETKEYMATERIAL"), "{s}");
        assert!(s.contains("<redacted>"));
    }
}

#[cfg(test)]
mod network_props;
#[cfg(test)]
mod network_shared_names;
#[cfg(test)]
mod network_tests;
