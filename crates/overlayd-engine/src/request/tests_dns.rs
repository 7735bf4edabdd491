//! `register_dns` / `unregister_dns` decided in memory: every branch, and
//! the undo that keeps the served set matching the store.

use std::net::IpAddr;

use super::dns::{plan_register, plan_unregister, DnsName, DnsUnregister, Tombstone};
use super::tests_bridge::{steps_of, undo_at};
use super::*;

const KEY: &str = "web.overlay.internal.";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name(stored: Option<&[&str]>, served: &[&str], buried: bool) -> DnsName {
    DnsName {
        key: KEY.into(),
        stored: stored.map(|s| s.iter().map(|i| i.to_string()).collect()),
        served: served.iter().map(|i| ip(i)).collect(),
        buried,
    }
}

fn write(ips: Option<&[&str]>, tombstone: Tombstone) -> Step {
    Step::WriteDnsName {
        key: KEY.into(),
        ips: ips.map(|s| s.iter().map(|i| i.to_string()).collect()),
        tombstone,
    }
}

fn serve(ips: &[&str]) -> Step {
    Step::ServeDnsName {
        key: KEY.into(),
        ips: ips.iter().map(|i| ip(i)).collect(),
    }
}

#[test]
fn a_new_name_is_stored_then_served_and_undone_to_nothing() {
    let n = name(None, &[], true);
    let p = plan_register(&n, ip("10.0.0.5"));
    assert_eq!(steps_of(&p), ["write-dns", "serve-dns"]);
    assert_eq!(
        p.steps[0].step,
        write(Some(&["10.0.0.5"]), Tombstone::Unbury)
    );
    assert_eq!(p.steps[1].step, serve(&["10.0.0.5"]));
    // Serving failing: the name goes from the store, tombstone back.
    assert_eq!(undo_at(&p, 1), vec![write(None, Tombstone::Bury)]);
    // Both done, a later failure: served set first, then the store.
    assert_eq!(
        p.rollback_order(),
        vec![&serve(&[]), &write(None, Tombstone::Bury)]
    );
}

#[test]
fn an_address_joins_a_stored_name_and_one_already_served_is_not_served_again() {
    let n = name(Some(&["10.0.0.4"]), &["10.0.0.4"], false);
    let p = plan_register(&n, ip("10.0.0.5"));
    assert_eq!(
        p.steps[0].step,
        write(Some(&["10.0.0.4", "10.0.0.5"]), Tombstone::Unbury)
    );
    assert_eq!(
        p.steps[0].undo,
        vec![write(Some(&["10.0.0.4"]), Tombstone::Leave)]
    );
    assert_eq!(p.steps[1].step, serve(&["10.0.0.4", "10.0.0.5"]));
    assert_eq!(p.steps[1].undo, vec![serve(&["10.0.0.4"])]);
    // Registering it again writes the store (clearing any tombstone) but
    // leaves the served set alone.
    let n = name(Some(&["10.0.0.4"]), &["10.0.0.4"], false);
    let p = plan_register(&n, ip("10.0.0.4"));
    assert_eq!(steps_of(&p), ["write-dns"]);
    assert_eq!(
        p.steps[0].step,
        write(Some(&["10.0.0.4"]), Tombstone::Unbury)
    );
}

#[test]
fn a_name_never_stored_is_left_to_the_tombstones() {
    let input = DnsUnregister {
        name: name(None, &[], false),
        force: false,
        holders: Vec::new(),
    };
    assert_eq!(plan_unregister(&input).unwrap(), Teardown::NotRecorded);
}

#[test]
fn a_manual_name_is_removed_buried_and_unserved_and_undone_in_reverse() {
    let input = DnsUnregister {
        name: name(Some(&["10.0.0.5"]), &["10.0.0.5"], false),
        force: false,
        holders: Vec::new(),
    };
    let Teardown::Remove(p) = plan_unregister(&input).unwrap() else {
        panic!()
    };
    assert_eq!(p.steps[0].step, write(None, Tombstone::Bury));
    assert_eq!(p.steps[1].step, serve(&[]));
    assert_eq!(
        undo_at(&p, 1),
        vec![write(Some(&["10.0.0.5"]), Tombstone::Unbury)],
        "unserving failing puts the stored name back, without its tombstone"
    );
    assert_eq!(
        p.rollback_order(),
        vec![
            &serve(&["10.0.0.5"]),
            &write(Some(&["10.0.0.5"]), Tombstone::Unbury)
        ]
    );
}

#[test]
fn a_name_held_only_by_containers_is_a_conflict_without_force() {
    let holders = vec![("pid:42".to_string(), "10.0.0.5".to_string())];
    let input = DnsUnregister {
        name: name(Some(&["10.0.0.5"]), &["10.0.0.5"], false),
        force: false,
        holders: holders.clone(),
    };
    let r = plan_unregister(&input).unwrap_err();
    assert_eq!(
        r,
        Refusal::Conflict(format!(
            "DNS name {KEY} is registered by attached container(s) pid:42 (10.0.0.5); it goes when they detach, or remove it anyway with `overlayd dns rm --force {KEY}`"
        ))
    );
    // With force it goes whole.
    let forced = DnsUnregister {
        force: true,
        ..input
    };
    let Teardown::Remove(p) = plan_unregister(&forced).unwrap() else {
        panic!()
    };
    assert_eq!(steps_of(&p), ["write-dns", "serve-dns"]);
    assert_eq!(p.steps[0].step, write(None, Tombstone::Bury));
}

#[test]
fn without_force_only_the_manual_addresses_go() {
    let input = DnsUnregister {
        name: name(
            Some(&["10.0.0.5", "10.0.0.9"]),
            &["10.0.0.5", "10.0.0.9"],
            false,
        ),
        force: false,
        holders: vec![("pid:42".into(), "10.0.0.5".into())],
    };
    let Teardown::Remove(p) = plan_unregister(&input).unwrap() else {
        panic!()
    };
    assert_eq!(
        p.steps[0].step,
        write(Some(&["10.0.0.5"]), Tombstone::Leave)
    );
    assert_eq!(
        p.steps[0].undo,
        vec![write(Some(&["10.0.0.5", "10.0.0.9"]), Tombstone::Leave)]
    );
    assert_eq!(p.steps[1].step, serve(&["10.0.0.5"]));
    assert_eq!(p.steps[1].undo, vec![serve(&["10.0.0.5", "10.0.0.9"])]);
}

#[test]
fn a_buried_name_keeps_its_tombstone_through_an_undo() {
    // Stored by an attach (which leaves a tombstone alone) after an
    // earlier removal: undoing the removal keeps the tombstone.
    let input = DnsUnregister {
        name: name(Some(&["10.0.0.5"]), &["10.0.0.5"], true),
        force: true,
        holders: Vec::new(),
    };
    let Teardown::Remove(p) = plan_unregister(&input).unwrap() else {
        panic!()
    };
    assert_eq!(
        p.steps[0].undo,
        vec![write(Some(&["10.0.0.5"]), Tombstone::Leave)]
    );
}
