//! `move_network` decided in memory: every refusal, in the order the
//! request is read, and the undo of a move failing at each step.

use ipnet::IpNet;
use overlayd_model::entry::{KIND_HCN_INTERNAL, KIND_LINUX_BRIDGE};
use overlayd_model::{NetworkEntry, Owner};

use super::relocate::{check_move, plan_move, MoveFacts, MoveRequest};
use super::tests_bridge::{steps_of, undo_at, undo_names_at};
use super::*;
use crate::live::LiveLink;
use crate::tag::Tag;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn iso(n: &str) -> Owner {
    Owner::Isolation(n.into())
}

fn entry(owner: Owner, subnet: &str) -> NetworkEntry {
    NetworkEntry::new(owner, KIND_LINUX_BRIDGE, "ovl-b-x", "id1", subnet)
}

fn dedicated() -> NetworkEntry {
    let mut e = entry(Owner::Service("db".into()), "10.220.5.0/24");
    e.interface = Some("ovl-w-db".into());
    e.wg_port = Some(51821);
    e
}

fn ours(e: &NetworkEntry) -> LiveLink {
    let tag = Tag::network(&e.owner, &e.id)
        .unwrap()
        .in_instance("inst1")
        .unwrap()
        .to_string();
    LiveLink::new(&e.name, 7, "bridge", Some(&tag))
}

fn request<'a>(
    owner: Owner,
    entry: Option<NetworkEntry>,
    attached: usize,
    requested: Option<&'a str>,
    peers: &'a [(String, IpNet)],
) -> MoveRequest<'a> {
    MoveRequest {
        owner,
        entry,
        attached,
        requested,
        peer_cidrs: peers,
    }
}

#[test]
fn the_base_an_unknown_or_a_foreign_network_is_refused() {
    let e = check_move(request(Owner::Base, None, 0, None, &[])).unwrap_err();
    assert!(
        matches!(&e, Refusal::Invalid(m) if m.contains("--slice")),
        "{e:?}"
    );
    let e = check_move(request(iso("nosuch"), None, 0, Some("junk"), &[])).unwrap_err();
    assert_eq!(
        e,
        Refusal::NotFound("no network iso:nosuch is recorded on this node".into()),
        "an unknown network is named before the subnet is read"
    );
    let mut hcn = entry(iso("w"), "10.201.0.0/24");
    hcn.kind = KIND_HCN_INTERNAL.into();
    let e = check_move(request(iso("w"), Some(hcn), 0, None, &[])).unwrap_err();
    assert!(matches!(&e, Refusal::Unsupported(m) if m.contains("another platform")));
}

#[test]
fn a_network_with_containers_is_refused_before_its_subnet_is_read() {
    let e = entry(iso("a"), "10.201.0.0/24");
    let r = check_move(request(iso("a"), Some(e), 2, Some("junk"), &[])).unwrap_err();
    assert_eq!(
        r,
        Refusal::Conflict("iso:a still has 2 attached container(s); detach them first".into())
    );
}

#[test]
fn a_requested_subnet_must_parse_differ_and_avoid_every_peer() {
    let e = || Some(entry(iso("a"), "10.201.0.0/24"));
    let peers = vec![("service:db".to_string(), net("10.201.7.0/24"))];
    for (bad, why) in [
        ("junk", "is not a CIDR"),
        ("10.201.1.1/24", "host bits"),
        ("10.201.0.0/24", "already uses 10.201.0.0/24"),
    ] {
        let r = check_move(request(iso("a"), e(), 0, Some(bad), &peers)).unwrap_err();
        assert!(
            matches!(&r, Refusal::Invalid(m) if m.contains(why)),
            "{bad}: {r:?}"
        );
    }
    let r = check_move(request(iso("a"), e(), 0, Some("10.201.0.0/16"), &peers)).unwrap_err();
    assert_eq!(
        r,
        Refusal::Conflict(
            "subnet 10.201.0.0/16 overlaps 10.201.7.0/24, allowed IPs of a peer on service:db; choose another subnet".into()
        )
    );
    let t = check_move(request(iso("a"), e(), 0, Some("10.201.9.0/24"), &peers)).unwrap();
    assert_eq!(t.old, net("10.201.0.0/24"));
    assert_eq!(t.requested, Some(net("10.201.9.0/24")));
    let t = check_move(request(iso("a"), e(), 0, None, &peers)).unwrap();
    assert_eq!(t.requested, None, "the planner chooses");
}

#[test]
fn an_isolation_network_moves_records_first_and_undoes_each_step_in_reverse() {
    let e = entry(iso("a"), "10.201.0.0/24");
    let old_record = IsolationDesired {
        subnet: "10.201.0.0/24".into(),
        internal: true,
        subnet_v6: None,
    };
    let p = plan_move(MoveFacts {
        entry: e.clone(),
        subnet: net("10.201.1.0/24"),
        bridge: Some(ours(&e)),
        isolation: Some(old_record.clone()),
    })
    .unwrap();
    assert_eq!(p.entry.subnet, "10.201.1.0/24");
    assert_eq!((&p.entry.name, &p.entry.id), (&e.name, &e.id));
    assert_eq!(
        steps_of(&p.plan),
        [
            "record",
            "put-isolation",
            "delete-address",
            "configure-bridge",
            "firewall",
            "dns-listeners"
        ]
    );
    // The desired record keeps its flags, with the new subnet.
    assert!(p.plan.steps.iter().any(|s| s.step
        == Step::PutIsolation {
            network: "a".into(),
            record: IsolationDesired {
                subnet: "10.201.1.0/24".into(),
                ..old_record.clone()
            },
            unbury: None,
        }));
    // Failing at the store write puts the old entry back.
    assert_eq!(undo_names_at(&p.plan, 1), ["record"]);
    // Failing while the new gateway goes on: it comes off, the old one
    // back on, then the records as they were.
    let undo = undo_at(&p.plan, 3);
    assert_eq!(
        undo,
        vec![
            Step::DeleteAddress {
                link: "ovl-b-x".into(),
                addr: net("10.201.1.1/24"),
            },
            Step::AddAddress {
                link: "ovl-b-x".into(),
                addr: net("10.201.0.1/24"),
            },
            Step::PutIsolation {
                network: "a".into(),
                record: old_record,
                unbury: None,
            },
            Step::RecordEntry { entry: e },
        ]
    );
}

#[test]
fn an_isolation_network_without_a_desired_record_gets_one_and_loses_it_on_undo() {
    let e = entry(iso("a"), "10.201.0.0/24");
    let p = plan_move(MoveFacts {
        entry: e.clone(),
        subnet: net("10.201.1.0/24"),
        bridge: Some(ours(&e)),
        isolation: None,
    })
    .unwrap();
    assert_eq!(
        p.plan.steps[1].step,
        Step::PutIsolation {
            network: "a".into(),
            record: IsolationDesired {
                subnet: "10.201.1.0/24".into(),
                internal: false,
                subnet_v6: None,
            },
            unbury: None,
        }
    );
    assert_eq!(
        p.plan.steps[1].undo,
        vec![Step::RemoveIsolation {
            network: "a".into(),
            bury: None,
        }]
    );
}

#[test]
fn a_dedicated_service_moves_its_device_address_too_and_undoes_it_first() {
    let e = dedicated();
    let p = plan_move(MoveFacts {
        entry: e.clone(),
        subnet: net("10.220.9.0/24"),
        bridge: Some(ours(&e)),
        isolation: None,
    })
    .unwrap();
    assert_eq!(p.entry.interface, e.interface);
    assert_eq!(p.entry.wg_port, e.wg_port);
    assert_eq!(
        steps_of(&p.plan),
        [
            "record",
            "delete-address",
            "configure-bridge",
            "delete-address",
            "device",
            "firewall",
            "dns-listeners"
        ]
    );
    // The device failing half-way: its new address, its old one, the
    // bridge's new and old gateway, the entry.
    let undo = undo_at(&p.plan, 4);
    assert_eq!(
        undo,
        vec![
            Step::DeleteAddress {
                link: "ovl-w-db".into(),
                addr: net("10.220.9.1/32"),
            },
            Step::AddAddress {
                link: "ovl-w-db".into(),
                addr: net("10.220.5.1/32"),
            },
            Step::DeleteAddress {
                link: "ovl-b-x".into(),
                addr: net("10.220.9.1/24"),
            },
            Step::AddAddress {
                link: "ovl-b-x".into(),
                addr: net("10.220.5.1/24"),
            },
            Step::RecordEntry { entry: e },
        ]
    );
    // Nothing after the device can fail the move: the firewall and the
    // DNS listeners only log.
    assert_eq!(
        super::tests_bridge::undo_of(&p.plan),
        [
            "delete-address",
            "add-address",
            "delete-address",
            "add-address",
            "record"
        ]
    );
}

#[test]
fn a_vanished_bridge_is_made_again_and_a_foreign_link_refused_before_anything() {
    let e = entry(iso("a"), "10.201.0.0/24");
    let p = plan_move(MoveFacts {
        entry: e.clone(),
        subnet: net("10.201.1.0/24"),
        bridge: None,
        isolation: None,
    })
    .unwrap();
    assert_eq!(
        steps_of(&p.plan),
        [
            "record",
            "put-isolation",
            "delete-address",
            "create-bridge",
            "configure-bridge",
            "firewall",
            "dns-listeners"
        ]
    );
    assert!(
        p.plan.steps[3].undo.is_empty(),
        "a recorded network's bridge stays"
    );
    let foreign = LiveLink::new(&e.name, 9, "bridge", None);
    let r = plan_move(MoveFacts {
        entry: e,
        subnet: net("10.201.1.0/24"),
        bridge: Some(foreign),
        isolation: None,
    })
    .unwrap_err();
    assert!(matches!(r, Refusal::Conflict(m) if m.contains("not overlayd's")));
}
