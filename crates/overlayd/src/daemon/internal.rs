//! Internal isolation networks (`iso up NET --internal`): no route and no
//! NAT to outside the host. Members reach each other, the gateway address
//! and DNS; the firewall drops everything forwarded in or out of the bridge
//! and containers get no default route.

use overlayd_host::FirewallSpec;
use overlayd_state::{Owner, Table};
use tracing::warn;

use super::error::OpResult;
use super::node::Core;
use super::records::IsolationRecord;

impl Core {
    /// Whether a network is an internal isolation network.
    pub fn is_internal(&self, owner: &Owner) -> OpResult<bool> {
        let Owner::Isolation(net) = owner else {
            return Ok(false);
        };
        Ok(self
            .store
            .read(|tx| tx.get::<IsolationRecord>(Table::Isolation, net))?
            .is_some_and(|r| r.internal))
    }

    /// Turn the bridges of internal networks from masqueraded into closed
    /// ones in a firewall spec.
    pub(crate) fn close_internal(&self, spec: &mut FirewallSpec) {
        let internal: Vec<String> = self
            .marker
            .iter()
            .filter(|e| match self.is_internal(&e.owner) {
                Ok(i) => i,
                Err(e) => {
                    warn!(error = %e, "cannot read isolation records");
                    false
                }
            })
            .map(|e| e.name.clone())
            .collect();
        spec.masquerade.retain(|m| !internal.contains(&m.bridge));
        spec.publish_bridges.retain(|b| !internal.contains(b));
        spec.internal_bridges = internal;
    }
}
