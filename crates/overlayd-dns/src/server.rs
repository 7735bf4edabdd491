//! The running server: a set of listeners (UDP + TCP per address) that can
//! grow and shrink while the daemon runs, all answering from one [`Records`].

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, JoinHandle};

use crate::forward::Forwarder;
use crate::handler::Handler;
use crate::name::Zone;
use crate::scope::ScopeCell;
use crate::udp;
use crate::{DnsConfig, DnsError, Records};

/// Responses a TCP connection may have queued before it is back-pressured.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Listen backlog of the TCP sockets.
const TCP_BACKLOG: i32 = 1024;
/// How often binding an ephemeral port (port 0) is retried when the UDP port
/// we got is taken for TCP.
const EPHEMERAL_BIND_ATTEMPTS: usize = 16;
/// Bound on waiting for a listener's tasks to finish after it was told to stop.
const STOP_WAIT: Duration = Duration::from_secs(5);

struct Listener {
    stop: oneshot::Sender<()>,
    /// Supervises the TCP server and the UDP loop; ends when both are closed.
    task: JoinHandle<()>,
    /// The UDP loop on the DNS thread, aborted directly if supervision fails.
    udp: AbortHandle,
}

/// A dedicated thread with a single-threaded Tokio runtime that runs every
/// UDP listener loop (and the forwards they start). Queries are answered
/// inline on it, like dnsmasq's single event loop, without hopping between
/// the daemon's worker threads; it stops when this value is dropped.
struct UdpRuntime {
    handle: tokio::runtime::Handle,
    _stop: oneshot::Sender<()>,
}

impl UdpRuntime {
    fn start() -> Result<Self, DnsError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DnsError::Runtime)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("overlayd-dns-udp".into())
            .spawn(move || {
                // Runs until the sender is dropped; dropping the runtime then
                // cancels whatever is still spawned on it.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(DnsError::Runtime)?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }
}

struct Inner {
    udp_runtime: UdpRuntime,
    handler: Handler,
    scope: ScopeCell,
    records: Records,
    tcp_idle_timeout: Duration,
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
    closed: Mutex<bool>,
}

/// An authoritative DNS server for one zone with forwarding for other names.
///
/// A cheap-clone handle. Listeners are added and removed at runtime as
/// networks come and go; dropping the last handle stops every listener.
#[derive(Clone)]
pub struct DnsServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("zone", &self.inner.records.zone())
            .field("listeners", &self.listeners())
            .finish()
    }
}

impl DnsServer {
    /// Running totals of queries, answers and SERVFAILs since start.
    pub fn stats(&self) -> crate::handler::DnsStatsSnapshot {
        self.inner.handler.stats().snapshot()
    }
}

impl DnsServer {
    /// Starts a server answering from `records` and binds `config.listen`.
    ///
    /// Must run inside a Tokio runtime. Fails if the zones of `config` and
    /// `records` differ or if any listen address cannot be bound (then
    /// nothing is left listening).
    pub async fn start(config: DnsConfig, records: Records) -> Result<Self, DnsError> {
        let zone = Zone::parse(&config.zone)?;
        if zone.name.to_ascii() != records.zone() {
            return Err(DnsError::ZoneMismatch {
                records: records.zone(),
                config: zone.name.to_ascii(),
            });
        }
        let forwarder = (!config.upstreams.is_empty()).then(|| {
            Arc::new(Forwarder::new(
                config.upstreams.clone(),
                config.upstream_timeout,
            ))
        });
        let scope = ScopeCell::default();
        let server = Self {
            inner: Arc::new(Inner {
                udp_runtime: UdpRuntime::start()?,
                handler: Handler::new(records.clone(), forwarder, scope.clone()),
                scope,
                records,
                tcp_idle_timeout: config.tcp_idle_timeout,
                listeners: Mutex::new(HashMap::new()),
                closed: Mutex::new(false),
            }),
        };
        for addr in &config.listen {
            if let Err(error) = server.add_listener(*addr).await {
                server.shutdown().await;
                return Err(error);
            }
        }
        tracing::info!(
            zone = %server.inner.records.zone(),
            upstreams = %join(&config.upstreams),
            listeners = %join(&server.listeners()),
            "DNS server started"
        );
        Ok(server)
    }

    /// Scope answers from now on: a query arriving on a listener learns only
    /// the addresses `policy` says are visible from that listener's address
    /// (`None`: every address, the default).
    pub fn set_visibility(&self, policy: Option<Arc<dyn crate::Visibility>>) {
        self.inner.scope.set(policy);
    }

    /// The record set this server answers from.
    pub fn records(&self) -> &Records {
        &self.inner.records
    }

    /// Starts answering on `addr` over UDP and TCP and returns the bound
    /// address (port 0 picks a free port, the same for UDP and TCP).
    pub async fn add_listener(&self, addr: SocketAddr) -> Result<SocketAddr, DnsError> {
        if *lock(&self.inner.closed) {
            return Err(DnsError::ShutDown);
        }
        if addr.port() != 0 && lock(&self.inner.listeners).contains_key(&addr) {
            return Err(DnsError::ListenerExists { addr });
        }
        let (udp, tcp, bound) = bind_pair(addr)?;
        // TCP goes through hickory's server; UDP through our inline driver.
        let handler = self.inner.handler.for_listener(bound.ip());
        let mut server = Server::new(handler.clone());
        server.register_listener(tcp, self.inner.tcp_idle_timeout, TCP_RESPONSE_BUFFER);
        let udp_runtime = &self.inner.udp_runtime.handle;
        let udp = {
            // Register the socket with the reactor of the thread that serves it.
            let _entered = udp_runtime.enter();
            UdpSocket::from_std(udp).map_err(|source| DnsError::Bind {
                addr: bound,
                proto: "udp",
                source,
            })?
        };
        let mut udp_task = udp_runtime.spawn(udp::serve(Arc::new(udp), handler));
        let udp_abort = udp_task.abort_handle();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            // `udp::serve` only ends when its runtime goes away (or it is
            // aborted); a TCP failure leaves UDP serving until the stop.
            let mut tcp_running = true;
            let mut udp_running = true;
            loop {
                tokio::select! {
                    result = server.block_until_done(), if tcp_running => {
                        if let Err(error) = result {
                            tracing::warn!(addr = %bound, %error, "DNS TCP listener stopped unexpectedly");
                        }
                        tcp_running = false;
                    }
                    result = &mut udp_task, if udp_running => {
                        if let Err(error) = result {
                            if !error.is_cancelled() {
                                tracing::warn!(addr = %bound, %error, "DNS UDP listener task failed");
                            }
                        }
                        udp_running = false;
                    }
                    // A stop request, or every handle to the server dropped.
                    _ = &mut stopped => break,
                }
                if !tcp_running && !udp_running {
                    break;
                }
            }
            if udp_running {
                // Abort the UDP loop and wait for it so its socket is closed.
                udp_task.abort();
                let _ = udp_task.await;
            }
            if tcp_running {
                if let Err(error) = server.shutdown_gracefully().await {
                    tracing::debug!(addr = %bound, %error, "DNS listener shut down with an error");
                }
            }
        });
        let mut listeners = lock(&self.inner.listeners);
        if *lock(&self.inner.closed) {
            udp_abort.abort();
            task.abort();
            return Err(DnsError::ShutDown);
        }
        listeners.insert(
            bound,
            Listener {
                stop,
                task,
                udp: udp_abort,
            },
        );
        tracing::info!(addr = %bound, "DNS listening (udp+tcp)");
        Ok(bound)
    }

    /// Stops answering on `addr` (as returned by [`add_listener`](Self::add_listener)).
    /// Returns once its sockets are closed; `false` if there was no such listener.
    pub async fn remove_listener(&self, addr: SocketAddr) -> bool {
        let listener = lock(&self.inner.listeners).remove(&addr);
        match listener {
            Some(listener) => {
                stop_listener(addr, listener).await;
                tracing::info!(%addr, "DNS listener removed");
                true
            }
            None => false,
        }
    }

    /// The addresses currently listened on, sorted.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = lock(&self.inner.listeners).keys().copied().collect();
        out.sort();
        out
    }

    /// Stops every listener and refuses new ones. Idempotent.
    pub async fn shutdown(&self) {
        *lock(&self.inner.closed) = true;
        let drained: Vec<(SocketAddr, Listener)> = lock(&self.inner.listeners).drain().collect();
        for (addr, listener) in drained {
            stop_listener(addr, listener).await;
        }
    }
}

async fn stop_listener(addr: SocketAddr, listener: Listener) {
    // The task may already have ended on its own; then there is no receiver.
    let _ = listener.stop.send(());
    let mut task = listener.task;
    if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
        tracing::warn!(%addr, "DNS listener did not stop in time; aborting it");
        listener.udp.abort();
        task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds a UDP socket and a TCP listener on the same address and port.
fn bind_pair(addr: SocketAddr) -> Result<(StdUdpSocket, TcpListener, SocketAddr), DnsError> {
    let attempts = if addr.port() == 0 {
        EPHEMERAL_BIND_ATTEMPTS
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..attempts {
        let udp = bind_udp(addr).map_err(|source| DnsError::Bind {
            addr,
            proto: "udp",
            source,
        })?;
        let bound = udp.local_addr().map_err(|source| DnsError::Bind {
            addr,
            proto: "udp",
            source,
        })?;
        match bind_tcp(bound) {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(source) if addr.port() == 0 && source.kind() == io::ErrorKind::AddrInUse => {
                last_error = Some(source);
            }
            Err(source) => {
                return Err(DnsError::Bind {
                    addr: bound,
                    proto: "tcp",
                    source,
                })
            }
        }
    }
    Err(DnsError::Bind {
        addr,
        proto: "tcp",
        source: last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)),
    })
}

fn new_socket(addr: SocketAddr, kind: Type, proto: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_udp(addr: SocketAddr) -> io::Result<StdUdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&addr.into())?;
    Ok(StdUdpSocket::from(socket))
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    // Rebinding right after a restart must not wait out TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    TcpListener::from_std(StdTcpListener::from(socket))
}

/// Addresses as one comma-separated log field (not Rust Debug text).
fn join(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
