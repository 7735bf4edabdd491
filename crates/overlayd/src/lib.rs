//! overlayd: the daemon engine and CLI behind the `overlayd` binary. The
//! library form exists so integration tests drive the daemon in process
//! (with a fake host) and end to end (in network namespaces).

pub mod cli;
pub mod config;
pub mod daemon;
pub mod logging;
