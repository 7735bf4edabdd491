//! The container requests — attach, connect, detach, disconnect — as three
//! steps, so the slow kernel work of one container never holds up another
//! container's request:
//!
//! 1. **begin** (node lock): validate, settle what is recorded, write the
//!    intent (`attaching` with its lease, or `detaching`) — the
//!    [`ContainerWork`] left to do;
//! 2. **host work** (no node lock; the container held and its records
//!    claimed in [`super::inflight`]): make or delete the veths;
//! 3. **finish** (node lock): commit `attached` with DNS names and published
//!    ports, or release records and leases — or roll back.
//!
//! A crash or a cancelled request between the steps leaves the intent
//! record, which start-up and the periodic check finish as before.

use overlayd_host::Host;
use overlayd_proto::{Handle, Request, Response};

use super::attach::{make_veth, AttachSpec, Begun, PendingAttach};
use super::detach::{remove_veths, PendingDetach};
use super::error::{OpError, OpResult};
use super::node::Node;
use super::records::Attachment;

/// The host work a container request left for step 2.
pub enum ContainerWork {
    /// A veth to make (attach, connect).
    Attach(Box<PendingAttach>),
    /// Veths to delete (detach, disconnect).
    Detach(PendingDetach),
}

/// What step 2 did.
pub enum HostOutcome {
    /// The veth was made, or why not.
    Made(OpResult<()>),
    /// Each veth's deletion, in order.
    Removed(Vec<OpResult<()>>),
}

impl ContainerWork {
    /// The records this work has in flight (to claim).
    pub fn records(&self) -> Vec<&Attachment> {
        match self {
            ContainerWork::Attach(p) => vec![&p.record],
            ContainerWork::Detach(p) => p.marked.iter().collect(),
        }
    }

    /// Step 2: the kernel work, needing only the host and the instance id.
    pub async fn run(&self, host: &dyn Host, instance: &str) -> HostOutcome {
        match self {
            ContainerWork::Attach(p) => HostOutcome::Made(make_veth(host, p).await),
            ContainerWork::Detach(p) => HostOutcome::Removed(remove_veths(host, instance, p).await),
        }
    }
}

/// The handle a container request names (the key it is serialised by), or
/// `None` for any other request.
pub fn container_handle(request: &Request) -> Option<&Handle> {
    match request {
        Request::AttachContainer { handle, .. }
        | Request::ConnectContainer { handle, .. }
        | Request::DetachContainer { handle }
        | Request::DisconnectContainer { handle, .. } => Some(handle),
        _ => None,
    }
}

impl Node {
    /// A container request start to end under the caller's `&mut` (the
    /// node's own routing); the dispatcher runs the same three steps with
    /// the node lock released around step 2.
    pub async fn container_op(&mut self, request: Request) -> OpResult<Response> {
        match self.begin_container_op(request).await? {
            Begun::Done(r) => Ok(r),
            Begun::Pending(work) => {
                let outcome = work.run(self.host.as_ref(), &self.instance).await;
                self.finish_container_op(work, outcome).await
            }
        }
    }

    /// Step 1 of a container request.
    pub async fn begin_container_op(&mut self, request: Request) -> OpResult<Begun<ContainerWork>> {
        let begun = match request {
            Request::AttachContainer {
                handle,
                service,
                join_global,
                dns_server,
                dns_domain,
                isolation,
                name,
                publish,
            } => self
                .attach_begin(AttachSpec {
                    handle,
                    service,
                    join_global,
                    isolation,
                    name,
                    dns_server,
                    dns_domain,
                    publish,
                })
                .await?
                .map(|p| ContainerWork::Attach(Box::new(p))),
            Request::ConnectContainer {
                handle,
                network,
                ifname,
                name,
            } => self
                .connect_begin(handle, &network, ifname, name)
                .await?
                .map(|p| ContainerWork::Attach(Box::new(p))),
            Request::DetachContainer { handle } => {
                self.detach_begin(&handle).await?.map(ContainerWork::Detach)
            }
            Request::DisconnectContainer { handle, network } => self
                .disconnect_begin(&handle, &network)
                .await?
                .map(ContainerWork::Detach),
            other => {
                return Err(OpError::State(format!(
                    "{} is not a container request",
                    other.op()
                )))
            }
        };
        Ok(begun)
    }

    /// Step 3 of a container request.
    pub async fn finish_container_op(
        &mut self,
        work: ContainerWork,
        outcome: HostOutcome,
    ) -> OpResult<Response> {
        match (work, outcome) {
            (ContainerWork::Attach(p), HostOutcome::Made(made)) => {
                self.attach_finish(*p, made).await
            }
            (ContainerWork::Detach(p), HostOutcome::Removed(done)) => {
                self.detach_finish(p, done).await
            }
            _ => Err(OpError::State(
                "a container request finished with another request's host outcome".into(),
            )),
        }
    }
}

impl<P> Begun<P> {
    /// The pending work mapped, an answer kept.
    pub fn map<Q>(self, f: impl FnOnce(P) -> Q) -> Begun<Q> {
        match self {
            Begun::Done(r) => Begun::Done(r),
            Begun::Pending(p) => Begun::Pending(f(p)),
        }
    }
}
