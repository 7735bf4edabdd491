//! Crash consistency end to end: the real daemon in a namespace this test
//! creates, under a mixed, seeded load (attach/detach to a shared service and
//! an isolation network, address allocation, service and isolation network
//! churn), is killed with SIGKILL at random moments and started again. After
//! every kill the store on disk holds no lease twice and none without its
//! holder; after every restart each container is fully attached (address,
//! default route, eth0 up, host veth tagged, on its bridge and up) or fully
//! detached (no eth0), every acknowledged attach survived with its address,
//! every acknowledged detach stayed done, and `overlayd doctor` is clean.
//!
//! `OVERLAYD_CRASH_ITERATIONS` (default 20) sets the number of kills and
//! `OVERLAYD_CRASH_SEED` (default 11) the seed; `bench/crash.sh` runs the full
//! count (250).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use overlayd::daemon::records::{Attachment, Lease, ALLOC_HOLDER};
use overlayd_client::Client;
use overlayd_proto::{ErrorCode, Handle, Request, Response, ServiceMode};
use overlayd_state::{Store, Table};
use support::{can_run_root_tests, Container, Daemon, Netns};

/// splitmix64: a tiny deterministic generator (the run must be reproducible
/// from its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the test knows about a container from acknowledged responses.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    Attached(String),
    Detached,
    /// A request was in flight when the daemon died: either outcome is fine.
    InFlight,
}

#[derive(Default)]
struct Counts {
    acked: u64,
    in_flight: u64,
    attached_after: u64,
    detached_after: u64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn attach_req(pid: u32, iso: bool) -> Request {
    Request::AttachContainer {
        handle: Handle::LinuxPid { pid },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: iso.then(|| "i1".to_string()),
        name: None,
        publish: Vec::new(),
    }
}

/// One load run until the daemon dies or `stop` is set; updates `known`.
fn load(
    socket: std::path::PathBuf,
    pids: Vec<u32>,
    seed: u64,
    known: Arc<Mutex<Vec<Known>>>,
    stop: Arc<AtomicBool>,
) -> (u64, u64) {
    support::block_on(async move {
        let mut rng = Rng(seed);
        let (mut acked, mut in_flight) = (0, 0);
        let Ok(mut c) = Client::connect(&socket).await else {
            return (0, 0);
        };
        let mut allocated: Vec<String> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let i = rng.below(pids.len() as u64) as usize;
            let roll = rng.below(100);
            let req = match roll {
                0..=39 => attach_req(pids[i], i % 2 == 1),
                40..=74 => Request::DetachContainer {
                    handle: Handle::LinuxPid { pid: pids[i] },
                },
                75..=82 => Request::AllocateIp {
                    service: "web".into(),
                    join_global: false,
                },
                83..=88 => match allocated.pop() {
                    Some(ip) => Request::ReleaseIp { ip },
                    None => continue,
                },
                89..=92 => Request::SetupServiceOverlay {
                    service: format!("s{}", rng.below(3)),
                    mode: ServiceMode::Shared,
                    recreate: false,
                },
                93..=95 => Request::TeardownServiceOverlay {
                    service: format!("s{}", rng.below(3)),
                },
                96..=97 => support::requests::iso("i2"),
                _ => Request::TeardownIsolationNetwork {
                    network: "i2".into(),
                },
            };
            let target = matches!(
                req,
                Request::AttachContainer { .. } | Request::DetachContainer { .. }
            )
            .then_some(i);
            // Acknowledged as attached before this request: a detach must
            // find it. Otherwise (never attached, detached, or unknown after
            // a kill) `not_found` is a correct answer to a detach.
            let was_attached =
                target.is_some_and(|i| matches!(known.lock().unwrap()[i], Known::Attached(_)));
            if let Some(i) = target {
                known.lock().unwrap()[i] = Known::InFlight;
            }
            let r = match c.call_timeout(req.clone(), Duration::from_secs(30)).await {
                Ok(r) => r,
                Err(_) => {
                    in_flight += 1;
                    break; // the daemon was killed mid-request
                }
            };
            acked += 1;
            match (&req, r) {
                (Request::AttachContainer { .. }, Response::Attached { ip, .. }) => {
                    known.lock().unwrap()[target.unwrap()] = Known::Attached(ip)
                }
                (Request::DetachContainer { .. }, Response::Ok) => {
                    known.lock().unwrap()[target.unwrap()] = Known::Detached
                }
                (Request::AllocateIp { .. }, Response::Ip { ip }) => allocated.push(ip),
                (
                    Request::DetachContainer { .. },
                    Response::Err {
                        code: Some(ErrorCode::NotFound),
                        ..
                    },
                ) if !was_attached => known.lock().unwrap()[target.unwrap()] = Known::Detached,
                (_, Response::Err { message, .. }) if target.is_some() => {
                    panic!("{} failed on a live daemon: {message}", req.op())
                }
                _ => {}
            }
        }
        (acked, in_flight)
    })
}

/// The store right after a kill (daemon dead, lock free): every attachment
/// (in whatever state: start-up finishes half-done ones) holds exactly one
/// lease of its address, no lease of an attachment lacks its record, and no
/// address is held by two attachments.
fn check_store(data_dir: &std::path::Path) {
    // A child the daemon was forking at the kill (an `nft` run) holds the
    // database's descriptor, and with it redb's lock, until it execs or
    // exits: wait for that with a deadline.
    let deadline = Instant::now() + Duration::from_secs(5);
    let store = loop {
        match Store::open(data_dir) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("store opens after kill -9: {e:?}"),
        }
    };
    let (atts, leases) = store
        .read(|tx| {
            Ok((
                tx.list::<Attachment>(Table::Attachments)?,
                tx.list::<Lease>(Table::Leases)?,
            ))
        })
        .unwrap();
    let mut by_addr: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (_, l) in &leases {
        by_addr
            .entry((l.network.clone(), l.ip.clone()))
            .or_default()
            .push(l.holder.clone());
    }
    let mut seen = BTreeSet::new();
    for (key, a) in &atts {
        assert!(
            seen.insert((a.network.clone(), a.ip.clone())),
            "address {} held by two attachments",
            a.ip
        );
        let holders = by_addr
            .get(&(a.network.clone(), a.ip.clone()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(holders, vec![key.clone()], "lease of {key} ({a:?})");
    }
    for (_, l) in &leases {
        if l.holder != ALLOC_HOLDER {
            let a = atts.iter().find(|(k, _)| *k == l.holder);
            assert!(
                a.is_some_and(|(_, a)| a.ip == l.ip),
                "lease {l:?} has no attachment"
            );
        }
    }
}

/// Veths in the daemon's namespace that are untagged or not on a bridge/up.
fn bad_veths(ns: &Netns) -> Vec<String> {
    let out = ns.output(&["ip", "-d", "-j", "link", "show", "type", "veth"]);
    let links: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap_or_default();
    links
        .iter()
        .filter(|l| {
            let tagged = l["ifalias"]
                .as_str()
                .is_some_and(|a| a.starts_with("overlayd"));
            let enslaved = l["master"].is_string();
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            !(tagged && enslaved && up)
        })
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn kill_9_at_random_moments_leaves_every_container_whole() {
    if !can_run_root_tests("kill_9_at_random_moments_leaves_every_container_whole")
        || !overlayd_lab::need_tool("crash_consistency", "unshare", "--version")
        || !overlayd_lab::need_tool("crash_consistency", "nsenter", "--version")
    {
        return;
    }
    let iterations = env_u64("OVERLAYD_CRASH_ITERATIONS", 20);
    let seed = env_u64("OVERLAYD_CRASH_SEED", 11);
    let ns = Netns::new("cc");
    let dir = tempfile::tempdir().unwrap();
    // A short check interval: the periodic check runs during the load too.
    std::fs::write(dir.path().join("cfg.toml"), "check_interval_secs = 1\n").unwrap();
    let cfg = dir.path().join("cfg.toml");
    let mut d = Daemon::start(&ns, dir.path(), &["--config", cfg.to_str().unwrap()]);
    d.ok(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    });
    d.ok(support::requests::iso("i1"));
    let containers: Vec<Container> = (0..6).map(|_| Container::new()).collect();
    let pids: Vec<u32> = containers.iter().map(Container::pid).collect();
    let known = Arc::new(Mutex::new(vec![Known::Detached; pids.len()]));
    let mut rng = Rng(seed);
    let mut counts = Counts::default();
    let started = Instant::now();

    for round in 0..iterations {
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (socket, pids, known, stop) =
                (d.socket.clone(), pids.clone(), known.clone(), stop.clone());
            let s = rng.next();
            std::thread::spawn(move || load(socket, pids, s, known, stop))
        };
        std::thread::sleep(Duration::from_micros(5_000 + rng.below(150_000)));
        d.kill();
        stop.store(true, Ordering::Relaxed);
        let (acked, in_flight) = worker.join().expect("load thread");
        counts.acked += acked;
        counts.in_flight += in_flight;

        check_store(&d.data_dir);
        d.start_again();

        let bad = bad_veths(&ns);
        assert!(
            bad.is_empty(),
            "round {round}: untagged or unplugged veths: {bad:?}"
        );
        let mut addrs = BTreeSet::new();
        for (i, c) in containers.iter().enumerate() {
            let r = d.call(Request::InspectAttachment {
                handle: Handle::LinuxPid { pid: pids[i] },
            });
            let expect = known.lock().unwrap()[i].clone();
            let eth0 = c.output(&["ip", "-o", "addr", "show", "dev", "eth0"]);
            match r {
                Response::Attachment { ip, network, .. } => {
                    counts.attached_after += 1;
                    if let Known::Attached(acked_ip) = &expect {
                        assert_eq!(
                            &ip, acked_ip,
                            "round {round}: container {i} changed address"
                        );
                    }
                    assert_ne!(
                        expect,
                        Known::Detached,
                        "round {round}: detached container {i} came back"
                    );
                    assert!(
                        addrs.insert((network, ip.clone())),
                        "round {round}: {ip} twice"
                    );
                    assert!(
                        eth0.contains(&format!(" {ip}/")),
                        "round {round}: container {i} lacks {ip}: {eth0}"
                    );
                    let link = c.output(&["ip", "-o", "link", "show", "dev", "eth0"]);
                    assert!(
                        link.contains(",UP"),
                        "round {round}: container {i} eth0 down: {link}"
                    );
                    let route = c.output(&["ip", "route", "show", "default"]);
                    assert!(
                        route.contains("dev eth0"),
                        "round {round}: container {i} has no default route"
                    );
                    known.lock().unwrap()[i] = Known::Attached(ip);
                }
                Response::Err { .. } => {
                    counts.detached_after += 1;
                    assert!(
                        !matches!(expect, Known::Attached(_)),
                        "round {round}: acknowledged attach of container {i} lost"
                    );
                    assert!(
                        eth0.trim().is_empty(),
                        "round {round}: detached container {i} still has eth0: {eth0}"
                    );
                    known.lock().unwrap()[i] = Known::Detached;
                }
                r => panic!("{r:?}"),
            }
        }
        let doctor = d.cli(&["doctor"]);
        assert!(
            doctor.status.success(),
            "round {round}: doctor not clean:\n{}\n{}",
            String::from_utf8_lossy(&doctor.stdout),
            String::from_utf8_lossy(&doctor.stderr)
        );
    }
    println!(
        "crash consistency: seed {seed}, {iterations} kill -9, {} acknowledged ops, {} in flight at a kill; \
         after restarts {} attached / {} detached checks; 0 lost or duplicated leases, \
         0 untagged or unenslaved veths, 0 half-attached containers, doctor clean every time ({:.1?})",
        counts.acked,
        counts.in_flight,
        counts.attached_after,
        counts.detached_after,
        started.elapsed()
    );
    d.stop();
}
