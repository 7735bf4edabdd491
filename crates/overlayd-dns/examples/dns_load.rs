//! A small UDP DNS load generator for benchmarks (loopback servers only).
//!
//! Keeps `--window` queries in flight per thread against `--server`, asking
//! `A` for `name-0.<zone>` … `name-<names-1>.<zone>` round-robin, for at most
//! `--seconds` (capped at 60) or `--max-queries`. Prints queries/s and
//! latency percentiles; with `--json` one JSON line instead.
//!
//! ```text
//! cargo run --release -p overlayd-dns --example dns_load -- --server 127.0.0.1:5353
//! ```

use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

/// Latency histogram resolution: 1 µs buckets up to this many µs; slower replies land in the last bucket.
const HIST_MAX_US: usize = 200_000;
/// In-flight queries older than this are counted lost and replaced.
const LOSS_AFTER: Duration = Duration::from_secs(1);
/// Hard cap on run time, whatever is asked.
const MAX_SECONDS: u64 = 60;

struct Args {
    server: SocketAddr,
    zone: String,
    names: usize,
    seconds: u64,
    max_queries: u64,
    threads: usize,
    window: usize,
    json: bool,
    label: String,
}

fn usage() -> String {
    "usage: dns_load --server IP:PORT [--zone Z] [--names N] [--seconds S] [--max-queries Q] \
     [--threads T] [--window W] [--label L] [--json]"
        .to_owned()
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: "127.0.0.1:53".parse().map_err(|e| format!("{e}"))?,
        zone: "overlay.internal".into(),
        names: 100,
        seconds: 5,
        max_queries: u64::MAX,
        threads: 1,
        window: 64,
        json: false,
        label: "server".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        match flag.as_str() {
            "--server" => args.server = value()?.parse().map_err(|e| format!("--server: {e}"))?,
            "--zone" => args.zone = value()?,
            "--names" => args.names = value()?.parse().map_err(|e| format!("--names: {e}"))?,
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--max-queries" => {
                args.max_queries = value()?
                    .parse()
                    .map_err(|e| format!("--max-queries: {e}"))?
            }
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--window" => args.window = value()?.parse().map_err(|e| format!("--window: {e}"))?,
            "--label" => args.label = value()?,
            "--json" => args.json = true,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    if !args.server.ip().is_loopback() {
        return Err(format!(
            "refusing to load {}: loopback servers only",
            args.server
        ));
    }
    if args.names == 0 || args.threads == 0 || args.window == 0 || args.window > 4096 {
        return Err("--names, --threads must be > 0 and --window in 1..=4096".into());
    }
    args.seconds = args.seconds.clamp(1, MAX_SECONDS);
    Ok(args)
}

#[derive(Default)]
struct Stats {
    sent: u64,
    received: u64,
    lost: u64,
    not_noerror: u64,
    hist: Vec<u64>,
}

impl Stats {
    fn new() -> Self {
        Self {
            hist: vec![0; HIST_MAX_US + 1],
            ..Self::default()
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.received += other.received;
        self.lost += other.lost;
        self.not_noerror += other.not_noerror;
        for (a, b) in self.hist.iter_mut().zip(&other.hist) {
            *a += b;
        }
    }

    fn percentile_us(&self, p: f64) -> usize {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64) * p).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (us, count) in self.hist.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return us;
            }
        }
        HIST_MAX_US
    }
}

fn encode_queries(zone: &str, names: usize) -> Result<Vec<Vec<u8>>, String> {
    (0..names)
        .map(|i| {
            let name = Name::from_ascii(format!("name-{i}.{zone}."))
                .map_err(|e| format!("bad name: {e}"))?;
            let mut msg = Message::query();
            msg.metadata.recursion_desired = true;
            msg.add_query(Query::query(name, RecordType::A));
            msg.to_vec().map_err(|e| format!("encode: {e}"))
        })
        .collect()
}

fn worker(
    args: &Args,
    queries: &[Vec<u8>],
    offset: usize,
    budget: u64,
    end: Instant,
) -> Result<Stats, String> {
    let io = |e: std::io::Error| format!("socket: {e}");
    let local: SocketAddr = if args.server.is_ipv4() {
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?
    } else {
        "[::1]:0".parse().map_err(|e| format!("{e}"))?
    };
    let sock = UdpSocket::bind(local).map_err(io)?;
    sock.connect(args.server).map_err(io)?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(io)?;
    let mut stats = Stats::new();
    // Send time per query ID; IDs cycle through 0..=65535.
    let mut in_flight: Vec<Option<Instant>> = vec![None; 65536];
    let mut outstanding = 0usize;
    let mut next_id: u16 = 0;
    let mut next_name = offset;
    let mut buf = [0u8; 1500];
    let mut packet = Vec::with_capacity(512);

    let mut send_one =
        |stats: &mut Stats, in_flight: &mut [Option<Instant>], outstanding: &mut usize| {
            // Skip IDs still in flight (possible only after heavy loss).
            while in_flight[usize::from(next_id)].is_some() {
                next_id = next_id.wrapping_add(1);
            }
            packet.clear();
            packet.extend_from_slice(&queries[next_name % queries.len()]);
            packet[..2].copy_from_slice(&next_id.to_be_bytes());
            next_name += 1;
            if sock.send(&packet).is_ok() {
                in_flight[usize::from(next_id)] = Some(Instant::now());
                stats.sent += 1;
                *outstanding += 1;
            }
            next_id = next_id.wrapping_add(1);
        };

    let mut last_sweep = Instant::now();
    loop {
        let now = Instant::now();
        let sending = now < end && stats.sent < budget;
        if !sending && (outstanding == 0 || now >= end + LOSS_AFTER) {
            break;
        }
        while sending && outstanding < args.window && stats.sent < budget {
            send_one(&mut stats, &mut in_flight, &mut outstanding);
        }
        match sock.recv(&mut buf) {
            Ok(len) if len >= 12 => {
                let id = u16::from_be_bytes([buf[0], buf[1]]);
                if let Some(sent) = in_flight[usize::from(id)].take() {
                    outstanding -= 1;
                    stats.received += 1;
                    let us = sent.elapsed().as_micros() as usize;
                    stats.hist[us.min(HIST_MAX_US)] += 1;
                    if buf[3] & 0x0f != 0 || buf[2] & 0x80 == 0 {
                        stats.not_noerror += 1;
                    }
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("recv: {e}")),
        }
        if last_sweep.elapsed() >= Duration::from_millis(250) {
            last_sweep = Instant::now();
            for slot in in_flight.iter_mut() {
                if slot.is_some_and(|t| t.elapsed() > LOSS_AFTER) {
                    *slot = None;
                    outstanding -= 1;
                    stats.lost += 1;
                }
            }
        }
    }
    stats.lost += outstanding as u64;
    Ok(stats)
}

fn run(args: &Args) -> Result<(), String> {
    let queries = encode_queries(&args.zone, args.names)?;
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let per_thread = args.max_queries / args.threads as u64;
    let results: Vec<Result<Stats, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|t| {
                let queries = &queries;
                scope.spawn(move || worker(args, queries, t * 7919, per_thread.max(1), end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut total = Stats::new();
    for r in results {
        total.merge(&r?);
    }
    let qps = total.received as f64 / elapsed;
    let (p50, p99, p999) = (
        total.percentile_us(0.50),
        total.percentile_us(0.99),
        total.percentile_us(0.999),
    );
    if args.json {
        println!(
            "{{\"label\":\"{}\",\"server\":\"{}\",\"seconds\":{elapsed:.3},\"sent\":{},\"received\":{},\"lost\":{},\"not_noerror\":{},\"qps\":{qps:.0},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999}}}",
            args.label, args.server, total.sent, total.received, total.lost, total.not_noerror
        );
    } else {
        println!(
            "{:<12} {} : {qps:>9.0} q/s  p50 {p50} us  p99 {p99} us  p99.9 {p999} us  (sent {}, received {}, lost {}, non-NOERROR {}, {elapsed:.1}s)",
            args.label, args.server, total.sent, total.received, total.lost, total.not_noerror
        );
    }
    if total.received == 0 {
        return Err("no replies received".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns_load: {e}");
            ExitCode::FAILURE
        }
    }
}
