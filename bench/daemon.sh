#!/usr/bin/env bash
# Run the end-to-end daemon benchmark (crates/overlayd/benches/daemon/main.rs) as
# root: it starts the real overlayd inside network namespaces it creates and
# deletes, and prints a markdown table. Extra arguments go to `cargo bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then
    exec sudo -E env "PATH=$PATH" "$0" "$@"
  fi
  echo "bench/daemon.sh: needs root (network namespaces); run it as root" >&2
  exit 1
fi
exec cargo bench -p overlayd --bench daemon "$@"
