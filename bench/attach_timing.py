#!/usr/bin/env python3
"""Time container attach/detach: overlayd, netavark, the CNI bridge plugin.

Run by bench/attach_peers.sh INSIDE the node network namespace it made (so the
bridges, veths and nft/iptables rules the tools create land there), against
container namespaces it made. Each setup and each teardown is one process
invocation of the tool, timed with time.monotonic_ns() around that single
invocation (fork + exec + the tool's work + exit): what a container runtime pays
per attach. overlayd is driven the same way, through its CLI (`overlayd attach`
/ `overlayd detach` against a daemon running in the node namespace), so the
three columns pay the same process start-up.

Schedule: ROUNDS rounds; in each round every tool attaches every container
namespace in turn (the bridge fills up, as on a real host), then detaches them
all. The tools' order rotates per round so background load hits all alike.

Prints one line per figure, tab separated, for bench/run.sh to parse:
    BENCH\tattach\t<tool>\t<metric>\t<value>      (tool: overlayd, overlayd-cni, netavark, cni-bridge)
metrics: attach_p50_ms attach_p95_ms detach_p50_ms detach_p95_ms n
or, when a tool cannot be measured:
    BENCH\tattach\t<tool>\tunavailable\t<reason>
"""

import argparse
import json
import os
import subprocess
import sys
import time

# Subnets private to the node namespace; nothing routes them anywhere else.
NETAVARK_SUBNET = ("10.88.0.0/22", "10.88.0.1", "10.88")
CNI_SUBNET = "10.89.0.0/22"


def percentile(values, pct):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def static_ip(prefix, index):
    """Address number index (0-based) in a /22 whose .0.1 is the gateway."""
    host = index + 2
    return f"{prefix}.{host // 256}.{host % 256}"


class Failure(Exception):
    """A tool invocation failed; the tool is reported unavailable."""


class Overlayd:
    """`overlayd attach|detach --netns PATH` against a running daemon; the
    service is a `shared` one (a bridge with masquerade, like the others)."""

    name = "overlayd"

    def __init__(self, binary, socket, service):
        # --json: one request per operation, as an orchestrator would make.
        self.base = [binary, "--socket", socket, "--json"]
        self.service = service

    def attach(self, index, netns):
        del index
        return timed(self.base + ["attach", "--netns", f"/run/netns/{netns}",
                                  "--service", self.service], b"", None)

    def detach(self, index, netns):
        del index
        return timed(self.base + ["detach", "--netns", f"/run/netns/{netns}"], b"", None)


class Netavark:
    """`netavark setup|teardown NETNS` with the network options on stdin."""

    name = "netavark"

    def __init__(self, binary, work):
        self.binary = binary
        self.config = os.path.join(work, "netavark-config")
        os.makedirs(self.config, exist_ok=True)
        self.env = dict(os.environ, NETAVARK_FW="nftables")
        subnet, gateway, prefix = NETAVARK_SUBNET
        self.prefix = prefix
        self.network = {
            "dns_enabled": False,
            "driver": "bridge",
            "id": "0b" * 32,
            "internal": False,
            "ipv6_enabled": False,
            "name": "overlaydbench",
            "network_interface": "nvbench0",
            "subnets": [{"gateway": gateway, "subnet": subnet}],
        }

    def options(self, index, netns):
        return json.dumps({
            "container_id": f"{index:064x}",
            "container_name": netns,
            "port_mappings": [],
            "networks": {
                "overlaydbench": {
                    "interface_name": "eth0",
                    "static_ips": [static_ip(self.prefix, index)],
                }
            },
            "network_info": {"overlaydbench": self.network},
        }).encode()

    def run(self, verb, index, netns):
        argv = [self.binary, "--config", self.config, "--rootless", "false",
                "--firewall-driver", "nftables", verb, f"/run/netns/{netns}"]
        return timed(argv, self.options(index, netns), self.env)

    def attach(self, index, netns):
        return self.run("setup", index, netns)

    def detach(self, index, netns):
        return self.run("teardown", index, netns)


class Cni:
    """The CNI reference `bridge` plugin with `host-local` IPAM, per the CNI
    spec: CNI_* variables in the environment, the network config on stdin."""

    name = "cni-bridge"

    def __init__(self, plugin_dir, work):
        self.plugin = os.path.join(plugin_dir, "bridge")
        self.plugin_dir = plugin_dir
        # The one plugin of this conflist, as a runtime hands it to the plugin
        # (name and cniVersion injected from the list).
        conflist = {
            "cniVersion": "1.0.0",
            "name": "overlaydbench",
            "plugins": [{
                "type": "bridge",
                "bridge": "cnibench0",
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": CNI_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": os.path.join(work, "cni-ipam"),
                },
            }],
        }
        with open(os.path.join(work, "overlaydbench.conflist"), "w") as f:
            json.dump(conflist, f, indent=2)
        plugin = dict(conflist["plugins"][0])
        plugin["name"] = conflist["name"]
        plugin["cniVersion"] = conflist["cniVersion"]
        self.config = json.dumps(plugin).encode()

    def run(self, command, index, netns):
        env = dict(os.environ,
                   CNI_COMMAND=command,
                   CNI_CONTAINERID=f"overlaydbench{index:06d}",
                   CNI_NETNS=f"/run/netns/{netns}",
                   CNI_IFNAME="eth0",
                   CNI_PATH=self.plugin_dir)
        return timed([self.plugin], self.config, env)

    def attach(self, index, netns):
        return self.run("ADD", index, netns)

    def detach(self, index, netns):
        return self.run("DEL", index, netns)


class OverlaydCni(Cni):
    """overlayd's CNI plugin, invoked exactly like the reference plugin (one
    process per ADD/DEL, CNI_* variables, config on stdin) against the
    running daemon; a shared service, so a bridge with masquerade too."""

    name = "overlayd-cni"

    def __init__(self, plugin, socket, work):  # pylint: disable=super-init-not-called
        self.plugin = plugin
        self.plugin_dir = os.path.dirname(plugin)
        self.config = json.dumps({
            "cniVersion": "1.0.0",
            "name": "overlaydcnibench",
            "type": "overlayd-cni",
            "service": "cnibench",
            "mode": "shared",
            "socket": socket,
        }).encode()
        del work


def timed(argv, stdin, env):
    """Run argv once; return its wall time in ms, raise Failure on error."""
    start = time.monotonic_ns()
    proc = subprocess.run(argv, input=stdin, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    elapsed = (time.monotonic_ns() - start) / 1e6
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise Failure(f"{os.path.basename(argv[0])} exit {proc.returncode}: "
                      f"{text.splitlines()[-1] if text else 'no output'}")
    return elapsed


def measure(tools, namespaces, rounds):
    """Run the schedule; returns {tool: (attach_ms[], detach_ms[])} and
    {tool: reason} for tools that failed."""
    samples = {t.name: ([], []) for t in tools}
    failed = {}
    for rnd in range(rounds):
        # Rotate the order each round so background load hits all alike.
        shift = rnd % len(tools)
        order = tools[shift:] + tools[:shift]
        for tool in order:
            if tool.name in failed:
                continue
            attached = []
            try:
                for index, netns in enumerate(namespaces):
                    samples[tool.name][0].append(tool.attach(index, netns))
                    attached.append(index)
                for index in list(attached):
                    samples[tool.name][1].append(tool.detach(index, namespaces[index]))
                    attached.remove(index)
            except Failure as err:
                failed[tool.name] = str(err)
                for index in attached:
                    try:
                        tool.detach(index, namespaces[index])
                    except Failure:
                        pass
        print(f"  round {rnd + 1}/{rounds} done", file=sys.stderr)
    return samples, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="private scratch dir")
    parser.add_argument("--netns", required=True,
                        help="comma-separated container namespace names")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--overlayd", default="", help="overlayd binary ('' = skip)")
    parser.add_argument("--overlayd-socket", default="", help="the daemon's socket")
    parser.add_argument("--overlayd-service", default="bench", help="a shared service")
    parser.add_argument("--overlayd-cni", default="",
                        help="overlayd-cni plugin binary ('' = skip)")
    parser.add_argument("--netavark", default="", help="netavark binary ('' = skip)")
    parser.add_argument("--cni-dir", default="", help="CNI plugin dir ('' = skip)")
    args = parser.parse_args()

    namespaces = [n for n in args.netns.split(",") if n]
    if len(namespaces) > 1000:
        parser.error("at most 1000 container namespaces (one /22 per tool)")
    tools = []
    if args.overlayd:
        tools.append(Overlayd(args.overlayd, args.overlayd_socket, args.overlayd_service))
    if args.overlayd_cni:
        tools.append(OverlaydCni(args.overlayd_cni, args.overlayd_socket, args.work))
    if args.netavark:
        tools.append(Netavark(args.netavark, args.work))
    if args.cni_dir:
        tools.append(Cni(args.cni_dir, args.work))

    if not tools:
        return
    samples, failed = measure(tools, namespaces, args.rounds)
    for tool in tools:
        name = tool.name
        attach, detach = samples[name]
        if name in failed:
            print(f"BENCH\tattach\t{name}\tunavailable\t{failed[name]}")
            continue
        print(f"BENCH\tattach\t{name}\tn\t{len(attach)}")
        for label, values in (("attach", attach), ("detach", detach)):
            print(f"BENCH\tattach\t{name}\t{label}_p50_ms\t{percentile(values, 50):.3f}")
            print(f"BENCH\tattach\t{name}\t{label}_p95_ms\t{percentile(values, 95):.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
