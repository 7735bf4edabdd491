//! The store side of an attachment: committing it `attached` together
//! with its DNS names, and dropping its record, leases and names — each in
//! one store transaction, shared by attach, detach and reconcile.

use overlayd_state::Table;

use super::dns::{put_dns_ip, remove_dns_ip};
use super::error::OpResult;
use super::node::Node;
use super::records::{lease_key, Attachment, Lease};

impl Node {
    /// Mark an attachment `attached` and register the container's name and
    /// its service's name (when the service name is a valid DNS label) for
    /// its addresses (A and, dual-stack, AAAA), in one store transaction.
    pub(crate) fn commit_attached(&self, a: &Attachment) -> OpResult<()> {
        let keys = self.attachment_dns_keys(a);
        let key = a.key();
        let ips = a.ips();
        self.store.write(|tx| {
            tx.put(Table::Attachments, &key, a)?;
            for k in &keys {
                for ip in &ips {
                    put_dns_ip(tx, k, *ip)?;
                }
            }
            Ok(())
        })?;
        for k in &keys {
            for ip in &ips {
                let _ = self.records.add(k, *ip);
            }
        }
        Ok(())
    }

    /// Zone keys of an attachment's DNS name and its service's name (when
    /// those are valid DNS names).
    fn attachment_dns_keys(&self, a: &Attachment) -> Vec<String> {
        let mut keys: Vec<String> = a
            .dns_name
            .iter()
            .chain(std::iter::once(&a.service))
            .filter_map(|n| self.dns_key(n).ok())
            .collect();
        keys.dedup();
        keys
    }

    /// Remove an attachment record, its leases (both families on a
    /// dual-stack network) and its DNS names in one transaction.
    pub fn drop_attachment(&self, a: &Attachment) -> OpResult<()> {
        let ips = a.ips();
        let dns_keys = if ips.is_empty() {
            Vec::new()
        } else {
            self.attachment_dns_keys(a)
        };
        let key = a.key();
        self.store.write(|tx| {
            for ip in &ips {
                for k in &dns_keys {
                    remove_dns_ip(tx, k, *ip)?;
                }
            }
            tx.remove(Table::Attachments, &key)?;
            for ip in std::iter::once(&a.ip).chain(a.ip_v6.as_ref()) {
                if ip.is_empty() {
                    continue;
                }
                let lk = lease_key(&a.network, ip);
                if let Some(l) = tx.get::<Lease>(Table::Leases, &lk)? {
                    if l.holder == key {
                        tx.remove(Table::Leases, &lk)?;
                    }
                }
            }
            Ok(())
        })?;
        for ip in &ips {
            for k in &dns_keys {
                let _ = self.records.remove_ip(k, *ip);
            }
        }
        Ok(())
    }
}
