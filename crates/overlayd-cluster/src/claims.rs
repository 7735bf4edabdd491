//! Subnet claims: a key per subnet, created with a compare-and-set on
//! `version == 0` and attached to the node's long-lived claim lease, so a
//! subnet never has two owners. A node re-claims what it held (same value)
//! after a restart; a subnet lost to another node makes it take the next
//! free one — unless the caller asked for that exact subnet.

use ipnet::IpNet;

use crate::error::{ClusterError, Result};
use crate::store::{ClusterStore, Compare, Op};

/// Most candidates one claim looks at (bounds the scan of a huge v6 range).
const MAX_CANDIDATES: u64 = 1 << 16;

/// One claim to make.
#[derive(Debug, Clone)]
pub struct ClaimSpec<'a> {
    /// Key prefix of this kind of claim (ends with `/`).
    pub prefix: &'a str,
    /// Range the subnet comes from.
    pub range: IpNet,
    /// Prefix length of the subnet.
    pub prefix_len: u8,
    /// The subnet to try first (remembered from before, or asked for).
    pub preferred: Option<IpNet>,
    /// Fail instead of moving on when `preferred` is taken.
    pub exact: bool,
    /// Value that says "this claim is mine" (node name, or node|network).
    pub holder: &'a str,
    /// Where the scan starts when nothing is preferred (spreads nodes out).
    pub start_hint: u64,
    /// Subnets to skip (overlap local networks or addresses).
    pub avoid: &'a [IpNet],
    /// Claim lease id.
    pub lease: i64,
}

/// Stable 64-bit FNV-1a of a string (scan start for a node).
pub fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Number of subnets of `len` in `range`, capped at [`MAX_CANDIDATES`].
fn count(range: IpNet, len: u8) -> u64 {
    let bits = u32::from(len.saturating_sub(range.prefix_len()));
    if bits >= 16 {
        MAX_CANDIDATES
    } else {
        1u64 << bits
    }
}

/// The `i`-th subnet of `len` in `range`.
fn nth(range: IpNet, len: u8, i: u64) -> Option<IpNet> {
    match range {
        IpNet::V4(r) => {
            let base = u32::from(r.network());
            let step = 1u64.checked_shl(32 - u32::from(len))?;
            let a = u64::from(base) + i * step;
            let a = u32::try_from(a).ok()?;
            ipnet::Ipv4Net::new(a.into(), len).ok().map(IpNet::V4)
        }
        IpNet::V6(r) => {
            let base = u128::from(r.network());
            let step = 1u128.checked_shl(128 - u32::from(len))?;
            let a = base.checked_add(u128::from(i).checked_mul(step)?)?;
            ipnet::Ipv6Net::new(a.into(), len).ok().map(IpNet::V6)
        }
    }
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Claim a subnet per `spec`; returns the subnet now held.
pub async fn claim(store: &dyn ClusterStore, spec: &ClaimSpec<'_>) -> Result<IpNet> {
    if spec.prefix_len < spec.range.prefix_len() || spec.prefix_len > spec.range.max_prefix_len() {
        return Err(ClusterError::Invalid(format!(
            "prefix length /{} does not fit in {}",
            spec.prefix_len, spec.range
        )));
    }
    let (claimed, _) = store.list(spec.prefix).await?;
    let holder_of = |net: &IpNet| {
        let key = format!("{}{}", spec.prefix, crate::keys::net_segment(net));
        claimed
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    };
    if let Some(p) = spec.preferred {
        let fits = p.prefix_len() == spec.prefix_len && spec.range.contains(&p.network());
        if !fits && spec.exact {
            return Err(ClusterError::Invalid(format!(
                "{p} is not a /{} inside {}",
                spec.prefix_len, spec.range
            )));
        }
        if fits {
            match try_claim(store, spec, p, holder_of(&p).as_deref()).await? {
                Some(net) => return Ok(net),
                None if spec.exact => {
                    let who = store
                        .get(&format!("{}{}", spec.prefix, crate::keys::net_segment(&p)))
                        .await?
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                        .unwrap_or_else(|| "another node".into());
                    return Err(ClusterError::Taken(format!(
                        "{p} is already claimed by {who}; choose another subnet or leave it out to get a free one"
                    )));
                }
                None => {}
            }
        }
    }
    let n = count(spec.range, spec.prefix_len);
    let start = spec.start_hint % n;
    for k in 0..n {
        let Some(net) = nth(spec.range, spec.prefix_len, (start + k) % n) else {
            continue;
        };
        if spec.avoid.iter().any(|a| overlaps(a, &net)) {
            continue;
        }
        let holder = holder_of(&net);
        if holder.as_deref().is_some_and(|h| h != spec.holder) {
            continue;
        }
        if let Some(net) = try_claim(store, spec, net, holder.as_deref()).await? {
            return Ok(net);
        }
    }
    Err(ClusterError::Exhausted(format!(
        "no free /{} left in {}",
        spec.prefix_len, spec.range
    )))
}

/// One compare-and-set: create the key if absent, or re-attach it to our
/// lease if it already says it is ours. `None` when someone else holds it.
async fn try_claim(
    store: &dyn ClusterStore,
    spec: &ClaimSpec<'_>,
    net: IpNet,
    seen_holder: Option<&str>,
) -> Result<Option<IpNet>> {
    let key = format!("{}{}", spec.prefix, crate::keys::net_segment(&net));
    let put = Op::Put {
        key: key.clone(),
        value: spec.holder.as_bytes().to_vec(),
        lease: spec.lease,
    };
    let cmp = match seen_holder {
        Some(h) if h == spec.holder => Compare::Value(key.clone(), h.as_bytes().to_vec()),
        Some(_) => return Ok(None),
        None => Compare::Version(key.clone(), 0),
    };
    if store.txn(vec![cmp], vec![put.clone()]).await? {
        return Ok(Some(net));
    }
    // Lost the race, or the key changed since the list: look once more.
    match store.get(&key).await? {
        Some(kv) if kv.value == spec.holder.as_bytes() => {
            let cmp = Compare::Value(key, kv.value);
            Ok(store.txn(vec![cmp], vec![put]).await?.then_some(net))
        }
        _ => Ok(None),
    }
}

/// Release a claim if it is still ours (idempotent).
pub async fn release(
    store: &dyn ClusterStore,
    prefix: &str,
    net: &IpNet,
    holder: &str,
) -> Result<()> {
    let key = format!("{prefix}{}", crate::keys::net_segment(net));
    store
        .txn(
            vec![Compare::Value(key.clone(), holder.as_bytes().to_vec())],
            vec![Op::Delete(key)],
        )
        .await?;
    Ok(())
}
