//! Plans of service set-ups and teardowns, decided in memory.

use overlayd_model::entry::KIND_LINUX_BRIDGE;
use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{BridgeFacts, EnsureBridge, LinkFact, NewBridge};
use super::service::*;
use super::tests_bridge::{steps_of, undo_of};
use super::*;

const INST: &str = "inst1";

fn db() -> Owner {
    Owner::Service("db".into())
}

fn dedicated_entry(with_identity: bool) -> NetworkEntry {
    let mut e = NetworkEntry::new(db(), KIND_LINUX_BRIDGE, "ovl-b-db", "id1", "10.208.3.0/24");
    if with_identity {
        e.wg_port = Some(51821);
        e.wg_private_key = Some("PRIV".into());
        e.wg_public_key = Some("PUB".into());
        e.interface = Some("ovl-w-db".into());
    }
    e
}

fn change(kind: ServiceKind, recorded: Option<ServiceKind>, recreate: bool) -> ServiceChange {
    ServiceChange {
        service: "db".into(),
        kind,
        recorded,
        recreate,
        attachments: Vec::new(),
        dedicated: (recorded == Some(ServiceKind::Dedicated)).then(|| dedicated_entry(true)),
        dedicated_bridge: LinkFact::Absent,
        dedicated_attached: 0,
    }
}

#[test]
fn a_confirmed_mode_changes_nothing() {
    let k = ServiceKind::Dedicated;
    assert!(plan_change(change(k, Some(k), false)).unwrap().is_empty());
    let k = ServiceKind::Shared;
    assert!(plan_change(change(k, Some(k), false)).unwrap().is_empty());
    assert!(plan_change(change(k, None, false)).unwrap().is_empty());
}

#[test]
fn a_mode_change_or_recreate_under_attached_containers_is_refused() {
    let mut c = change(ServiceKind::Shared, Some(ServiceKind::Dedicated), true);
    c.attachments = vec!["service:db".into()];
    let e = plan_change(c).unwrap_err();
    assert!(
        e.to_string()
            .contains("service db is dedicated with attached containers"),
        "{e}"
    );
    // Containers on another network (of another mode) do not hold it.
    let mut c = change(ServiceKind::Shared, Some(ServiceKind::Dedicated), true);
    c.attachments = vec!["shared-nat".into()];
    plan_change(c).unwrap();
}

#[test]
fn recreate_and_leaving_dedicated_remove_the_network_with_its_peers() {
    let p = plan_change(change(
        ServiceKind::Dedicated,
        Some(ServiceKind::Dedicated),
        true,
    ))
    .unwrap();
    assert_eq!(
        steps_of(&p),
        [
            "delete-device",
            "require-removed",
            "forget",
            "release-port",
            "drop-leases",
            "firewall",
            "forget-peers"
        ]
    );
    let p = plan_change(change(
        ServiceKind::Shared,
        Some(ServiceKind::Dedicated),
        true,
    ))
    .unwrap();
    assert_eq!(steps_of(&p).last(), Some(&"forget-peers"));
    // A dedicated network whose removal would strand containers is refused.
    let mut c = change(ServiceKind::Shared, Some(ServiceKind::Dedicated), true);
    c.dedicated_attached = 1;
    assert!(matches!(plan_change(c), Err(Refusal::Conflict(_))));
}

fn new_bridge() -> EnsureBridge<'static> {
    EnsureBridge {
        facts: BridgeFacts::New(NewBridge {
            owner: db(),
            name: "ovl-b-db".into(),
            subnet: "10.208.3.0/24".parse().unwrap(),
            subnet_v6: None,
            fresh_id: "id1".into(),
        }),
        requested: None,
        want6: WantV6::No,
        live: None,
        instance: INST,
    }
}

fn fresh() -> Option<FreshIdentity> {
    Some(FreshIdentity {
        private_key: "NEWPRIV".into(),
        public_key: "NEWPUB".into(),
    })
}

fn setup(
    bridge: EnsureBridge<'static>,
    new_port: Option<u16>,
    existing: Option<ServiceDesired>,
) -> DedicatedSetup<'static> {
    DedicatedSetup {
        service: "db".into(),
        bridge,
        new_port,
        identity: fresh(),
        device: "ovl-w-db".into(),
        existing,
    }
}

#[test]
fn a_new_dedicated_service_holds_a_port_first_and_undoes_everything_last_first() {
    let p = plan_dedicated(setup(new_bridge(), Some(51821), None)).unwrap();
    assert!(p.created);
    assert_eq!(p.entry.wg_port, Some(51821));
    assert_eq!(p.entry.wg_public_key.as_deref(), Some("NEWPUB"));
    assert_eq!(p.entry.interface.as_deref(), Some("ovl-w-db"));
    assert_eq!(
        steps_of(&p.plan),
        [
            "reserve-port",
            "create-bridge",
            "configure-bridge",
            "record",
            "firewall",
            "record",
            "device",
            // The device is let through the firewall at once.
            "firewall",
            "put-service"
        ]
    );
    assert_eq!(
        undo_of(&p.plan),
        [
            "delete-device",
            "forget",
            "firewall",
            "delete-bridge",
            "release-port"
        ]
    );
    // The device may be half made when it fails: its own undo runs too.
    let device = p
        .plan
        .steps
        .iter()
        .find(|s| matches!(s.step, Step::RealizeDevice { .. }));
    assert!(device.unwrap().undo_if_failed);
    match &p.plan.steps.last().unwrap().step {
        Step::PutService { record, unbury, .. } => {
            assert_eq!(record.kind, ServiceKind::Dedicated);
            assert_eq!(record.wg_port, Some(51821));
            assert_eq!(record.wg_private_key.as_deref(), Some("NEWPRIV"));
            assert_eq!(unbury.as_ref(), Some(&db()));
        }
        s => panic!("{s:?}"),
    }
}

fn recorded_bridge(e: NetworkEntry) -> EnsureBridge<'static> {
    EnsureBridge {
        facts: BridgeFacts::Recorded(e),
        requested: None,
        want6: WantV6::No,
        live: None,
        instance: INST,
    }
}

#[test]
fn a_recorded_dedicated_service_keeps_its_port_and_key_and_writes_nothing_again() {
    let existing = ServiceDesired {
        kind: ServiceKind::Dedicated,
        wg_port: Some(51821),
        wg_private_key: Some("PRIV".into()),
    };
    let mut s = setup(recorded_bridge(dedicated_entry(true)), None, Some(existing));
    s.identity = None;
    let p = plan_dedicated(s).unwrap();
    assert!(!p.created);
    assert_eq!(p.entry.wg_private_key.as_deref(), Some("PRIV"));
    assert_eq!(p.entry.wg_port, Some(51821));
    // Bridge gone: made again; the device brought up; nothing undone (it
    // is recorded) and no record written (it is already as it should be).
    assert_eq!(
        steps_of(&p.plan),
        ["create-bridge", "configure-bridge", "device"]
    );
    assert!(undo_of(&p.plan).is_empty());
}

#[test]
fn a_recorded_network_without_identity_gets_one_and_gives_it_back_on_failure() {
    let bare = dedicated_entry(false);
    let p = plan_dedicated(setup(recorded_bridge(bare.clone()), Some(51822), None)).unwrap();
    assert_eq!(
        steps_of(&p.plan),
        [
            "reserve-port",
            "create-bridge",
            "configure-bridge",
            "record",
            "device",
            "firewall",
            "put-service"
        ]
    );
    assert_eq!(
        p.plan.rollback_order(),
        vec![
            &Step::RecordEntry { entry: bare },
            &Step::ReleasePort { port: 51822 }
        ]
    );
    let mut s = setup(recorded_bridge(dedicated_entry(false)), None, None);
    s.identity = None;
    assert!(matches!(plan_dedicated(s), Err(Refusal::State(_))));
}

#[test]
fn a_shared_service_ensures_shared_nat_and_records_itself_once() {
    let shared = || EnsureBridge {
        facts: BridgeFacts::Recorded(NetworkEntry::new(
            Owner::SharedNat,
            KIND_LINUX_BRIDGE,
            "ovl-b-nat",
            "n1",
            "10.201.0.0/24",
        )),
        requested: None,
        want6: WantV6::No,
        live: None,
        instance: INST,
    };
    let p = plan_shared("web", shared(), None).unwrap();
    assert_eq!(
        steps_of(&p.plan),
        ["create-bridge", "configure-bridge", "put-service"]
    );
    let rec = ServiceDesired {
        kind: ServiceKind::Shared,
        wg_port: None,
        wg_private_key: None,
    };
    let p = plan_shared("web", shared(), Some(&rec)).unwrap();
    assert_eq!(steps_of(&p.plan), ["create-bridge", "configure-bridge"]);
}

#[test]
fn teardown_decides_by_the_recorded_mode() {
    let t = |desired, dedicated: Option<NetworkEntry>, attachments: Vec<&str>| ServiceTeardown {
        service: "db".into(),
        desired,
        dedicated,
        attachments: attachments.into_iter().map(str::to_string).collect(),
        dedicated_bridge: LinkFact::Absent,
        dedicated_attached: 0,
    };
    assert_eq!(
        plan_teardown(t(None, None, vec![])).unwrap(),
        Teardown::NotRecorded
    );
    let e = plan_teardown(t(Some(ServiceKind::Shared), None, vec!["shared-nat"])).unwrap_err();
    assert_eq!(
        e,
        Refusal::Conflict("service db still has 1 attached container(s); detach them first".into())
    );
    let Teardown::Remove(p) = plan_teardown(t(Some(ServiceKind::Shared), None, vec![])).unwrap()
    else {
        panic!()
    };
    assert_eq!(steps_of(&p), ["remove-service"]);
    // No record but a recorded network: dedicated, removed with its peers
    // and its cluster subnet lease.
    let Teardown::Remove(p) =
        plan_teardown(t(None, Some(dedicated_entry(true)), vec!["shared-nat"])).unwrap()
    else {
        panic!()
    };
    assert_eq!(
        steps_of(&p),
        [
            "remove-service",
            "delete-device",
            "require-removed",
            "forget",
            "release-port",
            "drop-leases",
            "firewall",
            "forget-peers",
            "release-cluster-subnet"
        ]
    );
}
