//! The transactional store: all-or-nothing writes, data kept across reopen,
//! readers on a stable snapshot while a writer works, 0600 file mode, and a
//! clear error naming the file when it is damaged.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Barrier};
use std::thread;

use overlayd_state::{StateError, Store, Table};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lease {
    network: String,
    ip: String,
    holder: String,
}

fn lease(net: &str, ip: &str, holder: &str) -> Lease {
    Lease {
        network: net.into(),
        ip: ip.into(),
        holder: holder.into(),
    }
}

#[test]
fn commit_on_ok_abort_on_err() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .write(|tx| {
            tx.put(Table::Leases, "n|10.0.0.2", &lease("n", "10.0.0.2", "c1"))?;
            tx.put(Table::Meta, "node_id", "node-1")
        })
        .unwrap();

    let r: Result<(), StateError> = store.write(|tx| {
        tx.put(Table::Leases, "n|10.0.0.3", &lease("n", "10.0.0.3", "c2"))?;
        assert!(tx.remove(Table::Leases, "n|10.0.0.2")?);
        // The transaction sees its own writes…
        assert_eq!(tx.list::<Lease>(Table::Leases)?.len(), 1);
        Err(StateError::InvalidKey {
            reason: "injected failure".into(),
        })
    });
    assert!(r.is_err());
    // …but none of them survive the abort.
    let leases = store.read(|tx| tx.list::<Lease>(Table::Leases)).unwrap();
    assert_eq!(
        leases,
        [("n|10.0.0.2".to_string(), lease("n", "10.0.0.2", "c1"))]
    );
    let id: Option<String> = store.read(|tx| tx.get(Table::Meta, "node_id")).unwrap();
    assert_eq!(id.as_deref(), Some("node-1"));
}

#[test]
fn panic_in_write_aborts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.write(|tx| -> Result<(), StateError> {
            tx.put(Table::Peers, "p", &1u32)?;
            panic!("boom");
        });
    }));
    assert!(r.is_err());
    assert_eq!(
        store.read(|tx| tx.get::<u32>(Table::Peers, "p")).unwrap(),
        None
    );
    // The store is still usable.
    store.write(|tx| tx.put(Table::Peers, "p", &2u32)).unwrap();
}

#[test]
fn data_survives_reopen_and_file_is_0600() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let store = Store::open(tmp.path()).unwrap();
        store
            .write(|tx| {
                for i in 0..100 {
                    tx.put(Table::Dns, &format!("web.{i}"), &format!("10.0.0.{i}"))?;
                }
                tx.put(
                    Table::Global,
                    "global",
                    &serde_json::json!({"cidr": "10.0.0.0/8"}),
                )
            })
            .unwrap();
    }
    let path = tmp.path().join("state.redb");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let store = Store::open(tmp.path()).unwrap();
    store
        .read(|tx| {
            assert_eq!(tx.count(Table::Dns)?, 100);
            let g: serde_json::Value = tx.get(Table::Global, "global")?.unwrap();
            assert_eq!(g["cidr"], "10.0.0.0/8");
            Ok(())
        })
        .unwrap();
}

#[test]
fn list_prefix_and_remove_prefix_stay_within_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .write(|tx| {
            for (net, ip) in [("a", "1"), ("a", "2"), ("ab", "1"), ("b", "1")] {
                tx.put(Table::Leases, &format!("{net}|{ip}"), &lease(net, ip, "h"))?;
            }
            Ok(())
        })
        .unwrap();
    let a = store
        .read(|tx| tx.list_prefix::<Lease>(Table::Leases, "a|"))
        .unwrap();
    let keys: Vec<_> = a.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a|1", "a|2"]);
    let n = store
        .write(|tx| tx.remove_prefix(Table::Leases, "a|"))
        .unwrap();
    assert_eq!(n, 2);
    let left = store.read(|tx| tx.list::<Lease>(Table::Leases)).unwrap();
    let keys: Vec<_> = left.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["ab|1", "b|1"]);
}

#[test]
fn readers_see_a_stable_snapshot_while_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(tmp.path()).unwrap());
    store
        .write(|tx| tx.put(Table::Peers, "count", &0u32))
        .unwrap();
    let readers = 4;
    let start = Arc::new(Barrier::new(readers + 1));
    let mut handles = Vec::new();
    for _ in 0..readers {
        let store = store.clone();
        let start = start.clone();
        handles.push(thread::spawn(move || {
            start.wait();
            let mut last = 0u32;
            for _ in 0..200 {
                let (count, listed) = store
                    .read(|tx| {
                        let c: u32 = tx.get(Table::Peers, "count")?.unwrap_or(0);
                        let l = tx.list_prefix::<u32>(Table::Peers, "peer-")?.len() as u32;
                        Ok((c, l))
                    })
                    .unwrap();
                // The writer bumps both in one transaction: a snapshot never
                // shows one without the other, and never goes backwards.
                assert_eq!(count, listed);
                assert!(count >= last);
                last = count;
            }
        }));
    }
    start.wait();
    for i in 1..=50u32 {
        store
            .write(|tx| {
                tx.put(Table::Peers, &format!("peer-{i:03}"), &i)?;
                tx.put(Table::Peers, "count", &i)
            })
            .unwrap();
    }
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn corrupt_store_is_a_clear_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("state.redb");
    fs::write(&path, vec![0xA5u8; 64 * 1024]).unwrap();
    let e = Store::open(tmp.path()).unwrap_err();
    assert!(matches!(e, StateError::StoreOpen { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn undecodable_record_names_table_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    store
        .write(|tx| tx.put(Table::Attachments, "c1", "just a string"))
        .unwrap();
    let e = store
        .read(|tx| tx.get::<Lease>(Table::Attachments, "c1"))
        .unwrap_err();
    assert!(e.to_string().contains("attachments/c1"), "{e}");
}

#[test]
fn second_open_in_process_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let _a = Store::open(tmp.path()).unwrap();
    assert!(Store::open(tmp.path()).is_err());
}
