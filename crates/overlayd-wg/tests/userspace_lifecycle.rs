//! Userspace device lifecycle in a namespace the test creates: a TUN
//! device left by a killed process is waited for instead of refused, and
//! bringing a device up and down does not leak file descriptors.

mod common;

use std::time::{Duration, Instant};

use overlayd_wg::{generate_private_key, DeviceConfig, Disposition, UserspaceBackend, WgBackend};

const DEV: &str = "wglife0";

/// The fd count is process-wide: the tests of this file run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cfg() -> DeviceConfig {
    DeviceConfig {
        name: DEV.into(),
        private_key: generate_private_key().unwrap(),
        listen_port: 51830,
        mtu: 1380,
        fwmark: None,
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Restart right after `kill -9`: the dead process's TUN device still
/// exists for a moment. Start-up must wait for the kernel to release it and
/// then create the device, not skip it as "not run by this instance".
#[test]
fn lingering_tun_of_a_dead_process_is_waited_for() {
    if !common::need_root("lingering_tun_of_a_dead_process_is_waited_for") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let ns = common::Netns::new("t");
    let dir = tempfile::tempdir().unwrap();
    let b = UserspaceBackend::with_netns(dir.path(), Some(&ns.path())).unwrap();
    // A persistent TUN stands in for the dead process's device; it goes
    // away 300 ms later, as the kernel finishes tearing the process down.
    ns.ip(&["tuntap", "add", "dev", DEV, "mode", "tun"]);
    let name = ns.name.clone();
    let remover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        common::must(
            "ip",
            &["-n", &name, "tuntap", "del", "dev", DEV, "mode", "tun"],
        );
    });
    let started = Instant::now();
    let h = b
        .create_or_adopt(&cfg())
        .expect("device created once the old TUN is gone");
    remover.join().unwrap();
    println!("waited {:?} for the previous TUN device", started.elapsed());
    assert_eq!(h.disposition, Disposition::Created);
    assert!(b.exists(DEV).unwrap());
    assert!(b.delete(DEV).unwrap());
}

/// 50 up/down cycles of one userspace device: the process's open file
/// descriptors must not grow (boringtun leaks an eventfd/timerfd set per
/// device it drops, boringtun issue #170; the backend works around it).
#[test]
fn device_up_down_does_not_leak_file_descriptors() {
    if !common::need_root("device_up_down_does_not_leak_file_descriptors") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const CYCLES: usize = 50;
    let ns = common::Netns::new("f");
    let dir = tempfile::tempdir().unwrap();
    let b = UserspaceBackend::with_netns(dir.path(), Some(&ns.path())).unwrap();
    let c = cfg();
    // One warm-up cycle: lazily opened, long-lived descriptors (netlink
    // sockets of the worker, for example) are not leaks.
    b.create_or_adopt(&c).unwrap();
    b.delete(DEV).unwrap();
    let before = open_fds();
    for _ in 0..CYCLES {
        b.create_or_adopt(&c).unwrap();
        assert!(b.delete(DEV).unwrap());
    }
    // Device threads close their descriptors as they exit; give them a
    // deadline rather than a fixed sleep.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = open_fds();
    while after > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = open_fds();
    }
    println!(
        "open fds: {before} before, {after} after {CYCLES} up/down cycles ({} per cycle)",
        (after as f64 - before as f64) / CYCLES as f64
    );
    assert!(
        after <= before,
        "{} file descriptors leaked over {CYCLES} cycles",
        after - before
    );
}
