//! Runs overlayd-dns on one address with `name-0 … name-<N-1>` registered,
//! for benchmarks and manual poking with `dig`. Stops on SIGINT/SIGTERM or
//! after `--max-seconds` (default 300).
//!
//! ```text
//! cargo run --release -p overlayd-dns --example dns_serve -- --listen 127.0.0.1:5353 --records 100
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use overlayd_dns::{DnsConfig, DnsServer, Records};

struct Args {
    listen: SocketAddr,
    records: usize,
    workers: usize,
    max_seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 5353)),
        records: 100,
        workers: 2,
        max_seconds: 300,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--records" => args.records = value()?.parse().map_err(|e| format!("--records: {e}"))?,
            "--workers" => args.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--max-seconds" => {
                args.max_seconds = value()?.parse().map_err(|e| format!("--max-seconds: {e}"))?
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; usage: dns_serve [--listen IP:PORT] [--records N] [--workers W] [--max-seconds S]"
                ))
            }
        }
    }
    Ok(args)
}

async fn serve(args: Args) -> Result<(), String> {
    let records = Records::new("overlay.internal").map_err(|e| e.to_string())?;
    let entries = (0..args.records).map(|i| {
        let ip = IpAddr::from([10, 201, (i / 250) as u8, (i % 250 + 1) as u8]);
        (format!("name-{i}"), [ip])
    });
    records.replace_all(entries).map_err(|e| e.to_string())?;
    let config = DnsConfig {
        listen: vec![args.listen],
        ..DnsConfig::default()
    };
    let server = DnsServer::start(config, records)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "dns_serve: {} records on {:?}",
        args.records,
        server.listeners()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = tokio::time::sleep(Duration::from_secs(args.max_seconds)) => {}
    }
    server.shutdown().await;
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.workers.max(1))
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(serve(args))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns_serve: {e}");
            ExitCode::FAILURE
        }
    }
}
