//! Peer health and roaming: a peer is healthy while its last WireGuard
//! handshake is recent. The periodic check (and `nat_tick`) compares each
//! peer with what it saw last time and pushes `peer_health_changed` on every
//! change, and `nat_endpoint_changed` when a peer's endpoint moved (NAT
//! rebinding or roaming) — the new endpoint is recorded so a restart
//! programs the one that works.

use std::time::{Duration, SystemTime};

use overlayd_proto::Event;
use overlayd_state::Owner;
use tracing::info;

use super::node::Node;
use super::overlay::wg_call;
use super::records::{peer_key, PeerRecord};
use overlayd_state::Table;

/// A handshake older than this means the peer is unhealthy. WireGuard
/// re-handshakes every 2 minutes under traffic and rejects sessions after
/// 180 s, so 3 minutes without one means the tunnel is down.
pub const STALE_AFTER: Duration = Duration::from_secs(180);

/// Whether a peer with this last handshake is healthy at `now`.
pub fn peer_healthy(
    last_handshake: Option<SystemTime>,
    now: SystemTime,
    stale_after: Duration,
) -> bool {
    match last_handshake {
        Some(t) => now
            .duration_since(t)
            .map(|age| age <= stale_after)
            .unwrap_or(true),
        None => false,
    }
}

impl Node {
    /// Compare every peer's health with the last check and emit events.
    /// A peer seen for the first time is recorded without an event unless
    /// it is already healthy (a newly added peer starts out unknown).
    pub async fn check_peer_health(&mut self, now: SystemTime) {
        let devices: Vec<(String, String)> = self
            .marker
            .iter()
            .filter(|e| matches!(e.owner, Owner::Base | Owner::Service(_)))
            .filter_map(|e| e.interface.clone().map(|d| (e.owner.to_string(), d)))
            .collect();
        let mut seen = std::collections::HashSet::new();
        for (owner, dev) in devices {
            let d = dev.clone();
            let Ok(status) = wg_call(&self.wg, move |wg| wg.status(&d)).await else {
                continue;
            };
            for p in status.peers {
                let pubkey = overlayd_wg::format_key(&p.public_key);
                let key = format!("{owner}|{pubkey}");
                let healthy = peer_healthy(p.last_handshake, now, STALE_AFTER);
                let previous = self.overlay.note_health(&key, healthy);
                seen.insert(key);
                let changed = match previous {
                    Some(prev) => prev != healthy,
                    None => healthy,
                };
                if changed {
                    info!(%owner, peer = %pubkey, healthy, "peer health changed");
                    let _ = self.events.send(Event::PeerHealthChanged {
                        pubkey: pubkey.clone(),
                        healthy,
                    });
                }
                if let Some(live) = p.endpoint {
                    self.note_endpoint(&owner, &pubkey, live.to_string());
                }
            }
        }
        self.overlay.keep_health_of(&seen);
    }

    /// Record a peer's live endpoint when it differs from the recorded one,
    /// and tell subscribers.
    fn note_endpoint(&self, owner: &str, pubkey: &str, live: String) {
        let key = peer_key(owner, pubkey);
        let updated = self.store.write(|tx| {
            let Some(mut rec) = tx.get::<PeerRecord>(Table::Peers, &key)? else {
                return Ok(false);
            };
            if rec.endpoint == live || rec.endpoint.is_empty() {
                return Ok(false);
            }
            rec.endpoint = live.clone();
            tx.put(Table::Peers, &key, &rec)?;
            Ok(true)
        });
        if let Ok(true) = updated {
            info!(%owner, peer = %pubkey, endpoint = %live, "peer endpoint moved");
            let _ = self.events.send(Event::NatEndpointChanged {
                pubkey: pubkey.to_string(),
                endpoint: live,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_handshake_age() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert!(!peer_healthy(None, now, STALE_AFTER));
        assert!(peer_healthy(
            Some(now - Duration::from_secs(5)),
            now,
            STALE_AFTER
        ));
        assert!(peer_healthy(Some(now - STALE_AFTER), now, STALE_AFTER));
        assert!(!peer_healthy(
            Some(now - STALE_AFTER - Duration::from_secs(1)),
            now,
            STALE_AFTER
        ));
        // A handshake "in the future" (clock step) counts as fresh.
        assert!(peer_healthy(
            Some(now + Duration::from_secs(3)),
            now,
            STALE_AFTER
        ));
    }
}
