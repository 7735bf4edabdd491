//! Addresses: the lease of the lowest free address of a network (one
//! store transaction, so no address is ever handed to two holders), and
//! the plain address ops `allocate_ip` / `release_ip`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use overlayd_proto::Response;
use overlayd_state::{Owner, Table};

use super::error::{OpError, OpResult};
use super::node::Node;
use super::plan;
use super::records::{lease_key, Attachment, Lease, ALLOC_HOLDER};

impl Node {
    /// Lease the lowest free address of `network` for `holder`, in one
    /// store transaction (no address is ever handed to two holders). With
    /// `extra`, the attachment record is written in the same transaction,
    /// completed with the address and prefix length — and, on a dual-stack
    /// network, with an IPv6 address leased in the same transaction (the
    /// third value), so a crash never leaves one family leased without the
    /// other.
    pub(crate) fn lease(
        &self,
        network: &Owner,
        holder: &str,
        extra: Option<Attachment>,
    ) -> OpResult<(IpAddr, u8, Option<IpAddr>)> {
        let entry = self
            .marker
            .get(network)
            .ok_or_else(|| OpError::NotFound(format!("network {network} is not recorded")))?;
        let subnet: IpNet = plan::parse_cidr(&entry.subnet)?;
        // Only attachments get a second address; allocate_ip stays v4.
        let subnet6 = match &extra {
            Some(_) => super::dual_stack::subnet_v6(entry)?,
            None => None,
        };
        let net_s = network.to_string();
        let (ip, ip6) = self.store.write(|tx| {
            let prefix = format!("{net_s}|");
            let leased: BTreeSet<IpAddr> = tx
                .list_prefix::<Lease>(Table::Leases, &prefix)?
                .into_iter()
                .filter_map(|(_, l)| l.ip.parse().ok())
                .collect();
            let mut picked = Vec::with_capacity(2);
            for net in std::iter::once(subnet).chain(subnet6) {
                let ip = match plan::pick_address(net, &leased) {
                    Ok(ip) => ip,
                    Err(e) => return Ok(Err(e)),
                };
                let ip_s = ip.to_string();
                tx.put(
                    Table::Leases,
                    &lease_key(&net_s, &ip_s),
                    &Lease {
                        network: net_s.clone(),
                        ip: ip_s,
                        holder: holder.to_string(),
                    },
                )?;
                picked.push(ip);
            }
            let (ip, ip6) = (picked[0], picked.get(1).copied());
            if let Some(mut a) = extra.clone() {
                a.ip = ip.to_string();
                a.prefix_len = subnet.prefix_len();
                a.ip_v6 = ip6.map(|i| i.to_string());
                a.prefix_len_v6 = subnet6.map(|s| s.prefix_len());
                tx.put(Table::Attachments, holder, &a)?;
            }
            Ok(Ok((ip, ip6)))
        })??;
        Ok((ip, subnet.prefix_len(), ip6))
    }

    /// `allocate_ip`.
    pub async fn allocate_ip(&mut self, service: &str, join_global: bool) -> OpResult<Response> {
        let network = self.target_network(service, None, join_global)?;
        let (ip, _, _) = self.lease(&network, ALLOC_HOLDER, None)?;
        Ok(Response::Ip { ip: ip.to_string() })
    }

    /// `release_ip`: releasing an address that is not leased changes nothing.
    pub fn release_ip(&mut self, ip: &str) -> OpResult<Response> {
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| OpError::Invalid(format!("{ip:?} is not an IP address")))?;
        let ip_s = addr.to_string();
        self.store.write(|tx| {
            let held: Vec<(String, Lease)> = tx
                .list::<Lease>(Table::Leases)?
                .into_iter()
                .filter(|(_, l)| l.ip == ip_s)
                .collect();
            if let Some((_, l)) = held.iter().find(|(_, l)| l.holder != ALLOC_HOLDER) {
                return Ok(Err(OpError::Conflict(format!(
                    "{ip_s} belongs to attached container {}; detach it instead",
                    l.holder
                ))));
            }
            for (k, _) in held {
                tx.remove(Table::Leases, &k)?;
            }
            Ok(Ok(()))
        })??;
        Ok(Response::Ok)
    }
}
