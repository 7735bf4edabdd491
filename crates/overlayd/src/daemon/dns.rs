//! DNS service discovery: records live in the store (served again after a
//! restart without replay) and in the in-memory set the server answers from;
//! the server listens on every network's gateway and the node's overlay
//! address, following networks as they come and go.

use std::net::{IpAddr, SocketAddr};

use overlayd_dns::{DnsConfig, DnsServer, Records};
use overlayd_engine::request::dns::{self, DnsName, DnsUnregister};
use overlayd_engine::request::Teardown;
use overlayd_proto::Response;
use overlayd_state::{Store, Table, WriteTx};
use tracing::{info, warn};

use super::error::{OpError, OpResult};
use super::node::{Core, Node};
use super::records::DnsRecord;
use crate::config::Config;

/// Load the records from the store and start the server on the configured
/// extra listen addresses (gateway listeners are added as networks appear).
pub async fn start(cfg: &Config, store: &Store) -> anyhow::Result<(Records, DnsServer)> {
    let records = Records::new(&cfg.dns_zone)?;
    let stored: Vec<(String, DnsRecord)> = store.read(|tx| tx.list(Table::Dns))?;
    let mut entries = Vec::with_capacity(stored.len());
    for (name, r) in stored {
        let ips: Vec<IpAddr> = r.ips.iter().filter_map(|i| i.parse().ok()).collect();
        entries.push((name, ips));
    }
    records.replace_all(entries)?;
    let upstreams: Vec<SocketAddr> = if cfg.dns_upstreams.is_empty() {
        overlayd_dns::system_upstreams()
    } else {
        cfg.dns_upstreams
            .iter()
            .map(|u| parse_socket_addr(u, 53))
            .collect::<Result<_, _>>()?
    };
    let listen = cfg
        .dns_listen
        .iter()
        .map(|l| parse_socket_addr(l, cfg.dns_port))
        .collect::<Result<Vec<_>, _>>()?;
    let config = DnsConfig {
        zone: cfg.dns_zone.clone(),
        upstreams,
        listen,
        ..DnsConfig::default()
    };
    let server = DnsServer::start(config, records.clone()).await?;
    info!(records = records.len(), "DNS records loaded from the store");
    Ok((records, server))
}

/// Add an address to a stored name, inside a store transaction.
pub fn put_dns_ip(tx: &mut WriteTx<'_>, key: &str, ip: IpAddr) -> overlayd_state::Result<()> {
    let ip_s = ip.to_string();
    let mut r: DnsRecord = tx
        .get(Table::Dns, key)?
        .unwrap_or(DnsRecord { ips: Vec::new() });
    if !r.ips.contains(&ip_s) {
        r.ips.push(ip_s);
    }
    tx.put(Table::Dns, key, &r)
}

/// Remove an address from a stored name (the name goes when it has none
/// left), inside a store transaction.
pub fn remove_dns_ip(tx: &mut WriteTx<'_>, key: &str, ip: IpAddr) -> overlayd_state::Result<()> {
    let ip_s = ip.to_string();
    if let Some(mut r) = tx.get::<DnsRecord>(Table::Dns, key)? {
        r.ips.retain(|i| *i != ip_s);
        if r.ips.is_empty() {
            tx.remove(Table::Dns, key)?;
        } else {
            tx.put(Table::Dns, key, &r)?;
        }
    }
    Ok(())
}

/// Parse `ip:port` or a bare `ip` (with the default port).
pub fn parse_socket_addr(s: &str, default_port: u16) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is neither ip:port nor an IP address"))?;
    Ok(SocketAddr::new(ip, default_port))
}

impl Node {
    /// Addresses the DNS server should answer on: every bridge gateway (of
    /// both families on a dual-stack network).
    fn dns_addresses(&self) -> Vec<SocketAddr> {
        let mut v = Vec::new();
        if self.cfg.dns_port == 0 {
            return v;
        }
        for e in self.marker.iter().filter(|e| e.is_linux_managed()) {
            // Both gateways of a dual-stack network.
            for (_, gw) in super::dual_stack::gateways(e) {
                v.push(SocketAddr::new(gw, self.cfg.dns_port));
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// Make the server's gateway listeners match the recorded networks.
    pub async fn sync_dns_listeners(&self) {
        self.sync_dns_scope();
        let want = self.dns_addresses();
        let extra: Vec<SocketAddr> = self
            .cfg
            .dns_listen
            .iter()
            .filter_map(|l| parse_socket_addr(l, self.cfg.dns_port).ok())
            .collect();
        let have = self.dns.listeners();
        for a in &have {
            if !want.contains(a) && !extra.contains(a) {
                self.dns.remove_listener(*a).await;
            }
        }
        for a in want {
            if !have.contains(&a) {
                if let Err(e) = self.dns.add_listener(a).await {
                    warn!(addr = %a, error = %e, "cannot listen for DNS on this gateway");
                }
            }
        }
    }

    /// The zone key of a name, or a clear error.
    pub fn dns_key(&self, name: &str) -> OpResult<String> {
        self.records
            .normalize(name)
            .map_err(|e| OpError::Invalid(e.to_string()))
    }

    /// The attached containers holding DNS name `key` (their container name
    /// or service name), with their addresses.
    fn dns_holders(&self, key: &str) -> OpResult<Vec<(String, String)>> {
        let all: Vec<(String, super::records::Attachment)> =
            self.store.read(|tx| tx.list(Table::Attachments))?;
        Ok(all
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| !a.ip.is_empty())
            .filter(|a| {
                a.dns_name
                    .iter()
                    .chain(std::iter::once(&a.service))
                    .any(|n| self.dns_key(n).is_ok_and(|k| k == key))
            })
            .map(|a| (a.handle.key(), a.ip))
            .collect())
    }

    /// A DNS name as the engine decides on it: its stored addresses, the
    /// addresses served for it, whether it carries a tombstone.
    fn dns_name(&self, key: &str) -> OpResult<DnsName> {
        let stored = self
            .store
            .read(|tx| tx.get::<DnsRecord>(Table::Dns, key))?
            .map(|r| r.ips);
        let served = self
            .records
            .get(key)
            .map_err(|e| OpError::Invalid(e.to_string()))?
            .unwrap_or_default();
        let buried = super::missing::was_removed(&self.store, &format!("dns:{key}"))?;
        Ok(DnsName {
            key: key.to_string(),
            stored,
            served,
            buried,
        })
    }

    /// Add an address to a name, in the store and the served set (gather →
    /// `request::dns::plan_register` → execute).
    pub fn dns_add(&self, name: &str, ip: IpAddr) -> OpResult<String> {
        let key = self.dns_key(name)?;
        let facts = self.dns_name(&key)?;
        self.execute_local(dns::plan_register(&facts, ip))?;
        Ok(key)
    }

    /// `register_dns`.
    pub fn register_dns(&self, name: &str, ip: &str) -> OpResult<Response> {
        let addr = overlayd_dns::parse_ip(ip).map_err(|e| OpError::Invalid(e.to_string()))?;
        self.dns_add(name, addr)?;
        Ok(Response::Ok)
    }
}

impl Core {
    /// `list_dns_records`.
    pub fn list_dns(&self) -> Response {
        let mut records: Vec<overlayd_proto::DnsRecordView> = self
            .records
            .list()
            .into_iter()
            .map(|r| overlayd_proto::DnsRecordView {
                name: r.name.to_string(),
                ips: r.ips.iter().map(ToString::to_string).collect(),
            })
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Response::DnsRecords {
            zone: self.records.zone(),
            records,
        }
    }
}

impl Node {
    /// `unregister_dns`: removes the addresses added with `register_dns`;
    /// addresses attached containers registered under the name stay (they
    /// go when the containers detach) unless `force`. A name held only by
    /// containers is a `conflict` without `force`. A name that was removed
    /// already answers `ok`; a name never registered is `not_found`.
    /// Gather → `request::dns::plan_unregister` → execute.
    pub fn unregister_dns(&self, name: &str, force: bool) -> OpResult<Response> {
        let key = self.dns_key(name)?;
        let facts = self.dns_name(&key)?;
        let holders = if facts.stored.is_some() && !force {
            self.dns_holders(&key)?
        } else {
            Vec::new()
        };
        let decision = dns::plan_unregister(&DnsUnregister {
            name: facts,
            force,
            holders,
        })?;
        match decision {
            Teardown::NotRecorded => {
                let known: Vec<(String, DnsRecord)> = self.store.read(|tx| tx.list(Table::Dns))?;
                super::missing::already_gone_or(
                    &self.store,
                    &format!("dns:{key}"),
                    "DNS name",
                    &key,
                    known.iter().map(|(k, _)| k.as_str()),
                    "overlayd dns ls",
                )?;
            }
            Teardown::Remove(plan) => self.execute_local(plan)?,
        }
        Ok(Response::Ok)
    }
}
