//! The in-memory record set the daemon fills: a cheap-clone, thread-safe handle.
//!
//! Every mutation validates all of its input first and changes nothing on
//! error. Changes are visible to the very next query: the server reads this
//! set directly, with no reload step.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};

use crate::name::Zone;
use crate::DnsError;

/// Default TTL, in seconds, of served A/AAAA records and of negative answers.
///
/// Short on purpose: container addresses change when containers restart.
pub const DEFAULT_TTL: u32 = 5;

/// Parses a textual IP address and checks that it can be published as a host
/// record (not unspecified, multicast or the IPv4 broadcast address).
pub fn parse_ip(value: &str) -> Result<IpAddr, DnsError> {
    let addr: IpAddr = value.parse().map_err(|_| DnsError::InvalidAddress {
        value: value.to_owned(),
    })?;
    check_host_addr(addr)?;
    Ok(addr)
}

fn check_host_addr(addr: IpAddr) -> Result<(), DnsError> {
    let unusable = addr.is_unspecified()
        || addr.is_multicast()
        || matches!(addr, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(DnsError::UnusableAddress { addr });
    }
    Ok(())
}

/// One name and its addresses, as returned by [`Records::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// Fully qualified, lower-case name with a trailing dot (`web.overlay.internal.`).
    pub name: String,
    /// Its addresses, in the order they were added.
    pub ips: Vec<IpAddr>,
}

/// A name's addresses plus the wire records built from them once per change,
/// so queries only clone an `Arc`.
#[derive(Debug)]
struct Entry {
    ips: Vec<IpAddr>,
    a: Arc<[Record]>,
    aaaa: Arc<[Record]>,
}

impl Entry {
    fn build(name: &Name, ips: Vec<IpAddr>, ttl: u32) -> Self {
        let mut a = Vec::new();
        let mut aaaa = Vec::new();
        for ip in &ips {
            match ip {
                IpAddr::V4(v4) => a.push(Record::from_rdata(name.clone(), ttl, RData::A(A(*v4)))),
                IpAddr::V6(v6) => aaaa.push(Record::from_rdata(
                    name.clone(),
                    ttl,
                    RData::AAAA(AAAA(*v6)),
                )),
            }
        }
        Self {
            ips,
            a: a.into(),
            aaaa: aaaa.into(),
        }
    }
}

/// What the zone holds for a queried name.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// The zone apex: SOA and NS live here.
    Apex,
    /// A registered name.
    Found {
        /// Its A records (possibly empty).
        a: Arc<[Record]>,
        /// Its AAAA records (possibly empty).
        aaaa: Arc<[Record]>,
    },
    /// An empty non-terminal: no records, but names below it exist.
    Interior,
    /// Nothing at or below this name.
    Missing,
}

#[derive(Debug)]
struct Inner {
    entries: HashMap<LowerName, Entry>,
    /// Empty non-terminals with the number of registered names below each.
    interior: HashMap<LowerName, usize>,
    serial: u32,
    soa: Arc<[Record]>,
}

#[derive(Debug)]
struct Shared {
    zone: Zone,
    ttl: u32,
    ns: Arc<[Record]>,
    inner: RwLock<Inner>,
}

/// The authoritative record set: a cheap-clone handle (`Arc<RwLock<…>>`).
///
/// The daemon creates one per zone, fills it from its store at start, updates
/// it on `register_dns` / `unregister_dns`, and hands a clone to
/// [`DnsServer::start`](crate::DnsServer::start). Names may be given relative
/// (`web`) or fully qualified in the zone (`web.overlay.internal[.]`).
#[derive(Debug, Clone)]
pub struct Records {
    shared: Arc<Shared>,
}

impl Records {
    /// An empty record set for `zone` (e.g. `overlay.internal`) with [`DEFAULT_TTL`].
    pub fn new(zone: &str) -> Result<Self, DnsError> {
        Self::with_ttl(zone, DEFAULT_TTL)
    }

    /// An empty record set for `zone` whose records carry `ttl` seconds.
    pub fn with_ttl(zone: &str, ttl: u32) -> Result<Self, DnsError> {
        let zone = Zone::parse(zone)?;
        let ns_name = prefixed(&zone, "ns")?;
        let ns = Record::from_rdata(zone.name.clone(), ttl, RData::NS(NS(ns_name)));
        // The classic convention: a serial that starts at the current time.
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        let soa = build_soa(&zone, ttl, serial)?;
        Ok(Self {
            shared: Arc::new(Shared {
                ns: Arc::from([ns]),
                inner: RwLock::new(Inner {
                    entries: HashMap::new(),
                    interior: HashMap::new(),
                    serial,
                    soa,
                }),
                zone,
                ttl,
            }),
        })
    }

    /// The served zone, fully qualified (`overlay.internal.`).
    pub fn zone(&self) -> String {
        self.shared.zone.name.to_ascii()
    }

    /// TTL in seconds of the records served from this set.
    pub fn ttl(&self) -> u32 {
        self.shared.ttl
    }

    /// Current SOA serial; it changes on every successful mutation.
    pub fn serial(&self) -> u32 {
        self.read().serial
    }

    /// Validates `name` against this set's zone and returns its canonical
    /// form (`web.overlay.internal.`), without storing anything.
    pub fn normalize(&self, name: &str) -> Result<String, DnsError> {
        Ok(self.shared.zone.normalize(name)?.to_ascii())
    }

    /// Replaces the addresses of `name` with `ips` (duplicates dropped, order kept).
    pub fn set(&self, name: &str, ips: impl IntoIterator<Item = IpAddr>) -> Result<(), DnsError> {
        let owner = self.shared.zone.normalize(name)?;
        let ips = dedup_checked(ips)?;
        if ips.is_empty() {
            return Err(DnsError::NoAddresses {
                name: name.to_owned(),
            });
        }
        let mut inner = self.write();
        self.put(&mut inner, owner, ips);
        self.bump(&mut inner);
        Ok(())
    }

    /// Adds `ip` to `name`, creating the name if needed. Returns `false` if
    /// the name already had that address (nothing changes then).
    pub fn add(&self, name: &str, ip: IpAddr) -> Result<bool, DnsError> {
        let owner = self.shared.zone.normalize(name)?;
        check_host_addr(ip)?;
        let mut inner = self.write();
        let key = LowerName::new(&owner);
        let mut ips = match inner.entries.get(&key) {
            Some(entry) if entry.ips.contains(&ip) => return Ok(false),
            Some(entry) => entry.ips.clone(),
            None => Vec::new(),
        };
        ips.push(ip);
        self.put(&mut inner, owner, ips);
        self.bump(&mut inner);
        Ok(true)
    }

    /// Removes `name` and all its addresses. Returns whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool, DnsError> {
        let owner = self.shared.zone.normalize(name)?;
        let mut inner = self.write();
        let removed = self.take(&mut inner, &owner);
        if removed {
            self.bump(&mut inner);
        }
        Ok(removed)
    }

    /// Removes one address from `name`; the name disappears with its last
    /// address. Returns whether the address was present.
    pub fn remove_ip(&self, name: &str, ip: IpAddr) -> Result<bool, DnsError> {
        let owner = self.shared.zone.normalize(name)?;
        let mut inner = self.write();
        let key = LowerName::new(&owner);
        let Some(entry) = inner.entries.get(&key) else {
            return Ok(false);
        };
        if !entry.ips.contains(&ip) {
            return Ok(false);
        }
        let rest: Vec<IpAddr> = entry.ips.iter().copied().filter(|x| *x != ip).collect();
        if rest.is_empty() {
            self.take(&mut inner, &owner);
        } else {
            self.put(&mut inner, owner, rest);
        }
        self.bump(&mut inner);
        Ok(true)
    }

    /// The addresses of `name`, or `None` if it is not registered.
    pub fn get(&self, name: &str) -> Result<Option<Vec<IpAddr>>, DnsError> {
        let owner = self.shared.zone.normalize(name)?;
        let key = LowerName::new(&owner);
        Ok(self.read().entries.get(&key).map(|e| e.ips.clone()))
    }

    /// Every registered name with its addresses, sorted by name.
    pub fn list(&self) -> Vec<RecordEntry> {
        let inner = self.read();
        let mut out: Vec<RecordEntry> = inner
            .entries
            .iter()
            .map(|(name, entry)| RecordEntry {
                name: name.to_string(),
                ips: entry.ips.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Number of registered names.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether no name is registered.
    pub fn is_empty(&self) -> bool {
        self.read().entries.is_empty()
    }

    /// Replaces the whole set at once (the daemon's load from its store at
    /// start). Entries naming the same record are merged. Everything is
    /// validated first; on error the current set is left untouched.
    pub fn replace_all<N, I>(
        &self,
        entries: impl IntoIterator<Item = (N, I)>,
    ) -> Result<(), DnsError>
    where
        N: AsRef<str>,
        I: IntoIterator<Item = IpAddr>,
    {
        let mut staged: Vec<(Name, Vec<IpAddr>)> = Vec::new();
        let mut index: HashMap<LowerName, usize> = HashMap::new();
        for (name, ips) in entries {
            let name = name.as_ref();
            let owner = self.shared.zone.normalize(name)?;
            let ips = dedup_checked(ips)?;
            if ips.is_empty() {
                return Err(DnsError::NoAddresses {
                    name: name.to_owned(),
                });
            }
            let key = LowerName::new(&owner);
            match index.get(&key) {
                Some(&at) => {
                    let merged = &mut staged[at].1;
                    for ip in ips {
                        if !merged.contains(&ip) {
                            merged.push(ip);
                        }
                    }
                }
                None => {
                    index.insert(key, staged.len());
                    staged.push((owner, ips));
                }
            }
        }
        let mut inner = self.write();
        inner.entries.clear();
        inner.interior.clear();
        for (owner, ips) in staged {
            self.put(&mut inner, owner, ips);
        }
        self.bump(&mut inner);
        Ok(())
    }

    /// Answers "what is at `name`?" for the query path. `name` must be in the zone.
    pub(crate) fn lookup(&self, name: &LowerName) -> (Lookup, Arc<[Record]>) {
        let inner = self.read();
        let found = if *name == self.shared.zone.lower {
            Lookup::Apex
        } else if let Some(entry) = inner.entries.get(name) {
            Lookup::Found {
                a: entry.a.clone(),
                aaaa: entry.aaaa.clone(),
            }
        } else if inner.interior.contains_key(name) {
            Lookup::Interior
        } else {
            Lookup::Missing
        };
        (found, inner.soa.clone())
    }

    /// The apex NS record set.
    pub(crate) fn ns(&self) -> Arc<[Record]> {
        self.shared.ns.clone()
    }

    /// The lower-case zone as the query path compares it.
    pub(crate) fn zone_lower(&self) -> &LowerName {
        &self.shared.zone.lower
    }

    fn put(&self, inner: &mut Inner, owner: Name, ips: Vec<IpAddr>) {
        let key = LowerName::new(&owner);
        let entry = Entry::build(&owner, ips, self.shared.ttl);
        if inner.entries.insert(key, entry).is_none() {
            for ancestor in self.ancestors(&owner) {
                *inner.interior.entry(ancestor).or_insert(0) += 1;
            }
        }
    }

    fn take(&self, inner: &mut Inner, owner: &Name) -> bool {
        if inner.entries.remove(&LowerName::new(owner)).is_none() {
            return false;
        }
        for ancestor in self.ancestors(owner) {
            if let Some(count) = inner.interior.get_mut(&ancestor) {
                *count -= 1;
                if *count == 0 {
                    inner.interior.remove(&ancestor);
                }
            }
        }
        true
    }

    /// Names strictly between `owner` and the zone apex.
    fn ancestors(&self, owner: &Name) -> Vec<LowerName> {
        let apex_labels = self.shared.zone.name.num_labels();
        let mut out = Vec::new();
        let mut current = owner.base_name();
        while current.num_labels() > apex_labels {
            out.push(LowerName::new(&current));
            current = current.base_name();
        }
        out
    }

    fn bump(&self, inner: &mut Inner) {
        inner.serial = inner.serial.wrapping_add(1).max(1);
        // Building an SOA for a zone that already parsed cannot fail; keep the
        // old record (stale serial) rather than panic if it ever did.
        if let Ok(soa) = build_soa(&self.shared.zone, self.shared.ttl, inner.serial) {
            inner.soa = soa;
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.shared
            .inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.shared
            .inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn dedup_checked(ips: impl IntoIterator<Item = IpAddr>) -> Result<Vec<IpAddr>, DnsError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for ip in ips {
        check_host_addr(ip)?;
        if seen.insert(ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

fn prefixed(zone: &Zone, label: &str) -> Result<Name, DnsError> {
    Name::from_ascii(format!("{label}.{}.", zone.text)).map_err(|e| DnsError::InvalidZone {
        zone: zone.text.clone(),
        reason: e.to_string(),
    })
}

fn build_soa(zone: &Zone, ttl: u32, serial: u32) -> Result<Arc<[Record]>, DnsError> {
    let soa = SOA::new(
        prefixed(zone, "ns")?,
        prefixed(zone, "hostmaster")?,
        serial,
        3600,
        600,
        86400,
        ttl,
    );
    Ok(Arc::from([Record::from_rdata(
        zone.name.clone(),
        ttl,
        RData::SOA(soa),
    )]))
}

#[cfg(test)]
mod tests;
