//! Plans of the base overlay, decided in memory.

use overlayd_model::entry::KIND_LINUX_BRIDGE;
use overlayd_model::{NetworkEntry, Owner};

use super::bridge::{BridgeFacts, EnsureBridge, LinkFact, NewBridge};
use super::global::*;
use super::tests_bridge::{steps_of, undo_of};
use super::*;

fn rec(slice: &str, port: u16) -> GlobalDesired {
    GlobalDesired {
        deployment: "d".into(),
        instance_id: "i".into(),
        cluster_cidr: "10.200.0.0/16".into(),
        slice_cidr: slice.into(),
        wg_port: port,
        nat_enabled: false,
    }
}

fn base(slice: &str, port: Option<u16>) -> NetworkEntry {
    let mut e = NetworkEntry::new(Owner::Base, KIND_LINUX_BRIDGE, "ovl-b-base", "b1", slice);
    if let Some(p) = port {
        e.wg_port = Some(p);
        e.interface = Some("ovl-w-base".into());
        e.wg_public_key = Some("NODEPUB".into());
    }
    e
}

fn check_with(networks: &[NetworkEntry], port: u16, cluster: &str) -> Result<(), Refusal> {
    let cluster: ipnet::IpNet = cluster.parse().unwrap();
    // The slice is the cluster's first /24 unless the cluster is 10.99/16,
    // which is checked with a slice outside it.
    let slice = match cluster.to_string().as_str() {
        "10.99.0.0/16" => "10.200.1.0/24".parse().unwrap(),
        _ => ipnet::IpNet::new(cluster.network(), 24).unwrap(),
    };
    check(GlobalCheck {
        cluster,
        slice,
        wg_port: port,
        networks,
        local_pool: "10.201.0.0/16",
    })
}

#[test]
fn a_set_up_is_refused_for_port_0_a_dedicated_port_or_an_overlapping_cluster() {
    check_with(&[], 51820, "10.200.0.0/16").unwrap();
    assert!(matches!(
        check_with(&[], 0, "10.200.0.0/16"),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        check_with(&[], 51820, "10.99.0.0/16"),
        Err(Refusal::Invalid(_))
    ));
    let mut svc = NetworkEntry::new(
        Owner::Service("db".into()),
        KIND_LINUX_BRIDGE,
        "b",
        "i",
        "10.201.0.0/24",
    );
    svc.wg_port = Some(51821);
    let e = check_with(std::slice::from_ref(&svc), 51821, "10.200.0.0/16").unwrap_err();
    assert!(
        e.to_string().contains("dedicated overlay of service:db"),
        "{e}"
    );
    let e = check_with(&[svc], 51820, "10.201.0.0/16").unwrap_err();
    assert!(
        e.to_string()
            .contains("overlaps service:db's subnet 10.201.0.0/24"),
        "{e}"
    );
    // The base network's own port and subnet are its own.
    check_with(
        &[base("10.200.1.0/24", Some(51820))],
        51820,
        "10.200.0.0/16",
    )
    .unwrap();
}

#[test]
fn only_a_changed_slice_removes_the_base_first_and_never_under_containers() {
    let (old, new) = (rec("10.200.1.0/24", 51820), rec("10.200.2.0/24", 51820));
    let sc = |previous, attached| SliceChange {
        previous,
        rec: &new,
        base: Some(base("10.200.1.0/24", Some(51820))),
        base_bridge: LinkFact::Absent,
        base_attached: attached,
    };
    assert!(plan_slice_change(sc(None, 0)).unwrap().is_empty());
    let same = rec("10.200.2.0/24", 51999);
    assert!(plan_slice_change(sc(Some(&same), 3)).unwrap().is_empty());
    let e = plan_slice_change(sc(Some(&old), 1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("the node slice is 10.200.1.0/24 with attached containers"),
        "{e}"
    );
    assert_eq!(
        steps_of(&plan_slice_change(sc(Some(&old), 0)).unwrap()),
        [
            "delete-device",
            "require-removed",
            "forget",
            "release-port",
            "drop-leases",
            "firewall"
        ]
    );
}

fn setup(
    bridge: EnsureBridge<'static>,
    previous: Option<GlobalDesired>,
    port: u16,
) -> BaseSetup<'static> {
    BaseSetup {
        rec: rec("10.200.1.0/24", port),
        previous,
        band_port: 51820,
        bridge,
        device: "ovl-w-base".into(),
        public_key: "NODEPUB".into(),
    }
}

#[test]
fn a_new_base_is_desired_first_and_undone_to_nothing() {
    let bridge = EnsureBridge {
        facts: BridgeFacts::New(NewBridge {
            owner: Owner::Base,
            name: "ovl-b-base".into(),
            subnet: "10.200.1.0/24".parse().unwrap(),
            subnet_v6: None,
            fresh_id: "b1".into(),
        }),
        requested: Some("10.200.1.0/24".parse().unwrap()),
        want6: WantV6::No,
        live: None,
        instance: "inst",
    };
    let p = plan_base(setup(bridge, None, 51820)).unwrap();
    assert_eq!(p.entry.interface.as_deref(), Some("ovl-w-base"));
    assert_eq!(
        steps_of(&p.plan),
        [
            "put-global",
            "global-port",
            "create-bridge",
            "configure-bridge",
            "record",
            "firewall",
            "record",
            "device",
            "apply-firewall"
        ]
    );
    assert_eq!(
        undo_of(&p.plan),
        [
            "delete-device",
            "forget",
            "firewall",
            "delete-bridge",
            "global-port",
            "remove-global"
        ]
    );
}

fn recorded(e: NetworkEntry) -> EnsureBridge<'static> {
    EnsureBridge {
        facts: BridgeFacts::Recorded(e),
        requested: Some("10.200.1.0/24".parse().unwrap()),
        want6: WantV6::No,
        live: None,
        instance: "inst",
    }
}

#[test]
fn a_repeated_set_up_rewrites_nothing_and_a_port_change_gives_the_old_entry_back() {
    let prev = rec("10.200.1.0/24", 51820);
    let p = plan_base(setup(
        recorded(base("10.200.1.0/24", Some(51820))),
        Some(prev.clone()),
        51820,
    ))
    .unwrap();
    assert_eq!(
        steps_of(&p.plan),
        [
            "put-global",
            "global-port",
            "create-bridge",
            "configure-bridge",
            "device",
            "apply-firewall"
        ]
    );
    assert_eq!(undo_of(&p.plan), ["global-port", "put-global"]);
    let old = base("10.200.1.0/24", Some(51820));
    let p = plan_base(setup(recorded(old.clone()), Some(prev.clone()), 60000)).unwrap();
    assert_eq!(p.entry.wg_port, Some(60000));
    assert_eq!(
        p.plan.rollback_order(),
        vec![
            &Step::RecordEntry { entry: old },
            &Step::SetGlobalPort { port: 51820 },
            &Step::PutGlobal { record: prev }
        ]
    );
}

#[test]
fn teardown_forgets_the_desired_overlay_first_and_refuses_under_containers() {
    let b = base("10.200.1.0/24", Some(51820));
    let e = plan_teardown(Some(&b), LinkFact::Absent, 2, 51820).unwrap_err();
    assert!(e.to_string().contains("base still has 2 attached"), "{e}");
    let p = plan_teardown(Some(&b), LinkFact::Absent, 0, 51820).unwrap();
    assert_eq!(
        steps_of(&p),
        [
            "remove-global",
            "global-port",
            "delete-device",
            "require-removed",
            "forget",
            "release-port",
            "drop-leases",
            "firewall"
        ]
    );
    assert_eq!(
        steps_of(&plan_teardown(None, LinkFact::Absent, 0, 51820).unwrap()),
        ["remove-global", "global-port"]
    );
}
