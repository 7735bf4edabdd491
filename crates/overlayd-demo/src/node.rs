//! One demo node: its directories and configuration, and the real
//! `overlayd run` process started inside the node's namespace as a child
//! of the demo, with requests sent over its socket.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use overlayd_client::Client;
use overlayd_lab::NetnsProcess;
use overlayd_proto::{Request, Response};

use super::lab::{node_ip, OUTSIDE_IP};

/// How long a daemon may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one request may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A node: a namespace with an overlayd daemon.
pub struct Node {
    /// `n1`, `n2`, `n3`.
    pub label: String,
    /// Namespace name.
    pub ns: String,
    /// Address on the underlay.
    pub underlay_ip: String,
    /// This node's slice of the cluster CIDR, as the node reports it once
    /// the base overlay is up (chosen by its address plan).
    pub slice: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Socket path.
    pub socket: PathBuf,
    /// Configuration file.
    pub config: PathBuf,
    /// Daemon log (its standard error).
    pub log: PathBuf,
    process: NetnsProcess,
}

impl Node {
    /// Lay out the node's directory under `workdir` and write its config:
    /// default address plan, DNS on port 53 of every gateway, and the
    /// outside as the (silent) upstream so no query leaves the lab.
    pub fn new(workdir: &Path, ns: String, index: u8, exe: PathBuf) -> Result<Node> {
        let label = format!("n{index}");
        let dir = workdir.join(&label);
        std::fs::create_dir_all(dir.join("run"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let config = dir.join("overlayd.toml");
        std::fs::write(
            &config,
            format!("dns_port = 53\ndns_upstreams = [\"{OUTSIDE_IP}:53\"]\n"),
        )
        .with_context(|| format!("cannot write {}", config.display()))?;
        let data_dir = dir.join("data");
        let socket = dir.join("run").join("overlayd.sock");
        let log = dir.join("overlayd.log");
        let args = vec![
            "--log-json".into(),
            "run".into(),
            "--data-dir".into(),
            data_dir.clone().into(),
            "--socket".into(),
            socket.clone().into(),
            "--config".into(),
            config.clone().into(),
        ];
        // Own process group: Ctrl-C reaches the demo, which then cleans up
        // in order, instead of reaching the daemons directly.
        let process = NetnsProcess::new(&ns, exe, args, &log).own_process_group();
        Ok(Node {
            label,
            ns,
            underlay_ip: node_ip(index),
            slice: String::new(),
            data_dir,
            socket,
            config,
            log,
            process,
        })
    }

    /// The daemon's WireGuard UAPI directory (userspace devices).
    pub fn uapi_dir(&self) -> PathBuf {
        self.socket
            .parent()
            .map(|p| p.join("wireguard"))
            .unwrap_or_default()
    }

    /// The daemon's marker file.
    pub fn marker(&self) -> PathBuf {
        self.data_dir.join("agent_network.json")
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Start `overlayd run` inside the namespace and wait until it answers
    /// `hello`; returns how long that took.
    pub async fn start(&mut self) -> Result<Duration> {
        let t = Instant::now();
        self.process
            .try_spawn()
            .with_context(|| format!("cannot start overlayd on {}", self.label))?;
        loop {
            if let Some(st) = self.process.exited() {
                bail!(
                    "overlayd on {} exited during start ({st}); its log ends with:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if self.hello().await {
                return Ok(t.elapsed());
            }
            if t.elapsed() > START_TIMEOUT {
                bail!(
                    "overlayd on {} did not answer within {START_TIMEOUT:?}; its log ends with:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn hello(&self) -> bool {
        Client::answers(&self.socket, Duration::from_secs(5)).await
    }

    /// SIGTERM the daemon and wait for a clean exit.
    pub async fn stop(&mut self) -> Result<()> {
        if self.process.pid().is_none() {
            return Ok(());
        }
        if !self.process.terminate() {
            bail!("cannot signal overlayd on {}", self.label);
        }
        let t = Instant::now();
        loop {
            if let Some(st) = self.process.exited() {
                if !st.success() {
                    bail!(
                        "overlayd on {} exited with {st} on SIGTERM; its log ends with:\n{}",
                        self.label,
                        self.log_tail()
                    );
                }
                return Ok(());
            }
            if t.elapsed() > STOP_TIMEOUT {
                self.process.kill();
                bail!(
                    "overlayd on {} did not stop within {STOP_TIMEOUT:?} of SIGTERM",
                    self.label
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL the daemon (cleanup).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Let the daemon run on after the demo exits (`--keep`).
    pub fn forget(&mut self) {
        self.process.forget();
    }

    /// Send one request; an `err` response becomes an error naming the op.
    pub async fn call(&self, request: Request) -> Result<Response> {
        let op = request.op();
        let mut c = Client::connect(&self.socket).await?;
        match c
            .call_timeout(request, CALL_TIMEOUT)
            .await
            .with_context(|| format!("{op} on {}", self.label))?
        {
            Response::Err { message, .. } => bail!("{op} on {} failed: {message}", self.label),
            r => Ok(r),
        }
    }

    /// Size of the log so far (to read only what a restart adds).
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Log records (JSON lines) written after byte `offset`.
    pub fn log_records_since(&self, offset: u64) -> Vec<serde_json::Value> {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let from = usize::try_from(offset).unwrap_or(0).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..])
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail(15)
    }
}
