//! Wire-shape tests: every frame in PROTOCOL.md decodes to the typed value
//! and encodes back to the same JSON.

use overlayd_proto::*;
use serde_json::{json, Value};

fn round_trip(v: Value) -> Frame {
    let bytes = serde_json::to_vec(&v).unwrap();
    let frame = decode_frame(&bytes).unwrap_or_else(|e| panic!("{v}: {e}"));
    let back: Value = serde_json::from_slice(&encode_frame(&frame)).unwrap();
    assert_eq!(back, v, "re-encoded frame differs");
    frame
}

fn req(request: Value) -> Value {
    json!({"frame":"request","id":7,"request":request})
}

#[test]
fn every_v1_request_round_trips() {
    let key = "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=";
    let reqs = vec![
        json!({"op":"set_local_node_id","node_id":3}),
        json!({"op":"set_local_wg_pubkey","pubkey":key}),
        json!({"op":"setup_global_overlay","deployment":"d","instance_id":"i","cluster_cidr":"10.200.0.0/16","slice_cidr":"10.200.1.0/24","wg_port":51820,"nat_enabled":true}),
        json!({"op":"setup_global_overlay","deployment":"d","instance_id":"i","cluster_cidr":"10.200.0.0/16","wg_port":51820,"nat_enabled":false}),
        json!({"op":"teardown_global_overlay"}),
        json!({"op":"setup_service_overlay","service":"web","mode":"dedicated"}),
        json!({"op":"teardown_service_overlay","service":"web"}),
        json!({"op":"allocate_ip","service":"web","join_global":false}),
        json!({"op":"release_ip","ip":"10.200.0.5"}),
        json!({"op":"attach_container","handle":{"platform":"linux_pid","pid":4242},"service":"web","join_global":true,"dns_server":"10.200.0.1","dns_domain":"overlay.internal"}),
        json!({"op":"attach_container","handle":{"platform":"netns_path","path":"/run/netns/c1"},"service":"web","join_global":false,"isolation":"a","name":"c1"}),
        json!({"op":"detach_container","handle":{"platform":"windows_container","container_id":"ctr-abc","ip":"10.200.0.5"}}),
        json!({"op":"detach_container","handle":{"platform":"guest_managed","id":"vm-1"}}),
        json!({"op":"add_peer","public_key":key,"endpoint":"192.0.2.2:51820","allowed_ips":"10.200.2.0/24","persistent_keepalive_secs":25,"scope":{"scope":"global"}}),
        json!({"op":"remove_peer","pubkey":key,"scope":{"scope":"service","service":"web"}}),
        json!({"op":"add_allowed_ip","pubkey":key,"cidr":"10.200.3.0/24"}),
        json!({"op":"remove_allowed_ip","pubkey":key,"cidr":"10.200.3.0/24"}),
        json!({"op":"register_dns","name":"web","ip":"10.200.0.5"}),
        json!({"op":"unregister_dns","name":"web"}),
        json!({"op":"status"}),
        json!({"op":"nat_tick"}),
        json!({"op":"shutdown"}),
        json!({"op":"hello","protocol_version":1}),
        json!({"op":"setup_isolation_network","network":"a","subnet":"10.201.9.0/24"}),
        json!({"op":"teardown_isolation_network","network":"a"}),
        json!({"op":"list_networks"}),
        json!({"op":"subscribe_events"}),
        json!({"op":"list_dns_records"}),
        json!({"op":"reconcile"}),
        json!({"op":"inspect_attachment","handle":{"platform":"linux_pid","pid":4242}}),
        json!({"op":"attach_container","handle":{"platform":"cni","network":"ovl","container_id":"default-web1","ifname":"eth0","netns":"/proc/4242/ns/net"},"service":"web","join_global":false}),
        json!({"op":"inspect_interface","handle":{"platform":"cni","network":"ovl","container_id":"default-web1","ifname":"net1"}}),
        json!({"op":"list_attachments"}),
        json!({"op":"move_network","network":"service:db"}),
        json!({"op":"list_services"}),
        json!({"op":"prune_networks","include_dedicated":true}),
        json!({"op":"connect_container","handle":{"platform":"linux_pid","pid":4242},"network":"red","ifname":"eth1","name":"c1"}),
        json!({"op":"disconnect_container","handle":{"platform":"linux_pid","pid":4242},"network":"iso:red"}),
        json!({"op":"cluster_status"}),
        json!({"op":"cluster_leave","release":false}),
    ];
    let mut ops = std::collections::BTreeSet::new();
    for r in reqs {
        match round_trip(req(r)) {
            Frame::Request { id: 7, request } => {
                ops.insert(request.op());
            }
            f => panic!("not a request: {f:?}"),
        }
    }
    assert_eq!(ops.len(), frame::KNOWN_OPS.len(), "every op exercised");
}

#[test]
fn scope_absent_or_null_means_global() {
    let f = decode_frame(
        br#"{"frame":"request","id":1,"request":{"op":"remove_peer","pubkey":"k","scope":null}}"#,
    )
    .unwrap();
    match f {
        Frame::Request {
            request: Request::RemovePeer { scope, .. },
            ..
        } => assert_eq!(scope.unwrap_or_default(), Scope::Global),
        f => panic!("{f:?}"),
    }
}

#[test]
fn every_response_and_event_round_trips() {
    let frames = vec![
        json!({"frame":"response","id":7,"response":{"result":"ok"}}),
        json!({"frame":"response","id":7,"response":{"result":"ip","ip":"10.200.0.5"}}),
        json!({"frame":"response","id":7,"response":{"result":"attached","ip":"10.200.0.5"}}),
        json!({"frame":"response","id":7,"response":{"result":"guest_config","overlay_ip":"10.200.1.9","prefix_len":24,"private_key":"a","public_key":"b","listen_port":51900,"peers":[{"public_key":"c","endpoint":"192.0.2.1:51820","allowed_ips":"10.200.0.0/16","persistent_keepalive_secs":25}],"dns_server":"10.200.1.1"}}),
        json!({"frame":"response","id":7,"response":{"result":"bridge_name","name":"ovl-base"}}),
        json!({"frame":"response","id":7,"response":{"result":"status","peer_count":0,"service_count":0}}),
        json!({"frame":"response","id":7,"response":{"result":"status","interface":"w","node_ip":"10.200.1.1","public_key":"k","overlay_cidr":"10.200.0.0/16","slice_cidr":"10.200.1.0/24","peer_count":1,"service_count":1,"peers":[{"public_key":"p","endpoint":"192.0.2.2:51820","allowed_ips":"10.200.2.0/24","last_handshake_unix_secs":1700000000}],"dedicated_services":[{"service":"db","interface":"ovl-d","public_key":"k","listen_port":51821,"overlay_ip":"10.202.0.1","subnet":"10.202.0.0/24","peer_count":1}]}}),
        json!({"frame":"response","id":7,"response":{"result":"service_overlay","name":"db","mode":"dedicated","wg_public_key":"k","wg_port":51821,"overlay_ip":"10.202.0.1","subnet":"10.202.0.0/24"}}),
        json!({"frame":"response","id":7,"response":{"result":"err","message":"no"}}),
        json!({"frame":"response","id":7,"response":{"result":"hello","protocol_version":1,"server_version":"0.1.0","extensions":["hello"]}}),
        json!({"frame":"response","id":7,"response":{"result":"networks","networks":[{"owner":"x","kind":"hcn-internal","name":"n","id":"i","subnet":"s","present":false,"managed":false,"future":1}]}}),
        json!({"frame":"response","id":7,"response":{"result":"isolation_network","network":"a","subnet":"10.201.0.0/24","bridge":"ovl-i"}}),
        json!({"frame":"response","id":7,"response":{"result":"pruned","networks":["red"],"services":["web"],"errors":["iso:blue: busy"]}}),
        json!({"frame":"response","id":7,"response":{"result":"dns_records","zone":"overlay.internal.","records":[{"name":"web.overlay.internal.","ips":["10.201.0.2"]}]}}),
        json!({"frame":"response","id":7,"response":{"result":"reconciled","adopted":3,"recreated":1,"created":0,"orphans":0,"reclaimed":2,"conflicts":0}}),
        json!({"frame":"response","id":7,"response":{"result":"attachment","handle":{"platform":"netns_path","path":"/run/netns/c1"},"service":"web","network":"shared-nat","ip":"10.201.0.2","prefix_len":24,"gateway":"10.201.0.1","dns_server":"10.201.0.1","dns_domain":"overlay.internal","name":"c1"}}),
        json!({"frame":"response","id":7,"response":{"result":"interface","handle":{"platform":"cni","network":"ovl","container_id":"c","ifname":"eth0","netns":"/proc/1/ns/net"},"ifname":"eth0","host_ifname":"ovl-vabc","present":true,"mac":"ae:41:0c:55:19:02","up":true,"addresses":["10.201.0.2/24"],"gateways":["10.201.0.1"]}}),
        json!({"frame":"response","id":7,"response":{"result":"attachments","attachments":[{"handle":{"platform":"cni","network":"ovl","container_id":"c","ifname":"eth0"},"service":"web","key":"cni:ovl/c/eth0","network":"shared-nat","interface":"ovl-vabc","addresses":["10.201.0.2/24"],"dns_names":["c.overlay.internal."]}]}}),
        json!({"frame":"event","event":"peer_health_changed","pubkey":"k","healthy":false}),
        json!({"frame":"event","event":"nat_endpoint_changed","pubkey":"k","endpoint":"192.0.2.9:4000"}),
    ];
    for f in frames {
        round_trip(f);
    }
}

#[test]
fn bad_bodies_keep_the_id_when_they_can() {
    let e = decode_frame(b"\x00\xffgarbage").unwrap_err();
    assert_eq!(e.id, 0);
    assert!(e.message.contains("not valid JSON"), "{}", e.message);

    let e =
        decode_frame(br#"{"frame":"request","id":9,"request":{"op":"frobnicate"}}"#).unwrap_err();
    assert_eq!(e.id, 9);
    assert!(
        e.message.contains("unknown op \"frobnicate\""),
        "{}",
        e.message
    );

    let e = decode_frame(
        br#"{"frame":"request","id":11,"request":{"op":"set_local_node_id","node_id":"three"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.id, 11);
    assert!(e.message.contains("invalid request"), "{}", e.message);

    let e =
        decode_frame(br#"{"frame":"request","id":12,"request":{"op":"release_ip"}}"#).unwrap_err();
    assert!(e.message.contains("missing field `ip`"), "{}", e.message);
}

#[test]
fn guest_config_debug_redacts_the_private_key_but_the_wire_carries_it() {
    let r = Response::GuestConfig {
        overlay_ip: "10.200.1.9".into(),
        prefix_len: 24,
        private_key: "c2VjcmV0LWtleS1ub3QtdG8tYmUtbG9nZ2VkLWV2ZXI="
            .to_string()
            .into(),
        public_key: "b".into(),
        listen_port: 51900,
        peers: vec![],
        dns_server: None,
        dns_domain: None,
    };
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("c2VjcmV0"), "{dbg}");
    assert!(dbg.contains("<redacted>"), "{dbg}");
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains(r#""private_key":"c2VjcmV0LWtleS1ub3QtdG8tYmUtbG9nZ2VkLWV2ZXI=""#),
        "{json}"
    );
}

#[test]
fn new_event_kinds_round_trip_and_unknown_ones_do_not_break_a_subscriber() {
    let e = decode_frame(
        br#"{"frame":"event","event":"container_attached","key":"pid:1","service":"web","network":"shared-nat","ip":"10.201.0.2"}"#,
    )
    .unwrap();
    assert_eq!(
        e,
        Frame::Event(overlayd_proto::Event::ContainerAttached {
            key: "pid:1".into(),
            service: "web".into(),
            network: "shared-nat".into(),
            ip: "10.201.0.2".into(),
        })
    );
    let future = decode_frame(br#"{"frame":"event","event":"from_the_future","x":1}"#).unwrap();
    assert_eq!(future, Frame::Event(overlayd_proto::Event::Other));
}
