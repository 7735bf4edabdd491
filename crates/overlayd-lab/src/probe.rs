//! Reachability probes that run inside a namespace: an echo server that
//! answers every TCP connection or UDP datagram with the source address it
//! saw (so a test can tell DNAT from masquerade), and one-shot clients.
//! Each runs on its own thread that enters the namespace first, so the test
//! process itself never leaves its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Move the calling thread into the network namespace at `path`. Only
/// call it on a thread of its own that ends afterwards.
pub fn enter_netns(path: &Path) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Which transports an [`Echo`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP only.
    Tcp,
    /// UDP only.
    Udp,
    /// Both, on the same port.
    Both,
}

/// Servers inside a namespace that answer with the peer's source address.
/// Stopped and joined on drop.
pub struct Echo {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Echo {
    /// Serve `addr` (e.g. `0.0.0.0:8080`) inside the namespace at `ns`;
    /// returns once every listener is bound (panics if one cannot bind).
    pub fn start(ns: PathBuf, addr: SocketAddr, transport: Transport) -> Echo {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let udp_modes: &[bool] = match transport {
            Transport::Tcp => &[false],
            Transport::Udp => &[true],
            Transport::Both => &[false, true],
        };
        let mut threads = Vec::new();
        for &udp in udp_modes {
            let (ns, stop, tx) = (ns.clone(), stop.clone(), tx.clone());
            threads.push(std::thread::spawn(move || {
                enter_netns(&ns);
                if udp {
                    serve_udp(addr, &stop, &tx);
                } else {
                    serve_tcp(addr, &stop, &tx);
                }
            }));
        }
        let echo = Echo { stop, threads };
        for _ in udp_modes {
            match rx.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("echo server cannot bind {addr}: {e}"),
                Err(_) => panic!("echo server on {addr} did not start"),
            }
        }
        echo
    }
}

fn serve_tcp(
    addr: SocketAddr,
    stop: &AtomicBool,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) {
    let l = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => return drop(ready.send(Err(e.to_string()))),
    };
    l.set_nonblocking(true).expect("nonblocking listener");
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((mut s, peer)) => {
                let _ = s.write_all(peer.ip().to_string().as_bytes());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn serve_udp(
    addr: SocketAddr,
    stop: &AtomicBool,
    ready: &std::sync::mpsc::Sender<Result<(), String>>,
) {
    let s = match UdpSocket::bind(addr) {
        Ok(s) => s,
        Err(e) => return drop(ready.send(Err(e.to_string()))),
    };
    s.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("udp read timeout");
    let _ = ready.send(Ok(()));
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((_, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(peer.ip().to_string().as_bytes(), peer);
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What a TCP connection from inside `ns` to `addr` is answered within
/// `timeout` (an [`Echo`] answers the source address it saw), or `None`.
pub fn tcp_probe(ns: &Path, addr: SocketAddr, timeout: Duration) -> Option<String> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter_netns(&ns);
        let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        (!out.is_empty()).then_some(out)
    })
    .join()
    .ok()
    .flatten()
}

/// The same over UDP: one datagram, one answer within `timeout`.
pub fn udp_probe(ns: &Path, addr: SocketAddr, timeout: Duration) -> Option<String> {
    let ns = ns.to_path_buf();
    std::thread::spawn(move || {
        enter_netns(&ns);
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let s = UdpSocket::bind(bind).ok()?;
        s.set_read_timeout(Some(timeout)).ok()?;
        s.send_to(b"hi", addr).ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .join()
    .ok()
    .flatten()
}

/// Parse `ip:port` (v6 addresses bare or bracketed).
pub fn socket_addr(ip: &str, port: u16) -> SocketAddr {
    let ip: std::net::IpAddr = ip
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .unwrap_or_else(|e| panic!("{ip:?} is not an IP address: {e}"));
    SocketAddr::new(ip, port)
}
