//! The daemon: start-up (lock, load, reconcile), serving, and a clean stop
//! that leaves every host network in place.

pub mod address_plan;
pub mod attach;
pub mod attach_records;
pub mod attach_state;
pub mod blocking;
pub mod cluster;
pub mod connect;
pub mod container_ops;
pub mod detach;
pub mod dispatch;
pub mod dns;
pub mod dns_scope;
pub mod dual_stack;
pub mod error;
pub mod execute;
pub mod forwarding;
pub mod guest;
pub mod health;
pub mod host_guard;
pub mod identity;
pub mod inflight;
pub mod interfaces;
pub mod internal;
pub mod lease;
pub mod listing;
pub mod marker_book;
pub mod metrics;
pub mod missing;
pub mod networks;
pub mod node;
pub mod notify;
pub mod overlay;
pub mod overlay_state;
pub mod peers;
pub mod plan;
pub mod prune;
pub mod publish;
pub mod purge;
pub mod reconcile;
pub mod records;
pub mod server;
pub mod services;
pub mod state_files;
pub mod veth;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use overlayd_host::Host;
use overlayd_state::InstanceLock;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, watch, Mutex};
use tracing::{info, warn};

use crate::config::Config;
use dispatch::Dispatcher;
use node::Node;

/// Options of one daemon run besides the configuration.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Only report tagged orphans instead of deleting them.
    pub no_gc: bool,
    /// Set a missing, empty or damaged state store aside and start afresh
    /// (`overlayd run --rebuild-store`); without it such a store is refused.
    pub rebuild_store: bool,
}

/// Run the daemon until SIGTERM, SIGINT or a `shutdown` request.
pub async fn run(
    cfg: Config,
    opts: RunOptions,
    host: Arc<dyn Host>,
    wg: Arc<dyn overlayd_wg::WgBackend>,
) -> Result<()> {
    let lock = acquire_lock(&cfg.data_dir).await?;
    // Signals are caught from before start-up reconcile: a SIGTERM during
    // it lets the reconcile finish and then stops cleanly, instead of
    // killing the process half-way through.
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = spawn_signal_watch(stop_tx.clone())?;
    let (events, _) = broadcast::channel(256);
    let mut node = Node::open(
        cfg.clone(),
        host.clone(),
        wg,
        events.clone(),
        opts.rebuild_store,
    )
    .await
    .context("cannot load overlayd state")?;
    // Purge finds this instance's nftables table even without the config.
    if let Err(e) = node.store.write(|tx| {
        tx.put(
            overlayd_state::Table::Meta,
            purge::NFT_TABLE_KEY,
            &node.cfg.nft_table(),
        )
    }) {
        warn!(error = %e, "cannot record the nftables table name");
    }
    let cluster = cluster::connect(&node.cfg).await?;
    node.cluster = cluster.clone();
    let report = node.reconcile(!opts.no_gc && node.cfg.gc).await;
    info!(
        adopted = report.adopted,
        recreated = report.recreated,
        devices_restarted = report.devices_restarted,
        orphans = report.orphans,
        reclaimed = report.reclaimed,
        "state reconciled"
    );
    if *stop_rx.borrow() {
        info!("stop requested during start-up: reconcile finished; host networks stay in place");
        signals.abort();
        if let Err(e) = node.flush() {
            warn!(error = %e, "flushing state at stop failed");
        }
        drop(lock);
        return Ok(());
    }
    let group = resolve_group(cfg.socket_group.as_deref())?;
    let listener = server::bind(&cfg.socket, group)?;
    let view = node.read_view();
    let inflight = node.inflight.clone();
    let node = Arc::new(Mutex::new(node));
    let dispatcher = Arc::new(Dispatcher::new(
        node.clone(),
        view,
        inflight,
        stop_tx.clone(),
    ));
    let policy = server::AccessPolicy {
        own_uid: nix::unistd::geteuid().as_raw(),
        group,
    };
    server::announce(&cfg.socket);
    notify_ready();

    let metrics = match cfg.metrics_listen.as_deref() {
        Some(addr) => {
            let addr = addr
                .parse()
                .with_context(|| format!("metrics_listen {addr:?} is not ip:port"))?;
            Some(metrics::serve(addr, node.clone(), stop_rx.clone()).await?)
        }
        None => None,
    };
    let checker = spawn_periodic_check(node.clone(), cfg.check_interval_secs, stop_rx.clone());
    let cluster_task =
        cluster.map(|h| cluster::driver::spawn(h, node.clone(), events.clone(), stop_rx.clone()));
    let fw_watch = spawn_firewall_watch(host.as_ref(), node.clone(), stop_rx.clone()).await;
    let limits = server::ConnLimits {
        max_connections: cfg.max_connections,
        idle_timeout: (cfg.idle_timeout_secs > 0)
            .then(|| std::time::Duration::from_secs(cfg.idle_timeout_secs)),
    };
    server::serve(listener, dispatcher, policy, events, stop_rx, limits).await;

    info!("stopping: flushing state; host networks stay in place");
    signals.abort();
    checker.abort();
    if let Some(w) = fw_watch {
        w.abort();
    }
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(t) = cluster_task {
        t.abort();
    }
    let wg = {
        let node = node.lock().await;
        if let Err(e) = node.flush() {
            warn!(error = %e, "flushing state at stop failed");
        }
        node.wg.clone()
    };
    let _ = std::fs::remove_file(&cfg.socket);
    drop(lock);
    // Host networks stay; userspace WireGuard devices die with the process.
    // Dropping the backend would stop those devices one by one, joining each
    // device's threads, which only delays an exit that closes them anyway
    // (an earlier backend's joins could block for good: a daemon that
    // released its lock and never exited). The backend is deliberately
    // never dropped.
    std::mem::forget(wg);
    Ok(())
}

/// How long start-up waits for the lock of a previous daemon that is gone.
const DEAD_HOLDER_WAIT: Duration = Duration::from_secs(5);

/// Take the instance lock. When it is held in the name of a process that no
/// longer exists — a daemon killed with -9 while it was forking a child
/// (an `nft` run), whose lock then lives on in that child until it execs —
/// wait a moment for it instead of refusing to start.
async fn acquire_lock(data_dir: &std::path::Path) -> overlayd_state::Result<InstanceLock> {
    let deadline = tokio::time::Instant::now() + DEAD_HOLDER_WAIT;
    loop {
        match InstanceLock::acquire(data_dir) {
            Err(overlayd_state::StateError::Locked { pid: Some(pid), .. })
                if !process_alive(pid) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => return r,
        }
    }
}

/// Whether a process with this pid exists.
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

fn spawn_signal_watch(stop: watch::Sender<bool>) -> Result<tokio::task::JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = int.recv() => info!("SIGINT received"),
        }
        let _ = stop.send(true);
    }))
}

/// Restore the firewall the moment it changes (isolation fails closed): an
/// nftables change event triggers a comparison and, on drift, a re-apply.
async fn spawn_firewall_watch(
    host: &dyn Host,
    node: Arc<Mutex<Node>>,
    mut stop: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut rx = match host.watch_firewall().await {
        Ok(Some(rx)) => rx,
        Ok(None) => return None,
        Err(e) => {
            warn!(error = %e, "cannot watch nftables changes; the periodic check restores drift");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    if ev.is_none() {
                        break;
                    }
                    node.lock().await.restore_firewall_if_drifted().await;
                }
                _ = stop.changed() => break,
            }
        }
    }))
}

fn spawn_periodic_check(
    node: Arc<Mutex<Node>>,
    secs: u64,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(secs.max(1)));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => node.lock().await.periodic_check().await,
                _ = stop.changed() => break,
            }
        }
    })
}

/// Resolve the socket group (a name or a numeric gid).
fn resolve_group(group: Option<&str>) -> Result<Option<u32>> {
    let Some(g) = group else { return Ok(None) };
    if let Ok(gid) = g.parse::<u32>() {
        return Ok(Some(gid));
    }
    let grp = nix::unistd::Group::from_name(g)
        .with_context(|| format!("cannot look up group {g:?}"))?
        .with_context(|| format!("socket_group {g:?} does not exist"))?;
    Ok(Some(grp.gid.as_raw()))
}

/// Tell systemd (Type=notify) that the socket is ready, if it is listening.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let bytes = path.as_encoded_bytes();
    let res = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(b"READY=1\n", &addr))
    } else {
        sock.send_to(b"READY=1\n", &path)
    };
    if let Err(e) = res {
        warn!(error = %e, "sd_notify READY=1 failed");
    }
}
