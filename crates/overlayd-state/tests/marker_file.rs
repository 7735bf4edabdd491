//! Marker file behaviour on disk (SPEC §2): old shapes load, unknown content
//! survives, corrupt files are quarantined byte-identically, newer versions
//! are refused untouched, modes are 0600, stale temps are cleaned, and a
//! save failing at any step leaves the complete old or complete new marker.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use overlayd_state::entry::{KIND_HCN_INTERNAL, KIND_LINUX_WIREGUARD};
use overlayd_state::{
    KeyPair, LoadOutcome, Marker, MarkerFile, NetworkEntry, Owner, SaveStep, StateError,
};
use serde_json::{json, Value};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn loaded(f: &MarkerFile) -> Marker {
    match f.load().unwrap() {
        LoadOutcome::Loaded(m) => m,
        other => panic!("expected a loaded marker, got {other:?}"),
    }
}

fn wg_entry(service: &str, port: u16) -> NetworkEntry {
    let kp = KeyPair::generate();
    let mut e = NetworkEntry::new(
        Owner::service(service).unwrap(),
        KIND_LINUX_WIREGUARD,
        &format!("ovl-wg-{service}"),
        "0b7c3f9e-1c1d-4e55-9a53-6c1f0d1e2a3b",
        "10.201.0.0/24",
    );
    e.wg_port = Some(port);
    e.wg_private_key = Some(kp.private_base64());
    e.wg_public_key = Some(kp.public_base64());
    e.interface = Some(format!("ovl-br-{service}"));
    e
}

#[test]
fn missing_marker_is_empty_state() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path().join("not-yet"));
    assert!(matches!(f.load().unwrap(), LoadOutcome::Missing));
}

#[test]
fn old_shape_without_optional_fields_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    fs::write(
        f.path(),
        br#"{"version":1,"networks":[{"owner":"base","kind":"linux-wireguard","name":"ovl0","id":"u-1","subnet":"10.200.0.0/28"},{"owner":"shared-nat","kind":"linux-bridge","name":"ovl-nat","id":"u-2","subnet":"10.210.0.0/24"}]}"#,
    )
    .unwrap();
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o600)).unwrap();
    let m = loaded(&f);
    assert_eq!(m.len(), 2);
    let base = m.get(&Owner::Base).unwrap();
    assert_eq!(base.name, "ovl0");
    assert_eq!(base.wg_port, None);
    assert_eq!(base.wg_private_key, None);
    assert_eq!(base.interface, None);
    assert!(base.extra.is_empty());
    // Written back, optional fields stay absent.
    f.save(&m).unwrap();
    let v: Value = serde_json::from_slice(&fs::read(f.path()).unwrap()).unwrap();
    assert_eq!(
        v["networks"][0],
        json!({"owner":"base","kind":"linux-wireguard","name":"ovl0","id":"u-1","subnet":"10.200.0.0/28"})
    );
}

#[test]
fn unknown_kinds_and_fields_round_trip_through_save() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    let original = json!({
        "version": 1,
        "networks": [
            {"owner": "iso:db", "kind": KIND_HCN_INTERNAL, "name": "overlayd-iso-db",
             "id": "{3F2504E0-4F89-11D3-9A0C-0305E82C3301}", "subnet": "10.220.1.0/24",
             "hcn_policy": {"vlan": 12, "flags": ["a", "b"]}, "created_on": "win-node-3"},
            {"owner": "base", "kind": "linux-wireguard", "name": "ovl0", "id": "u-1",
             "subnet": "10.200.0.0/28", "wg_port": 51820, "mtu_hint": 1420}
        ],
        "host_id": "node-7",
        "schema_notes": {"nested": [1, 2, 3]}
    });
    fs::write(f.path(), serde_json::to_vec_pretty(&original).unwrap()).unwrap();
    let mut m = loaded(&f);
    assert!(!m.get_str("iso:db").unwrap().is_linux_managed());
    // Touch an unrelated entry, as the daemon would, and save.
    m.upsert(wg_entry("web", 51821));
    f.save(&m).unwrap();
    let back: Value = serde_json::from_slice(&fs::read(f.path()).unwrap()).unwrap();
    assert_eq!(back["host_id"], original["host_id"]);
    assert_eq!(back["schema_notes"], original["schema_notes"]);
    assert_eq!(back["networks"][0], original["networks"][0]);
    assert_eq!(back["networks"][1], original["networks"][1]);
    assert_eq!(back["networks"].as_array().unwrap().len(), 3);
    // And an untouched load → save is content-identical.
    let m = loaded(&f);
    let before: Value = serde_json::from_slice(&fs::read(f.path()).unwrap()).unwrap();
    f.save(&m).unwrap();
    let after: Value = serde_json::from_slice(&fs::read(f.path()).unwrap()).unwrap();
    assert_eq!(before, after);
}

#[test]
fn every_field_survives_save_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    let mut m = Marker::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        m.upsert(wg_entry(name, 51821 + i as u16));
    }
    f.save(&m).unwrap();
    assert_eq!(loaded(&f), m);
}

fn assert_quarantined(content: &[u8], what: &str) -> Marker {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    fs::write(f.path(), content).unwrap();
    let kept = match f.load().unwrap() {
        LoadOutcome::Quarantined {
            moved_to,
            reason,
            salvaged,
        } => {
            assert_eq!(moved_to.parent().unwrap(), tmp.path().join("quarantine"));
            let name = moved_to.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with("agent_network.json.") && name.ends_with(".corrupt"),
                "{what}: {name}"
            );
            assert_eq!(
                fs::read(&moved_to).unwrap(),
                content,
                "{what}: byte-identical"
            );
            assert!(!reason.is_empty());
            salvaged
        }
        other => panic!("{what}: expected quarantine, got {other:?}"),
    };
    // Afterwards the marker holds exactly the salvaged entries (or is
    // missing when none could be read); a new save works.
    if kept.is_empty() {
        assert!(matches!(f.load().unwrap(), LoadOutcome::Missing));
    } else {
        assert_eq!(loaded(&f), kept, "{what}: salvaged marker saved");
    }
    f.save(&Marker::new()).unwrap();
    kept
}

#[test]
fn corrupt_markers_are_quarantined_byte_identically() {
    let good = serde_json::to_vec_pretty(&json!({"version":1,"networks":[
        {"owner":"base","kind":"linux-wireguard","name":"ovl0","id":"u","subnet":"10.200.0.0/28"}
    ]}))
    .unwrap();
    assert_quarantined(&good[..good.len() / 2], "truncated");
    assert_quarantined(b"\x00\x01\x02 definitely not json", "not JSON");
    assert_quarantined(b"", "empty file");
    let kept = assert_quarantined(
        br#"{"version":1,"networks":[
            {"owner":"service:web","kind":"linux-bridge","name":"a","id":"1","subnet":"10.0.0.0/24"},
            {"owner":"service:web","kind":"linux-bridge","name":"b","id":"2","subnet":"10.0.1.0/24"}]}"#,
        "duplicate owners",
    );
    assert_eq!(kept.len(), 1);
}

/// One bad entry (a duplicated owner, an entry missing fields) costs only
/// that entry: every good one is kept, a foreign kind (which no Linux host
/// object could rebuild) included, and the original is quarantined.
#[test]
fn a_bad_entry_keeps_every_good_entry_including_foreign_kinds() {
    let kept = assert_quarantined(
        br#"{"version":1,"networks":[
            {"owner":"base","kind":"linux-wireguard","name":"ovl0","id":"u","subnet":"10.200.0.0/28"},
            {"owner":"iso:win","kind":"hcn-internal","name":"h","id":"g","subnet":"10.9.0.0/24","hcn_extra":1},
            {"owner":"base","kind":"linux-wireguard","name":"dup","id":"v","subnet":"10.200.0.0/28"},
            {"owner":"service:half"}]}"#,
        "one duplicated owner, one broken entry",
    );
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept.get_str("base").unwrap().name, "ovl0");
    let foreign = kept.get_str("iso:win").unwrap();
    assert_eq!(foreign.kind, "hcn-internal");
    assert!(
        foreign.extra.contains_key("hcn_extra"),
        "unknown fields kept"
    );
}

#[test]
fn two_quarantines_do_not_overwrite_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    fs::write(f.path(), b"first").unwrap();
    let LoadOutcome::Quarantined { moved_to: a, .. } = f.load().unwrap() else {
        panic!("expected quarantine");
    };
    fs::write(f.path(), b"second").unwrap();
    let LoadOutcome::Quarantined { moved_to: b, .. } = f.load().unwrap() else {
        panic!("expected quarantine");
    };
    assert_ne!(a, b);
    assert_eq!(fs::read(a).unwrap(), b"first");
    assert_eq!(fs::read(b).unwrap(), b"second");
}

#[test]
fn newer_version_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    let content = br#"{"version":2,"networks":{"base":{"totally":"different"}}}"#;
    fs::write(f.path(), content).unwrap();
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::metadata(f.path()).unwrap();
    match f.load() {
        Err(e @ StateError::NewerVersion { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("version 2"), "{msg}");
            assert!(msg.contains("agent_network.json"), "{msg}");
        }
        other => panic!("expected NewerVersion, got {other:?}"),
    }
    assert_eq!(fs::read(f.path()).unwrap(), content);
    let after = fs::metadata(f.path()).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&before),
        std::os::unix::fs::MetadataExt::ino(&after)
    );
    assert!(!tmp.path().join("quarantine").exists());
}

#[test]
fn wide_marker_is_tightened_to_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    f.save(&Marker::new()).unwrap();
    fs::set_permissions(f.path(), fs::Permissions::from_mode(0o644)).unwrap();
    loaded(&f);
    assert_eq!(mode(&f.path()), 0o600);
}

#[test]
fn marker_and_its_temp_are_0600_from_the_first_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    let mut m = Marker::new();
    m.upsert(wg_entry("web", 51821));
    let mut temp_modes = Vec::new();
    f.save_with(&m, &mut |step| {
        if step == SaveStep::AfterTempCreate {
            for e in fs::read_dir(tmp.path()).unwrap() {
                let e = e.unwrap();
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(".agent_network.json.tmp")
                {
                    temp_modes.push((mode(&e.path()), e.metadata().unwrap().len()));
                }
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(temp_modes, [(0o600, 0)], "temp file exists, empty, 0600");
    assert_eq!(mode(&f.path()), 0o600);
}

#[test]
fn stale_temp_files_are_removed_at_load() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    f.save(&Marker::new()).unwrap();
    let stale = tmp.path().join(".agent_network.json.tmp.4242.0");
    fs::write(&stale, b"{\"version\":1,\"netw").unwrap();
    let unrelated = tmp.path().join("keep-me");
    fs::write(&unrelated, b"x").unwrap();
    loaded(&f);
    assert!(!stale.exists());
    assert!(unrelated.exists());
}

#[test]
fn failure_at_each_save_step_leaves_old_or_new() {
    let mut old = Marker::new();
    old.upsert(wg_entry("old", 51821));
    let mut new = old.clone();
    new.upsert(wg_entry("new", 51822));
    for step in SaveStep::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let f = MarkerFile::new(tmp.path());
        f.save(&old).unwrap();
        let err = f.save_with(&new, &mut |s| {
            if s == step {
                Err(io::Error::other(format!("injected at {s:?}")))
            } else {
                Ok(())
            }
        });
        assert!(err.is_err(), "{step:?}: the save must report the failure");
        let got = loaded(&f);
        let want = if step == SaveStep::AfterRename {
            &new
        } else {
            &old
        };
        assert_eq!(&got, want, "{step:?}");
        // No temp file is left behind.
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["agent_network.json"], "{step:?}");
    }
}

#[test]
fn failure_on_first_save_leaves_no_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let f = MarkerFile::new(tmp.path());
    let r = f.save_with(&Marker::new(), &mut |s| {
        if s == SaveStep::AfterFsync {
            Err(io::Error::other("injected"))
        } else {
            Ok(())
        }
    });
    assert!(r.is_err());
    assert!(matches!(f.load().unwrap(), LoadOutcome::Missing));
}
