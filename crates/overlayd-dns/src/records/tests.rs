//! Unit tests of `records`.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(s: &str) -> LowerName {
    LowerName::new(&Name::from_ascii(s).unwrap())
}

#[test]
fn add_get_remove_round_trip() {
    let r = Records::new("overlay.internal").unwrap();
    assert!(r.add("web", ip("10.0.0.1")).unwrap());
    assert!(!r.add("web.overlay.internal.", ip("10.0.0.1")).unwrap());
    assert!(r.add("WEB.overlay.internal", ip("fd00::1")).unwrap());
    assert_eq!(
        r.get("web").unwrap(),
        Some(vec![ip("10.0.0.1"), ip("fd00::1")])
    );
    assert!(r.remove_ip("web", ip("10.0.0.1")).unwrap());
    assert!(!r.remove_ip("web", ip("10.0.0.1")).unwrap());
    assert_eq!(r.get("web").unwrap(), Some(vec![ip("fd00::1")]));
    assert!(r.remove_ip("web", ip("fd00::1")).unwrap());
    assert_eq!(r.get("web").unwrap(), None, "last address removes the name");
    assert!(!r.remove("web").unwrap());
    assert!(r.is_empty());
}

#[test]
fn invalid_input_changes_nothing() {
    let r = Records::new("overlay.internal").unwrap();
    r.set("db", [ip("10.0.0.2")]).unwrap();
    let serial = r.serial();
    assert!(matches!(
        r.add("bad_name", ip("10.0.0.3")),
        Err(DnsError::InvalidName { .. })
    ));
    assert!(matches!(
        r.add("db.example.com", ip("10.0.0.3")),
        Err(DnsError::OutsideZone { .. })
    ));
    assert!(matches!(
        r.add("db", ip("0.0.0.0")),
        Err(DnsError::UnusableAddress { .. })
    ));
    assert!(matches!(r.set("db", []), Err(DnsError::NoAddresses { .. })));
    assert!(matches!(
        r.replace_all([
            ("ok", vec![ip("10.0.0.9")]),
            ("bad name", vec![ip("10.0.0.8")])
        ]),
        Err(DnsError::InvalidName { .. })
    ));
    assert!(matches!(
        parse_ip("10.0.0.300"),
        Err(DnsError::InvalidAddress { .. })
    ));
    assert_eq!(r.serial(), serial);
    assert_eq!(
        r.list(),
        vec![RecordEntry {
            name: "db.overlay.internal.".into(),
            ips: vec![ip("10.0.0.2")]
        }]
    );
}

#[test]
fn replace_all_merges_and_swaps() {
    let r = Records::new("overlay.internal").unwrap();
    r.set("old", [ip("10.0.0.1")]).unwrap();
    r.replace_all([
        ("a", vec![ip("10.0.0.5")]),
        ("A.overlay.internal.", vec![ip("10.0.0.6"), ip("10.0.0.5")]),
        ("b", vec![ip("fd00::5")]),
    ])
    .unwrap();
    assert_eq!(r.get("old").unwrap(), None);
    assert_eq!(
        r.get("a").unwrap(),
        Some(vec![ip("10.0.0.5"), ip("10.0.0.6")])
    );
    assert_eq!(r.len(), 2);
}

#[test]
fn empty_non_terminals_are_tracked() {
    let r = Records::new("overlay.internal").unwrap();
    r.set("x.y.z.overlay.internal", [ip("10.0.0.1")]).unwrap();
    r.set("w.z.overlay.internal", [ip("10.0.0.2")]).unwrap();
    assert!(matches!(
        r.lookup(&key("y.z.overlay.internal.")).0,
        Lookup::Interior
    ));
    assert!(matches!(
        r.lookup(&key("z.overlay.internal.")).0,
        Lookup::Interior
    ));
    assert!(matches!(
        r.lookup(&key("overlay.internal.")).0,
        Lookup::Apex
    ));
    r.remove("x.y.z.overlay.internal").unwrap();
    assert!(matches!(
        r.lookup(&key("y.z.overlay.internal.")).0,
        Lookup::Missing
    ));
    assert!(matches!(
        r.lookup(&key("z.overlay.internal.")).0,
        Lookup::Interior
    ));
    r.remove("w.z.overlay.internal").unwrap();
    assert!(matches!(
        r.lookup(&key("z.overlay.internal.")).0,
        Lookup::Missing
    ));
}

#[test]
fn lookup_is_case_insensitive_and_serial_moves() {
    let r = Records::new("overlay.internal").unwrap();
    let before = r.serial();
    r.set("Web", [ip("10.0.0.1"), ip("fd00::1")]).unwrap();
    assert_ne!(r.serial(), before);
    match r.lookup(&key("WEB.Overlay.Internal.")).0 {
        Lookup::Found { a, aaaa } => {
            assert_eq!(a.len(), 1);
            assert_eq!(aaaa.len(), 1);
        }
        other => panic!("expected Found, got {other:?}"),
    }
}
