//! Command-line interface: the typed clap arguments and one module per verb.
//! Every verb but `run`, `uninstall` and `demo` is a client of the socket.

mod attach;
mod call;
pub(crate) mod cluster;
mod cni;
mod connect;
mod dns;
mod docs;
mod doctor;
mod events;
pub mod exit;
mod global;
mod iso;
mod key;
mod network;
pub mod output;
mod peer;
mod ps;
mod run;
mod service;
mod status;
mod suggest;
mod uninstall;
mod version;
mod wg;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

pub use attach::{AttachArgs, DetachArgs};
pub use cluster::ClusterCmd;
pub use cni::CniCmd;
pub use connect::{ConnectArgs, DisconnectArgs};
pub use dns::DnsCmd;
pub use global::GlobalCmd;
pub use iso::IsoCmd;
pub use network::NetworkCmd;
pub use peer::PeerCmd;
pub use service::ServiceCmd;

/// overlayd: host network daemon for container hosts.
#[derive(Debug, Parser)]
#[command(name = "overlayd", version, about, propagate_version = true)]
pub struct Cli {
    /// Daemon socket path.
    #[arg(long, global = true, env = "OVERLAYD_SOCKET", default_value = overlayd_client::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Data directory (marker, store, node key).
    #[arg(long, global = true, env = "OVERLAYD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print the protocol payload as JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Format output with a template (`{{json .}}`, `{{.name}}\t{{.subnet}}`)
    /// applied to each listed item, or a comma-separated field list.
    #[arg(long, global = true, value_name = "TEMPLATE|FIELDS")]
    pub format: Option<String>,
    /// Log as JSON lines.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run(RunArgs),
    /// Show the daemon's status.
    Status,
    /// List attached containers (handle, network, interface, addresses, DNS names).
    Ps(ListArgs),
    /// Networks recorded in the marker.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// The node's base overlay.
    #[command(subcommand)]
    Global(GlobalCmd),
    /// Service networks.
    #[command(subcommand)]
    Service(ServiceCmd),
    /// Isolation networks.
    #[command(subcommand)]
    Iso(IsoCmd),
    /// Attach a container.
    Attach(AttachArgs),
    /// Detach a container (from every network).
    Detach(DetachArgs),
    /// Connect an attached container to a further network (eth1, …).
    Connect(ConnectArgs),
    /// Disconnect a container from a network it was connected to.
    Disconnect(DisconnectArgs),
    /// WireGuard peers.
    #[command(subcommand)]
    Peer(PeerCmd),
    /// DNS records.
    #[command(subcommand)]
    Dns(DnsCmd),
    /// Cluster mode on etcd: members, leases, leave.
    #[command(subcommand)]
    Cluster(ClusterCmd),
    /// Compare recorded and live host state and suggest fixes.
    Doctor(DoctorArgs),
    /// Replace the node's WireGuard keypair (daemon stopped).
    RotateKey(RotateKeyArgs),
    /// Show this instance's WireGuard devices (`overlayd wg show base|SERVICE`), like wg(8).
    Wg(WgArgs),
    /// Stop the daemon; with --purge also remove every host object and file of overlayd.
    Uninstall(UninstallArgs),
    /// Run a self-contained multi-node demo in network namespaces.
    Demo(overlayd_demo::DemoArgs),
    /// The CNI plugin for containerd, podman and Kubernetes runtimes.
    #[command(subcommand)]
    Cni(CniCmd),
    /// Show the client's and the daemon's versions and protocol.
    Version,
    /// Stream the daemon's events (attach, detach, networks, peers, reconcile).
    Events,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page (or write every page with --dir).
    Man(docs::ManArgs),
}

/// Options of every list command.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    /// Print only names or ids, one per line.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Cli {
    /// The output style the global flags ask for (`quiet` from a list command).
    pub fn style(&self, quiet: bool) -> output::Style {
        output::Style {
            json: self.json,
            format: self.format.clone(),
            quiet,
        }
    }
}

/// `overlayd run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only report tagged host objects nothing records; do not delete them.
    #[arg(long)]
    pub no_gc: bool,
    /// Start even though the state store is missing, empty or damaged while
    /// the marker records networks: set it aside and rebuild from the marker
    /// and the live host (leases and peers only the store knew are lost).
    #[arg(long)]
    pub rebuild_store: bool,
}

/// `overlayd doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Repair what can be repaired now (recreate missing networks and
    /// devices, restore the firewall, reclaim attachments), then report.
    #[arg(long)]
    pub fix: bool,
}

/// `overlayd rotate-key`.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// TOML configuration file (for the data directory).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `overlayd wg`.
#[derive(Debug, Args)]
pub struct WgArgs {
    /// TOML configuration file (for the runtime directory).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `show [base|SERVICE|service:NAME|DEV|all|interfaces]`; other wg(8)
    /// arguments run wg(8) against this instance's devices.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `overlayd uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also delete every host network, the nftables tables, the marker, the store and the keys.
    #[arg(long)]
    pub purge: bool,
    /// TOML configuration file (for the interface prefix and directories).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Run the parsed command.
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = match cli.command {
        Command::Run(ref a) => rt.block_on(run::run(&cli, a)),
        Command::Uninstall(ref a) => rt.block_on(uninstall::uninstall(&cli, a)),
        Command::Status => rt.block_on(status::run(&cli)),
        Command::Ps(ref a) => rt.block_on(ps::run(&cli, a)),
        Command::Network(ref c) => rt.block_on(network::run(&cli, c)),
        Command::Global(ref c) => rt.block_on(global::run(&cli, c)),
        Command::Service(ref c) => rt.block_on(service::run(&cli, c)),
        Command::Iso(ref c) => rt.block_on(iso::run(&cli, c)),
        Command::Attach(ref a) => rt.block_on(attach::attach(&cli, a)),
        Command::Detach(ref a) => rt.block_on(attach::detach(&cli, a)),
        Command::Connect(ref a) => rt.block_on(connect::connect(&cli, a)),
        Command::Disconnect(ref a) => rt.block_on(connect::disconnect(&cli, a)),
        Command::Peer(ref c) => rt.block_on(peer::run(&cli, c)),
        Command::Dns(ref c) => rt.block_on(dns::run(&cli, c)),
        Command::Cluster(ref c) => rt.block_on(cluster::run(&cli, c)),
        Command::Doctor(ref a) => rt.block_on(doctor::run(&cli, a)),
        Command::RotateKey(ref a) => key::rotate(&cli, a),
        Command::Wg(ref a) => rt.block_on(wg::run(&cli, a)),
        Command::Demo(ref a) => rt.block_on(overlayd_demo::run(a)),
        Command::Cni(ref c) => cni::run(&cli, c),
        Command::Version => rt.block_on(version::run(&cli)),
        Command::Events => rt.block_on(events::run(&cli)),
        Command::Completions(ref a) => docs::completions(a),
        Command::Man(ref a) => docs::man(a),
    };
    // A blocking task stuck in a kernel call must not keep a finished
    // daemon (lock released, state flushed) alive: the runtime gets a
    // bounded time to wind down, then the process exits regardless.
    rt.shutdown_timeout(RUNTIME_WIND_DOWN);
    result
}

/// How long a finished command waits for the runtime's blocking tasks.
const RUNTIME_WIND_DOWN: std::time::Duration = std::time::Duration::from_secs(3);
