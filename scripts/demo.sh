#!/usr/bin/env bash
# The main job: set up, build, and run the self-contained demo in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p overlayd
exec "${CARGO_TARGET_DIR:-target}/release/overlayd" demo "$@"
