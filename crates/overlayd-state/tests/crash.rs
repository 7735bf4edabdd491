//! Real crash consistency: a child process (this test binary re-executed)
//! saves the marker in a tight loop while the parent SIGKILLs it at random
//! moments; every time, the marker left on disk must be one complete
//! version, and the next load must clean the interrupted save's temp file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use overlayd_state::entry::KIND_LINUX_WIREGUARD;
use overlayd_state::{KeyPair, LoadOutcome, Marker, MarkerFile, NetworkEntry, Owner};
use rand::Rng;
use serde_json::Value;

const DIR_ENV: &str = "OVERLAYD_STATE_CRASH_DIR";
const ENTRIES: usize = 300;
const ROUNDS: usize = 40;

/// A marker of generation `gen`: every entry and the top level carry it.
fn marker_of_generation(gen: u64, key: &KeyPair) -> Marker {
    let mut m = Marker::new();
    m.extra.insert("gen".into(), Value::from(gen));
    for i in 0..ENTRIES {
        let mut e = NetworkEntry::new(
            Owner::service(&format!("svc-{i}")).expect("valid name"),
            KIND_LINUX_WIREGUARD,
            &format!("ovl-wg-{i:05}"),
            "6f0e1d2c-3b4a-4958-8776-655443322110",
            "10.201.0.0/24",
        );
        e.wg_port = Some(51821 + (i % 256) as u16);
        e.wg_private_key = Some(key.private_base64());
        e.wg_public_key = Some(key.public_base64());
        e.extra.insert("gen".into(), Value::from(gen));
        m.upsert(e);
    }
    m
}

fn generation(m: &Marker) -> u64 {
    let gen = m.extra["gen"].as_u64().expect("top-level gen");
    assert_eq!(m.len(), ENTRIES, "all entries present");
    for e in m.iter() {
        assert_eq!(e.extra["gen"].as_u64(), Some(gen), "entry {} torn", e.owner);
    }
    gen
}

/// Child side: save generations 1, 2, 3, … until killed (or a safety
/// deadline passes). Ignored so it only runs when re-executed by the parent.
#[test]
#[ignore = "child process of sigkill_during_save_leaves_one_complete_version"]
fn crash_child_saves_forever() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let file = MarkerFile::new(PathBuf::from(dir));
    let key = KeyPair::generate();
    let stop = Instant::now() + Duration::from_secs(60);
    let mut gen = 1;
    while Instant::now() < stop {
        file.save(&marker_of_generation(gen, &key))
            .expect("child save");
        gen += 1;
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_generation(path: &Path) -> Option<u64> {
    let bytes = fs::read(path).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v["gen"].as_u64()
}

#[test]
fn sigkill_during_save_leaves_one_complete_version() {
    let exe = std::env::current_exe().expect("test binary path");
    let mut rng = rand::thread_rng();
    let mut saw_temp_cleanup = 0;
    for round in 0..ROUNDS {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = MarkerFile::new(tmp.path());
        file.save(&marker_of_generation(0, &KeyPair::generate()))
            .expect("initial save");

        let child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_saves_forever",
                "--ignored",
                "--test-threads=1",
                "--quiet",
            ])
            .env(DIR_ENV, tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let mut child = KillOnDrop(child);

        // Wait (with a deadline) until the child has completed a save.
        let deadline = Instant::now() + Duration::from_secs(30);
        let first_seen = loop {
            if let Some(g) = read_generation(&file.path()).filter(|g| *g >= 1) {
                break g;
            }
            if let Ok(Some(status)) = child.0.try_wait() {
                panic!("round {round}: child exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: child never saved"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        // Kill at a random moment within the save loop.
        std::thread::sleep(Duration::from_micros(rng.gen_range(0..20_000)));
        child.0.kill().expect("SIGKILL child");
        child.0.wait().expect("reap child");
        drop(child);

        let had_temp = fs::read_dir(tmp.path()).expect("list").any(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        });
        let m = match file.load().expect("load after crash") {
            LoadOutcome::Loaded(m) => m,
            other => panic!("round {round}: expected a complete marker, got {other:?}"),
        };
        let gen = generation(&m);
        assert!(gen >= first_seen, "round {round}: went back to gen {gen}");
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers, ["agent_network.json"], "round {round}");
        if had_temp {
            saw_temp_cleanup += 1;
        }
    }
    eprintln!(
        "crash test: {ROUNDS} SIGKILLs, {saw_temp_cleanup} interrupted mid-save (temp file cleaned)"
    );
}
