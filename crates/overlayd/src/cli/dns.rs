//! `overlayd dns add NAME IP | rm NAME`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use overlayd_proto::Request;

use super::{call, Cli};

/// `dns` subcommands.
#[derive(Debug, Subcommand)]
pub enum DnsCmd {
    /// Register a name.
    Add {
        /// Name (relative to the zone).
        name: String,
        /// Address.
        ip: String,
    },
    /// Remove a name.
    Rm {
        /// Name.
        name: String,
        /// Also remove the addresses attached containers registered under
        /// the name (by default only those added with `dns add` go).
        #[arg(long, short)]
        force: bool,
    },
    /// List the registered names.
    #[command(alias = "list")]
    Ls(super::ListArgs),
}

/// Run a `dns` subcommand.
pub async fn run(cli: &Cli, cmd: &DnsCmd) -> Result<ExitCode> {
    let req = match cmd {
        DnsCmd::Add { name, ip } => Request::RegisterDns {
            name: name.clone(),
            ip: ip.clone(),
        },
        DnsCmd::Rm { name, force } => Request::UnregisterDns {
            name: name.clone(),
            force: *force,
        },
        DnsCmd::Ls(a) => {
            let r = call::call(cli, Request::ListDnsRecords).await?;
            super::output::print(&r, &cli.style(a.quiet))?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    call::call_and_print(cli, req).await
}
