//! Attach and detach as crash-safe state machines, in process with the fake
//! host: the states a `kill -9` leaves at each step (record written, veth
//! created but not yet tagged, tagged but unplugged, detach decided) are
//! rebuilt on disk and on the fake host, and a restarted daemon must leave
//! every container fully attached or fully detached — no stray veth, no
//! stranded lease — with `list_networks` (what `doctor` reads) reporting the
//! broken ones until `reconcile` (`doctor --fix`) repairs them.

mod support;

use std::sync::Arc;

use overlayd::daemon::plan;
use overlayd::daemon::records::{AttachState, Attachment, Lease};
use overlayd_host::{FakeHost, Host, LinkInfo, NetnsTarget, VethSpec};
use overlayd_proto::{Handle, NetworkView, Request, Response, ServiceMode};
use overlayd_state::{Store, Table};
use support::inproc::Instance;

fn attach(pid: u32) -> Request {
    Request::AttachContainer {
        handle: Handle::LinuxPid { pid },
        service: "web".into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: None,
        name: None,
        publish: Vec::new(),
    }
}

/// A node with service `web` (shared) and container `pid` attached.
async fn attached(pid: u32) -> Instance {
    let inst = Instance::start().await;
    inst.host.add_live_target(NetnsTarget::Pid(pid));
    let mut c = inst.client().await;
    c.call(Request::SetupServiceOverlay {
        service: "web".into(),
        mode: ServiceMode::Shared,
        recreate: false,
    })
    .await
    .unwrap();
    let r = c.call(attach(pid)).await.unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    inst
}

async fn networks(inst: &Instance) -> Vec<NetworkView> {
    let mut c = inst.client().await;
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => networks,
        r => panic!("{r:?}"),
    }
}

fn stored(data_dir: &std::path::Path, pid: u32) -> (Option<Attachment>, Vec<Lease>) {
    let store = Store::open(data_dir).unwrap();
    store
        .read(|tx| {
            let a = tx.get::<Attachment>(Table::Attachments, &format!("pid:{pid}"))?;
            let leases = tx
                .list::<Lease>(Table::Leases)?
                .into_iter()
                .map(|(_, l)| l)
                .filter(|l| l.holder == format!("pid:{pid}"))
                .collect();
            Ok((a, leases))
        })
        .unwrap()
}

fn set_state(data_dir: &std::path::Path, a: &Attachment, state: AttachState) {
    let store = Store::open(data_dir).unwrap();
    let mut a = a.clone();
    a.state = state;
    store
        .write(|tx| tx.put(Table::Attachments, &a.handle.key(), &a))
        .unwrap();
}

fn spec_of(a: &Attachment, bridge: &str, data_dir: &std::path::Path) -> VethSpec {
    VethSpec {
        host_ifname: a.host_ifname.clone(),
        alias: plan::attach_tag(&a.handle.key(), &a.id, &plan::instance_id(data_dir)),
        bridge: bridge.into(),
        target: NetnsTarget::Pid(match a.handle {
            Handle::LinuxPid { pid } => pid,
            _ => unreachable!(),
        }),
        container_ifname: "eth0".into(),
        address: format!("{}/{}", a.ip, a.prefix_len).parse().unwrap(),
        gateway: None,
        mtu: None,
        address_v6: None,
        gateway_v6: None,
    }
}

/// Stop the daemon; return the full record, the bridge name and what the
/// relaunch needs.
async fn stop(inst: Instance, pid: u32) -> (Attachment, String, Restart) {
    let bridge = networks(&inst)
        .await
        .into_iter()
        .find(|n| n.owner == "shared-nat")
        .unwrap()
        .name;
    let (host, wg, cfg) = (inst.host.clone(), inst.wg.clone(), inst.cfg.clone());
    let dir = inst.shutdown().await;
    let (rec, _) = stored(&cfg.data_dir, pid);
    (
        rec.expect("attachment recorded"),
        bridge,
        Restart { dir, host, wg, cfg },
    )
}

struct Restart {
    dir: tempfile::TempDir,
    host: Arc<FakeHost>,
    wg: Arc<overlayd_wg::FakeWg>,
    cfg: overlayd::config::Config,
}

impl Restart {
    async fn start(self) -> Instance {
        Instance::relaunch(self.dir, self.cfg, self.host, self.wg).await
    }
}

async fn link(host: &FakeHost, name: &str) -> Option<LinkInfo> {
    host.link(name).await.unwrap()
}

/// kill -9 after the veth was created, before its tag was written (the
/// kernel ignores the alias at creation): the untagged veth is recognised by
/// its tag-derived MAC and rolled back with the lease; the container then
/// attaches normally.
#[tokio::test]
async fn interrupted_attach_before_the_tag_is_rolled_back_at_start() {
    let inst = attached(200).await;
    let (rec, bridge, restart) = stop(inst, 200).await;
    // Rebuild the exact state of the crash: record `attaching`, the veth
    // created (peer in the container) but untagged and unplugged.
    set_state(&restart.cfg.data_dir, &rec, AttachState::Attaching);
    restart.host.detach_veth(&rec.host_ifname).await.unwrap();
    restart
        .host
        .leave_half_attached(&spec_of(&rec, &bridge, &restart.cfg.data_dir), false);
    let untagged = link(&restart.host, &rec.host_ifname).await.unwrap();
    assert_eq!(untagged.alias, None);

    let data_dir = restart.cfg.data_dir.clone();
    let inst = restart.start().await;
    assert!(
        link(&inst.host, &rec.host_ifname).await.is_none(),
        "the half-made veth is deleted at start"
    );
    assert!(inst
        .host
        .container_ifaces(&NetnsTarget::Pid(200))
        .is_empty());
    let mut c = inst.client().await;
    let r = c.call(attach(200)).await.unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    let veth = link(&inst.host, &rec.host_ifname).await.unwrap();
    assert!(veth.up && veth.master.is_some() && veth.alias.is_some());
    let dir = inst.shutdown().await;
    let (a, leases) = stored(&data_dir, 200);
    assert_eq!(a.unwrap().state, AttachState::Attached);
    assert_eq!(leases.len(), 1, "exactly one lease: {leases:?}");
    drop(dir);
}

/// kill -9 after the tag, before the veth was plugged into the bridge.
#[tokio::test]
async fn interrupted_attach_after_the_tag_is_rolled_back_at_start() {
    let inst = attached(201).await;
    let (rec, bridge, restart) = stop(inst, 201).await;
    set_state(&restart.cfg.data_dir, &rec, AttachState::Attaching);
    restart.host.detach_veth(&rec.host_ifname).await.unwrap();
    restart
        .host
        .leave_half_attached(&spec_of(&rec, &bridge, &restart.cfg.data_dir), true);
    let data_dir = restart.cfg.data_dir.clone();
    let inst = restart.start().await;
    assert!(link(&inst.host, &rec.host_ifname).await.is_none());
    let dir = inst.shutdown().await;
    let (a, leases) = stored(&data_dir, 201);
    assert!(a.is_none() && leases.is_empty(), "{a:?} {leases:?}");
    drop(dir);
}

/// kill -9 after detach was decided, before the veth was deleted.
#[tokio::test]
async fn interrupted_detach_is_completed_at_start() {
    let inst = attached(202).await;
    let (rec, _, restart) = stop(inst, 202).await;
    set_state(&restart.cfg.data_dir, &rec, AttachState::Detaching);
    let data_dir = restart.cfg.data_dir.clone();
    let inst = restart.start().await;
    assert!(link(&inst.host, &rec.host_ifname).await.is_none());
    let dir = inst.shutdown().await;
    let (a, leases) = stored(&data_dir, 202);
    assert!(a.is_none() && leases.is_empty(), "{a:?} {leases:?}");
    drop(dir);
}

/// An attached container someone unplugged: `doctor` (list_networks) names
/// it, a repeated attach does not answer `attached` for a container without
/// connectivity, and `doctor --fix` (reconcile) plugs it in again.
#[tokio::test]
async fn unplugged_container_is_reported_and_repaired() {
    let inst = attached(203).await;
    let (rec, _, restart) = stop(inst, 203).await;
    let inst = restart.start().await;
    inst.host.set_up(&rec.host_ifname, false).await.unwrap();
    let drift: Vec<String> = networks(&inst)
        .await
        .iter()
        .filter_map(|n| n.extra.get("attachment_drift"))
        .flat_map(|d| d.as_array().unwrap().clone())
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert!(drift[0].contains("pid:203"), "{drift:?}");
    let mut c = inst.client().await;
    let r = c.call(Request::Reconcile).await.unwrap();
    assert!(matches!(r, Response::Reconciled { .. }), "{r:?}");
    let veth = link(&inst.host, &rec.host_ifname).await.unwrap();
    assert!(veth.up && veth.master.is_some());
    assert!(networks(&inst)
        .await
        .iter()
        .all(|n| !n.extra.contains_key("attachment_drift")));

    // Unplugged again: a repeated attach repairs instead of claiming success.
    inst.host.set_up(&rec.host_ifname, false).await.unwrap();
    let r = c.call(attach(203)).await.unwrap();
    assert!(matches!(r, Response::Attached { .. }), "{r:?}");
    assert!(link(&inst.host, &rec.host_ifname).await.unwrap().up);
    let _ = inst.shutdown().await;
}
