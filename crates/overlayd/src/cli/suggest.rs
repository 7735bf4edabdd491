//! Client-side "did you mean" for names the CLI resolves itself (network
//! owners, WireGuard devices) and for `not_found` errors whose message does
//! not already carry a suggestion from the daemon.

use anyhow::Result;
use overlayd_proto::{Request, Response};

use super::exit::{Exit, Failure};
use super::{call, Cli};
use crate::daemon::missing::distance;

/// The closest candidate, if one is close enough to be a typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != input)
        .map(|c| (distance(input, c), c))
        .filter(|(d, c)| *d <= limit || (input.len() >= 2 && c.starts_with(input)))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A " did you mean …?" suffix, or nothing.
pub fn hint<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(input, candidates)
        .map(|c| format!("; did you mean {c:?}?"))
        .unwrap_or_default()
}

/// Which kind of name a request carries, for suggestions on `not_found`.
#[derive(Debug, Clone, Copy)]
pub enum NameKind {
    /// A service name.
    Service,
    /// An isolation network name.
    Isolation,
}

/// Names of this kind the daemon knows (empty when they cannot be listed).
async fn known(cli: &Cli, kind: NameKind) -> Vec<String> {
    match kind {
        NameKind::Service => match call::call(cli, Request::ListServices).await {
            Ok(Response::Services { services }) => services.into_iter().map(|s| s.name).collect(),
            _ => Vec::new(),
        },
        NameKind::Isolation => match call::call(cli, Request::ListNetworks).await {
            Ok(Response::Networks { networks }) => networks
                .into_iter()
                .filter_map(|n| n.owner.strip_prefix("iso:").map(str::to_string))
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// Call, and when the daemon answers `not_found` for `name` without a
/// suggestion of its own, add one from the names it lists.
pub async fn call_naming(
    cli: &Cli,
    request: Request,
    kind: NameKind,
    name: &str,
) -> Result<Response> {
    match call::call(cli, request).await {
        Err(e) => {
            let Some(f) = e.downcast_ref::<Failure>() else {
                return Err(e);
            };
            if f.exit != Exit::NotFound || f.message.contains("did you mean") {
                return Err(e);
            }
            let names = known(cli, kind).await;
            let h = hint(name, names.iter().map(String::as_str));
            Err(Failure::new(Exit::NotFound, format!("{}{h}", f.message)).into())
        }
        ok => ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_name_and_strangers_find_nothing() {
        let names = ["db", "frontend", "cache"];
        assert_eq!(closest("fronted", names), Some("frontend"));
        assert_eq!(closest("cahce", names), Some("cache"));
        assert_eq!(closest("front", names), Some("frontend"));
        assert_eq!(closest("zzzzzz", names), None);
        assert_eq!(closest("db", names), None);
        assert_eq!(hint("dv", names), "; did you mean \"db\"?");
    }
}
