//! Dual-stack isolation networks (issue 15, item 3), in process with a fake
//! host: the IPv6 subnet comes from `local_pool6` lowest-first and is
//! recorded; each member gets an address of each family (leased together,
//! released together), both default routes, A and AAAA records; the v6
//! subnet is masqueraded (so IPv6 forwarding goes on) unless the network is
//! internal; a restart recreates nothing and keeps every address.

mod support;

use std::net::IpAddr;

use overlayd_client::Client;
use overlayd_host::{Call, Forwarding, NetnsTarget};
use overlayd_proto::{Handle, Request, Response};
use support::inproc::{err_message, Instance};
use support::requests::{attach_pid, iso, iso_dual, shared};

const POOL6: &str = "fd42:6f76:6c64::";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (subnet, subnet_v6, bridge) of a set-up answer.
fn iso_answer(r: Response) -> (String, Option<String>, String) {
    match r {
        Response::IsolationNetwork {
            subnet,
            subnet_v6,
            bridge,
            ..
        } => (subnet, subnet_v6, bridge),
        other => panic!("{other:?}"),
    }
}

/// (ip, ip_v6) of an attach answer.
fn attached(r: Response) -> (String, Option<String>) {
    match r {
        Response::Attached { ip, ip_v6, .. } => (ip, ip_v6),
        other => panic!("{other:?}"),
    }
}

async fn dns_ips(c: &mut Client, name: &str) -> Vec<String> {
    match c.call(Request::ListDnsRecords).await.unwrap() {
        Response::DnsRecords { records, .. } => records
            .into_iter()
            .find(|r| {
                r.name
                    .trim_end_matches('.')
                    .starts_with(&format!("{name}."))
            })
            .map(|r| r.ips)
            .unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

fn live(inst: &Instance, pid: u32) {
    inst.host.add_live_target(NetnsTarget::Pid(pid));
}

#[tokio::test]
async fn members_get_both_families_and_keep_them_across_a_restart() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(shared("web")).await.unwrap();
    let (v4, v6, bridge) = iso_answer(c.call(iso_dual("ds")).await.unwrap());
    assert!(v4.starts_with("10.201."), "{v4}");
    assert_eq!(v6.as_deref(), Some(&*format!("{POOL6}/64")), "lowest /64");
    // The next dual-stack network gets the next /64.
    let (_, v6b, _) = iso_answer(c.call(iso_dual("ds2")).await.unwrap());
    assert_eq!(v6b.as_deref(), Some("fd42:6f76:6c64:1::/64"));
    // Setting it up again confirms it; asking for another v6 subnet is refused.
    let (_, again, _) = iso_answer(c.call(iso_dual("ds")).await.unwrap());
    assert_eq!(again, v6);
    let m = err_message(
        c.call(Request::SetupIsolationNetwork {
            network: "ds".into(),
            subnet: None,
            internal: false,
            ipv6: true,
            subnet_v6: Some("fd00:9::/64".into()),
        })
        .await
        .unwrap(),
    );
    assert!(m.contains("tear it down first"), "{m}");

    // Both gateways on the bridge.
    let gw6: IpAddr = ip(&format!("{POOL6}1"));
    let adds: Vec<String> = inst
        .host
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            Call::AddAddress { name, addr } if name == bridge => Some(addr.to_string()),
            _ => None,
        })
        .collect();
    assert!(adds.contains(&format!("{gw6}/64")), "{adds:?}");

    live(&inst, 4101);
    live(&inst, 4102);
    let (a4, a6) = attached(
        c.call(attach_pid(4101, "web", Some("ds"), Some("c1")))
            .await
            .unwrap(),
    );
    let (b4, b6) = attached(
        c.call(attach_pid(4102, "web", Some("ds"), Some("c2")))
            .await
            .unwrap(),
    );
    assert_eq!(a6.as_deref(), Some(&*format!("{POOL6}2")));
    assert_eq!(b6.as_deref(), Some(&*format!("{POOL6}3")));
    assert_ne!(a4, b4);

    // In the container: both addresses, both default routes.
    let ifaces = inst.host.container_ifaces(&NetnsTarget::Pid(4101));
    assert_eq!(ifaces.len(), 1);
    assert_eq!(
        ifaces[0].address_v6.map(|a| a.to_string()),
        Some(format!("{POOL6}2/64"))
    );
    assert_eq!(ifaces[0].gateway_v6, Some(gw6));
    assert!(ifaces[0].gateway.is_some());

    // inspect, ps and DNS show both.
    match c
        .call(Request::InspectAttachment {
            handle: Handle::LinuxPid { pid: 4101 },
        })
        .await
        .unwrap()
    {
        Response::Attachment {
            ip: i4,
            ip_v6,
            prefix_len_v6,
            gateway_v6,
            ..
        } => {
            assert_eq!(i4, a4);
            assert_eq!(ip_v6, a6);
            assert_eq!(prefix_len_v6, Some(64));
            assert_eq!(gateway_v6, Some(gw6.to_string()));
        }
        other => panic!("{other:?}"),
    }
    match c.call(Request::ListAttachments).await.unwrap() {
        Response::Attachments { attachments } => {
            let a = attachments.iter().find(|a| a.key == "pid:4101").unwrap();
            assert_eq!(
                a.addresses,
                vec![format!("{a4}/24"), format!("{POOL6}2/64")]
            );
        }
        other => panic!("{other:?}"),
    }
    let mut names = dns_ips(&mut c, "c2").await;
    names.sort();
    let mut want = vec![b4.clone(), b6.clone().unwrap()];
    want.sort();
    assert_eq!(names, want, "A and AAAA for c2");

    // The v6 subnet is masqueraded, so IPv6 forwarding is on.
    let fw = inst.host.firewall().unwrap();
    assert!(
        fw.masquerade
            .iter()
            .any(|m| m.subnet.to_string() == format!("{POOL6}/64") && m.bridge == bridge),
        "{fw:?}"
    );
    assert_eq!(
        inst.host.forwarding_now(),
        Forwarding {
            ipv4: Some(true),
            ipv6: Some(true)
        }
    );

    // Detach releases both addresses and both records.
    assert_eq!(
        c.call(Request::DetachContainer {
            handle: Handle::LinuxPid { pid: 4101 },
        })
        .await
        .unwrap(),
        Response::Ok
    );
    assert!(dns_ips(&mut c, "c1").await.is_empty());
    live(&inst, 4103);
    let (c4, c6) = attached(
        c.call(attach_pid(4103, "web", Some("ds"), None))
            .await
            .unwrap(),
    );
    assert_eq!((c4.as_str(), c6.as_deref()), (a4.as_str(), a6.as_deref()));

    // Restart: nothing recreated, every address kept.
    drop(c);
    let (cfg, host, wg) = (inst.cfg.clone(), inst.host.clone(), inst.wg.clone());
    let dir = inst.shutdown().await;
    host.clear_calls();
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    let mut c = inst.client().await;
    let recreated: Vec<Call> = inst
        .host
        .calls()
        .into_iter()
        .filter(|call| {
            matches!(
                call,
                Call::CreateBridge { .. } | Call::AttachVeth(_) | Call::DetachVeth(_)
            )
        })
        .collect();
    assert!(recreated.is_empty(), "{recreated:?}");
    match c
        .call(Request::InspectAttachment {
            handle: Handle::LinuxPid { pid: 4102 },
        })
        .await
        .unwrap()
    {
        Response::Attachment { ip: i4, ip_v6, .. } => {
            assert_eq!((i4, ip_v6), (b4.clone(), b6.clone()));
        }
        other => panic!("{other:?}"),
    }
    let mut names = dns_ips(&mut c, "c2").await;
    names.sort();
    assert_eq!(names, want, "records served again after the restart");
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => {
            let n = networks.iter().find(|n| n.owner == "iso:ds").unwrap();
            assert_eq!(
                n.extra.get("subnet_v6").and_then(|v| v.as_str()),
                v6.as_deref()
            );
        }
        other => panic!("{other:?}"),
    }
    // A new member after the restart takes the next free v6 address.
    live(&inst, 4104);
    let (_, d6) = attached(
        c.call(attach_pid(4104, "web", Some("ds"), None))
            .await
            .unwrap(),
    );
    assert_eq!(d6.as_deref(), Some(&*format!("{POOL6}4")));
}

#[tokio::test]
async fn internal_dual_stack_has_no_way_out_in_either_family() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(shared("web")).await.unwrap();
    let (_, v6, bridge) = iso_answer(
        c.call(Request::SetupIsolationNetwork {
            network: "in".into(),
            subnet: None,
            internal: true,
            ipv6: false,
            subnet_v6: Some("fd00:7::/64".into()),
        })
        .await
        .unwrap(),
    );
    assert_eq!(v6.as_deref(), Some("fd00:7::/64"), "subnet_v6 implies ipv6");
    live(&inst, 4201);
    let (_, a6) = attached(
        c.call(attach_pid(4201, "web", Some("in"), None))
            .await
            .unwrap(),
    );
    assert_eq!(a6.as_deref(), Some("fd00:7::2"));
    let ifaces = inst.host.container_ifaces(&NetnsTarget::Pid(4201));
    assert_eq!(ifaces[0].gateway, None);
    assert_eq!(ifaces[0].gateway_v6, None);
    let fw = inst.host.firewall().unwrap();
    assert!(!fw.masquerade.iter().any(|m| m.bridge == bridge), "{fw:?}");
    assert_eq!(
        inst.host.forwarding_now().ipv6,
        Some(false),
        "no IPv6 forwarding for an internal network"
    );
}

#[tokio::test]
async fn single_stack_networks_are_unchanged_and_dual_stack_is_not_bolted_on() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(shared("web")).await.unwrap();
    // Single-stack IPv4, then asked again as dual-stack: refused.
    let (_, v6, _) = iso_answer(c.call(iso("v4")).await.unwrap());
    assert_eq!(v6, None);
    let m = err_message(c.call(iso_dual("v4")).await.unwrap());
    assert!(m.contains("without an IPv6 subnet"), "{m}");
    // Single-stack IPv6 as before: the v6 subnet is `subnet`, no subnet_v6.
    let (s, v6, _) = iso_answer(
        c.call(Request::SetupIsolationNetwork {
            network: "v6".into(),
            subnet: Some("fd00:1::/64".into()),
            internal: false,
            ipv6: false,
            subnet_v6: None,
        })
        .await
        .unwrap(),
    );
    assert_eq!((s.as_str(), v6), ("fd00:1::/64", None));
    live(&inst, 4301);
    let (a, a6) = attached(
        c.call(attach_pid(4301, "web", Some("v6"), None))
            .await
            .unwrap(),
    );
    assert_eq!((a.as_str(), a6), ("fd00:1::2", None));
    // A v6 `subnet` with ipv6 is the v6 subnet; v4 comes from the pool.
    let (s, v6, _) = iso_answer(
        c.call(Request::SetupIsolationNetwork {
            network: "ds".into(),
            subnet: Some("fd00:2::/64".into()),
            internal: false,
            ipv6: true,
            subnet_v6: None,
        })
        .await
        .unwrap(),
    );
    assert!(s.starts_with("10.201."), "{s}");
    assert_eq!(v6.as_deref(), Some("fd00:2::/64"));
    // An overlapping v6 subnet is refused, naming the holder.
    let m = err_message(
        c.call(Request::SetupIsolationNetwork {
            network: "clash".into(),
            subnet: None,
            internal: false,
            ipv6: true,
            subnet_v6: Some("fd00:2::/64".into()),
        })
        .await
        .unwrap(),
    );
    assert!(m.contains("iso:ds"), "{m}");
    // Teardown frees the v6 subnet for the pool again.
    assert_eq!(
        c.call(Request::TeardownIsolationNetwork {
            network: "ds".into()
        })
        .await
        .unwrap(),
        Response::Ok
    );
    let (_, v6, _) = iso_answer(c.call(iso_dual("next")).await.unwrap());
    assert_eq!(v6.as_deref(), Some(&*format!("{POOL6}/64")));
}

#[tokio::test]
async fn shared_nat_is_dual_stack_when_configured_so() {
    let inst = Instance::start_with(|c| c.shared_nat_ipv6 = true).await;
    let mut c = inst.client().await;
    c.call(shared("web")).await.unwrap();
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => {
            let n = networks.iter().find(|n| n.owner == "shared-nat").unwrap();
            assert_eq!(
                n.extra.get("subnet_v6").and_then(|v| v.as_str()),
                Some(&*format!("{POOL6}/64"))
            );
        }
        other => panic!("{other:?}"),
    }
    live(&inst, 4401);
    let (_, a6) = attached(
        c.call(attach_pid(4401, "web", None, Some("s1")))
            .await
            .unwrap(),
    );
    assert_eq!(a6.as_deref(), Some(&*format!("{POOL6}2")));
    let ifaces = inst.host.container_ifaces(&NetnsTarget::Pid(4401));
    assert_eq!(ifaces[0].gateway_v6, Some(ip(&format!("{POOL6}1"))));
    // Another shared service uses the same network: nothing changes.
    c.call(shared("api")).await.unwrap();
    let fw = inst.host.firewall().unwrap();
    assert!(
        fw.masquerade
            .iter()
            .any(|m| m.subnet.to_string() == format!("{POOL6}/64")),
        "{fw:?}"
    );
    // A lost marker is rebuilt from the bridge's addresses with both subnets.
    drop(c);
    let marker = inst.marker();
    let (cfg, host, wg) = (inst.cfg.clone(), inst.host.clone(), inst.wg.clone());
    let dir = inst.shutdown().await;
    std::fs::remove_file(&marker).unwrap();
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    let mut c = inst.client().await;
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => {
            let n = networks.iter().find(|n| n.owner == "shared-nat").unwrap();
            assert_eq!(
                n.extra.get("subnet_v6").and_then(|v| v.as_str()),
                Some(&*format!("{POOL6}/64")),
                "{n:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    match c
        .call(Request::InspectAttachment {
            handle: Handle::LinuxPid { pid: 4401 },
        })
        .await
        .unwrap()
    {
        Response::Attachment { ip_v6, .. } => assert_eq!(ip_v6, a6),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shared_nat_stays_single_stack_by_default() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(shared("web")).await.unwrap();
    live(&inst, 4501);
    let (_, a6) = attached(c.call(attach_pid(4501, "web", None, None)).await.unwrap());
    assert_eq!(a6, None);
    assert_eq!(inst.host.forwarding_now().ipv6, Some(false));
}

#[tokio::test]
async fn a_lost_marker_is_rebuilt_with_both_subnets() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    c.call(shared("web")).await.unwrap();
    let (v4, v6, bridge) = iso_answer(
        c.call(Request::SetupIsolationNetwork {
            network: "ds".into(),
            subnet: Some("10.201.9.0/24".into()),
            internal: false,
            ipv6: false,
            subnet_v6: Some("fd00:9::/64".into()),
        })
        .await
        .unwrap(),
    );
    live(&inst, 4601);
    let (a4, a6) = attached(
        c.call(attach_pid(4601, "web", Some("ds"), None))
            .await
            .unwrap(),
    );
    drop(c);
    let marker = inst.marker();
    let (cfg, host, wg) = (inst.cfg.clone(), inst.host.clone(), inst.wg.clone());
    let dir = inst.shutdown().await;
    std::fs::remove_file(&marker).unwrap();
    host.clear_calls();
    let inst = Instance::relaunch(dir, cfg, host, wg).await;
    let mut c = inst.client().await;
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => {
            let n = networks.iter().find(|n| n.owner == "iso:ds").unwrap();
            assert_eq!((&n.subnet, &n.name), (&v4, &bridge));
            assert_eq!(
                n.extra.get("subnet_v6").and_then(|v| v.as_str()),
                v6.as_deref()
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !inst
            .host
            .calls()
            .iter()
            .any(|c| matches!(c, Call::CreateBridge { .. } | Call::AttachVeth(_))),
        "adopted, not recreated"
    );
    match c
        .call(Request::InspectAttachment {
            handle: Handle::LinuxPid { pid: 4601 },
        })
        .await
        .unwrap()
    {
        Response::Attachment { ip: i4, ip_v6, .. } => assert_eq!((i4, ip_v6), (a4, a6)),
        other => panic!("{other:?}"),
    }
}
