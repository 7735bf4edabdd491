//! The CNI plugin against the spec's rules, run as runtimes run it: one
//! process per command, `CNI_*` variables and the configuration on stdin,
//! against a real daemon inside a namespace this test creates. The plugin is
//! this package's `overlayd` binary invoked under the name `overlayd-cni`
//! (what `overlayd cni install` installs when no separate plugin is built).

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use overlayd_proto::{Request, Response};
use serde_json::{json, Value};
use support::*;

const VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The plugin: a symlink named `overlayd-cni` to the overlayd binary.
struct Plugin {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Plugin {
    fn new() -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("overlayd-cni");
        std::os::unix::fs::symlink(bin(), &path).unwrap();
        Plugin { path, _dir: dir }
    }

    /// Run one command; returns (exit code, stdout parsed as JSON or Null).
    fn run(&self, command: &str, vars: &[(&str, &str)], conf: &Value) -> (i32, Value) {
        let mut child = Command::new(&self.path)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_PATH", "/nonexistent")
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run plugin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.stderr.is_empty(),
            "plugin wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = if stdout.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&stdout)
                .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
        };
        (out.status.code().unwrap_or(-1), v)
    }
}

fn conf(version: &str, name: &str, socket: &Path) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "type": "overlayd-cni",
        "service": "web",
        "socket": socket,
        "unknownKey": {"tolerated": true},
        "ipam": {},
        "runtimeConfig": {"bandwidth": {"ingressRate": 1}},
    })
}

fn vars<'a>(id: &'a str, ns: &'a str, ifname: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", ns),
        ("CNI_IFNAME", ifname),
    ]
}

fn attachments(d: &Daemon) -> Vec<String> {
    match d.ok(Request::ListAttachments) {
        Response::Attachments { attachments } => {
            attachments.iter().map(|a| a.handle.key()).collect()
        }
        r => panic!("unexpected {r:?}"),
    }
}

fn expect_err(code: i32, out: &Value, want: u64, what: &str) {
    assert_eq!(code, 1, "{what}: exit code, output {out}");
    assert_eq!(out["code"], want, "{what}: {out}");
    assert!(
        out["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {out}"
    );
}

/// Live address and MAC of `ifname` in a namespace.
fn live(ns: &Netns, ifname: &str) -> (String, String) {
    let v: Value =
        serde_json::from_str(&ns.output(&["ip", "-j", "addr", "show", "dev", ifname])).unwrap();
    let mac = v[0]["address"].as_str().unwrap().to_string();
    let addr = v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .unwrap();
    (addr, mac)
}

#[test]
fn plugin_follows_the_cni_spec_against_a_real_daemon() {
    if !can_run_root_tests("cni_conformance") {
        return;
    }
    let node = Netns::new("cn");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&node, dir.path(), &[]);
    let sock = d.socket.clone();
    let p = Plugin::new();

    // VERSION, for every version asked.
    for v in VERSIONS {
        let (code, out) = p.run("VERSION", &[], &json!({"cniVersion": v}));
        assert_eq!(code, 0);
        assert_eq!(out["cniVersion"], v);
        assert_eq!(out["supportedVersions"], json!(VERSIONS));
    }

    // ADD / CHECK / DEL in every version, answered in that version.
    for v in VERSIONS {
        let c = Netns::new("cc");
        let ns = c.path();
        let ns = ns.to_str().unwrap();
        let id = format!("ctr-{}", v.replace('.', ""));
        let cf = conf(v, "ovl", &sock);
        let (code, res) = p.run("ADD", &vars(&id, ns, "eth0"), &cf);
        assert_eq!(code, 0, "ADD {v}: {res}\n{}", d.log());
        assert_eq!(res["cniVersion"], v);
        let (addr, mac) = live(&c, "eth0");
        let ifs = res["interfaces"].as_array().unwrap();
        assert_eq!(ifs[1]["name"], "eth0");
        assert_eq!(ifs[1]["sandbox"], ns);
        assert_eq!(ifs[1]["mac"], mac.as_str(), "{res}");
        assert!(ifs[0].get("sandbox").is_none(), "host end has no sandbox");
        let ip = &res["ips"][0];
        assert_eq!(ip["address"], addr.as_str());
        assert_eq!(ip["interface"], 1);
        let gw = ip["gateway"].as_str().unwrap();
        if v.starts_with("0.") {
            assert_eq!(ip["version"], "4", "{v} carries ips[].version");
        } else {
            assert!(ip.get("version").is_none(), "{v} has no ips[].version");
        }
        assert_eq!(res["routes"], json!([{"dst": "0.0.0.0/0", "gw": gw}]));
        assert_eq!(res["dns"]["nameservers"], json!([gw]));
        assert_eq!(res["dns"]["search"], json!(["overlay.internal"]));
        assert!(c.ping(gw), "container reaches its gateway");
        let routes = c.output(&["ip", "route", "show", "default"]);
        assert!(routes.contains(&format!("via {gw} dev eth0")), "{routes}");

        let mut check = cf.clone();
        check["prevResult"] = res.clone();
        let (code, out) = p.run("CHECK", &vars(&id, ns, "eth0"), &check);
        if v.starts_with("0.3") {
            expect_err(code, &out, 1, "CHECK before 0.4.0");
        } else {
            assert_eq!((code, &out), (0, &Value::Null), "CHECK {v}");
        }

        for round in 0..2 {
            let (code, out) = p.run("DEL", &vars(&id, ns, "eth0"), &cf);
            assert_eq!((code, &out), (0, &Value::Null), "DEL {v} round {round}");
        }
        assert!(!c.links().contains(&"eth0".to_string()), "DEL removed eth0");
        assert!(attachments(&d).is_empty(), "DEL released the attachment");
    }

    let c = Netns::new("cc");
    let ns_path = c.path();
    let ns = ns_path.to_str().unwrap();
    let cf = conf("1.1.0", "ovl", &sock);

    // Invalid CNI_IFNAME, container id, netns and input change nothing.
    for bad in ["sixteen-bytes-xx", "a/b", ".."] {
        let (code, out) = p.run("ADD", &vars("c1", ns, bad), &cf);
        expect_err(code, &out, 4, "invalid CNI_IFNAME");
    }
    let (code, out) = p.run("ADD", &vars("bad id!", ns, "eth0"), &cf);
    expect_err(code, &out, 4, "invalid CNI_CONTAINERID");
    let not_ns = dir.path().join("not-a-netns");
    std::fs::write(&not_ns, "x").unwrap();
    let (code, out) = p.run("ADD", &vars("c1", not_ns.to_str().unwrap(), "eth0"), &cf);
    expect_err(code, &out, 7, "CNI_NETNS that is not a namespace");
    let (code, out) = p.run(
        "ADD",
        &[("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")],
        &cf,
    );
    expect_err(code, &out, 4, "missing CNI_NETNS");
    let (code, out) = p.run("ADD", &vars("c1", ns, "eth0"), &json!("not a config"));
    expect_err(code, &out, 7, "config that is not an object");
    let mut old = cf.clone();
    old["cniVersion"] = json!("0.2.0");
    let (code, out) = p.run("ADD", &vars("c1", ns, "eth0"), &old);
    expect_err(code, &out, 1, "unsupported version");
    let mut bad_key = cf.clone();
    bad_key["join_global"] = json!("yes");
    let (code, out) = p.run("ADD", &vars("c1", ns, "eth0"), &bad_key);
    expect_err(code, &out, 7, "join_global of the wrong type");
    let (code, out) = p.run("FROB", &vars("c1", ns, "eth0"), &cf);
    expect_err(code, &out, 4, "unknown CNI_COMMAND");
    assert!(attachments(&d).is_empty(), "rejected ADDs attached nothing");
    assert_eq!(c.links(), vec!["lo".to_string()]);

    // ADD twice for one key is an error and keeps the first attachment;
    // the same container joins a second network under another ifname.
    let (code, first) = p.run("ADD", &vars("c1", ns, "eth0"), &cf);
    assert_eq!(code, 0, "{first}");
    let (code, out) = p.run("ADD", &vars("c1", ns, "eth0"), &cf);
    expect_err(code, &out, 100, "second ADD");
    assert_eq!(
        live(&c, "eth0").0,
        first["ips"][0]["address"].as_str().unwrap()
    );
    let mut other = conf("1.1.0", "ovl2", &sock);
    other["service"] = json!("db");
    let (code, second) = p.run("ADD", &vars("c1", ns, "net1"), &other);
    assert_eq!(code, 0, "{second}");
    assert_eq!(
        live(&c, "net1").0,
        second["ips"][0]["address"].as_str().unwrap()
    );
    assert_ne!(first["ips"][0]["address"], second["ips"][0]["address"]);
    assert_eq!(attachments(&d).len(), 2);

    // The container's DNS name is its id (no K8S_POD_NAME given).
    let names = match d.ok(Request::ListDnsRecords) {
        Response::DnsRecords { records, .. } => records,
        r => panic!("{r:?}"),
    };
    assert!(
        names.iter().any(|r| r.name == "c1.overlay.internal."),
        "{names:?}"
    );

    // CHECK notices a missing interface.
    let mut check = other.clone();
    check["prevResult"] = second.clone();
    assert_eq!(p.run("CHECK", &vars("c1", ns, "net1"), &check).0, 0);
    c.exec(&["ip", "link", "del", "net1"]);
    let (code, out) = p.run("CHECK", &vars("c1", ns, "net1"), &check);
    expect_err(code, &out, 103, "CHECK after the interface vanished");
    assert_eq!(p.run("DEL", &vars("c1", ns, "net1"), &other).0, 0);

    // prevResult passes through a chained ADD, ours appended after it.
    let c2 = Netns::new("cc");
    let ns2 = c2.path();
    let ns2 = ns2.to_str().unwrap();
    let mut chained = cf.clone();
    chained["prevResult"] = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "tap9", "sandbox": ns2, "x-vendor": "kept"}],
        "ips": [{"address": "192.0.2.9/32", "interface": 0}],
        "routes": [{"dst": "192.0.2.0/24"}],
        "dns": {"nameservers": ["192.0.2.53"]}
    });
    let (code, res) = p.run("ADD", &vars("c2", ns2, "eth0"), &chained);
    assert_eq!(code, 0, "{res}");
    assert_eq!(res["interfaces"][0]["x-vendor"], "kept");
    assert_eq!(res["interfaces"][2]["name"], "eth0");
    assert_eq!(res["ips"][0]["address"], "192.0.2.9/32");
    assert_eq!(res["ips"][1]["interface"], 2);
    assert_eq!(res["routes"][0]["dst"], "192.0.2.0/24");
    assert_eq!(res["dns"]["nameservers"][0], "192.0.2.53");

    // DEL after the namespace is gone (as containerd sends it: no CNI_NETNS)
    // releases the lease and the veth.
    let host_end = res["interfaces"][1]["name"].as_str().unwrap().to_string();
    assert!(node.links().contains(&host_end));
    drop(c2);
    let (code, out) = p.run(
        "DEL",
        &[
            ("CNI_CONTAINERID", "c2"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", ""),
        ],
        &cf,
    );
    assert_eq!((code, &out), (0, &Value::Null));
    assert!(!attachments(&d).iter().any(|k| k.contains("/c2/")));
    wait_for(
        "veth of the gone namespace removed",
        std::time::Duration::from_secs(5),
        || !node.links().contains(&host_end),
    );
    let (code, _) = p.run(
        "DEL",
        &[("CNI_CONTAINERID", "c2"), ("CNI_IFNAME", "eth0")],
        &cf,
    );
    assert_eq!(code, 0, "DEL of something never attached succeeds");

    // GC keeps what is listed (either spelling), releases the rest of this
    // network only; without a list it releases every attachment of the network.
    let c3 = Netns::new("cc");
    let ns3 = c3.path();
    let ns3 = ns3.to_str().unwrap();
    assert_eq!(p.run("ADD", &vars("c3", ns3, "eth0"), &cf).0, 0);
    let c4 = Netns::new("cc");
    let ns4 = c4.path();
    let ns4 = ns4.to_str().unwrap();
    assert_eq!(p.run("ADD", &vars("c4", ns4, "eth0"), &cf).0, 0);
    let (code, _) = p.run("ADD", &vars("c4", ns4, "net1"), &other);
    assert_eq!(code, 0);
    let mut gc = cf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
    gc["cni.dev/attachments"] = json!([{"containerID": "c3", "ifname": "eth0"}]);
    assert_eq!(p.run("GC", &[], &gc), (0, Value::Null));
    let left = attachments(&d);
    assert_eq!(
        left,
        vec!["cni:ovl/c1/eth0", "cni:ovl/c3/eth0", "cni:ovl2/c4/net1"],
        "c4's eth0 released, ovl2 untouched"
    );
    assert!(!c4.links().contains(&"eth0".to_string()));
    let mut gc_old = gc.clone();
    gc_old["cniVersion"] = json!("1.0.0");
    let (code, out) = p.run("GC", &[], &gc_old);
    expect_err(code, &out, 1, "GC before 1.1.0");
    assert_eq!(p.run("GC", &[], &cf), (0, Value::Null));
    assert_eq!(attachments(&d), vec!["cni:ovl2/c4/net1"]);

    // STATUS: ready while the daemon answers; 1.1.0 only.
    assert_eq!(p.run("STATUS", &[], &cf), (0, Value::Null));
    let (code, out) = p.run("STATUS", &[], &conf("1.0.0", "ovl", &sock));
    expect_err(code, &out, 1, "STATUS before 1.1.0");

    // portMappings: published by the daemon (one nft map element), a second
    // container asking for the same host port is refused naming the
    // holder, and DEL frees the port.
    let mut pm = conf("1.0.0", "pm", &sock);
    pm["runtimeConfig"] = json!({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]});
    let (p1, p2) = (Netns::new("cp"), Netns::new("cp"));
    let (ns_p1, ns_p2) = (p1.path(), p2.path());
    let (ns_p1, ns_p2) = (ns_p1.to_str().unwrap(), ns_p2.to_str().unwrap());
    let (code, res) = p.run("ADD", &vars("p1", ns_p1, "eth0"), &pm);
    assert_eq!(code, 0, "ADD with portMappings: {res}");
    let table = node.output(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(table.contains("18080"), "the port is published: {table}");
    let (code, out) = p.run("ADD", &vars("p2", ns_p2, "eth0"), &pm);
    assert_eq!(code, 1, "the same host port twice: {out}");
    assert!(
        out["msg"].as_str().unwrap_or_default().contains("18080")
            || out["details"]
                .as_str()
                .unwrap_or_default()
                .contains("18080"),
        "the conflict names the port: {out}"
    );
    assert_eq!(p.run("DEL", &vars("p1", ns_p1, "eth0"), &pm).0, 0);
    let table = node.output(&["nft", "list", "table", "inet", "overlayd"]);
    assert!(!table.contains("18080"), "DEL unpublished it: {table}");
    let (code, res) = p.run("ADD", &vars("p2", ns_p2, "eth0"), &pm);
    assert_eq!(code, 0, "the freed port can be taken: {res}");
    let mut bad = pm.clone();
    bad["runtimeConfig"]["portMappings"][0]["protocol"] = json!("icmp");
    let (code, out) = p.run("ADD", &vars("p3", ns_p1, "eth0"), &bad);
    expect_err(code, &out, 7, "portMappings with an unknown protocol");
}

#[test]
fn daemon_down_is_try_again_later_and_status_not_available() {
    // No root needed: nothing is attached, the socket simply is not there.
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("gone.sock");
    let p = Plugin::new();
    let cf = conf("1.1.0", "ovl", &sock);
    let (code, out) = p.run("STATUS", &[], &cf);
    expect_err(code, &out, 51, "STATUS with the daemon down");
    assert_eq!(out["cniVersion"], "1.1.0");
    let (code, out) = p.run("ADD", &vars("c1", "/proc/self/ns/net", "eth0"), &cf);
    expect_err(code, &out, 11, "ADD with the daemon down");
    let (code, out) = p.run("DEL", &vars("c1", "", "eth0"), &cf);
    expect_err(code, &out, 11, "DEL with the daemon down");
    let (code, out) = p.run("VERSION", &[], &json!({"cniVersion": "0.4.0"}));
    assert_eq!(code, 0, "VERSION needs no daemon: {out}");
    let (code, out) = p.run("ADD", &vars("c1", "/x", "eth0"), &json!(null));
    expect_err(code, &out, 7, "null config");
}

#[test]
fn a_dual_stack_network_lists_both_addresses_with_their_gateways() {
    if !can_run_root_tests("cni_dual_stack") {
        return;
    }
    let node = Netns::new("cd");
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&node, dir.path(), &[]);
    let p = Plugin::new();
    for v in ["0.4.0", "1.1.0"] {
        let c = Netns::new("cc");
        let ns = c.path();
        let ns = ns.to_str().unwrap();
        let id = format!("dual-{}", v.replace('.', ""));
        let mut cf = conf(v, "ovl", &d.socket);
        cf["isolation"] = json!("dual");
        cf["ipv6"] = json!(true);
        let (code, res) = p.run("ADD", &vars(&id, ns, "eth0"), &cf);
        assert_eq!(code, 0, "ADD {v}: {res}\n{}", d.log());
        let ips = res["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 2, "{res}");
        let (gw4, gw6) = (
            ips[0]["gateway"].as_str().unwrap(),
            ips[1]["gateway"].as_str().unwrap(),
        );
        assert!(ips[1]["address"]
            .as_str()
            .unwrap()
            .starts_with("fd42:6f76:6c64::"));
        assert_eq!(gw6, "fd42:6f76:6c64::1");
        assert_eq!(ips[1]["interface"], 1);
        if v.starts_with("0.") {
            assert_eq!(
                (&ips[0]["version"], &ips[1]["version"]),
                (&json!("4"), &json!("6"))
            );
        }
        assert_eq!(
            res["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": gw4}, {"dst": "::/0", "gw": gw6}])
        );
        let addrs = c.output(&["ip", "-o", "addr", "show", "dev", "eth0"]);
        assert!(
            addrs.contains(ips[1]["address"].as_str().unwrap()),
            "{addrs}"
        );
        assert!(c.ping(gw6), "container reaches its IPv6 gateway");
        let mut check = cf.clone();
        check["prevResult"] = res.clone();
        let (code, out) = p.run("CHECK", &vars(&id, ns, "eth0"), &check);
        assert_eq!((code, &out), (0, &Value::Null), "CHECK {v}");
        let (code, out) = p.run("DEL", &vars(&id, ns, "eth0"), &cf);
        assert_eq!((code, &out), (0, &Value::Null), "DEL {v}");
    }
}
