#!/usr/bin/env bash
# Crash consistency at full count: SIGKILL the daemon at 250 random (seeded)
# moments of a mixed attach/detach/service/isolation load, restarting it each
# time, and check that every container is fully attached or fully detached,
# no lease is lost or held twice, no veth is untagged or unplugged, and
# `overlayd doctor` is clean. CI runs the same test with fewer iterations.
# Everything runs in namespaces the test creates and deletes.
#
# usage: sudo bench/crash.sh
# env:   CRASH_ITERATIONS (250)  CRASH_SEED (11)
set -euo pipefail
cd "$(dirname "$0")/.."
export OVERLAYD_REQUIRE_ROOT=1
export OVERLAYD_CRASH_ITERATIONS=${CRASH_ITERATIONS:-250}
export OVERLAYD_CRASH_SEED=${CRASH_SEED:-11}
exec cargo test --release -p overlayd --test crash_consistency -- --nocapture
