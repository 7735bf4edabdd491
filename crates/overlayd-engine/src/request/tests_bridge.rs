//! Plans of bridge networks and isolation networks, decided in memory.

use ipnet::IpNet;
use overlayd_model::entry::KIND_LINUX_BRIDGE;
use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{plan_ensure, plan_remove, BridgeFacts, EnsureBridge, LinkFact, NewBridge};
use super::isolation::{plan_setup, plan_teardown, IsolationSetup, IsolationTeardown};
use super::*;
use crate::live::LiveLink;
use crate::tag::Tag;

const INST: &str = "inst1";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn iso(n: &str) -> Owner {
    Owner::Isolation(n.into())
}

fn tagged(name: &str, owner: &Owner, id: &str, inst: &str) -> LiveLink {
    let tag = Tag::network(owner, id)
        .unwrap()
        .in_instance(inst)
        .unwrap()
        .to_string();
    LiveLink::new(name, 7, "bridge", Some(&tag))
}

fn entry(owner: Owner, name: &str, id: &str, subnet: &str) -> NetworkEntry {
    NetworkEntry::new(owner, KIND_LINUX_BRIDGE, name, id, subnet)
}

fn new_facts(owner: Owner, live: Option<LiveLink>) -> EnsureBridge<'static> {
    EnsureBridge {
        facts: BridgeFacts::New(NewBridge {
            owner,
            name: "ovl-b-a".into(),
            subnet: net("10.201.0.0/24"),
            subnet_v6: None,
            fresh_id: "fresh".into(),
        }),
        requested: None,
        want6: WantV6::No,
        live,
        instance: INST,
    }
}

fn recorded_facts(e: NetworkEntry, live: Option<LiveLink>) -> EnsureBridge<'static> {
    EnsureBridge {
        facts: BridgeFacts::Recorded(e),
        requested: None,
        want6: WantV6::No,
        live,
        instance: INST,
    }
}

fn names(steps: &[&Step]) -> Vec<&'static str> {
    steps
        .iter()
        .map(|s| match s {
            Step::PutIsolation { .. } => "put-isolation",
            Step::RemoveIsolation { .. } => "remove-isolation",
            Step::PutService { .. } => "put-service",
            Step::RemoveService { .. } => "remove-service",
            Step::CreateBridge { .. } => "create-bridge",
            Step::AdoptBridge { .. } => "adopt-bridge",
            Step::ConfigureBridge { .. } => "configure-bridge",
            Step::DeleteBridge { .. } => "delete-bridge",
            Step::RecordEntry { .. } => "record",
            Step::ForgetEntry { .. } => "forget",
            Step::SyncFirewall => "firewall",
            Step::ApplyFirewall => "apply-firewall",
            Step::PutGlobal { .. } => "put-global",
            Step::RemoveGlobal { .. } => "remove-global",
            Step::SetGlobalPort { .. } => "global-port",
            Step::PutPeer { .. } => "put-peer",
            Step::RemovePeerRecord { .. } => "remove-peer-record",
            Step::ProgramPeer { .. } => "program-peer",
            Step::RemoveDevicePeer { .. } => "remove-device-peer",
            Step::RemoveAllowedIp { .. } => "remove-allowed-ip",
            Step::DeleteRoutes { .. } => "delete-routes",
            Step::ReservePort { .. } => "reserve-port",
            Step::ReleasePort { .. } => "release-port",
            Step::RealizeDevice { .. } => "device",
            Step::DeleteDevice { .. } => "delete-device",
            Step::Unreadable { .. } => "unreadable",
            Step::RequireAllRemoved { .. } => "require-removed",
            Step::DropLeases { .. } => "drop-leases",
            Step::ForgetPeers { .. } => "forget-peers",
            Step::ReleaseClusterSubnet { .. } => "release-cluster-subnet",
            Step::AddAddress { .. } => "add-address",
            Step::DeleteAddress { .. } => "delete-address",
            Step::SyncDnsListeners => "dns-listeners",
            Step::WriteDnsName { .. } => "write-dns",
            Step::ServeDnsName { .. } => "serve-dns",
        })
        .collect()
}

pub(super) fn steps_of(plan: &Plan) -> Vec<&'static str> {
    names(&plan.step_list())
}

pub(super) fn undo_of(plan: &Plan) -> Vec<&'static str> {
    names(&plan.rollback_order())
}

/// What the executor undoes when step `failed` fails: that step's own undo
/// when it may be half done, then the undo of the steps before it, last
/// first (best-effort steps never fail a plan).
pub(super) fn undo_at(plan: &Plan, failed: usize) -> Vec<Step> {
    let mut out = Vec::new();
    let failing = &plan.steps[failed];
    if failing.undo_if_failed {
        out.extend(failing.undo.iter().cloned());
    }
    for p in plan.steps[..failed].iter().rev() {
        out.extend(p.undo.iter().cloned());
    }
    out
}

pub(super) fn undo_names_at(plan: &Plan, failed: usize) -> Vec<&'static str> {
    let steps = undo_at(plan, failed);
    names(&steps.iter().collect::<Vec<_>>())
}

#[test]
fn a_new_network_is_created_configured_recorded_and_undone_in_reverse() {
    let p = plan_ensure(new_facts(iso("a"), None)).unwrap();
    assert!(p.created);
    assert_eq!(p.entry.id, "fresh");
    assert_eq!(p.entry.subnet, "10.201.0.0/24");
    assert_eq!(
        steps_of(&p.plan),
        ["create-bridge", "configure-bridge", "record", "firewall"]
    );
    // A failure after the last step forgets the entry (and re-applies the
    // firewall without it) before the bridge goes.
    assert_eq!(undo_of(&p.plan), ["forget", "firewall", "delete-bridge"]);
}

#[test]
fn a_tagged_unrecorded_bridge_is_adopted_with_its_own_id_and_still_undone() {
    let live = tagged("ovl-b-a", &iso("a"), "left-over", INST);
    let p = plan_ensure(new_facts(iso("a"), Some(live))).unwrap();
    assert_eq!(p.entry.id, "left-over");
    assert_eq!(
        steps_of(&p.plan),
        ["adopt-bridge", "configure-bridge", "record", "firewall"]
    );
    assert_eq!(undo_of(&p.plan), ["forget", "firewall", "delete-bridge"]);
}

#[test]
fn a_name_held_by_a_foreign_link_or_another_instance_is_refused() {
    let foreign = LiveLink::new("ovl-b-a", 3, "bridge", None);
    let e = plan_ensure(new_facts(iso("a"), Some(foreign))).unwrap_err();
    assert!(
        matches!(&e, Refusal::Conflict(m) if m.contains("does not own")),
        "{e}"
    );
    let other = tagged("ovl-b-a", &iso("a"), "x", "inst2");
    let e = plan_ensure(new_facts(iso("a"), Some(other))).unwrap_err();
    assert!(
        matches!(&e, Refusal::Conflict(m) if m.contains("another overlayd instance")),
        "{e}"
    );
    let other_owner = tagged("ovl-b-a", &iso("b"), "x", INST);
    assert!(matches!(
        plan_ensure(new_facts(iso("a"), Some(other_owner))),
        Err(Refusal::Conflict(_))
    ));
}

#[test]
fn a_dual_stack_request_needs_an_ipv4_primary() {
    let mut f = new_facts(iso("a"), None);
    if let BridgeFacts::New(n) = &mut f.facts {
        n.subnet = net("fd00:1::/64");
    }
    f.want6 = WantV6::Auto;
    assert!(matches!(plan_ensure(f), Err(Refusal::Invalid(_))));
    let mut f = new_facts(iso("a"), None);
    if let BridgeFacts::New(n) = &mut f.facts {
        n.subnet_v6 = Some(net("fd42::/64"));
    }
    f.want6 = WantV6::Auto;
    let p = plan_ensure(f).unwrap();
    assert_eq!(p.entry.subnet_v6.as_deref(), Some("fd42::/64"));
}

#[test]
fn a_recorded_network_is_confirmed_or_recreated_without_undo() {
    let e = entry(iso("a"), "ovl-b-a", "id1", "10.201.0.0/24");
    let live = tagged("ovl-b-a", &iso("a"), "id1", INST);
    let p = plan_ensure(recorded_facts(e.clone(), Some(live))).unwrap();
    assert!(!p.created);
    assert_eq!(steps_of(&p.plan), ["configure-bridge"]);
    let p = plan_ensure(recorded_facts(e, None)).unwrap();
    assert_eq!(steps_of(&p.plan), ["create-bridge", "configure-bridge"]);
    // Recorded: it should exist, so nothing deletes it again.
    assert!(undo_of(&p.plan).is_empty());
}

#[test]
fn a_recorded_network_refuses_another_subnet_shape_or_a_foreign_link() {
    let e = entry(iso("a"), "ovl-b-a", "id1", "10.201.0.0/24");
    let mut f = recorded_facts(e.clone(), None);
    f.requested = Some(net("10.201.9.0/24"));
    let err = plan_ensure(f).unwrap_err();
    assert!(
        err.to_string()
            .contains("already exists with subnet 10.201.0.0/24"),
        "{err}"
    );
    let mut f = recorded_facts(e.clone(), None);
    f.requested = Some(net("10.201.0.0/24"));
    plan_ensure(f).unwrap();
    let mut f = recorded_facts(e.clone(), None);
    f.want6 = WantV6::Auto;
    assert!(matches!(plan_ensure(f), Err(Refusal::Conflict(_))));
    let wrong_id = tagged("ovl-b-a", &iso("a"), "id2", INST);
    let err = plan_ensure(recorded_facts(e, Some(wrong_id))).unwrap_err();
    assert!(err.to_string().contains("is not overlayd's iso:a"), "{err}");
}

#[test]
fn removal_is_refused_while_attached_and_tries_every_object_first() {
    let mut e = entry(
        Owner::Service("db".into()),
        "ovl-b-db",
        "id1",
        "10.208.0.0/24",
    );
    e.interface = Some("ovl-w-db".into());
    e.wg_port = Some(51821);
    let live = LinkFact::Present(tagged("ovl-b-db", &e.owner, "id1", INST));
    let err = plan_remove(&e, live.clone(), 2).unwrap_err();
    assert_eq!(
        err,
        Refusal::Conflict("service:db still has 2 attached container(s); detach them first".into())
    );
    let p = plan_remove(&e, live, 0).unwrap();
    assert_eq!(
        steps_of(&p),
        [
            "delete-device",
            "delete-bridge",
            "require-removed",
            "forget",
            "release-port",
            "drop-leases",
            "firewall"
        ]
    );
    let best_effort: Vec<bool> = p.steps.iter().map(|s| s.best_effort).collect();
    assert_eq!(best_effort[..3], [true, true, false]);
    assert!(undo_of(&p).is_empty(), "a removal is finished, not undone");
}

#[test]
fn removal_never_deletes_a_bridge_that_is_not_ours_and_reports_an_unreadable_one() {
    let e = entry(iso("a"), "ovl-b-a", "id1", "10.201.0.0/24");
    let foreign = LinkFact::Present(LiveLink::new("ovl-b-a", 3, "bridge", None));
    assert_eq!(
        steps_of(&plan_remove(&e, foreign, 0).unwrap()),
        ["require-removed", "forget", "drop-leases", "firewall"]
    );
    let p = plan_remove(&e, LinkFact::Unreadable("netlink: EBUSY".into()), 0).unwrap();
    assert_eq!(p.steps[0].step.subject(), "bridge ovl-b-a");
    assert!(p.steps[0].best_effort);
}

fn iso_setup(
    internal: bool,
    previous: Option<IsolationDesired>,
    recorded: bool,
) -> IsolationSetup<'static> {
    let bridge = if recorded {
        recorded_facts(entry(iso("a"), "ovl-b-a", "id1", "10.201.0.0/24"), None)
    } else {
        new_facts(iso("a"), None)
    };
    IsolationSetup {
        network: "a".into(),
        internal,
        previous,
        bridge,
    }
}

#[test]
fn a_plain_isolation_network_records_its_desired_state_last() {
    let p = plan_setup(iso_setup(false, None, false)).unwrap();
    assert_eq!(
        steps_of(&p.plan),
        [
            "create-bridge",
            "configure-bridge",
            "record",
            "firewall",
            "put-isolation"
        ]
    );
    match p.plan.steps.last().map(|s| &s.step) {
        Some(Step::PutIsolation { record, unbury, .. }) => {
            assert_eq!(record.subnet, "10.201.0.0/24");
            assert!(!record.internal);
            assert_eq!(unbury.as_ref(), Some(&iso("a")));
        }
        s => panic!("{s:?}"),
    }
}

#[test]
fn an_internal_network_is_desired_before_its_bridge_and_the_record_is_undone() {
    let p = plan_setup(iso_setup(true, None, false)).unwrap();
    assert_eq!(
        steps_of(&p.plan),
        [
            "put-isolation",
            "create-bridge",
            "configure-bridge",
            "record",
            "firewall",
            "put-isolation"
        ]
    );
    assert_eq!(
        undo_of(&p.plan),
        ["forget", "firewall", "delete-bridge", "remove-isolation"]
    );
    // A previous desired record is put back rather than removed.
    let prev = IsolationDesired {
        subnet: "10.201.0.0/24".into(),
        internal: true,
        subnet_v6: None,
    };
    let p = plan_setup(iso_setup(true, Some(prev.clone()), false)).unwrap();
    assert_eq!(
        p.plan.rollback_order().last(),
        Some(&&Step::PutIsolation {
            network: "a".into(),
            record: prev,
            unbury: None
        })
    );
}

#[test]
fn a_recorded_isolation_network_keeps_its_internal_flag() {
    let internal = IsolationDesired {
        internal: true,
        ..Default::default()
    };
    let err = plan_setup(iso_setup(false, Some(internal.clone()), true)).unwrap_err();
    assert!(err.to_string().contains("exists and is internal"), "{err}");
    let err = plan_setup(iso_setup(true, None, true)).unwrap_err();
    assert!(
        err.to_string().contains("exists and is not internal"),
        "{err}"
    );
    let p = plan_setup(iso_setup(true, Some(internal), true)).unwrap();
    assert_eq!(
        steps_of(&p.plan),
        [
            "put-isolation",
            "create-bridge",
            "configure-bridge",
            "put-isolation"
        ]
    );
}

#[test]
fn teardown_of_an_unknown_network_decides_nothing_and_of_a_known_one_buries_it_first() {
    let t = |desired, recorded: Option<NetworkEntry>, attached| IsolationTeardown {
        network: "a".into(),
        desired,
        recorded,
        bridge: LinkFact::Absent,
        attached,
    };
    assert_eq!(
        plan_teardown(t(false, None, 0)).unwrap(),
        Teardown::NotRecorded
    );
    assert!(matches!(
        plan_teardown(t(true, None, 1)),
        Err(Refusal::Conflict(_))
    ));
    let Teardown::Remove(p) = plan_teardown(t(true, None, 0)).unwrap() else {
        panic!()
    };
    assert_eq!(steps_of(&p), ["remove-isolation"]);
    let e = entry(iso("a"), "ovl-b-a", "id1", "10.201.0.0/24");
    let Teardown::Remove(p) = plan_teardown(t(false, Some(e), 0)).unwrap() else {
        panic!()
    };
    assert_eq!(
        steps_of(&p),
        [
            "remove-isolation",
            "require-removed",
            "forget",
            "drop-leases",
            "firewall"
        ]
    );
}

#[test]
fn plans_never_show_a_private_key() {
    let mut e = entry(
        Owner::Service("db".into()),
        "ovl-b-db",
        "id1",
        "10.208.0.0/24",
    );
    e.wg_private_key = Some("SECRETKEYMATERIAL".into());
    let mut p = plan_remove(&e, LinkFact::Absent, 0).unwrap();
    p.push(Step::RecordEntry { entry: e.clone() });
    p.push(Step::PutService {
        service: "db".into(),
        record: ServiceDesired {
            kind: ServiceKind::Dedicated,
            wg_port: Some(1),
            wg_private_key: e.wg_private_key.clone(),
        },
        unbury: None,
    });
    let s = format!("{p:?}");
    assert!(!s.contains("SECRETKEYMATERIAL"), "{s}");
    assert!(s.contains("<redacted>"));
}
