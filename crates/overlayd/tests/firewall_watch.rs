//! Isolation fails closed (end to end, in namespaces): when someone deletes
//! overlayd's nftables table, the daemon's nftables monitor restores it at
//! once — not on the next periodic check. The restore window is measured and
//! printed.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn a_deleted_table_is_restored_within_200_ms() {
    if !can_run_root_tests("firewall watch") {
        assert!(
            std::env::var("OVERLAYD_REQUIRE_ROOT").as_deref() != Ok("1"),
            "OVERLAYD_REQUIRE_ROOT=1 but this test cannot run"
        );
        return;
    }
    let (node, _outside) = uplinked_node("fw", "fo");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    // The periodic check is far away: only the monitor can be fast.
    std::fs::write(&cfg, "check_interval_secs = 3600\n").unwrap();
    let d = Daemon::start(&node, dir.path(), &["--config", cfg.to_str().unwrap()]);
    for net in ["a", "b"] {
        d.ok(support::requests::iso(net));
    }
    let table = || node.output(&["nft", "list", "table", "inet", "overlayd"]);
    let full = table();
    assert!(full.contains("chain"), "our table is there: {full}");

    let mut windows = Vec::new();
    for _ in 0..3 {
        node.exec(&["nft", "delete", "table", "inet", "overlayd"]);
        let t0 = Instant::now();
        let mut restored = false;
        while t0.elapsed() < Duration::from_secs(5) {
            if table() == full {
                restored = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let window = t0.elapsed();
        assert!(restored, "table not restored within 5 s; log:\n{}", d.log());
        windows.push(window);
    }
    let worst = windows.iter().max().unwrap();
    println!("isolation restore windows after `nft delete table`: {windows:?} (worst {worst:?})");
    assert!(
        *worst < Duration::from_millis(200),
        "restore took {worst:?} (target < 200 ms)"
    );
}
