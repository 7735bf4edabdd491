//! The namespace lab shared by overlayd's end-to-end tests, benches and
//! the demo (`overlayd-demo`): one implementation of what each of them used to carry its own
//! copy of.
//!
//! - [`require`]: the single gate for tests that need root, a kernel
//!   feature or an external tool: when the need is not met the test is
//!   skipped with a message, unless `OVERLAYD_REQUIRE_ROOT=1` is set (CI and
//!   root runs of `scripts/test.sh` set it), in which case it fails instead
//!   of passing silently;
//! - [`shell`]: running commands, names unique to a run, waiting on a
//!   condition against a deadline;
//! - [`netns`]: network namespaces that clean up on drop, veth wiring;
//! - [`container`]: a stand-in container (a process in its own namespace);
//! - [`probe`]: echo servers and TCP/UDP probes run inside a namespace;
//! - [`process`]: a daemon under test run inside a namespace, ready-waits,
//!   timed SIGTERM stops, SIGKILL on drop.
//!
//! Nothing here touches the root namespace's links, routes or firewall.

pub mod container;
pub mod netns;
pub mod probe;
pub mod process;
pub mod require;
pub mod shell;

pub use container::Container;
pub use netns::{link_pair, uplinked_node, Netns, NODE_UPLINK, OUTSIDE};
pub use probe::{enter_netns, socket_addr, tcp_probe, udp_probe, Echo, Transport};
pub use process::NetnsProcess;
pub use require::{need, need_root, need_tool, required, REQUIRE_ENV};
pub use shell::{must, run, sh, try_sh, unique, unique_with, wait_for, wait_until};
