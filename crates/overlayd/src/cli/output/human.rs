//! Times for people: "12s ago", "3m ago", "never".

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long ago `then` was, relative to `now`, in the largest whole unit.
pub fn ago(then: SystemTime, now: SystemTime) -> String {
    let d = now.duration_since(then).unwrap_or(Duration::ZERO);
    let s = d.as_secs();
    match s {
        0 => "just now".into(),
        1..=119 => format!("{s}s ago"),
        120..=7_199 => format!("{}m ago", s / 60),
        7_200..=172_799 => format!("{}h ago", s / 3_600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// [`ago`] for a Unix timestamp where 0 (or less) means "never".
pub fn ago_unix(secs: i64, now: SystemTime) -> String {
    match u64::try_from(secs) {
        Ok(s) if s > 0 => ago(UNIX_EPOCH + Duration::from_secs(s), now),
        _ => "never".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn units_grow_with_age() {
        let now = at(1_000_000);
        assert_eq!(ago_unix(1_000_000 - 12, now), "12s ago");
        assert_eq!(ago_unix(1_000_000 - 180, now), "3m ago");
        assert_eq!(ago_unix(1_000_000 - 3 * 3600, now), "3h ago");
        assert_eq!(ago_unix(1_000_000 - 5 * 86_400, now), "5d ago");
        assert_eq!(ago_unix(1_000_000, now), "just now");
    }

    #[test]
    fn zero_is_never_and_the_future_is_now() {
        let now = at(1_000_000);
        assert_eq!(ago_unix(0, now), "never");
        assert_eq!(ago_unix(-5, now), "never");
        assert_eq!(ago_unix(1_000_100, now), "just now");
    }
}
