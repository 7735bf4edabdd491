//! `overlayd peer add | rm`: WireGuard peers of the base or a service overlay.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::{Request, Scope};

use super::{call, Cli};

/// `peer` subcommands.
#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Add or replace a peer.
    Add {
        /// Peer public key (base64).
        #[arg(long)]
        pubkey: String,
        /// HOST:PORT.
        #[arg(long)]
        endpoint: String,
        /// Comma-separated CIDRs.
        #[arg(long)]
        allowed_ips: String,
        /// Dedicated service overlay (default: the base overlay).
        #[arg(long)]
        service: Option<String>,
        /// Persistent keepalive seconds.
        #[arg(long, default_value_t = 0)]
        keepalive: u64,
    },
    /// Remove a peer.
    Rm {
        /// Peer public key (base64).
        #[arg(long)]
        pubkey: String,
        /// Dedicated service overlay (default: the base overlay).
        #[arg(long)]
        service: Option<String>,
    },
}

fn scope(service: &Option<String>) -> Option<Scope> {
    Some(match service {
        Some(s) => Scope::Service { service: s.clone() },
        None => Scope::Global,
    })
}

/// Run a `peer` subcommand.
pub async fn run(cli: &Cli, cmd: &PeerCmd) -> Result<ExitCode> {
    let req = match cmd {
        PeerCmd::Add {
            pubkey,
            endpoint,
            allowed_ips,
            service,
            keepalive,
        } => Request::AddPeer {
            public_key: pubkey.clone(),
            endpoint: endpoint.clone(),
            allowed_ips: allowed_ips.clone(),
            persistent_keepalive_secs: *keepalive,
            scope: scope(service),
        },
        PeerCmd::Rm { pubkey, service } => Request::RemovePeer {
            pubkey: pubkey.clone(),
            scope: scope(service),
        },
    };
    call::call_and_print(cli, req).await
}
