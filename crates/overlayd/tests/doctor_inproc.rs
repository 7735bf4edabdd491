//! `overlayd doctor` reports firewall drift (someone deleted or edited
//! overlayd's nftables table) and exits 3 on any drift, in text and in
//! `--json` alike; `doctor --fix` restores the table (in process, fake host
//! without a change monitor, so nothing restores it behind the test's back).

mod support;

use std::process::Output;

use overlayd_host::Host;
use overlayd_proto::Response;
use support::inproc::Instance;

/// Run the CLI against the in-process daemon, off the runtime's workers.
async fn run(inst: &Instance, args: &'static [&'static str]) -> Output {
    let (socket, data) = (inst.cfg.socket.clone(), inst.cfg.data_dir.clone());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_overlayd"))
            .arg("--socket")
            .arg(socket)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .output()
            .expect("run the CLI")
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_drift_is_reported_and_exits_3_in_text_and_json_and_fix_restores_it() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    let r = c.call(support::requests::iso("a")).await.unwrap();
    assert!(matches!(r, Response::IsolationNetwork { .. }), "{r:?}");

    let clean = run(&inst, &["doctor"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    let clean = run(&inst, &["--json", "doctor"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    inst.host.tamper_firewall();
    let out = run(&inst, &["doctor"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("nftables table is missing or was changed"),
        "{}",
        text(&out)
    );
    let out = run(&inst, &["--json", "doctor"]).await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "--json exits 3 too: {}",
        text(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["networks"][0]["firewall_drift"].is_string(),
        "the JSON names the firewall drift: {v}"
    );

    let fixed = run(&inst, &["doctor", "--fix"]).await;
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed));
    let spec = inst.host.firewall().expect("a firewall was applied");
    assert!(inst.host.firewall_matches(&spec).await.unwrap(), "restored");
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_subnet_that_is_not_a_cidr_is_drift() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(support::requests::iso("a")).await.unwrap();
    drop(c);
    let (cfg, host, wg, marker) = (
        inst.cfg.clone(),
        inst.host.clone(),
        inst.wg.clone(),
        inst.marker(),
    );
    let dir = inst.shutdown().await;
    let json = std::fs::read_to_string(&marker).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let subnet = v["networks"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["owner"] == "iso:a"))
        .and_then(|n| n["subnet"].as_str())
        .expect("iso:a recorded")
        .to_string();
    std::fs::write(&marker, json.replace(&subnet, "not-a-cidr")).unwrap();
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    let out = run(&inst, &["doctor"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("not a CIDR"), "{}", text(&out));
    let _ = inst.shutdown().await;
}
