#!/usr/bin/env bash
# Install what overlayd's build, demo and tests need on a fresh Debian machine.
# Idempotent: skips apt when every tool is already present.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v wg >/dev/null || need+=(wireguard-tools)
command -v dig >/dev/null || need+=(dnsutils)
command -v ping >/dev/null || need+=(iputils-ping)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
# Interop tests of the userspace WireGuard device run wireguard-go as the other end.
command -v wireguard-go >/dev/null || need+=(wireguard-go)
# CNI end-to-end test: containerd 1.6 with ctr and runc, a static busybox
# for the container rootfs (no image pull).
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
# ... and podman 4.3 with its CNI backend (the podman test of the plugin).
command -v podman >/dev/null || need+=(podman)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
# Cluster mode: etcd-client's build needs protoc; its tests run Debian's etcd 3.4.
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v etcd >/dev/null || need+=(etcd-server)
command -v etcdctl >/dev/null || need+=(etcd-client)
# `overlayd demo --cluster` and bench/cluster.sh read etcd's /metrics.
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${need[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
