#!/usr/bin/env bash
# The test command: installs what the tests need, checks format and lints,
# then runs every test (root tests create and remove their own namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A root-needing test that cannot run must fail, not pass silently, wherever
# it is expected to run: in CI and whenever the suite runs as root.
if [ "${CI:-}" = "true" ] || [ "$(id -u)" -eq 0 ]; then
  export OVERLAYD_REQUIRE_ROOT=1
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
