//! Container requests do not wait on each other's kernel work (issue 12):
//! while one attach or detach is stuck making or deleting its veth (the
//! fake host stalls it), attaches and detaches of other containers on
//! another network complete, the periodic-check repair (`reconcile`)
//! leaves the stuck one alone, a second attach of the same container waits
//! for the first and answers the same, and a DNS name taken meanwhile
//! fails the slower attach cleanly (in process, fake host).

mod support;

use std::time::{Duration, Instant};

use overlayd_host::{Host, NetnsTarget, Op};
use overlayd_proto::{Handle, Request, Response};
use support::inproc::Instance;

const STALL: Duration = Duration::from_secs(3);

/// Two isolation networks, one service, live containers 100..=104.
async fn setup() -> Instance {
    let inst = Instance::start().await;
    inst.ok_all([
        support::requests::iso("a"),
        support::requests::iso("b"),
        support::requests::shared("web"),
    ])
    .await;
    for pid in 100..=104 {
        inst.host.add_live_target(NetnsTarget::Pid(pid));
    }
    inst
}

fn attached_ip(r: &Response) -> String {
    match r {
        Response::Attached { ip, .. } => ip.clone(),
        other => panic!("expected attached, got {other:?}"),
    }
}

async fn has_link(inst: &Instance, name: &str) -> bool {
    inst.host
        .links()
        .await
        .unwrap()
        .iter()
        .any(|l| l.name == name)
}

async fn attachment_keys(inst: &Instance) -> Vec<(String, String)> {
    let mut c = inst.client().await;
    let Response::Attachments { attachments } = c.call(Request::ListAttachments).await.unwrap()
    else {
        panic!("list_attachments");
    };
    attachments
        .into_iter()
        .map(|a| (a.key, a.interface.unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaches_on_another_network_complete_while_one_attach_is_stuck_in_the_kernel() {
    let inst = setup().await;
    inst.host.stall_next(Op::AttachVeth, STALL);
    let mut slow_client = inst.client().await;
    let slow = tokio::spawn(async move {
        let t = Instant::now();
        let r = slow_client
            .call(support::requests::attach_pid(100, "web", Some("a"), None))
            .await
            .unwrap();
        (r, t.elapsed())
    });
    inst.until_stalled().await;

    // Another container on another network: not held up by the stuck one.
    let mut c = inst.client().await;
    let t = Instant::now();
    let other = c
        .call(support::requests::attach_pid(101, "web", Some("b"), None))
        .await
        .unwrap();
    let took = t.elapsed();
    attached_ip(&other);
    // A detach, too.
    let detached = c
        .call(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 101 },
        })
        .await
        .unwrap();
    assert_eq!(detached, Response::Ok);
    let both = t.elapsed();
    // The repair the periodic check runs leaves the stuck attach alone:
    // its `attaching` record is a request in flight, not a crash.
    let fixed = c.call(Request::Reconcile).await.unwrap();
    assert!(matches!(fixed, Response::Reconciled { .. }), "{fixed:?}");
    assert!(!slow.is_finished(), "the slow attach is still stalled");
    println!("attach + detach on network b took {both:?} while an attach on a waited {STALL:?}");
    assert!(
        both < STALL / 3,
        "another container's attach ({took:?}) and detach ({both:?}) waited for the stuck attach"
    );

    let (r, slow_took) = slow.await.unwrap();
    let ip = attached_ip(&r);
    assert!(slow_took >= STALL, "the stall applied: {slow_took:?}");
    // The stuck attach completed whole: recorded, with its veth.
    let atts = attachment_keys(&inst).await;
    let (_, veth) = atts
        .iter()
        .find(|(k, _)| k == "pid:100")
        .unwrap_or_else(|| panic!("pid:100 is attached: {atts:?}"));
    assert!(has_link(&inst, veth).await, "its veth {veth} exists");
    // Attaching it again changes nothing and answers the same address.
    let again = c
        .call(support::requests::attach_pid(100, "web", Some("a"), None))
        .await
        .unwrap();
    assert_eq!(attached_ip(&again), ip);
    // Its lease survived the repair: the next container gets another address.
    let next = c
        .call(support::requests::attach_pid(102, "web", Some("a"), None))
        .await
        .unwrap();
    assert_ne!(attached_ip(&next), ip, "one address leased twice");
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detach_stuck_in_the_kernel_holds_up_no_other_container() {
    let inst = setup().await;
    let mut c = inst.client().await;
    let first = c
        .call(support::requests::attach_pid(100, "web", Some("a"), None))
        .await
        .unwrap();
    attached_ip(&first);
    inst.host.stall_next(Op::DetachVeth, STALL);
    let slow = inst
        .spawn_call(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 100 },
        })
        .await;
    inst.until_stalled().await;
    let t = Instant::now();
    let other = c
        .call(support::requests::attach_pid(101, "web", Some("b"), None))
        .await
        .unwrap();
    attached_ip(&other);
    let fixed = c.call(Request::Reconcile).await.unwrap();
    assert!(matches!(fixed, Response::Reconciled { .. }), "{fixed:?}");
    let took = t.elapsed();
    assert!(!slow.is_finished(), "the slow detach is still stalled");
    assert!(
        took < STALL / 3,
        "an attach on another network waited {took:?} for a stuck detach"
    );
    assert_eq!(slow.await.unwrap(), Response::Ok);
    let atts = attachment_keys(&inst).await;
    let keys: Vec<&str> = atts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        ["pid:101"],
        "the detach completed, the other attach stayed"
    );
    // A repeated detach is still `ok`.
    let again = c
        .call(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 100 },
        })
        .await
        .unwrap();
    assert_eq!(again, Response::Ok);
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_attach_of_the_same_container_waits_and_answers_the_same() {
    let inst = setup().await;
    inst.host.stall_next(Op::AttachVeth, STALL);
    let started = Instant::now();
    let slow = inst
        .spawn_call(support::requests::attach_pid(100, "web", Some("a"), None))
        .await;
    inst.until_stalled().await;
    let mut c = inst.client().await;
    let second = c
        .call(support::requests::attach_pid(100, "web", Some("a"), None))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= STALL,
        "the second attach answered before the first left the kernel ({:?})",
        started.elapsed()
    );
    let first = slow.await.unwrap();
    assert_eq!(attached_ip(&first), attached_ip(&second));
    let veths = inst
        .host
        .links()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.kind == overlayd_host::LinkKind::Veth)
        .count();
    assert_eq!(veths, 1, "one container, one veth");
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_taken_while_an_attach_was_in_the_kernel_fails_it_and_leaves_nothing() {
    let inst = setup().await;
    inst.host.stall_next(Op::AttachVeth, STALL);
    let slow = inst
        .spawn_call(support::requests::attach_pid(
            100,
            "web",
            Some("a"),
            Some("db"),
        ))
        .await;
    inst.until_stalled().await;
    let mut c = inst.client().await;
    let winner = c
        .call(support::requests::attach_pid(
            101,
            "web",
            Some("a"),
            Some("db"),
        ))
        .await
        .unwrap();
    let winner_ip = attached_ip(&winner);
    let (code, message) = support::inproc::err_code(slow.await.unwrap());
    assert_eq!(code, overlayd_proto::ErrorCode::Conflict, "{message}");
    assert!(message.contains("db"), "{message}");
    // The loser left nothing: no record, no veth beside the winner's.
    let atts = attachment_keys(&inst).await;
    let keys: Vec<&str> = atts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["pid:101"]);
    let veths: Vec<String> = inst
        .host
        .links()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.kind == overlayd_host::LinkKind::Veth)
        .map(|l| l.name)
        .collect();
    assert_eq!(veths, [atts[0].1.clone()]);
    // The name answers the winner only.
    let Response::DnsRecords { records, .. } = c.call(Request::ListDnsRecords).await.unwrap()
    else {
        panic!("list_dns_records");
    };
    let db: Vec<_> = records
        .iter()
        .filter(|r| r.name.starts_with("db."))
        .collect();
    assert_eq!(db.len(), 1, "{records:?}");
    assert_eq!(db[0].ips, [winner_ip]);
    let _ = inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_made_again_while_an_attach_is_in_the_kernel_gets_the_new_container_too() {
    let inst = setup().await;
    let mut c = inst.client().await;
    let Response::Networks { networks } = c.call(Request::ListNetworks).await.unwrap() else {
        panic!("list_networks");
    };
    let bridge = networks
        .iter()
        .find(|n| n.owner == "iso:a")
        .map(|n| n.name.clone())
        .expect("iso:a is recorded");
    // The veth is made (on the bridge of now), then the call stalls.
    inst.host.stall_next_after(Op::AttachVeth, STALL);
    let slow = inst
        .spawn_call(support::requests::attach_pid(100, "web", Some("a"), None))
        .await;
    inst.until_stalled().await;
    // Someone deletes the bridge; `doctor --fix` makes it again and
    // re-plugs its members — not the attach in flight, which is its own.
    assert!(inst.host.delete_link(&bridge).await.unwrap());
    let fixed = c.call(Request::Reconcile).await.unwrap();
    assert!(
        matches!(fixed, Response::Reconciled { recreated: 1, .. }),
        "{fixed:?}"
    );
    attached_ip(&slow.await.unwrap());
    let atts = attachment_keys(&inst).await;
    let (_, veth) = atts
        .iter()
        .find(|(k, _)| k == "pid:100")
        .unwrap_or_else(|| panic!("pid:100 is attached: {atts:?}"));
    let links = inst.host.links().await.unwrap();
    let b = links
        .iter()
        .find(|l| l.name == bridge)
        .expect("the bridge is back");
    let v = links
        .iter()
        .find(|l| &l.name == veth)
        .expect("the veth exists");
    assert_eq!(
        v.master,
        Some(b.index),
        "the new container is on the bridge that exists now"
    );
    let _ = inst.shutdown().await;
}
