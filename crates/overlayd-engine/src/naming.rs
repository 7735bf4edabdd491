//! Deterministic interface names (≤ 15 bytes) for every link overlayd
//! creates, derived from the owner or attachment handle with a stable hash,
//! plus the [`IfName`] newtype that every interface name is parsed into.
//!
//! Layout: `<prefix>-<role><hash>` where `<role>` is one letter
//! (`b` bridge, `w` WireGuard, `v` host-side veth, `p` veth peer) and
//! `<hash>` is base32 of [`crate::hash::stable_hash`], as long as fits in
//! 15 bytes (10 characters, 50 bits, with the default prefix `ovl`).

use std::fmt;
use std::str::FromStr;

use overlayd_model::Owner;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::hash::{base32_chars, stable_hash};

/// Longest interface name Linux accepts (`IFNAMSIZ - 1`).
pub const MAX_IFNAME_LEN: usize = 15;
/// Default interface-name prefix.
pub const DEFAULT_PREFIX: &str = "ovl";
/// Longest accepted prefix; leaves at least 7 hash characters (35 bits).
pub const MAX_PREFIX_LEN: usize = 6;
/// How many salted candidates [`Namer::first_free`] tries before giving up.
pub const MAX_NAME_ATTEMPTS: u32 = 16;

/// Domain label mixed into every name hash; bump only with a migration.
const NAME_DOMAIN: &str = "overlayd-ifname-v1";

/// A valid Linux interface name: 1..=15 bytes, no `/`, no whitespace, no
/// NUL or `:`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for IfName {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why| {
            Err(EngineError::InvalidIfName {
                name: s.to_string(),
                why,
            })
        };
        if s.is_empty() {
            return bad("must not be empty");
        }
        if s.len() > MAX_IFNAME_LEN {
            return bad("must be at most 15 bytes");
        }
        if s == "." || s == ".." {
            return bad("must not be '.' or '..'");
        }
        if s.contains('/') {
            return bad("must not contain '/'");
        }
        if s.contains(':') {
            return bad("must not contain ':'");
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain whitespace or control characters");
        }
        Ok(IfName(s.to_string()))
    }
}

impl TryFrom<String> for IfName {
    type Error = EngineError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated interface-name prefix: 1..=6 bytes of `[a-z0-9-]`, starting
/// with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamePrefix(String);

impl NamePrefix {
    /// The prefix as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for NamePrefix {
    fn default() -> Self {
        NamePrefix(DEFAULT_PREFIX.to_string())
    }
}

impl FromStr for NamePrefix {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why| {
            Err(EngineError::InvalidPrefix {
                prefix: s.to_string(),
                why,
            })
        };
        if s.is_empty() {
            return bad("must not be empty");
        }
        if s.len() > MAX_PREFIX_LEN {
            return bad("must be at most 6 bytes");
        }
        if !s.as_bytes()[0].is_ascii_lowercase() {
            return bad("must start with a letter a-z");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad("may only contain a-z, 0-9 and '-'");
        }
        Ok(NamePrefix(s.to_string()))
    }
}

impl TryFrom<String> for NamePrefix {
    type Error = EngineError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<NamePrefix> for String {
    fn from(p: NamePrefix) -> String {
        p.0
    }
}

impl fmt::Display for NamePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a link is for; one letter of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkRole {
    /// A network's bridge.
    Bridge,
    /// A WireGuard device.
    WireGuard,
    /// The host-side end of an attachment's veth pair.
    Veth,
    /// The container-side end of a veth pair, before it is moved and renamed.
    VethPeer,
}

impl LinkRole {
    /// The role's letter in generated names.
    pub fn letter(self) -> char {
        match self {
            LinkRole::Bridge => 'b',
            LinkRole::WireGuard => 'w',
            LinkRole::Veth => 'v',
            LinkRole::VethPeer => 'p',
        }
    }
}

/// The links an owner's network consists of, primary first (the primary is
/// the marker entry's `name`, the second, if any, its `interface`).
pub fn owner_roles(owner: &Owner) -> &'static [LinkRole] {
    match owner {
        Owner::Base | Owner::Service(_) => &[LinkRole::Bridge, LinkRole::WireGuard],
        Owner::SharedNat | Owner::Isolation(_) => &[LinkRole::Bridge],
        Owner::Other(_) => &[],
    }
}

/// Derives interface names from owners and attachment handles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namer {
    prefix: NamePrefix,
}

impl Namer {
    /// A namer using `prefix`.
    pub fn new(prefix: NamePrefix) -> Self {
        Namer { prefix }
    }

    /// The configured prefix.
    pub fn prefix(&self) -> &NamePrefix {
        &self.prefix
    }

    /// Whether `name` has this namer's shape (`<prefix>-<role>…`). A hint for
    /// reports only: ownership is proven by the tag, never by the name.
    pub fn looks_generated(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| r.starts_with(['b', 'w', 'v', 'p']))
    }

    /// Candidate `attempt` (0 = canonical) for `subject` in `role`.
    fn build(&self, role: LinkRole, subject: &str, attempt: u32) -> IfName {
        let role_bytes = [role.letter() as u8];
        let salt = attempt.to_le_bytes();
        let mut parts: Vec<&[u8]> = vec![&role_bytes, subject.as_bytes()];
        if attempt > 0 {
            parts.push(&salt);
        }
        let h = stable_hash(NAME_DOMAIN, &parts);
        let fixed = self.prefix.as_str().len() + 2;
        let hash = base32_chars(h, MAX_IFNAME_LEN - fixed);
        IfName(format!("{}-{}{}", self.prefix, role.letter(), hash))
    }

    /// The canonical name of `owner`'s link in `role`.
    pub fn network_link(&self, owner: &Owner, role: LinkRole) -> IfName {
        self.network_link_attempt(owner, role, 0)
    }

    /// Salted candidate `attempt` for `owner`'s link in `role`; attempt 0 is
    /// the canonical name. Used only when the canonical name is taken.
    pub fn network_link_attempt(&self, owner: &Owner, role: LinkRole, attempt: u32) -> IfName {
        self.build(role, &owner.to_string(), attempt)
    }

    /// The canonical bridge name of `owner`.
    pub fn bridge(&self, owner: &Owner) -> IfName {
        self.network_link(owner, LinkRole::Bridge)
    }

    /// The canonical WireGuard device name of `owner`.
    pub fn wireguard(&self, owner: &Owner) -> IfName {
        self.network_link(owner, LinkRole::WireGuard)
    }

    /// The host-side veth name of the attachment with handle key `key`.
    pub fn veth(&self, key: &str) -> IfName {
        self.build(LinkRole::Veth, key, 0)
    }

    /// The temporary container-side veth name of attachment `key`.
    pub fn veth_peer(&self, key: &str) -> IfName {
        self.build(LinkRole::VethPeer, key, 0)
    }

    /// The first candidate name for `owner` in `role` for which `taken`
    /// is false (canonical first, then salted ones).
    pub fn first_free(
        &self,
        owner: &Owner,
        role: LinkRole,
        mut taken: impl FnMut(&IfName) -> bool,
    ) -> Result<IfName> {
        (0..MAX_NAME_ATTEMPTS)
            .map(|a| self.network_link_attempt(owner, role, a))
            .find(|n| !taken(n))
            .ok_or_else(|| EngineError::NamesExhausted {
                subject: owner.to_string(),
                attempts: MAX_NAME_ATTEMPTS,
            })
    }

    /// Like [`Namer::first_free`] for an attachment's host-side veth.
    pub fn first_free_veth(
        &self,
        key: &str,
        mut taken: impl FnMut(&IfName) -> bool,
    ) -> Result<IfName> {
        (0..MAX_NAME_ATTEMPTS)
            .map(|a| self.build(LinkRole::Veth, key, a))
            .find(|n| !taken(n))
            .ok_or_else(|| EngineError::NamesExhausted {
                subject: key.to_string(),
                attempts: MAX_NAME_ATTEMPTS,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn owners() -> Vec<Owner> {
        vec![
            Owner::Base,
            Owner::SharedNat,
            Owner::Service("web".into()),
            Owner::Isolation("web".into()),
        ]
    }

    #[test]
    fn ifname_accepts_and_rejects() {
        for ok in ["eth0", "a", "ovl-b0123456789", "br-x.y", "wg_0"] {
            assert!(ok.parse::<IfName>().is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a\tb",
            "a:b",
            "0123456789abcdef",
            "a\0b",
        ] {
            assert!(bad.parse::<IfName>().is_err(), "{bad:?}");
        }
        let n: IfName = serde_json::from_str("\"eth0\"").unwrap();
        assert_eq!(n.as_str(), "eth0");
        assert!(serde_json::from_str::<IfName>("\"a/b\"").is_err());
    }

    #[test]
    fn prefix_validation() {
        for ok in ["ovl", "o", "ovl-", "abc123", "x-y-z"] {
            assert!(ok.parse::<NamePrefix>().is_ok(), "{ok}");
        }
        for bad in ["", "toolong", "1ovl", "-ovl", "OVL", "o_l", "o.l", "o l"] {
            assert!(bad.parse::<NamePrefix>().is_err(), "{bad:?}");
        }
        assert_eq!(NamePrefix::default().as_str(), DEFAULT_PREFIX);
    }

    #[test]
    fn names_have_expected_shape() {
        let n = Namer::default();
        for o in owners() {
            for role in [LinkRole::Bridge, LinkRole::WireGuard] {
                let name = n.network_link(&o, role);
                assert_eq!(name.as_str().len(), MAX_IFNAME_LEN);
                assert!(name.as_str().starts_with(&format!("ovl-{}", role.letter())));
                assert!(name.as_str().parse::<IfName>().is_ok());
                assert!(n.looks_generated(name.as_str()));
            }
        }
        assert!(!n.looks_generated("eth0"));
        assert!(!n.looks_generated("ovlx"));
    }

    #[test]
    fn same_owner_same_name_and_kinds_differ() {
        let n = Namer::default();
        let svc = Owner::Service("x".into());
        let iso = Owner::Isolation("x".into());
        assert_eq!(n.bridge(&svc), n.bridge(&svc));
        assert_eq!(n.bridge(&svc), Namer::default().bridge(&svc));
        assert_ne!(n.bridge(&svc), n.bridge(&iso));
        assert_ne!(n.bridge(&svc), n.wireguard(&svc));
        assert_ne!(n.veth("pid:1"), n.veth_peer("pid:1"));
    }

    #[test]
    fn names_are_pinned_across_releases() {
        // If this fails, upgrading renames every link: never change silently.
        let n = Namer::default();
        let pinned = [
            (n.bridge(&Owner::SharedNat), PIN_SHARED_NAT),
            (n.wireguard(&Owner::Base), PIN_BASE),
        ];
        for (got, want) in pinned {
            assert_eq!(got.as_str(), want);
        }
    }

    const PIN_SHARED_NAT: &str = "ovl-b2m3fthlizp";
    const PIN_BASE: &str = "ovl-wm4nmipuemw";

    #[test]
    fn longest_and_shortest_prefixes_fit() {
        for p in ["o", "abcdef"] {
            let n = Namer::new(p.parse().unwrap());
            let name = n.bridge(&Owner::Service("a".repeat(63)));
            assert_eq!(name.as_str().len(), MAX_IFNAME_LEN);
            assert!(name.as_str().starts_with(p));
        }
    }

    #[test]
    fn unique_over_many_owners() {
        let n = Namer::default();
        let mut seen = HashSet::new();
        let count = 50_000;
        for i in 0..count {
            for o in [
                Owner::Service(format!("svc-{i}")),
                Owner::Isolation(format!("svc-{i}")),
            ] {
                assert!(seen.insert(n.bridge(&o)), "collision for {o}");
                assert!(seen.insert(n.wireguard(&o)), "collision for {o}");
            }
            assert!(seen.insert(n.veth(&format!("pid:{i}"))));
        }
        assert_eq!(seen.len(), count * 5);
    }

    #[test]
    fn first_free_skips_taken_names() {
        let n = Namer::default();
        let o = Owner::Isolation("a".into());
        let canonical = n.bridge(&o);
        let got = n
            .first_free(&o, LinkRole::Bridge, |c| *c == canonical)
            .unwrap();
        assert_ne!(got, canonical);
        assert_eq!(got, n.network_link_attempt(&o, LinkRole::Bridge, 1));
        assert!(n.first_free(&o, LinkRole::Bridge, |_| true).is_err());
        let v = n.veth("pid:9");
        assert_eq!(n.first_free_veth("pid:9", |_| false).unwrap(), v);
        assert_ne!(n.first_free_veth("pid:9", |c| *c == v).unwrap(), v);
    }

    #[test]
    fn owner_roles_layout() {
        assert_eq!(
            owner_roles(&Owner::Base),
            &[LinkRole::Bridge, LinkRole::WireGuard]
        );
        assert_eq!(
            owner_roles(&Owner::Service("s".into())),
            &[LinkRole::Bridge, LinkRole::WireGuard]
        );
        assert!(owner_roles(&Owner::Other("x".into())).is_empty());
    }

    proptest! {
        #[test]
        fn any_owner_yields_valid_stable_name(
            name in "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,62}",
            prefix in "[a-z][a-z0-9-]{0,5}",
            attempt in 0u32..20,
        ) {
            let n = Namer::new(prefix.parse().unwrap());
            for o in [Owner::Service(name.clone()), Owner::Isolation(name.clone())] {
                let a = n.network_link_attempt(&o, LinkRole::Bridge, attempt);
                prop_assert!(a.as_str().len() <= MAX_IFNAME_LEN);
                prop_assert!(a.as_str().parse::<IfName>().is_ok());
                prop_assert_eq!(&a, &n.network_link_attempt(&o, LinkRole::Bridge, attempt));
            }
            let v = n.veth(&name);
            prop_assert!(v.as_str().parse::<IfName>().is_ok());
        }
    }
}
