//! Events for subscribers about what requests changed: containers attached
//! and detached, peers added and removed, reconciles. The request router
//! ([`Node::handle`]) looks at a request before it runs ([`Probe`]) and
//! emits after it succeeded, so the modules that do the work stay unaware
//! of events. Network creation and removal are emitted where the marker
//! records and forgets them ([`Node::record`], [`Node::forget`]).

use overlayd_proto::{Event, Request, Response, Scope};
use overlayd_state::Table;

use super::node::Node;
use super::records::Attachment;

/// What a request may change, noted before it runs.
pub enum Probe {
    /// An attach of a container that was not attached yet.
    Attach {
        /// Handle key.
        key: String,
    },
    /// A detach of a container that is attached.
    Detach {
        /// Handle key.
        key: String,
        /// Network it is attached to.
        network: String,
    },
    /// A peer added or removed.
    Peer {
        /// Owner of the device.
        network: String,
        /// Peer public key.
        pubkey: String,
        /// Added (true) or removed.
        added: bool,
    },
    /// Nothing to announce.
    Nothing,
}

fn scope_network(scope: &Option<Scope>) -> String {
    match scope {
        Some(Scope::Service { service }) => format!("service:{service}"),
        _ => "base".into(),
    }
}

impl Node {
    fn attachment(&self, key: &str) -> Option<Attachment> {
        self.store
            .read(|tx| tx.get::<Attachment>(Table::Attachments, key))
            .ok()
            .flatten()
    }

    /// The store key of a container's attachment to a further network, when
    /// its first attachment is recorded under this handle.
    fn connected_key(&self, handle: &overlayd_proto::Handle, network: &str) -> Option<String> {
        let first = self.attachment(&handle.key())?;
        let owner = super::connect::parse_network(network).ok()?;
        Some(super::records::connected_key(
            &first.handle.key(),
            &owner.to_string(),
        ))
    }

    /// Note what `request` may change.
    pub fn probe(&self, request: &Request) -> Probe {
        match request {
            Request::AttachContainer { handle, .. } => {
                let key = handle.key();
                if self.attachment(&key).is_some() {
                    Probe::Nothing
                } else {
                    Probe::Attach { key }
                }
            }
            Request::DetachContainer { handle } => {
                let key = handle.key();
                match self.attachment(&key) {
                    Some(a) => Probe::Detach {
                        key,
                        network: a.network,
                    },
                    None => Probe::Nothing,
                }
            }
            Request::ConnectContainer {
                handle, network, ..
            } => match self.connected_key(handle, network) {
                Some(key) if self.attachment(&key).is_none() => Probe::Attach { key },
                _ => Probe::Nothing,
            },
            Request::DisconnectContainer { handle, network } => {
                match self.connected_key(handle, network) {
                    Some(key) => match self.attachment(&key) {
                        Some(a) => Probe::Detach {
                            key,
                            network: a.network,
                        },
                        None => Probe::Nothing,
                    },
                    None => Probe::Nothing,
                }
            }
            Request::AddPeer {
                public_key, scope, ..
            } => Probe::Peer {
                network: scope_network(scope),
                pubkey: public_key.clone(),
                added: true,
            },
            Request::RemovePeer { pubkey, scope } => Probe::Peer {
                network: scope_network(scope),
                pubkey: pubkey.clone(),
                added: false,
            },
            _ => Probe::Nothing,
        }
    }

    /// Emit the event for a request that succeeded with `response`.
    pub fn announce(&self, probe: Probe, response: &Response) {
        let event = match (probe, response) {
            (Probe::Attach { key }, _) => match self.attachment(&key) {
                Some(a) => Event::ContainerAttached {
                    key,
                    service: a.service,
                    network: a.network,
                    ip: a.ip,
                },
                None => return,
            },
            (Probe::Detach { key, network }, _) => Event::ContainerDetached { key, network },
            (
                Probe::Peer {
                    network,
                    pubkey,
                    added,
                },
                _,
            ) => {
                if added {
                    Event::PeerAdded { network, pubkey }
                } else {
                    Event::PeerRemoved { network, pubkey }
                }
            }
            (
                Probe::Nothing,
                Response::Reconciled {
                    adopted,
                    recreated,
                    created,
                    orphans,
                    reclaimed,
                    ..
                },
            ) => Event::Reconciled {
                adopted: *adopted,
                recreated: *recreated,
                created: *created,
                orphans: *orphans,
                reclaimed: *reclaimed,
            },
            (Probe::Nothing, _) => return,
        };
        self.emit(event);
    }

    /// Send an event to subscribers (none listening is fine).
    pub fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }
}
