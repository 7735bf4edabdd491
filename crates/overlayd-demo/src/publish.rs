//! The demo's published-port check: a container attached on n1 with
//! `--publish 8080:7000` answers a TCP connection the outside host opens to
//! n1's underlay address, port 8080.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use overlayd_proto::{Handle, Request, Response};

use super::lab::{Container, Lab};
use super::report::Report;
use super::secs;

/// Port published on the node.
const HOST_PORT: u16 = 8080;
/// Port the container listens on.
const CONTAINER_PORT: u16 = 7000;
/// What the container answers.
const GREETING: &str = "overlayd-demo-published";
/// How long the outside host keeps trying.
const DEADLINE: Duration = Duration::from_secs(15);

/// Run `f` on a fresh thread inside the network namespace `ns` (a
/// `/run/netns` name); only that thread changes namespace.
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    let path = PathBuf::from("/run/netns").join(ns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("cannot enter {}", path.display()))?;
        f()
    })
}

/// Serve one greeting per connection until `deadline`.
fn serve(listener: TcpListener, deadline: Instant) -> Result<()> {
    listener.set_nonblocking(true)?;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.write_all(GREETING.as_bytes());
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
    bail!(
        "no connection reached the container within {}",
        secs(DEADLINE)
    )
}

/// Connect until a greeting comes back or the deadline passes.
fn fetch(to: SocketAddr, deadline: Instant) -> Result<String> {
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&to, Duration::from_secs(1)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut got = String::new();
                let _ = s.read_to_string(&mut got);
                if got == GREETING {
                    return Ok(got);
                }
                last = format!("answered {got:?}");
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{to}: {last}")
}

/// Attach `pub1` on n1 publishing 8080 → 7000, serve from it, and fetch
/// from the outside host through n1's underlay address.
pub async fn published_port_check(lab: &mut Lab, report: &mut Report, name: &str) -> Result<()> {
    let ns = lab.add_container_ns("pub1").await?;
    let mut c = Container {
        name: "pub1".into(),
        ns: ns.clone(),
        node: 0,
        ip: String::new(),
        network: format!("web, published {HOST_PORT}:{CONTAINER_PORT}"),
    };
    let node = &lab.nodes[0];
    match node
        .call(Request::AttachContainer {
            handle: Handle::NetnsPath {
                path: c.netns_path(),
            },
            service: "web".into(),
            join_global: false,
            dns_server: None,
            dns_domain: None,
            isolation: None,
            name: None,
            publish: vec![format!("{HOST_PORT}:{CONTAINER_PORT}")
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?],
        })
        .await?
    {
        Response::Attached { ip, .. } => c.ip = ip,
        r => bail!("attach pub1 on {}: unexpected {r:?}", node.label),
    }
    let to: SocketAddr = format!("{}:{HOST_PORT}", node.underlay_ip).parse()?;
    let (label, ip) = (node.label.clone(), c.ip.clone());
    lab.containers.push(c);
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let listener = in_netns(&ns, move || {
        Ok(TcpListener::bind(("0.0.0.0", CONTAINER_PORT))?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("listener thread panicked"))??;
    let server = in_netns(&ns, move || serve(listener, deadline));
    let client = in_netns(&lab.ns_name("out"), move || fetch(to, deadline));
    let fetched = tokio::task::spawn_blocking(move || {
        let f = client.join();
        let s = server.join();
        (f, s)
    })
    .await?;
    match fetched {
        (Ok(Ok(_)), _) => report.pass(
            name,
            format!(
                "outside → {label} {to} → pub1 {ip}:{CONTAINER_PORT} answered in {} (one nft map element)",
                secs(started.elapsed())
            ),
        ),
        (Ok(Err(e)), _) => report.fail(name, format!("outside → {to}: {e:#}")),
        (Err(_), _) => report.fail(name, "client thread panicked"),
    }
    Ok(())
}
