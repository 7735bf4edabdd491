//! Support shared by overlayd's tests and benches.
//!
//! [`require`] is the single gate for tests that need root, a kernel feature
//! or an external tool: when the need is not met the test is skipped with a
//! message, unless `OVERLAYD_REQUIRE_ROOT=1` is set (CI and root runs of
//! `scripts/test.sh` set it), in which case the test fails instead of passing
//! silently.

pub mod require;

pub use require::{need, need_root, need_tool, required, REQUIRE_ENV};
