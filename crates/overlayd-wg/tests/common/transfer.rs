//! A TCP transfer between two test namespaces with a checksum on each end:
//! the sender writes a pseudo-random stream, both sides hash what they
//! moved (FNV-1a 64), and the receiver reports progress so a test can act
//! mid-transfer. Threads enter the namespaces themselves; nothing runs in
//! the host's namespace.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the receiver waits for a byte before declaring the transfer stalled.
const STALL: Duration = Duration::from_secs(45);

fn enter(ns: &PathBuf) {
    let f = std::fs::File::open(ns).expect("open netns");
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// FNV-1a 64 over a byte stream.
#[derive(Clone, Copy)]
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub fn update(&mut self, data: &[u8]) {
        for b in data {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A running transfer.
pub struct Transfer {
    received: Arc<AtomicU64>,
    total: u64,
    server: JoinHandle<Result<u64, String>>,
    client: JoinHandle<Result<u64, String>>,
}

/// Starts sending `bytes` from a thread in `client_ns` to a listener on
/// `server_addr` in `server_ns`.
pub fn start(
    server_ns: PathBuf,
    server_addr: SocketAddr,
    client_ns: PathBuf,
    bytes: u64,
) -> Transfer {
    let received = Arc::new(AtomicU64::new(0));
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let rx_count = Arc::clone(&received);
    let server = std::thread::spawn(move || -> Result<u64, String> {
        enter(&server_ns);
        let l = TcpListener::bind(server_addr).map_err(|e| format!("bind: {e}"))?;
        let _ = ready_tx.send(());
        let (mut s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
        s.set_read_timeout(Some(STALL)).unwrap();
        let mut h = Fnv::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = s.read(&mut buf).map_err(|e| {
                format!(
                    "receive stalled or failed after {} bytes: {e}",
                    rx_count.load(Ordering::Relaxed)
                )
            })?;
            if n == 0 {
                return Ok(h.0);
            }
            h.update(&buf[..n]);
            rx_count.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("transfer listener did not start");
    let client = std::thread::spawn(move || -> Result<u64, String> {
        enter(&client_ns);
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match TcpStream::connect_timeout(&server_addr, Duration::from_secs(3)) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => return Err(format!("connect: {e}")),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        s.set_write_timeout(Some(STALL)).unwrap();
        let mut h = Fnv::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            for chunk in buf[..n].chunks_mut(8) {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
            }
            s.write_all(&buf[..n]).map_err(|e| format!("send: {e}"))?;
            h.update(&buf[..n]);
            left -= n as u64;
        }
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        // Wait for the receiver to close, so the sender's hash covers what arrived.
        let _ = s.read(&mut [0u8; 1]);
        Ok(h.0)
    });
    Transfer {
        received,
        total: bytes,
        server,
        client,
    }
}

impl Transfer {
    /// Bytes the receiver has got so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Waits until at least `fraction` of the data has arrived.
    pub fn wait_for_fraction(&self, fraction: f64, timeout: Duration) {
        let want = (self.total as f64 * fraction) as u64;
        super::wait_for(&format!("{want} bytes received"), timeout, || {
            self.received() >= want || self.server.is_finished()
        });
    }

    /// Waits for the end and checks both checksums agree and every byte arrived.
    pub fn finish(self) -> u64 {
        let total = self.total;
        let sent = self.client.join().expect("sender thread panicked");
        let got = self.server.join().expect("receiver thread panicked");
        let (sent, got) = (
            sent.unwrap_or_else(|e| panic!("sender: {e}")),
            got.unwrap_or_else(|e| panic!("receiver: {e}")),
        );
        // The receiver's count is the authority for "every byte arrived".
        assert_eq!(
            self.received.load(Ordering::Relaxed),
            total,
            "bytes received"
        );
        assert_eq!(
            got, sent,
            "checksum of received data differs from sent data"
        );
        println!("transfer of {total} bytes complete, checksum {got:016x}");
        got
    }
}
