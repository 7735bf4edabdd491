//! Guests that run their own WireGuard (`guest_managed` handles): an
//! address from the node's slice, a keypair, the guest as a peer of the
//! node's base device, and a `guest_config` telling the guest how to reach
//! the node.

use ipnet::IpNet;
use overlayd_proto::{GuestPeer, Handle, Response};
use overlayd_state::{KeyPair, Owner, Table};
use tracing::info;

use super::error::{OpError, OpResult};
use super::node::Node;
use super::overlay::wg_call;
use super::records::{peer_key, Attachment, PeerRecord, ServiceRecord};

impl Node {
    /// Attach a guest: idempotent (a repeated attach returns the same config).
    pub async fn attach_guest(&mut self, handle: Handle, service: &str) -> OpResult<Response> {
        overlayd_state::owner::validate_name(service)?;
        if self
            .store
            .read(|tx| tx.get::<ServiceRecord>(Table::Services, service))?
            .is_none()
        {
            return Err(OpError::NotFound(format!(
                "unknown service {service:?}; set it up first with setup_service_overlay"
            )));
        }
        let global = self.global()?.ok_or_else(|| {
            OpError::NotFound(
                "guest_managed attach needs the global overlay; call setup_global_overlay first"
                    .into(),
            )
        })?;
        let base = self
            .marker
            .get(&Owner::Base)
            .cloned()
            .ok_or_else(|| OpError::State("base network is not recorded".into()))?;
        let dev = base
            .interface
            .clone()
            .ok_or_else(|| OpError::State("base network has no device".into()))?;
        let key = handle.key();
        let existing: Option<Attachment> =
            self.store.read(|tx| tx.get(Table::Attachments, &key))?;
        let is_new = existing.is_none();
        let (att, kp) = match existing {
            Some(a) => {
                let kp =
                    KeyPair::from_private_base64(a.guest_private_key.as_deref().unwrap_or(""))?;
                (a, kp)
            }
            None => {
                let kp = KeyPair::generate();
                let rec = Attachment {
                    netns_id: None,
                    handle: handle.clone(),
                    network: Owner::Base.to_string(),
                    service: service.to_string(),
                    ip: String::new(),
                    prefix_len: 0,
                    host_ifname: String::new(),
                    id: uuid::Uuid::new_v4().to_string(),
                    dns_name: None,
                    guest_private_key: Some(kp.private_base64()),
                    dns_server: None,
                    dns_domain: None,
                    state: Default::default(),
                    publish: Vec::new(),
                    ifname: None,
                    ip_v6: None,
                    prefix_len_v6: None,
                };
                let (ip, prefix_len, _) = self.lease(&Owner::Base, &key, Some(rec.clone()))?;
                let mut rec = rec;
                rec.ip = ip.to_string();
                rec.prefix_len = prefix_len;
                (rec, kp)
            }
        };
        let peer = PeerRecord {
            network: Owner::Base.to_string(),
            public_key: kp.public_base64(),
            endpoint: String::new(),
            allowed_ips: vec![host_cidr(&att.ip)?],
            persistent_keepalive_secs: 0,
            cluster: false,
        };
        let pkey = peer_key(&peer.network, &peer.public_key);
        let applied = self.apply_peer(&dev, &peer).await;
        if let Err(e) = applied {
            // Undo only what this call made: a repeated attach keeps the
            // guest's lease (the guest may be using it).
            if is_new {
                self.drop_routes(&dev, &peer, &[]).await;
                self.drop_attachment(&att)?;
            }
            return Err(e);
        }
        self.store.write(|tx| tx.put(Table::Peers, &pkey, &peer))?;
        let uplink = self.host.uplink().await?.and_then(|u| u.ipv4);
        let node_ip = self.node_ip();
        info!(guest = %key, ip = %att.ip, "guest attached");
        Ok(Response::GuestConfig {
            overlay_ip: att.ip.clone(),
            prefix_len: att.prefix_len,
            private_key: kp.private_base64().into(),
            public_key: kp.public_base64(),
            listen_port: global.wg_port,
            peers: vec![GuestPeer {
                public_key: self.overlay.public_base64(),
                endpoint: uplink
                    .map(|u| format!("{u}:{}", global.wg_port))
                    .unwrap_or_default(),
                allowed_ips: global.cluster_cidr.clone(),
                persistent_keepalive_secs: 25,
            }],
            dns_server: node_ip.map(|i| i.to_string()),
            dns_domain: Some(self.records.zone().trim_end_matches('.').to_string()),
        })
    }

    /// Remove a guest's peer from the base device and its peer record.
    pub async fn detach_guest(&mut self, a: &Attachment) -> OpResult<()> {
        let kp = KeyPair::from_private_base64(a.guest_private_key.as_deref().unwrap_or(""))?;
        let pkey = peer_key(&Owner::Base.to_string(), &kp.public_base64());
        if let Some(dev) = self
            .marker
            .get(&Owner::Base)
            .and_then(|e| e.interface.clone())
        {
            let pk = kp.public;
            let d = dev.clone();
            let _ = wg_call(&self.wg, move |wg| wg.remove_peer(&d, &pk)).await;
            if let Some(rec) = self
                .store
                .read(|tx| tx.get::<PeerRecord>(Table::Peers, &pkey))?
            {
                self.drop_routes(&dev, &rec, &[]).await;
            }
        }
        self.store
            .write(|tx| tx.remove(Table::Peers, &pkey).map(|_| ()))?;
        Ok(())
    }
}

/// The host route (a /32 or /128) of an address.
fn host_cidr(ip: &str) -> OpResult<String> {
    let addr: std::net::IpAddr = ip
        .parse()
        .map_err(|_| OpError::State(format!("guest address {ip:?} is not an IP")))?;
    let len = if addr.is_ipv4() { 32 } else { 128 };
    Ok(IpNet::new(addr, len)
        .map_err(|e| OpError::State(e.to_string()))?
        .to_string())
}
