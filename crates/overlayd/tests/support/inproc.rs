//! A daemon in process (fake host, fake WireGuard) for tests without root.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use overlayd::config::Config;
use overlayd::daemon::{self, RunOptions};
use overlayd_client::Client;
use overlayd_host::FakeHost;
use overlayd_host::LinkKind;
use overlayd_proto::{Request, Response};
use overlayd_wg::{FakeWg, WgBackend};

/// FakeWg whose devices also appear as TUN links in the FakeHost, as a
/// userspace device's TUN link appears to the real host.
pub struct LinkedWg {
    /// The fake backend.
    pub wg: Arc<FakeWg>,
    /// The fake host the links appear in.
    pub host: Arc<FakeHost>,
}

impl WgBackend for LinkedWg {
    fn kind(&self) -> overlayd_wg::BackendKind {
        self.wg.kind()
    }
    fn create_or_adopt(
        &self,
        cfg: &overlayd_wg::DeviceConfig,
    ) -> overlayd_wg::Result<overlayd_wg::DeviceHandle> {
        let h = self.wg.create_or_adopt(cfg)?;
        if matches!(h.disposition, overlayd_wg::Disposition::Created) {
            self.host.insert_link(&cfg.name, LinkKind::Tun, None);
        }
        Ok(h)
    }
    fn exists(&self, name: &str) -> overlayd_wg::Result<bool> {
        self.wg.exists(name)
    }
    fn delete(&self, name: &str) -> overlayd_wg::Result<bool> {
        let gone = self.wg.delete(name)?;
        let host = self.host.clone();
        let n = name.to_string();
        // The fake host's delete is async but never awaits anything real.
        futures::executor::block_on(async move {
            use overlayd_host::Host;
            let _ = host.delete_link(&n).await;
        });
        Ok(gone)
    }
    fn set_peer(&self, name: &str, peer: &overlayd_wg::PeerConfig) -> overlayd_wg::Result<()> {
        self.wg.set_peer(name, peer)
    }
    fn remove_peer(&self, name: &str, pk: &overlayd_wg::KeyBytes) -> overlayd_wg::Result<bool> {
        self.wg.remove_peer(name, pk)
    }
    fn add_allowed_ip(
        &self,
        name: &str,
        pk: &overlayd_wg::KeyBytes,
        net: ipnet::IpNet,
    ) -> overlayd_wg::Result<()> {
        self.wg.add_allowed_ip(name, pk, net)
    }
    fn remove_allowed_ip(
        &self,
        name: &str,
        pk: &overlayd_wg::KeyBytes,
        net: ipnet::IpNet,
    ) -> overlayd_wg::Result<bool> {
        self.wg.remove_allowed_ip(name, pk, net)
    }
    fn status(&self, name: &str) -> overlayd_wg::Result<overlayd_wg::DeviceStatus> {
        self.wg.status(name)
    }
}

/// A daemon running in this process over a real socket in a temp dir,
/// with a fake host and a fake WireGuard backend.
pub struct Instance {
    pub _dir: tempfile::TempDir,
    pub cfg: Config,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub host: Arc<FakeHost>,
    pub wg: Arc<FakeWg>,
}

impl Instance {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Start with a configuration tweak.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config {
            data_dir: dir.path().join("data"),
            socket: dir.path().join("run/overlayd.sock"),
            // Gateways of fake networks do not exist here: no DNS listeners.
            dns_port: 0,
            ..Config::default()
        };
        tweak(&mut cfg);
        Self::relaunch(dir, cfg, Arc::new(FakeHost::new()), Arc::new(FakeWg::new())).await
    }

    /// Start on existing directories with the given fakes.
    pub async fn relaunch(
        dir: tempfile::TempDir,
        cfg: Config,
        host: Arc<FakeHost>,
        wg: Arc<FakeWg>,
    ) -> Self {
        let linked = Arc::new(LinkedWg {
            wg: wg.clone(),
            host: host.clone(),
        });
        let task = tokio::spawn(daemon::run(
            cfg.clone(),
            RunOptions::default(),
            host.clone(),
            linked,
        ));
        let inst = Instance {
            _dir: dir,
            cfg,
            task,
            host,
            wg,
        };
        inst.wait_ready().await;
        inst
    }

    pub async fn wait_ready(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = Client::connect(&self.cfg.socket).await {
                if c.call(Request::Hello {
                    protocol_version: 1,
                })
                .await
                .is_ok()
                {
                    return;
                }
            }
            assert!(!self.task.is_finished(), "daemon exited during start");
            assert!(tokio::time::Instant::now() < deadline, "daemon not ready");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait (5 s at most) until a request is inside a host call stalled
    /// with `FakeHost::stall_next`.
    pub async fn until_stalled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.host.stalled() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the slow request never reached the stalled host call"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Send each request in turn, asserting none is refused.
    pub async fn ok_all(&self, requests: impl IntoIterator<Item = Request>) {
        let mut c = self.client().await;
        for r in requests {
            let op = r.op();
            let resp = c.call(r).await.unwrap();
            assert!(!matches!(resp, Response::Err { .. }), "{op}: {resp:?}");
        }
    }

    /// Send `request` on a connection of its own, in a task: a request that
    /// is about to stall in the host while the test goes on.
    pub async fn spawn_call(&self, request: Request) -> tokio::task::JoinHandle<Response> {
        let mut c = self.client().await;
        tokio::spawn(async move { c.call(request).await.unwrap() })
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.cfg.socket).await.unwrap()
    }

    pub fn marker(&self) -> PathBuf {
        self.cfg.data_dir.join("agent_network.json")
    }

    /// Stop via the `shutdown` op; returns the directory so callers can
    /// inspect what was left on disk.
    pub async fn shutdown(self) -> tempfile::TempDir {
        let mut c = self.client().await;
        assert_eq!(c.call(Request::Shutdown).await.unwrap(), Response::Ok);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("daemon stops after shutdown")
            .unwrap()
            .unwrap();
        self._dir
    }
}

/// The message of an `err` response.
pub fn err_message(r: Response) -> String {
    match r {
        Response::Err { message, .. } => message,
        other => panic!("expected err, got {other:?}"),
    }
}

/// The code and message of an `err` response.
pub fn err_code(r: Response) -> (overlayd_proto::ErrorCode, String) {
    match r {
        Response::Err {
            message,
            code: Some(code),
        } => (code, message),
        other => panic!("expected err with a code, got {other:?}"),
    }
}
