//! Forwarding sysctls. overlayd turns on only what its networks need —
//! IPv4 forwarding when a network masquerades or publishes ports, IPv6
//! forwarding only when such a network is IPv6 (turning it on makes a SLAAC
//! host stop accepting router advertisements) — and remembers each value
//! the host had before overlayd first changed it, so purge puts it back.

use overlayd_host::{FirewallSpec, Forwarding, Host};
use overlayd_state::Table;

use super::error::OpResult;
use super::node::Node;

/// `Table::Meta` key of the values the host had before overlayd changed
/// them; a field is `Some` only for a sysctl overlayd changed.
pub const BEFORE_KEY: &str = "host|forwarding_before";

/// Which forwarding sysctls the networks in `spec` need on.
pub fn needed(spec: &FirewallSpec) -> Forwarding {
    let published = spec.published.iter().map(|p| p.container_ip.is_ipv6());
    let masq = spec.masquerade.iter().map(|m| m.subnet.addr().is_ipv6());
    let families: Vec<bool> = published.chain(masq).collect();
    Forwarding {
        ipv4: families.iter().any(|v6| !v6).then_some(true),
        ipv6: families.iter().any(|v6| *v6).then_some(true),
    }
}

/// What to write so that `want` holds given the host's `now`: only the
/// sysctls asked for that are not on yet (and exist).
pub fn changes(want: Forwarding, now: Forwarding) -> Forwarding {
    Forwarding {
        ipv4: (want.ipv4 == Some(true) && now.ipv4 != Some(true)).then_some(true),
        ipv6: (want.ipv6 == Some(true) && now.ipv6 == Some(false)).then_some(true),
    }
}

/// `before` with the values of `now` added for the sysctls in `change`
/// that it does not hold yet (the first value seen is the host's own).
pub fn remember(before: Forwarding, change: Forwarding, now: Forwarding) -> Forwarding {
    Forwarding {
        ipv4: before.ipv4.or(change.ipv4.and(now.ipv4)),
        ipv6: before.ipv6.or(change.ipv6.and(now.ipv6)),
    }
}

impl Node {
    /// Turn on the forwarding the networks in `spec` need, remembering the
    /// host's values first (durably, before the change).
    pub async fn ensure_forwarding(&self, spec: &FirewallSpec) -> OpResult<()> {
        let want = needed(spec);
        if want == Forwarding::default() {
            return Ok(());
        }
        let now = self.host.forwarding().await?;
        let change = changes(want, now);
        if change == Forwarding::default() {
            return Ok(());
        }
        self.store.write(|tx| {
            let before: Forwarding = tx.get(Table::Meta, BEFORE_KEY)?.unwrap_or_default();
            let next = remember(before, change, now);
            if next != before {
                tx.put(Table::Meta, BEFORE_KEY, &next)?;
            }
            Ok(())
        })?;
        self.host.set_forwarding(change).await?;
        Ok(())
    }
}

/// Purge: put back the forwarding values the host had before overlayd
/// changed them, as recorded in the store under `data_dir`. A line saying
/// what was restored, `None` when nothing was recorded.
pub async fn restore(
    data_dir: &std::path::Path,
    host: &dyn Host,
) -> Result<Option<String>, String> {
    let before: Option<Forwarding> = super::purge::read_meta(data_dir, BEFORE_KEY)?;
    let Some(before) = before.filter(|b| *b != Forwarding::default()) else {
        return Ok(None);
    };
    host.set_forwarding(before)
        .await
        .map_err(|e| format!("cannot restore the forwarding sysctls: {e}"))?;
    let show = |v: Option<bool>| v.map(|on| if on { "1" } else { "0" });
    let parts: Vec<String> = [
        ("net.ipv4.ip_forward", show(before.ipv4)),
        ("net.ipv6.conf.all.forwarding", show(before.ipv6)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some(format!("{k}={}", v?)))
    .collect();
    Ok(Some(format!(
        "restored the host's forwarding sysctls ({})",
        parts.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ipv4: Option<bool>, ipv6: Option<bool>) -> Forwarding {
        Forwarding { ipv4, ipv6 }
    }

    #[test]
    fn only_what_is_off_and_asked_for_is_changed() {
        let want = f(Some(true), None);
        assert_eq!(
            changes(want, f(Some(false), Some(false))),
            f(Some(true), None)
        );
        assert_eq!(changes(want, f(Some(true), Some(false))), f(None, None));
        let both = f(Some(true), Some(true));
        assert_eq!(changes(both, f(Some(false), Some(false))), both);
        // IPv6 disabled: nothing to write for it.
        assert_eq!(changes(both, f(Some(true), None)), f(None, None));
    }

    #[test]
    fn the_first_value_seen_is_the_one_remembered() {
        let b = remember(
            f(None, None),
            f(Some(true), None),
            f(Some(false), Some(false)),
        );
        assert_eq!(b, f(Some(false), None));
        // Later IPv6 is turned on: its value then is added, IPv4's kept.
        let b = remember(b, f(None, Some(true)), f(Some(true), Some(false)));
        assert_eq!(b, f(Some(false), Some(false)));
        // Changing IPv4 again (someone turned it off) keeps the first value.
        assert_eq!(
            remember(b, f(Some(true), None), f(Some(true), Some(true))),
            b
        );
    }
}
