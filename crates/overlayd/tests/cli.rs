//! The CLI as an operator and a script use it: list commands with and
//! without `-q` / `--json` / `--format`, a closed stdout, every documented
//! exit code, "did you mean", plain messages for non-root users (run as
//! `nobody`), `events`, `version`, man pages and completions, and config
//! values refused at start. Daemons run inside namespaces this test makes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::*;

/// Root tests skip without root, but fail when CI requires them.
fn root(test: &str) -> bool {
    if can_run_root_tests(test) {
        return true;
    }
    assert!(
        std::env::var("OVERLAYD_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{test} needs root and OVERLAYD_REQUIRE_ROOT=1 is set"
    );
    false
}

struct Lab {
    node: Netns,
    _outside: Netns,
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(config: &str) -> Self {
        let (node, outside) = uplinked_node("c", "o");
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("overlayd.toml");
        std::fs::write(&cfg, config).unwrap();
        let cfg = cfg.to_str().unwrap().to_string();
        let daemon = Daemon::start(&node, dir.path(), &["--config", &cfg]);
        Lab {
            node,
            _outside: outside,
            daemon,
            dir,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.daemon.cli(args)
    }

    /// A CLI verb that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}\nlog:\n{}",
            text(&out.stdout),
            text(&out.stderr),
            self.daemon.log()
        );
        text(&out.stdout)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// The overlayd binary copied where `nobody` can run it.
fn binary_for_nobody(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let shared = dir.join("pub");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_copy = shared.join("overlayd");
    std::fs::copy(bin(), &bin_copy).unwrap();
    std::fs::set_permissions(&bin_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin_copy.to_str().unwrap().to_string()
}

#[test]
fn lists_with_quiet_json_and_format_and_a_closed_stdout() {
    if !root("lists_with_quiet_json_and_format_and_a_closed_stdout") {
        return;
    }
    let lab = Lab::new("check_interval_secs = 60\n");
    lab.ok(&["service", "up", "web"]);
    lab.ok(&["iso", "up", "blue"]);
    let c = Container::new();
    let pid = c.pid().to_string();
    lab.ok(&["attach", "--pid", &pid, "--service", "web", "--name", "c1"]);
    let key = format!("pid:{pid}");

    // service ls: table, -q, --json, --format.
    let table = lab.ok(&["service", "ls"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("CONTAINERS"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("web ") && row.contains("shared-nat"),
        "{table}"
    );
    assert_eq!(
        row.find("shared-nat"),
        header.find("NETWORK"),
        "columns are aligned:\n{table}"
    );
    assert_eq!(lab.ok(&["service", "ls", "-q"]), "web\n");
    let j = json(&lab.ok(&["--json", "service", "ls"]));
    assert_eq!(j["result"], "services");
    assert_eq!(j["services"][0]["name"], "web");
    assert_eq!(j["services"][0]["attachments"], 1);
    assert_eq!(
        lab.ok(&["service", "ls", "--format", "{{.name}}:{{.Mode}}"]),
        "web:shared\n"
    );

    // ps: the container with its interface, address and DNS names.
    let ps = lab.ok(&["ps"]);
    assert!(ps.lines().next().unwrap().starts_with("CONTAINER"), "{ps}");
    assert!(
        ps.contains(&key) && ps.contains("c1.overlay.internal"),
        "{ps}"
    );
    assert_eq!(lab.ok(&["ps", "-q"]), format!("{key}\n"));
    let j = json(&lab.ok(&["--json", "ps"]));
    assert_eq!(j["result"], "attachments");
    let a = &j["attachments"][0];
    assert_eq!(a["key"], key.as_str());
    assert_eq!(a["network"], "shared-nat");
    let addr = a["addresses"][0].as_str().unwrap().to_string();
    assert!(addr.contains('/'), "{a}");
    let ifname = a["interface"].as_str().unwrap();
    assert!(lab.node.links().iter().any(|l| l == ifname), "{a}");
    let one = lab.ok(&["ps", "--format", "{{json .}}"]);
    assert_eq!(json(&one)["key"], key.as_str());

    // network ls and inspect by bare name, with members and addresses.
    let q = lab.ok(&["network", "ls", "-q"]);
    let owners: Vec<&str> = q.lines().collect();
    assert!(
        owners.contains(&"shared-nat") && owners.contains(&"iso:blue"),
        "{q}"
    );
    let fields = lab.ok(&["network", "ls", "--format", "owner,subnet"]);
    assert!(fields.starts_with("OWNER"), "{fields}");
    let inspect = lab.ok(&["network", "inspect", "blue"]);
    assert!(inspect.contains("iso:blue"), "{inspect}");
    let inspect = lab.ok(&["network", "inspect", "shared-nat"]);
    let ip = addr.split('/').next().unwrap();
    assert!(inspect.contains(&key) && inspect.contains(ip), "{inspect}");
    assert_eq!(
        json(&lab.ok(&["--json", "network", "inspect", "blue"]))["owner"],
        "iso:blue"
    );

    // status: human handshake times, never a raw epoch.
    let st = lab.ok(&["status"]);
    assert!(st.starts_with("INTERFACE"), "{st}");

    // A closed stdout: quiet exit 0, no panic, nothing on stderr.
    for verb in [
        &["network", "ls"][..],
        &["ps"],
        &["service", "ls"],
        &["status"],
    ] {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        let out = Command::new("ip")
            .args(["netns", "exec", &lab.daemon.ns, bin(), "--socket"])
            .arg(&lab.daemon.socket)
            .args(verb)
            .stdout(Stdio::from(w))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(code(&out), 0, "{verb:?}: {}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "{verb:?}: {}", text(&out.stderr));
    }
    drop(c);
}

#[test]
fn exit_codes_did_you_mean_and_non_root_messages() {
    if !root("exit_codes_did_you_mean_and_non_root_messages") {
        return;
    }
    let lab = Lab::new("check_interval_secs = 60\n");
    lab.ok(&["service", "up", "frontend"]);

    // 4: not found, with a suggestion.
    let c = Container::new();
    let pid = c.pid().to_string();
    let out = lab.cli(&["attach", "--pid", &pid, "--service", "fronted"]);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("did you mean \"frontend\""),
        "{}",
        text(&out.stderr)
    );
    let out = lab.cli(&["network", "inspect", "frontnd"]);
    assert_eq!(code(&out), 4, "{}", text(&out.stderr));
    let out = lab.cli(&["network", "inspect", "shared-na"]);
    assert!(
        text(&out.stderr).contains("did you mean \"shared-nat\""),
        "{}",
        text(&out.stderr)
    );

    // 1: usage and invalid arguments.
    assert_eq!(code(&lab.cli(&["frobnicate"])), 1);
    let out = lab.cli(&["iso", "up", "-x"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    // 6: conflict (a service with members cannot go).
    lab.ok(&["attach", "--pid", &pid, "--service", "frontend"]);
    let out = lab.cli(&["service", "down", "frontend"]);
    assert_eq!(code(&out), 6, "{}", text(&out.stderr));
    let out = lab.cli(&["ps", "--format", "{{.nosuch}}"]);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no field"),
        "{}",
        text(&out.stderr)
    );
    lab.ok(&["detach", "--pid", &pid]);

    // 3: drift found by doctor.
    let bridge = json(&lab.ok(&["--json", "network", "inspect", "shared-nat"]))["name"]
        .as_str()
        .unwrap()
        .to_string();
    lab.node.exec(&["ip", "link", "del", &bridge]);
    let out = lab.cli(&["doctor"]);
    assert_eq!(code(&out), 3, "{}", text(&out.stdout));
    lab.ok(&["doctor", "--fix"]);

    // 5: a non-root client on the socket, and a non-root daemon.
    let nobody_bin = binary_for_nobody(lab.dir.path());
    let as_nobody = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &lab.daemon.ns])
            .args([
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
            ])
            .arg(&nobody_bin)
            .args(args)
            .output()
            .unwrap()
    };
    let sock = lab.daemon.socket.to_str().unwrap().to_string();
    std::fs::set_permissions(
        lab.daemon.socket.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = as_nobody(&["--socket", &sock, "status"]);
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("permission denied") && err.contains("root"),
        "{err}"
    );
    let out = as_nobody(&[
        "--socket",
        "/nonexistent/x.sock",
        "run",
        "--data-dir",
        "/nonexistent/d",
    ]);
    assert_eq!(code(&out), 5, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("needs root") && err.contains("CAP_NET_ADMIN"),
        "{err}"
    );

    // 2: no daemon.
    let gone = lab.dir.path().join("nothing-here.sock");
    let out = Command::new(bin())
        .arg("--socket")
        .arg(&gone)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("overlayd is not running"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn events_stream_an_attach_and_version_shows_both_sides() {
    if !root("events_stream_an_attach_and_version_shows_both_sides") {
        return;
    }
    let lab = Lab::new("check_interval_secs = 60\n");
    lab.ok(&["service", "up", "web"]);
    let mut events = Command::new("ip")
        .args(["netns", "exec", &lab.daemon.ns, bin(), "--socket"])
        .arg(&lab.daemon.socket)
        .args(["--json", "events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = events.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // The subscription is in place once a detach-of-nothing round trip
    // after it is answered; attach until the event arrives.
    let c = Container::new();
    let pid = c.pid().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut attached = None;
    let mut n = 0;
    while attached.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no container_attached event"
        );
        if n == 0 || rx.try_recv().is_err() {
            // Re-attaching after a detach makes a fresh event each time.
            let _ = lab.cli(&["detach", "--pid", &pid]);
            lab.ok(&["attach", "--pid", &pid, "--service", "web"]);
            n += 1;
        }
        while let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            let v = json(&l);
            if v["event"] == "container_attached" {
                attached = Some(v);
                break;
            }
        }
    }
    let v = attached.unwrap();
    assert_eq!(v["key"], format!("pid:{pid}"));
    assert_eq!(v["service"], "web");
    assert_eq!(v["network"], "shared-nat");
    let _ = events.kill();
    let _ = events.wait();

    let j = json(&lab.ok(&["--json", "version"]));
    assert_eq!(j["client"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(j["daemon"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(j["daemon"]["protocol_version"], 1);
    let human = lab.ok(&["version"]);
    assert!(
        human.contains("Client:") && human.contains("Daemon:"),
        "{human}"
    );
}

#[test]
fn man_pages_and_completions_are_generated() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(dir.path().join("overlayd.1")).unwrap();
    assert!(page.contains(".TH overlayd 1"), "{page}");
    assert!(dir.path().join("overlayd-network.1").exists());
    assert!(dir.path().join("overlayd-ps.1").exists());
    for (shell, marker) in [
        ("bash", "_overlayd()"),
        ("zsh", "#compdef overlayd"),
        ("fish", "complete -c overlayd"),
    ] {
        let out = Command::new(bin())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("inspect"), "{shell} completes subcommands");
    }
}

#[test]
fn out_of_range_config_and_bad_log_filter_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, what) in [
        ("local_prefix_len = 33\n", "local_prefix_len 33"),
        ("check_interval_secs = 0\n", "check_interval_secs 0"),
        ("metrics_listen = \"nowhere\"\n", "metrics_listen"),
    ] {
        let cfg = dir.path().join("bad.toml");
        std::fs::write(&cfg, toml).unwrap();
        let out = Command::new(bin())
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert_eq!(code(&out), 1, "{toml}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(what),
            "{toml}: {}",
            text(&out.stderr)
        );
        assert!(
            !dir.path().join("data").exists(),
            "{toml}: nothing is created"
        );
    }
    let out = Command::new(bin())
        .env("OVERLAYD_LOG", "overlayd=loud")
        .args(["--socket", "/nonexistent.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("not a valid log filter"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn uninstall_without_a_daemon_says_so_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(bin())
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .arg("--data-dir")
        .arg(&data)
        .arg("uninstall")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("not running"),
        "{}",
        text(&out.stdout)
    );
    assert!(!data.exists(), "no data dir or lock file is created");
}
