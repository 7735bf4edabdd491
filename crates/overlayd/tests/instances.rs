//! Two overlayd instances in one namespace (different data directories and
//! interface prefixes) never touch each other's objects: each tags its
//! links with its own instance id and keeps its own nftables table, so
//! restarts with garbage collection on recreate and delete nothing of the
//! other, and purging one leaves the other whole (issue 10, item 4).

mod support;

use std::collections::BTreeMap;

use overlayd_proto::{Request, Response};
use support::*;

struct Instance {
    daemon: Daemon,
    _dir: tempfile::TempDir,
    prefix: &'static str,
}

fn start(node: &Netns, prefix: &'static str, pool: &str) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("overlayd.toml");
    std::fs::write(
        &cfg,
        format!("interface_prefix = \"{prefix}\"\nlocal_pool = \"{pool}\"\n"),
    )
    .unwrap();
    let daemon = Daemon::start(node, dir.path(), &["--config", cfg.to_str().unwrap()]);
    Instance {
        daemon,
        _dir: dir,
        prefix,
    }
}

impl Instance {
    /// Bring up an isolation network and a shared service, attach one
    /// container to the service; the container's address.
    fn populate(&self, c: &Container) -> String {
        self.daemon.ok(support::requests::iso("a"));
        self.daemon.ok(support::requests::shared("web"));
        match self
            .daemon
            .ok(support::requests::attach_pid(c.pid(), "web", None, None))
        {
            Response::Attached { ip, .. } => ip,
            r => panic!("attach: {r:?}"),
        }
    }

    /// The instance's links (by its prefix) with their ifindex.
    fn links(&self, node: &Netns) -> BTreeMap<String, u32> {
        node.links()
            .into_iter()
            .filter(|l| l.starts_with(self.prefix))
            .map(|l| {
                let i = node.ifindex(&l).unwrap();
                (l, i)
            })
            .collect()
    }

    fn table(&self) -> String {
        format!("overlayd_{}", self.prefix)
    }
}

fn tables(node: &Netns) -> String {
    node.output(&["nft", "list", "tables"])
}

#[test]
fn two_instances_in_one_namespace_restart_gc_and_purge_without_touching_each_other() {
    if !can_run_root_tests("instances") {
        return;
    }
    let node = Netns::new("in");
    node.exec(&["ip", "link", "set", "lo", "up"]);
    let (a, b) = (
        start(&node, "ova", "10.201.0.0/16"),
        start(&node, "ovb", "10.202.0.0/16"),
    );
    let (ca, cb) = (Container::new(), Container::new());
    let ip_a = a.populate(&ca);
    let ip_b = b.populate(&cb);
    let (links_a, links_b) = (a.links(&node), b.links(&node));
    assert!(links_a.len() >= 3, "bridges and a veth of a: {links_a:?}");
    assert!(links_b.len() >= 3, "bridges and a veth of b: {links_b:?}");
    let t = tables(&node);
    assert!(
        t.contains(&a.table()) && t.contains(&b.table()),
        "one table each: {t}"
    );
    let aliases = node.output(&["ip", "-d", "link", "show"]);
    assert!(
        aliases.contains(" inst="),
        "tags carry the instance: {aliases}"
    );

    // Restart both with garbage collection on (the default): nothing of
    // either is recreated or deleted.
    let (mut a, mut b) = (a, b);
    a.daemon.restart();
    b.daemon.restart();
    a.daemon.ok(Request::Reconcile);
    b.daemon.ok(Request::Reconcile);
    assert_eq!(a.links(&node), links_a, "a's links kept as they were");
    assert_eq!(b.links(&node), links_b, "b's links kept as they were");
    let gw = |ip: &str| {
        let mut o: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap()).collect();
        o[3] = 1;
        format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
    };
    wait_for(
        "a's container reaches its gateway",
        std::time::Duration::from_secs(10),
        || ca.ping(&gw(&ip_a)),
    );
    wait_for(
        "b's container reaches its gateway",
        std::time::Duration::from_secs(10),
        || cb.ping(&gw(&ip_b)),
    );

    // Purge a: everything of a goes, everything of b stays.
    let out = a.daemon.cli(&["uninstall", "--purge"]);
    assert!(
        out.status.success(),
        "purge a: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    a.daemon.proc.child.take().map(|mut c| c.wait());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("of other overlayd instances were kept"),
        "the purge does not claim the host is clean while b's links stay: {said}"
    );
    assert!(
        a.links(&node).is_empty(),
        "a's links are gone: {:?}",
        a.links(&node)
    );
    assert_eq!(b.links(&node), links_b, "b's links untouched by a's purge");
    let t = tables(&node);
    assert!(
        !t.contains(&a.table()),
        "a's table removed: {t}\npurge said: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t.contains(&b.table()), "b's table kept: {t}");
    assert!(
        cb.ping(&gw(&ip_b)),
        "b's container still reaches its gateway"
    );
    let r = b.daemon.ok(Request::ListNetworks);
    let Response::Networks { networks } = r else {
        panic!("{r:?}")
    };
    assert!(
        networks
            .iter()
            .all(|n| n.present && !n.extra.contains_key("drift")),
        "b reports no drift: {networks:?}"
    );
}
