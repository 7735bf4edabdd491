//! Timed requests to the daemon over a persistent client connection: attach
//! and detach of one container, with failures reported with the daemon log.

use std::time::{Duration, Instant};

use overlayd_client::Client;
use overlayd_proto::{Handle, Request, Response};
use tokio::runtime::Runtime;

use crate::daemon_process::Daemon;
use crate::interrupt::bail_if_interrupted;
use crate::lab::Lab;
use crate::{CALL_TIMEOUT, SERVICE};

/// One request on a persistent connection, timed from send to response.
pub(crate) fn timed_call(rt: &Runtime, client: &mut Client, req: Request) -> (Response, Duration) {
    bail_if_interrupted();
    rt.block_on(async {
        let t0 = Instant::now();
        let resp = client
            .call_timeout(req, CALL_TIMEOUT)
            .await
            .expect("daemon call");
        (resp, t0.elapsed())
    })
}

/// Panic with the request and the daemon log unless `resp` is a success.
pub(crate) fn check(resp: &Response, what: &str, daemon: &Daemon) {
    if let Response::Err { message, .. } = resp {
        panic!("{what} failed: {message}\nlog:\n{}", daemon.log_tail());
    }
}

/// `attach_container` of `handle` to [`SERVICE`], optionally into an
/// isolation network, publishing `publish`.
fn attach_request(
    handle: Handle,
    isolation: Option<String>,
    publish: Vec<overlayd_proto::PortMapping>,
) -> Request {
    Request::AttachContainer {
        handle,
        service: SERVICE.into(),
        join_global: false,
        dns_server: None,
        dns_domain: None,
        isolation,
        name: None,
        publish,
    }
}

/// Attach container `i`, returning its address and the latency.
pub(crate) fn attach(
    rt: &Runtime,
    client: &mut Client,
    lab: &Lab,
    i: usize,
    isolation: Option<String>,
) -> (String, Duration) {
    attach_publishing(rt, client, lab, i, isolation, Vec::new())
}

/// Attach container `i` publishing `publish`, returning its address and
/// the latency.
pub(crate) fn attach_publishing(
    rt: &Runtime,
    client: &mut Client,
    lab: &Lab,
    i: usize,
    isolation: Option<String>,
    publish: Vec<overlayd_proto::PortMapping>,
) -> (String, Duration) {
    let req = attach_request(lab.handle(i), isolation, publish);
    let (resp, took) = timed_call(rt, client, req);
    match resp {
        Response::Attached { ip, .. } => (ip, took),
        other => {
            check(&other, "attach_container", &lab.daemon);
            panic!("attach_container answered {other:?}");
        }
    }
}

/// Detach container `i`, returning the latency.
pub(crate) fn detach(rt: &Runtime, client: &mut Client, lab: &Lab, i: usize) -> Duration {
    let (resp, took) = timed_call(
        rt,
        client,
        Request::DetachContainer {
            handle: lab.handle(i),
        },
    );
    check(&resp, "detach_container", &lab.daemon);
    took
}
