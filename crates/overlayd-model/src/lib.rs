//! overlayd's model: the values every other crate talks about, with no I/O.
//!
//! - [`Owner`]: the key of a host network (`base`, `shared-nat`,
//!   `service:<name>`, `iso:<net>`);
//! - [`NetworkEntry`] and [`Marker`]: one recorded host network and the
//!   marker's exact v1 JSON shape (SPEC §2), parsed and encoded here, read
//!   and written durably by `overlayd-state`;
//! - [`PortBand`]: the dedicated WireGuard port allocator (SPEC §2).
//!
//! The engine (pure planning) and the state crate (durable I/O) both depend
//! on this crate; it depends on nothing that touches a file, a socket or
//! the kernel.

pub mod entry;
pub mod error;
pub mod marker;
pub mod owner;
pub mod ports;

pub use entry::NetworkEntry;
pub use error::{ModelError, Result};
pub use marker::{Marker, CURRENT_VERSION};
pub use owner::Owner;
pub use ports::PortBand;
