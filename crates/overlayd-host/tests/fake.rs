//! Tests of [`FakeHost`]: it must follow the same rules as the Linux host so
//! daemon tests built on it are meaningful. No root needed.

use overlayd_host::{
    Call, FakeHost, FirewallSpec, Forwarding, Host, HostError, LinkKind, MasqueradeNet,
    NetnsTarget, Op, VethSpec,
};

fn spec(host_if: &str, target: NetnsTarget) -> VethSpec {
    VethSpec {
        host_ifname: host_if.into(),
        alias: "overlayd:c1".into(),
        bridge: "br0".into(),
        target,
        container_ifname: "eth0".into(),
        address: "10.0.0.2/24".parse().unwrap(),
        gateway: Some("10.0.0.1".parse().unwrap()),
        mtu: None,
        address_v6: None,
        gateway_v6: None,
    }
}

async fn host_with_bridge() -> FakeHost {
    let h = FakeHost::new();
    h.create_bridge("br0", "overlayd:br", Some(1420))
        .await
        .unwrap();
    h
}

#[tokio::test]
async fn attach_and_detach_follow_the_rules() {
    let h = host_with_bridge().await;
    let t = NetnsTarget::Pid(42);
    let e = h.attach_veth(&spec("v1", t.clone())).await.unwrap_err();
    assert!(matches!(e, HostError::NetnsGone { .. }));
    h.add_live_target(t.clone());
    let att = h.attach_veth(&spec("v1", t.clone())).await.unwrap();
    let l = h.link("v1").await.unwrap().unwrap();
    let br = h.link("br0").await.unwrap().unwrap();
    assert_eq!(l.kind, LinkKind::Veth);
    assert_eq!(l.master, Some(br.index));
    assert_eq!(l.mtu, 1420, "defaults to the bridge MTU");
    assert_eq!(att.host_index, l.index);
    let ifaces = h.container_ifaces(&t);
    assert_eq!(ifaces.len(), 1);
    assert_eq!(ifaces[0].address, "10.0.0.2/24".parse().unwrap());

    // The same container name twice in one namespace is refused.
    let e = h.attach_veth(&spec("v2", t.clone())).await.unwrap_err();
    assert!(matches!(e, HostError::InvalidArgument(_)));
    assert!(h.link("v2").await.unwrap().is_none());

    assert!(h.detach_veth("v1").await.unwrap());
    assert!(!h.detach_veth("v1").await.unwrap());
    assert!(h.container_ifaces(&t).is_empty());
    assert!(matches!(
        h.detach_veth("br0").await,
        Err(HostError::WrongLinkKind { .. })
    ));
}

#[tokio::test]
async fn injected_mid_attach_failure_rolls_back() {
    let h = host_with_bridge().await;
    let t = NetnsTarget::Path("/run/netns/c1".into());
    h.add_live_target(t.clone());
    h.fail_next(Op::AttachConfigure);
    let e = h.attach_veth(&spec("v1", t.clone())).await.unwrap_err();
    assert!(matches!(e, HostError::Injected(Op::AttachConfigure)));
    assert!(h.link("v1").await.unwrap().is_none());
    assert!(h.container_ifaces(&t).is_empty());
    // The injection is consumed: the next attach works.
    h.attach_veth(&spec("v1", t)).await.unwrap();
}

#[tokio::test]
async fn foreign_names_refused_and_missing_bridge_reported() {
    let h = host_with_bridge().await;
    let t = NetnsTarget::Pid(7);
    h.add_live_target(t.clone());
    let foreign = h.insert_link("v1", LinkKind::Veth, Some("not-ours"));
    let e = h.attach_veth(&spec("v1", t.clone())).await.unwrap_err();
    assert!(matches!(e, HostError::ForeignLink { .. }));
    assert_eq!(h.link("v1").await.unwrap().unwrap(), foreign);
    let e = h.create_bridge("v1", "overlayd:x", None).await.unwrap_err();
    assert!(matches!(e, HostError::ForeignLink { .. }));

    let e = h
        .attach_veth(&VethSpec {
            bridge: "nobr".into(),
            ..spec("v9", t)
        })
        .await
        .unwrap_err();
    assert!(matches!(e, HostError::LinkNotFound { .. }));
}

#[tokio::test]
async fn killed_target_takes_its_veth_along() {
    let h = host_with_bridge().await;
    let t = NetnsTarget::Pid(9);
    h.add_live_target(t.clone());
    h.attach_veth(&spec("v1", t.clone())).await.unwrap();
    assert!(h.netns_alive(&t).await.unwrap());
    h.kill_target(&t);
    assert!(!h.netns_alive(&t).await.unwrap());
    assert!(h.link("v1").await.unwrap().is_none());
}

#[tokio::test]
async fn calls_are_recorded_and_failures_injected() {
    let h = FakeHost::new();
    h.fail_next(Op::CreateBridge);
    assert!(matches!(
        h.create_bridge("b", "a", None).await,
        Err(HostError::Injected(Op::CreateBridge))
    ));
    h.create_bridge("b", "a", None).await.unwrap();
    h.add_address("b", "10.1.0.1/24".parse().unwrap())
        .await
        .unwrap();
    h.add_route("10.9.0.0/16".parse().unwrap(), "b")
        .await
        .unwrap();
    let _ = h.links().await.unwrap();
    h.set_forwarding(Forwarding {
        ipv4: Some(true),
        ipv6: None,
    })
    .await
    .unwrap();
    assert_eq!(
        h.forwarding_now(),
        Forwarding {
            ipv4: Some(true),
            ipv6: Some(false)
        },
        "only the field given is written"
    );
    assert_eq!(
        h.routes(),
        vec![("10.9.0.0/16".parse().unwrap(), "b".to_string())]
    );
    let calls = h.calls();
    assert_eq!(calls.len(), 6);
    assert_eq!(
        calls[0],
        Call::CreateBridge {
            name: "b".into(),
            alias: "a".into(),
            mtu: None
        }
    );
    assert_eq!(h.mutations().len(), 5, "links() is not a mutation");
    h.clear_calls();
    assert!(h.calls().is_empty());
    assert!(h.delete_link("b").await.unwrap());
    assert!(h.routes().is_empty(), "routes go with their device");
}

#[tokio::test]
async fn firewall_slot_and_tampering() {
    let h = FakeHost::new();
    let spec = FirewallSpec {
        masquerade: vec![MasqueradeNet {
            subnet: "10.89.0.0/24".parse().unwrap(),
            bridge: "nat".into(),
            exclude: vec![],
        }],
        isolation_bridges: vec!["b".into(), "a".into()],
        accept_bridges: vec![],
        ..Default::default()
    };
    assert!(!h.firewall_matches(&spec).await.unwrap());
    h.apply_firewall(&spec).await.unwrap();
    let mut reordered = spec.clone();
    reordered.isolation_bridges.reverse();
    assert!(h.firewall_matches(&reordered).await.unwrap());
    h.tamper_firewall();
    assert!(!h.firewall_matches(&spec).await.unwrap());
    h.apply_firewall(&spec).await.unwrap();
    assert!(h.firewall_matches(&spec).await.unwrap());
    assert!(h.remove_firewall().await.unwrap());
    assert!(!h.remove_firewall().await.unwrap());
}
