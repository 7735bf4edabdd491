//! Builders for the requests tests send most, so a test says what it asks
//! for in one line and a new optional field is added in one place.

use overlayd_proto::{Handle, Request, ServiceMode};

/// `setup_isolation_network` with a planned subnet, not internal.
pub fn iso(network: &str) -> Request {
    Request::SetupIsolationNetwork {
        network: network.into(),
        subnet: None,
        internal: false,
        ipv6: false,
        subnet_v6: None,
    }
}

/// `setup_isolation_network` of a dual-stack network: planned IPv4 and
/// IPv6 subnets (`local_pool` and `local_pool6`).
pub fn iso_dual(network: &str) -> Request {
    Request::SetupIsolationNetwork {
        network: network.into(),
        subnet: None,
        internal: false,
        ipv6: true,
        subnet_v6: None,
    }
}

/// `setup_service_overlay` in shared mode.
pub fn shared(service: &str) -> Request {
    Request::SetupServiceOverlay {
        service: service.into(),
        mode: ServiceMode::Shared,
        recreate: false,
    }
}

/// `setup_service_overlay` in dedicated mode (own bridge, port and key).
pub fn dedicated(service: &str) -> Request {
    Request::SetupServiceOverlay {
        service: service.into(),
        mode: ServiceMode::Dedicated,
        recreate: false,
    }
}

/// `attach_container` of a process to `service` (on `isolation` when given),
/// registered under `name` when given.
pub fn attach_pid(pid: u32, service: &str, isolation: Option<&str>, name: Option<&str>) -> Request {
    Request::AttachContainer {
        handle: Handle::LinuxPid { pid },
        service: service.into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation: isolation.map(str::to_string),
        name: name.map(str::to_string),
        publish: Vec::new(),
    }
}

/// [`attach_pid`] publishing `ports` (docker syntax, e.g. `8080:80`).
pub fn attach_pid_publishing(
    pid: u32,
    service: &str,
    isolation: Option<&str>,
    ports: &[&str],
) -> Request {
    let mut r = attach_pid(pid, service, isolation, None);
    if let Request::AttachContainer { publish, .. } = &mut r {
        *publish = ports.iter().map(|p| p.parse().unwrap()).collect();
    }
    r
}
