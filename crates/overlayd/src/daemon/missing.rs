//! Unknown targets: a request naming a service, network, DNS name or
//! container that does not exist is a `not_found` error (with "did you
//! mean" when a recorded name is close), never `ok`.
//!
//! Teardown stays idempotent for things that existed: removing something
//! leaves a small tombstone in the store (`Table::Meta`, key `gone|<what>`),
//! and a second removal of it answers `ok`. Setting it up again clears the
//! tombstone. Tombstones are capped at [`MAX_TOMBSTONES`]; the oldest go first.

use overlayd_state::{Store, Table, WriteTx};

use super::error::{OpError, OpResult};

/// Key prefix of tombstones in `Table::Meta`.
const PREFIX: &str = "gone|";

/// How many tombstones are kept (up to `PRUNE_SLACK` more between prunes).
pub const MAX_TOMBSTONES: usize = 4096;

/// How far over the cap tombstones may grow before the oldest are pruned.
const PRUNE_SLACK: usize = 64;

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Record that `what` (e.g. `service:db`, `dns:web`, `attach:pid:42`) was
/// removed, inside a store transaction.
pub fn bury(tx: &mut WriteTx<'_>, what: &str) -> overlayd_state::Result<()> {
    tx.put(Table::Meta, &format!("{PREFIX}{what}"), &now_millis())?;
    // Pruned in batches so a burial costs one count, not a scan.
    if tx.count(Table::Meta)? > (MAX_TOMBSTONES + PRUNE_SLACK) as u64 {
        let mut by_age: Vec<(String, u64)> = tx.list_prefix(Table::Meta, PREFIX)?;
        by_age.sort_by_key(|(_, t)| *t);
        let excess = by_age.len().saturating_sub(MAX_TOMBSTONES);
        for (k, _) in by_age.into_iter().take(excess) {
            tx.remove(Table::Meta, &k)?;
        }
    }
    Ok(())
}

/// Forget the tombstone of `what` (it exists again).
pub fn unbury(tx: &mut WriteTx<'_>, what: &str) -> overlayd_state::Result<()> {
    tx.remove(Table::Meta, &format!("{PREFIX}{what}"))?;
    Ok(())
}

/// Whether `what` existed and was removed.
pub fn was_removed(store: &Store, what: &str) -> OpResult<bool> {
    Ok(store
        .read(|tx| tx.get::<u64>(Table::Meta, &format!("{PREFIX}{what}")))?
        .is_some())
}

/// Edit distance between two short strings: insertions, deletions,
/// substitutions and swaps of adjacent characters each cost one (optimal
/// string alignment), so `wbe` is one edit from `web`.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `name`, if it is close enough to be a typo
/// (at most 2 edits, and fewer than half the name's length).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = 2.min(name.chars().count().saturating_sub(1) / 2 + 1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// A `not_found` error: `"{what} does not exist"`, with "did you mean" for a
/// close candidate and the listing command to see what exists.
pub fn not_found<'a>(
    what: &str,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    list_with: &str,
) -> OpError {
    let hint = match closest(name, candidates) {
        Some(c) => format!("; did you mean {c:?}?"),
        None => format!("; see `{list_with}`"),
    };
    OpError::NotFound(format!("{what} {name:?} does not exist{hint}"))
}

/// Answer for a removal of something not recorded: `ok` when it existed
/// and was already removed, `not_found` otherwise.
pub fn already_gone_or<'a>(
    store: &Store,
    tomb: &str,
    what: &str,
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    list_with: &str,
) -> OpResult<()> {
    if was_removed(store, tomb)? {
        return Ok(());
    }
    Err(not_found(what, name, candidates, list_with))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        assert_eq!(closest("wbe", ["web", "db"]), Some("web"));
        assert_eq!(closest("dbb", ["web", "db"]), Some("db"));
        assert_eq!(closest("nosuch", ["web", "db"]), None);
        assert_eq!(closest("x", ["y"]), Some("y"));
        assert_eq!(closest("x", ["xyz"]), None);
        assert_eq!(closest("Web", ["web"]), Some("web"));
    }

    #[test]
    fn not_found_names_the_target_and_a_hint() {
        let e = not_found("service", "wbe", ["web"], "overlayd network ls");
        assert!(matches!(e, OpError::NotFound(_)));
        assert_eq!(
            e.to_string(),
            "service \"wbe\" does not exist; did you mean \"web\"?"
        );
        let e = not_found("service", "nosuch", ["web"], "overlayd network ls");
        assert!(e.to_string().contains("see `overlayd network ls`"), "{e}");
    }

    #[test]
    fn tombstones_make_a_second_removal_ok_and_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!was_removed(&store, "service:db").unwrap());
        store.write(|tx| bury(tx, "service:db")).unwrap();
        assert!(was_removed(&store, "service:db").unwrap());
        store.write(|tx| unbury(tx, "service:db")).unwrap();
        assert!(!was_removed(&store, "service:db").unwrap());
        store
            .write(|tx| {
                for i in 0..MAX_TOMBSTONES + 100 {
                    bury(tx, &format!("dns:n{i}"))?;
                }
                Ok(())
            })
            .unwrap();
        let n = store
            .read(|tx| tx.list_prefix::<u64>(Table::Meta, PREFIX))
            .unwrap()
            .len();
        assert!(n <= MAX_TOMBSTONES + PRUNE_SLACK, "{n}");
        assert!(was_removed(&store, &format!("dns:n{}", MAX_TOMBSTONES + 99)).unwrap());
    }
}
