//! `prune_networks`, in process with a fake host: exactly the isolation
//! networks and services without members go (a dedicated service only when
//! asked); members' networks, `shared-nat` and their host objects stay.

mod support;

use overlayd_client::Client;
use overlayd_host::{Host, NetnsTarget};
use overlayd_proto::{Handle, Request, Response, ServiceMode};
use support::inproc::Instance;

fn service(name: &str, mode: ServiceMode) -> Request {
    Request::SetupServiceOverlay {
        service: name.into(),
        mode,
        recreate: false,
    }
}

fn iso(name: &str) -> Request {
    support::requests::iso(name)
}

fn attach(pid: u32, service: &str, isolation: Option<&str>) -> Request {
    Request::AttachContainer {
        handle: Handle::LinuxPid { pid },
        service: service.into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: isolation.map(str::to_string),
        name: None,
        publish: Vec::new(),
    }
}

async fn prune(c: &mut Client, include_dedicated: bool) -> (Vec<String>, Vec<String>) {
    match c
        .call(Request::PruneNetworks { include_dedicated })
        .await
        .unwrap()
    {
        Response::Pruned {
            networks,
            services,
            errors,
        } => {
            assert!(errors.is_empty(), "{errors:?}");
            (networks, services)
        }
        r => panic!("{r:?}"),
    }
}

/// (owner, bridge) of every recorded network.
async fn networks(c: &mut Client) -> Vec<(String, String)> {
    match c.call(Request::ListNetworks).await.unwrap() {
        Response::Networks { networks } => {
            networks.into_iter().map(|n| (n.owner, n.name)).collect()
        }
        r => panic!("{r:?}"),
    }
}

async fn services(c: &mut Client) -> Vec<String> {
    match c.call(Request::ListServices).await.unwrap() {
        Response::Services { services } => services.into_iter().map(|s| s.name).collect(),
        r => panic!("{r:?}"),
    }
}

fn owners(nets: &[(String, String)]) -> Vec<&str> {
    let mut o: Vec<&str> = nets.iter().map(|(o, _)| o.as_str()).collect();
    o.sort();
    o
}

#[tokio::test]
async fn prune_removes_exactly_the_empty_networks_and_services() {
    let inst = Instance::start().await;
    for pid in [100, 101] {
        inst.host.add_live_target(NetnsTarget::Pid(pid));
    }
    let mut c = inst.client().await;
    for r in [
        service("web", ServiceMode::Shared),
        service("idle", ServiceMode::Shared),
        service("api", ServiceMode::Shared),
        service("db", ServiceMode::Dedicated),
        iso("red"),
        iso("blue"),
        iso("green"),
    ] {
        let a = c.call(r).await.unwrap();
        assert!(!matches!(a, Response::Err { .. }), "{a:?}");
    }
    // web has a member on shared-nat; api's only member is on iso:red.
    for r in [attach(100, "web", None), attach(101, "api", Some("red"))] {
        let a = c.call(r).await.unwrap();
        assert!(matches!(a, Response::Attached { .. }), "{a:?}");
    }
    let before = networks(&mut c).await;
    assert_eq!(
        owners(&before),
        vec![
            "iso:blue",
            "iso:green",
            "iso:red",
            "service:db",
            "shared-nat"
        ]
    );
    let bridge = |owner: &str| {
        before
            .iter()
            .find(|(o, _)| o == owner)
            .map(|(_, b)| b.clone())
            .unwrap()
    };

    let (nets, svcs) = prune(&mut c, false).await;
    assert_eq!(nets, vec!["blue".to_string(), "green".to_string()]);
    assert_eq!(svcs, vec!["idle".to_string()]);
    assert_eq!(
        owners(&networks(&mut c).await),
        vec!["iso:red", "service:db", "shared-nat"]
    );
    assert_eq!(services(&mut c).await, vec!["api", "db", "web"]);
    for gone in ["iso:blue", "iso:green"] {
        assert!(
            inst.host.link(&bridge(gone)).await.unwrap().is_none(),
            "{gone}'s bridge is deleted"
        );
    }
    for kept in ["iso:red", "service:db", "shared-nat"] {
        assert!(
            inst.host.link(&bridge(kept)).await.unwrap().is_some(),
            "{kept}'s bridge stays"
        );
    }

    // Nothing left to prune without --include-dedicated: a second run is a no-op.
    assert_eq!(prune(&mut c, false).await, (vec![], vec![]));

    // With it, the empty dedicated service goes too (its bridge and device).
    let (nets, svcs) = prune(&mut c, true).await;
    assert!(nets.is_empty(), "{nets:?}");
    assert_eq!(svcs, vec!["db".to_string()]);
    assert_eq!(
        owners(&networks(&mut c).await),
        vec!["iso:red", "shared-nat"]
    );
    assert!(inst
        .host
        .link(&bridge("service:db"))
        .await
        .unwrap()
        .is_none());

    // Once the members leave, their networks and services are pruned too.
    for pid in [100, 101] {
        let r = c
            .call(Request::DetachContainer {
                handle: Handle::LinuxPid { pid },
            })
            .await
            .unwrap();
        assert_eq!(r, Response::Ok);
    }
    let (nets, mut svcs) = prune(&mut c, false).await;
    svcs.sort();
    assert_eq!(nets, vec!["red".to_string()]);
    assert_eq!(svcs, vec!["api".to_string(), "web".to_string()]);
    assert_eq!(owners(&networks(&mut c).await), vec!["shared-nat"]);
    assert!(services(&mut c).await.is_empty());
}

#[tokio::test]
async fn prune_with_nothing_recorded_is_a_no_op() {
    let inst = Instance::start().await;
    let mut c = inst.client().await;
    assert_eq!(prune(&mut c, true).await, (vec![], vec![]));
}
