//! `register_dns` / `unregister_dns`: which addresses a name gains or
//! loses, in the store and in the served record set. The daemon gathers
//! the name's stored addresses, the addresses served for it, whether it
//! carries a tombstone, and (for a removal without `force`) the attached
//! containers holding it; a function here returns the plan — the store
//! write first, then the served set, each undone when a later step fails,
//! so the served set matches the store after a failed request — or a
//! refusal.

use std::net::IpAddr;

use super::{Plan, Refusal, Step, Teardown};

/// What a store write does to a name's tombstone (the mark that makes a
/// second removal answer `ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tombstone {
    /// Leave it as it is.
    Leave,
    /// Leave one: the name was removed.
    Bury,
    /// Clear it: the name exists again.
    Unbury,
}

/// A DNS name as the daemon found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    /// Its zone key (`web.overlay.internal.`).
    pub key: String,
    /// Its addresses in the store (none: not stored).
    pub stored: Option<Vec<String>>,
    /// The addresses the record set serves for it now.
    pub served: Vec<IpAddr>,
    /// Whether it carries a tombstone.
    pub buried: bool,
}

impl DnsName {
    /// The store write that puts the name back as it was found.
    fn restore(&self, tombstone: Tombstone) -> Step {
        Step::WriteDnsName {
            key: self.key.clone(),
            ips: self.stored.clone(),
            tombstone,
        }
    }

    /// The served-set change that puts the name back as it was found.
    fn restore_served(&self) -> Step {
        Step::ServeDnsName {
            key: self.key.clone(),
            ips: self.served.clone(),
        }
    }

    /// The tombstone step that undoes `done` on this name.
    fn undo_tombstone(&self, done: Tombstone) -> Tombstone {
        match (done, self.buried) {
            (Tombstone::Unbury, true) => Tombstone::Bury,
            (Tombstone::Bury, false) => Tombstone::Unbury,
            _ => Tombstone::Leave,
        }
    }
}

/// Decide `register_dns`: the address joins the name's stored addresses
/// (written even when already there, clearing a tombstone), then the
/// served set when it does not serve it yet.
pub fn plan_register(name: &DnsName, ip: IpAddr) -> Plan {
    let mut ips = name.stored.clone().unwrap_or_default();
    let ip_s = ip.to_string();
    if !ips.contains(&ip_s) {
        ips.push(ip_s);
    }
    let mut plan = Plan::default();
    plan.push_undoable(
        Step::WriteDnsName {
            key: name.key.clone(),
            ips: Some(ips),
            tombstone: Tombstone::Unbury,
        },
        vec![name.restore(name.undo_tombstone(Tombstone::Unbury))],
    );
    if !name.served.contains(&ip) {
        let mut served = name.served.clone();
        served.push(ip);
        plan.push_undoable(
            Step::ServeDnsName {
                key: name.key.clone(),
                ips: served,
            },
            vec![name.restore_served()],
        );
    }
    plan
}

/// What [`plan_unregister`] decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsUnregister {
    /// The name.
    pub name: DnsName,
    /// Remove it even while attached containers hold it.
    pub force: bool,
    /// The attached containers holding the name (their key and address);
    /// gathered only for a stored name removed without `force`.
    pub holders: Vec<(String, String)>,
}

/// Decide `unregister_dns`: without `force`, addresses attached containers
/// hold stay (they go when the containers detach) and only the others are
/// removed; a name held only by containers is a conflict. A name not
/// stored is [`Teardown::NotRecorded`] (`ok` when it was removed before,
/// `not_found` otherwise: the daemon asks its tombstones). Otherwise the
/// name goes from the store (leaving a tombstone) and the served set.
pub fn plan_unregister(input: &DnsUnregister) -> Result<Teardown, Refusal> {
    let name = &input.name;
    let Some(stored) = &name.stored else {
        return Ok(Teardown::NotRecorded);
    };
    let mut plan = Plan::default();
    let held: Vec<&String> = if input.force {
        Vec::new()
    } else {
        stored
            .iter()
            .filter(|ip| input.holders.iter().any(|(_, h)| h == *ip))
            .collect()
    };
    if !held.is_empty() {
        if stored.iter().all(|ip| held.contains(&ip)) {
            let who: Vec<String> = input
                .holders
                .iter()
                .map(|(h, ip)| format!("{h} ({ip})"))
                .collect();
            return Err(Refusal::Conflict(format!(
                "DNS name {} is registered by attached container(s) {}; it goes when they detach, or remove it anyway with `overlayd dns rm --force {}`",
                name.key,
                who.join(", "),
                name.key
            )));
        }
        let keep: Vec<String> = held.into_iter().cloned().collect();
        let served: Vec<IpAddr> = keep.iter().filter_map(|i| i.parse().ok()).collect();
        plan.push_undoable(
            Step::WriteDnsName {
                key: name.key.clone(),
                ips: Some(keep),
                tombstone: Tombstone::Leave,
            },
            vec![name.restore(Tombstone::Leave)],
        );
        plan.push_undoable(
            Step::ServeDnsName {
                key: name.key.clone(),
                ips: served,
            },
            vec![name.restore_served()],
        );
        return Ok(Teardown::Remove(plan));
    }
    plan.push_undoable(
        Step::WriteDnsName {
            key: name.key.clone(),
            ips: None,
            tombstone: Tombstone::Bury,
        },
        vec![name.restore(name.undo_tombstone(Tombstone::Bury))],
    );
    plan.push_undoable(
        Step::ServeDnsName {
            key: name.key.clone(),
            ips: Vec::new(),
        },
        vec![name.restore_served()],
    );
    Ok(Teardown::Remove(plan))
}
