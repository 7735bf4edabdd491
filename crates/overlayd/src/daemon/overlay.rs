//! WireGuard overlays: the node's base overlay (`base`: a bridge holding the
//! node's slice plus the node's WireGuard device) and each dedicated
//! service's own device beside its bridge; programming a recorded peer and
//! its routes; realising recorded devices again after a restart with the
//! same name, key and port. The peer requests are in `peers.rs`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use overlayd_proto::Response;
use overlayd_state::{NetworkEntry, Owner, Table};
use overlayd_wg::{DeviceConfig, PeerConfig, WgBackend};
use tracing::{info, warn};

use overlayd_engine::request::bridge::LinkFact;
use overlayd_engine::request::global::{self, BaseSetup, GlobalCheck, GlobalDesired, SliceChange};

use super::dual_stack::WantV6;
use super::error::{OpError, OpResult};
use super::node::{Core, Node};
use super::plan;
use super::records::{GlobalRecord, PeerRecord, GLOBAL_KEY};

/// Default MTU of WireGuard devices (1500 minus IPv6 + UDP + WireGuard overhead).
pub const WG_MTU: u32 = 1420;

/// WireGuard's per-packet overhead over an IPv6 underlay (40 IP + 8 UDP + 32).
pub const WG_OVERHEAD: u32 = 80;

/// Run a blocking WireGuard call off the async runtime.
pub async fn wg_call<T: Send + 'static>(
    wg: &Arc<dyn WgBackend>,
    f: impl FnOnce(&dyn WgBackend) -> overlayd_wg::Result<T> + Send + 'static,
) -> OpResult<T> {
    let wg = wg.clone();
    tokio::task::spawn_blocking(move || f(wg.as_ref()))
        .await
        .map_err(|e| OpError::HostFailed(format!("WireGuard worker failed: {e}")))?
        .map_err(OpError::from)
}

/// Parse a public key with a clear error.
pub fn parse_pubkey(s: &str) -> OpResult<[u8; 32]> {
    overlayd_wg::parse_public_key(s.trim()).map_err(|_| {
        OpError::Invalid(format!(
            "public key {s:?} must be 32 bytes of standard base64"
        ))
    })
}

/// How long resolving a peer endpoint's host name may take.
pub const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Parse `host:port`, resolving a host name (at most [`RESOLVE_TIMEOUT`]).
/// The dispatcher resolves names before it takes the node lock, so a slow
/// resolver delays only the request that named the host.
pub async fn parse_endpoint(s: &str) -> OpResult<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(OpError::Invalid(format!(
                "endpoint {s:?}: port 0 is not a port a peer listens on; give the peer's WireGuard port (1-65535)"
            )));
        }
        return Ok(a);
    }
    let bad = || {
        OpError::Invalid(format!(
            "endpoint {s:?} must be HOST:PORT (e.g. 192.0.2.2:51820)"
        ))
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(s))
        .await
        .map_err(|_| {
            OpError::Invalid(format!(
                "endpoint {s:?}: resolving {host} took longer than {}s; give an IP address",
                RESOLVE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| OpError::Invalid(format!("endpoint {s:?}: cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(bad)
}

/// Parse a comma-separated CIDR list.
pub fn parse_cidrs(s: &str) -> OpResult<Vec<IpNet>> {
    let v: Vec<IpNet> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(plan::parse_cidr)
        .collect::<Result<_, _>>()?;
    if v.is_empty() {
        return Err(OpError::Invalid(
            "allowed_ips is empty; give at least one CIDR".into(),
        ));
    }
    Ok(v)
}

impl Node {
    /// MTU of WireGuard devices: the override, else the uplink's minus
    /// WireGuard's worst-case overhead (80 bytes over IPv6), else 1420.
    pub async fn overlay_mtu(&self) -> u32 {
        if let Some(m) = self.cfg.mtu {
            return m;
        }
        match self.host.uplink().await {
            Ok(Some(u)) if u.mtu > WG_OVERHEAD + 1280 => u.mtu - WG_OVERHEAD,
            _ => WG_MTU,
        }
    }

    /// MTU of a network's bridge and veths: the overlay MTU for networks
    /// whose traffic leaves through WireGuard, the override or the kernel's
    /// default otherwise.
    pub async fn network_mtu(&self, entry: &NetworkEntry) -> Option<u32> {
        if entry.interface.is_some() || matches!(entry.owner, Owner::Base | Owner::Service(_)) {
            Some(self.overlay_mtu().await)
        } else {
            self.cfg.mtu
        }
    }
}

impl Core {
    /// The desired base overlay, if set up.
    pub fn global(&self) -> OpResult<Option<GlobalRecord>> {
        Ok(self.store.read(|tx| tx.get(Table::Global, GLOBAL_KEY))?)
    }
}

impl Node {
    /// `setup_global_overlay`: idempotent; a changed parameter is applied in
    /// place. Checked by the engine (`request::global::check`), then a
    /// changed slice's old base goes (`plan_slice_change`), then the base is
    /// set up (`plan_base`); when that fails, its undo runs and the previous
    /// overlay is brought back as it was.
    pub async fn setup_global(&mut self, rec: GlobalRecord) -> OpResult<Response> {
        let cluster = plan::parse_cidr(&rec.cluster_cidr)?;
        let slice = plan::parse_cidr(&rec.slice_cidr)?;
        let networks: Vec<NetworkEntry> = self.marker.iter().cloned().collect();
        global::check(GlobalCheck {
            cluster,
            slice,
            wg_port: rec.wg_port,
            networks: &networks,
            local_pool: &self.cfg.local_pool,
        })?;
        let previous = self.global()?;
        // New ranges only: a recorded global overlay is restored as it was.
        if previous
            .as_ref()
            .is_none_or(|p| p.cluster_cidr != rec.cluster_cidr)
        {
            self.refuse_host_conflicts("cluster CIDR", &[cluster])
                .await?;
        }
        if previous
            .as_ref()
            .is_none_or(|p| p.slice_cidr != rec.slice_cidr)
        {
            self.refuse_host_conflicts("node slice", &[slice]).await?;
        }
        let desired = GlobalDesired::from(&rec);
        let previous = previous.as_ref().map(GlobalDesired::from);
        // Only a changed slice removes the base first: a repeated set-up
        // gathers nothing for it (no link lookup, no attachment scan).
        let slice_changes = previous
            .as_ref()
            .is_some_and(|p| p.slice_cidr != desired.slice_cidr);
        let (base_bridge, base_attached) = if slice_changes {
            self.base_facts().await?
        } else {
            (LinkFact::Absent, 0)
        };
        let change = global::plan_slice_change(SliceChange {
            previous: previous.as_ref(),
            rec: &desired,
            base: self.marker.get(&Owner::Base).cloned(),
            base_bridge,
            base_attached,
        })?;
        self.execute_plan(change).await?;
        match self.realize_base(desired, previous.clone()).await {
            Ok(entry) => Ok(Response::BridgeName {
                name: entry.interface.unwrap_or(entry.name),
            }),
            Err(e) => {
                self.restore_base(previous, &rec.slice_cidr).await;
                Err(e)
            }
        }
    }

    /// Create or adopt the base bridge and device for `rec` (gather →
    /// `request::global::plan_base` → execute).
    async fn realize_base(
        &mut self,
        rec: GlobalDesired,
        previous: Option<GlobalDesired>,
    ) -> OpResult<NetworkEntry> {
        let slice = plan::parse_cidr(&rec.slice_cidr)?;
        let bridge = self
            .gather_bridge(Owner::Base, Some(slice), WantV6::No)
            .await?;
        let (slice_s, port) = (rec.slice_cidr.clone(), rec.wg_port);
        let planned = global::plan_base(BaseSetup {
            rec,
            previous,
            band_port: self.overlay.ports().global_port(),
            bridge,
            device: self.namer().wireguard(&Owner::Base),
            public_key: self.overlay.public_base64(),
        })?;
        self.execute_plan(planned.plan).await?;
        if planned.created {
            super::networks::log_created(&planned.entry);
        }
        info!(slice = %slice_s, port, "base overlay up");
        Ok(planned.entry)
    }

    /// After a failed set-up was undone: nothing half-applied stays; the
    /// previous overlay (if any) is brought back, decided on what is left.
    async fn restore_base(&mut self, previous: Option<GlobalDesired>, slice: &str) {
        match previous {
            None => {
                let _ = self.remove_bridge(&Owner::Base).await;
            }
            Some(p) => {
                // A changed slice removed the old base first: bring it back.
                if p.slice_cidr != slice {
                    let _ = self.remove_bridge(&Owner::Base).await;
                }
                if let Err(re) = self.realize_base(p.clone(), Some(p)).await {
                    warn!(error = %re, "cannot restore the previous base overlay; a restart retries");
                }
            }
        }
    }

    /// The live bridge and attached containers of the base network.
    async fn base_facts(&self) -> OpResult<(LinkFact, usize)> {
        let base = match self.marker.get(&Owner::Base) {
            Some(e) => self.link_fact(&e.name).await,
            None => LinkFact::Absent,
        };
        Ok((base, self.members_of(&Owner::Base)?))
    }

    /// The private key of a recorded overlay network.
    fn device_key(&self, entry: &NetworkEntry) -> OpResult<[u8; 32]> {
        if entry.owner == Owner::Base {
            return Ok(self.overlay.private_key());
        }
        let k = entry.wg_private_key.as_deref().ok_or_else(|| {
            OpError::State(format!("{} has no recorded private key", entry.owner))
        })?;
        overlayd_wg::parse_private_key(k)
            .map_err(|e| OpError::State(format!("{}: {e}", entry.owner)))
    }

    /// Bring a recorded WireGuard device to its recorded shape (same name,
    /// key, port): create it if missing, tag it, address it, re-apply peers
    /// and their routes.
    pub async fn realize_device(&self, entry: &NetworkEntry) -> OpResult<()> {
        let (Some(name), Some(port)) = (entry.interface.clone(), entry.wg_port) else {
            return Ok(());
        };
        let cfg = DeviceConfig {
            name: name.clone(),
            private_key: self.device_key(entry)?,
            listen_port: port,
            mtu: self.overlay_mtu().await,
            fwmark: None,
        };
        let handle = wg_call(&self.wg, move |wg| wg.create_or_adopt(&cfg)).await?;
        info!(owner = %entry.owner, device = %name, disposition = ?handle.disposition, port, "WireGuard device ready");
        self.host
            .set_alias(
                &name,
                &plan::network_tag(&entry.owner, &entry.id, &self.instance),
            )
            .await?;
        let subnet = plan::parse_cidr(&entry.subnet)?;
        let gw = plan::gateway_cidr(subnet)?.addr();
        self.host
            .add_address(
                &name,
                IpNet::new(gw, if gw.is_ipv4() { 32 } else { 128 })
                    .map_err(|e| OpError::State(e.to_string()))?,
            )
            .await?;
        self.host.set_up(&name, true).await?;
        if entry.owner == Owner::Base {
            if let Some(g) = self.global()? {
                self.host
                    .add_route(plan::parse_cidr(&g.cluster_cidr)?, &name)
                    .await?;
            }
        }
        let owner = entry.owner.to_string();
        for (_, p) in self
            .store
            .read(|tx| tx.list_prefix::<PeerRecord>(Table::Peers, &format!("{owner}|")))?
        {
            if let Err(e) = self.apply_peer(&name, &p).await {
                warn!(device = %name, error = %e, "cannot re-apply recorded peer");
            }
        }
        Ok(())
    }

    /// Program one peer and its routes into a device.
    pub(crate) async fn apply_peer(&self, device: &str, p: &PeerRecord) -> OpResult<()> {
        let allowed: Vec<IpNet> = p
            .allowed_ips
            .iter()
            .filter_map(|c| c.parse().ok())
            .collect();
        let cfg = PeerConfig {
            public_key: parse_pubkey(&p.public_key)?,
            endpoint: p.endpoint.parse().ok(),
            allowed_ips: allowed.clone(),
            persistent_keepalive: u16::try_from(p.persistent_keepalive_secs)
                .ok()
                .filter(|k| *k > 0),
        };
        let dev = device.to_string();
        wg_call(&self.wg, move |wg| wg.set_peer(&dev, &cfg)).await?;
        for net in allowed {
            self.host.add_route(net, device).await?;
        }
        Ok(())
    }

    /// `teardown_global_overlay`: idempotent; refuses while containers are
    /// on it (`request::global::plan_teardown`).
    pub async fn teardown_global(&mut self) -> OpResult<Response> {
        let (base_bridge, base_attached) = self.base_facts().await?;
        let plan = global::plan_teardown(
            self.marker.get(&Owner::Base),
            base_bridge,
            base_attached,
            self.cfg.wg_port,
        )?;
        self.execute_plan(plan).await?;
        Ok(Response::Ok)
    }
}

impl Core {
    /// The node's overlay address (the slice gateway), if the base is up.
    pub fn node_ip(&self) -> Option<IpAddr> {
        let e = self.marker.get(&Owner::Base)?;
        let s = plan::parse_cidr(&e.subnet).ok()?;
        plan::gateway_cidr(s).ok().map(|g| g.addr())
    }
}
