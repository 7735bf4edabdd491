//! overlayd engine: pure decision logic, no I/O and no root — "decisions are
//! data; the kernel only executes". It derives interface names
//! ([`naming`]), builds and parses ownership tags ([`tag`]), carves subnets
//! and picks addresses ([`ipam`]), and compares recorded, live and desired
//! state into start-up plans ([`reconcile`]) and turns the network requests
//! into plans of typed steps with their undo ([`request`]); the daemon
//! carries both out.

pub mod error;
pub mod hash;
pub mod ipam;
pub mod live;
pub mod naming;
pub mod reconcile;
pub mod request;
pub mod tag;

pub use error::{EngineError, Result};
pub use live::LiveLink;
pub use naming::{IfName, LinkRole, NamePrefix, Namer};
pub use tag::{parse_tag, Tag, TagSubject};
