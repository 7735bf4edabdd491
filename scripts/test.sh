#!/usr/bin/env bash
# The test command: installs what the tests need, checks format and lints,
# then runs every test (root tests create and remove their own namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
