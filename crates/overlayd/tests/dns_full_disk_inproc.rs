//! `register_dns` / `unregister_dns` on a full disk, in process: the
//! store write of the plan fails, and the served set still matches the
//! store — nothing is served that is not stored, nothing stored stops
//! being served. The disk is "full" through `RLIMIT_FSIZE` (EFBIG on every
//! file write of this process), so this test lives alone in its own
//! binary, like `disk_full_inproc.rs`.

mod support;

use overlayd::daemon::records::DnsRecord;
use overlayd_proto::{Request, Response};
use support::inproc::{err_message, Instance};

const KEY: &str = "web.overlay.internal.";

fn set_fsize_limit(bytes: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
}

async fn served(c: &mut overlayd_client::Client) -> Vec<(String, Vec<String>)> {
    match c.call(Request::ListDnsRecords).await.unwrap() {
        Response::DnsRecords { records, .. } => {
            records.into_iter().map(|r| (r.name, r.ips)).collect()
        }
        r => panic!("{r:?}"),
    }
}

fn register(ip: &str) -> Request {
    Request::RegisterDns {
        name: "web".into(),
        ip: ip.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dns_write_leaves_the_served_set_matching_the_store() {
    // SAFETY: over-limit writes then fail with EFBIG instead of killing us.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    assert_eq!(c.call(register("10.0.0.5")).await.unwrap(), Response::Ok);
    let before = served(&mut c).await;
    assert_eq!(
        before,
        vec![(KEY.to_string(), vec!["10.0.0.5".to_string()])]
    );

    set_fsize_limit(1); // the disk is full
    let msg = err_message(c.call(register("10.0.0.6")).await.unwrap());
    println!("register on a full disk: {msg}");
    assert!(
        !msg.contains("cannot open"),
        "the registration reached its write: {msg}"
    );
    assert_eq!(
        served(&mut c).await,
        before,
        "nothing served that is not stored"
    );
    // Space back for a moment: the store reopens on the next request (here
    // a repeated registration, which changes nothing), so the removal
    // below fails at its own write, not at reopening the store.
    set_fsize_limit(libc::RLIM_INFINITY);
    assert_eq!(c.call(register("10.0.0.5")).await.unwrap(), Response::Ok);
    assert_eq!(served(&mut c).await, before);
    set_fsize_limit(1);
    let msg = err_message(
        c.call(Request::UnregisterDns {
            name: "web".into(),
            force: true,
        })
        .await
        .unwrap(),
    );
    println!("unregister on a full disk: {msg}");
    assert!(
        !msg.contains("cannot open"),
        "the removal reached its write: {msg}"
    );
    assert_eq!(
        served(&mut c).await,
        before,
        "a stored name is still served"
    );
    set_fsize_limit(libc::RLIM_INFINITY); // space freed

    // The store holds exactly what is served.
    let dir = inst.shutdown().await;
    let store = overlayd_state::Store::open(dir.path().join("data")).unwrap();
    let stored: Vec<(String, DnsRecord)> = store
        .read(|tx| tx.list(overlayd_state::Table::Dns))
        .unwrap();
    let stored: Vec<(String, Vec<String>)> = stored.into_iter().map(|(k, r)| (k, r.ips)).collect();
    assert_eq!(stored, before);
}
