//! `overlayd network ls | create NET | rm NET... | inspect OWNER|NAME | move OWNER | prune`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use overlayd_proto::{NetworkView, Request, Response};

use super::exit::{Exit, Failure};
use super::{call, output, suggest, Cli, ListArgs};

/// `network` subcommands.
#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// List every marker entry (including kinds this platform cannot manage).
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Create (or confirm) an isolation network: `iso up`, under Docker's
    /// verb.
    Create(super::iso::IsoUpArgs),
    /// Remove isolation networks: `iso down`, under Docker's verb (`iso:NET`
    /// or a bare name; services go with `service down`).
    #[command(alias = "remove")]
    Rm {
        /// Network names.
        #[arg(required = true)]
        nets: Vec<String>,
    },
    /// Show one network with its live state and its members' addresses.
    Inspect {
        /// Owner key (`base`, `shared-nat`, `service:NAME`, `iso:NET`), or a
        /// bare service / isolation network name, bridge or device name
        /// when that is unambiguous.
        owner: String,
    },
    /// Give a network another subnet (the explicit fix when two nodes use
    /// the same one); no container may be attached to it.
    Move {
        /// Owner key (`shared-nat`, `service:NAME`, `iso:NET`), or a bare
        /// service / isolation network name when that is unambiguous.
        owner: String,
        /// The subnet to move to; without it the next free one is taken.
        #[arg(long)]
        subnet: Option<String>,
    },
    /// Remove every isolation network and service no container is attached
    /// to (never the base network or the shared NAT bridge), printing what
    /// was removed. Asks for confirmation unless --force.
    Prune {
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(short, long)]
        force: bool,
        /// Also remove dedicated services without members: their WireGuard
        /// key, port and subnet are gone for good.
        #[arg(long)]
        include_dedicated: bool,
    },
}

/// Run a `network` subcommand.
pub async fn run(cli: &Cli, cmd: &NetworkCmd) -> Result<ExitCode> {
    match cmd {
        NetworkCmd::Create(args) => call::call_and_print(cli, args.request()?).await,
        NetworkCmd::Rm { nets } => {
            // Like `docker network rm`: in order, stopping at the first error.
            for net in nets {
                let network = net.strip_prefix("iso:").unwrap_or(net).to_string();
                call::call_and_print(cli, Request::TeardownIsolationNetwork { network }).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Ls(a) => {
            let r = call::call(cli, Request::ListNetworks).await?;
            output::print(&r, &cli.style(a.quiet))?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Inspect { owner } => {
            let Response::Networks { networks } = call::call(cli, Request::ListNetworks).await?
            else {
                bail!("unexpected answer to list_networks");
            };
            let view = resolve(networks, owner)?;
            let members = match call::call(cli, Request::ListAttachments).await? {
                Response::Attachments { attachments } => attachments
                    .into_iter()
                    .filter(|a| a.network == view.owner)
                    .collect(),
                _ => Vec::new(),
            };
            output::print_inspect(&view, &members, &cli.style(false))?;
            Ok(ExitCode::SUCCESS)
        }
        NetworkCmd::Move { owner, subnet } => {
            // A bare name (`db`) means its owner key, as for `inspect`.
            let network = match call::call(cli, Request::ListNetworks).await {
                Ok(Response::Networks { networks }) => resolve(networks, owner)
                    .map(|v| v.owner)
                    .unwrap_or_else(|_| owner.clone()),
                _ => owner.clone(),
            };
            let req = Request::MoveNetwork {
                network,
                subnet: subnet.clone(),
            };
            match call::call(cli, req).await? {
                Response::Networks { networks } if !cli.json && cli.format.is_none() => {
                    for n in &networks {
                        println!("{} moved to {}", n.owner, n.subnet);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                r => {
                    output::print(&r, &cli.style(false))?;
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        NetworkCmd::Prune {
            force,
            include_dedicated,
        } => prune(cli, *force, *include_dedicated).await,
    }
}

/// `network prune`: confirm on a terminal (or `--force`), prune, print what
/// went; exit non-zero when a removal failed.
async fn prune(cli: &Cli, force: bool, include_dedicated: bool) -> Result<ExitCode> {
    if !force {
        let what = if include_dedicated {
            "every isolation network and service (dedicated ones included, with their keys)"
        } else {
            "every isolation network and shared service"
        };
        let question =
            format!("WARNING! This will remove {what} that no container is attached to.\nAre you sure you want to continue? [y/N] ");
        if !confirm(&question)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let r = call::call(cli, Request::PruneNetworks { include_dedicated }).await?;
    output::print(&r, &cli.style(false))?;
    match r {
        Response::Pruned { errors, .. } if !errors.is_empty() => Err(Failure::new(
            Exit::Failed,
            format!(
                "{} removal(s) failed (see above); the rest was pruned",
                errors.len()
            ),
        )
        .into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Ask a yes/no question on the terminal. Without a terminal on stdin
/// nobody can answer: refuse, naming `--force`.
fn confirm(question: &str) -> Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::new(
            Exit::Usage,
            "refusing to prune without confirmation: stdin is not a terminal; pass --force",
        )
        .into());
    }
    let mut err = std::io::stderr().lock();
    err.write_all(question.as_bytes())?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(is_yes(&answer))
}

/// `y` or `yes`, any case; everything else (an empty line too) is no.
fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// Find the network a user means: an exact owner, else the one whose bare
/// name (`db` for `service:db` or `iso:db`), bridge or device is `arg`.
pub fn resolve(networks: Vec<NetworkView>, arg: &str) -> Result<NetworkView> {
    if let Some(i) = networks.iter().position(|n| n.owner == arg) {
        return Ok(networks.into_iter().nth(i).expect("index from position"));
    }
    let bare = |n: &NetworkView| {
        n.owner
            .split_once(':')
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    };
    let matches: Vec<usize> = networks
        .iter()
        .enumerate()
        .filter(|(_, n)| bare(n) == arg || n.name == arg || n.interface.as_deref() == Some(arg))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [i] => Ok(networks.into_iter().nth(*i).expect("index from filter")),
        [] => {
            let mut names: Vec<String> = networks.iter().map(|n| n.owner.clone()).collect();
            names.extend(networks.iter().map(bare).filter(|b| !b.is_empty()));
            let h = suggest::hint(arg, names.iter().map(String::as_str));
            Err(Failure::new(
                Exit::NotFound,
                format!("no network {arg:?} is recorded{h}; `overlayd network ls` lists them"),
            )
            .into())
        }
        many => {
            let owners: Vec<&str> = many.iter().map(|i| networks[*i].owner.as_str()).collect();
            Err(Failure::new(
                Exit::Usage,
                format!(
                    "{arg:?} is ambiguous: it names {}; give the owner key",
                    owners.join(" and ")
                ),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(owner: &str, name: &str, interface: Option<&str>) -> NetworkView {
        NetworkView {
            owner: owner.into(),
            kind: "linux-bridge".into(),
            name: name.into(),
            id: "x".into(),
            subnet: "10.0.0.0/24".into(),
            wg_port: None,
            wg_public_key: None,
            interface: interface.map(str::to_string),
            present: true,
            managed: true,
            extra: Default::default(),
        }
    }

    #[test]
    fn only_y_or_yes_confirms() {
        assert!(is_yes("y\n"));
        assert!(is_yes(" YES \n"));
        assert!(!is_yes("\n"));
        assert!(!is_yes("n"));
        assert!(!is_yes("yep"));
    }

    #[test]
    fn bare_names_resolve_when_unambiguous() {
        let nets = || {
            vec![
                net("base", "ovl-base", None),
                net("service:db", "ovl-db", Some("ovlw-db")),
                net("iso:db", "ovl-i-db", None),
                net("service:web", "ovl-web", None),
            ]
        };
        assert_eq!(resolve(nets(), "service:db").unwrap().owner, "service:db");
        assert_eq!(resolve(nets(), "web").unwrap().owner, "service:web");
        assert_eq!(resolve(nets(), "ovlw-db").unwrap().owner, "service:db");
        let e = resolve(nets(), "db").unwrap_err();
        assert!(e.to_string().contains("ambiguous"), "{e}");
        let e = resolve(nets(), "wbe").unwrap_err();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.exit, Exit::NotFound);
        assert!(f.message.contains("did you mean \"web\""), "{}", f.message);
    }
}
