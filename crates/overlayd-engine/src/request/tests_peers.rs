//! Plans of peers and their allowed IPs, decided in memory.

use ipnet::IpNet;
use overlayd_model::Owner;

use super::peers::*;
use super::tests_bridge::{steps_of, undo_of};
use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn peer(key: &str, ips: &[&str]) -> PeerDesired {
    PeerDesired {
        network: "base".into(),
        public_key: key.into(),
        endpoint: "192.0.2.2:51820".into(),
        allowed_ips: ips.iter().map(|s| s.to_string()).collect(),
        persistent_keepalive_secs: 0,
        cluster: false,
    }
}

#[test]
fn a_peer_is_refused_for_the_own_key_a_local_network_or_another_peers_range() {
    let used = vec![("iso:a".to_string(), net("10.201.0.0/24"))];
    let others = vec![peer("B", &["10.200.2.0/24"])];
    let e = check_put(
        &Owner::Base,
        Some("A"),
        &peer("A", &["10.200.3.0/24"]),
        &used,
        &others,
    )
    .unwrap_err();
    assert!(e.to_string().contains("base's own key"), "{e}");
    let e = check_put(
        &Owner::Base,
        Some("X"),
        &peer("A", &["10.201.0.0/25"]),
        &used,
        &others,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Refusal::Conflict(m) if m.contains("overlaps this node's network iso:a")),
        "{e}"
    );
    let e = check_put(
        &Owner::Base,
        Some("X"),
        &peer("A", &["10.200.2.128/25"]),
        &used,
        &others,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Refusal::Invalid(m) if m.contains("of peer B")),
        "{e}"
    );
    // Its own earlier ranges are not another peer's.
    check_put(
        &Owner::Base,
        Some("X"),
        &peer("B", &["10.200.2.0/24"]),
        &used,
        &others,
    )
    .unwrap();
}

#[test]
fn a_new_peer_is_recorded_first_and_undone_off_the_device() {
    let p = plan_put("wg0", peer("A", &["10.200.2.0/24"]), None);
    assert_eq!(steps_of(&p), ["put-peer", "program-peer", "firewall"]);
    assert_eq!(
        undo_of(&p),
        ["delete-routes", "remove-device-peer", "remove-peer-record"]
    );
    assert!(p.steps[1].undo_if_failed, "programming may fail half-way");
}

#[test]
fn a_replaced_peer_drops_only_its_routes_that_went_and_is_undone_to_the_old_one() {
    let old = peer("A", &["10.200.2.0/24", "10.200.9.0/24"]);
    let p = plan_put("wg0", peer("A", &["10.200.2.0/24"]), Some(old.clone()));
    assert_eq!(
        steps_of(&p),
        ["put-peer", "program-peer", "delete-routes", "firewall"]
    );
    assert_eq!(
        p.steps[2].step,
        Step::DeleteRoutes {
            device: "wg0".into(),
            nets: vec![net("10.200.9.0/24")]
        }
    );
    assert_eq!(
        p.rollback_order()[1..],
        [
            &Step::ProgramPeer {
                device: "wg0".into(),
                record: old.clone()
            },
            &Step::PutPeer { record: old }
        ]
    );
}

#[test]
fn removing_a_peer_needs_a_record_or_the_peer_on_the_device() {
    let e = plan_remove(&Owner::Base, "wg0", "A", None, false).unwrap_err();
    assert!(matches!(e, Refusal::NotFound(_)));
    assert_eq!(
        steps_of(&plan_remove(&Owner::Base, "wg0", "A", None, true).unwrap()),
        ["remove-device-peer"]
    );
    let p = plan_remove(
        &Owner::Base,
        "wg0",
        "A",
        Some(peer("A", &["10.200.2.0/24"])),
        false,
    )
    .unwrap();
    assert_eq!(
        steps_of(&p),
        [
            "remove-device-peer",
            "delete-routes",
            "remove-peer-record",
            "firewall"
        ]
    );
}

fn change(rec: Option<PeerDesired>, cidr: &str, add: bool) -> Result<Plan, Refusal> {
    plan_allowed_ip(AllowedIpChange {
        owner: &Owner::Base,
        device: "wg0",
        given_key: "A",
        rec,
        net: net(cidr),
        add,
        used: &[("iso:a".to_string(), net("10.201.0.0/24"))],
        device_peers: &[peer("B", &["10.200.5.0/24"])],
    })
}

#[test]
fn allowed_ip_changes_are_idempotent_checked_and_undone_to_the_old_peer() {
    assert!(matches!(
        change(None, "10.200.3.0/24", true),
        Err(Refusal::NotFound(_))
    ));
    let a = peer("A", &["10.200.2.0/24"]);
    assert!(change(Some(a.clone()), "10.200.2.0/24", true)
        .unwrap()
        .is_empty());
    assert!(change(Some(a.clone()), "10.200.7.0/24", false)
        .unwrap()
        .is_empty());
    assert!(matches!(
        change(Some(a.clone()), "10.200.2.0/24", false),
        Err(Refusal::Invalid(_))
    ));
    assert!(matches!(
        change(Some(a.clone()), "10.201.0.0/24", true),
        Err(Refusal::Conflict(_))
    ));
    assert!(matches!(
        change(Some(a.clone()), "10.200.5.0/24", true),
        Err(Refusal::Invalid(_))
    ));
    let p = change(Some(a.clone()), "10.200.3.0/24", true).unwrap();
    assert_eq!(steps_of(&p), ["program-peer", "put-peer", "firewall"]);
    assert_eq!(undo_of(&p), ["delete-routes", "program-peer"]);
    let two = peer("A", &["10.200.2.0/24", "10.200.3.0/24"]);
    let p = change(Some(two.clone()), "10.200.3.0/24", false).unwrap();
    assert_eq!(
        steps_of(&p),
        [
            "program-peer",
            "remove-allowed-ip",
            "delete-routes",
            "put-peer",
            "firewall"
        ]
    );
    assert_eq!(
        p.rollback_order(),
        [&Step::ProgramPeer {
            device: "wg0".into(),
            record: two
        }]
    );
}
