//! Network owners: the key of every marker entry (`base`, `shared-nat`,
//! `service:<name>`, `iso:<net>`), parsed once into a typed value.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Owner string of the node's base overlay.
pub const BASE: &str = "base";
/// Owner string of the node's shared NAT network.
pub const SHARED_NAT: &str = "shared-nat";
/// Prefix of a dedicated per-service network owner.
pub const SERVICE_PREFIX: &str = "service:";
/// Prefix of an isolation network owner.
pub const ISO_PREFIX: &str = "iso:";

/// Who a host-level network belongs to. The string form is the marker key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// The node's base WireGuard overlay (`base`).
    Base,
    /// The node's single shared NAT network (`shared-nat`).
    SharedNat,
    /// A dedicated per-service network (`service:<name>`).
    Service(String),
    /// An isolation network (`iso:<net>`).
    Isolation(String),
    /// An owner string this build does not know (kept verbatim, never dropped).
    Other(String),
}

/// Why an owner or a service/network name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    /// The owner string is empty.
    #[error("owner is empty")]
    Empty,
    /// A service or network name is not usable.
    #[error("invalid name {name:?}: {why}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Validate a service or isolation-network name: 1..=63 bytes of
/// `[A-Za-z0-9_.-]`, not starting with `-` or `.`.
pub fn validate_name(name: &str) -> Result<(), OwnerError> {
    let bad = |why| {
        Err(OwnerError::InvalidName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name.len() > 63 {
        return bad("must be at most 63 bytes");
    }
    if name.starts_with('-') || name.starts_with('.') {
        return bad("must not start with '-' or '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return bad("may only contain letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

impl Owner {
    /// Owner of a dedicated service network; validates the name.
    pub fn service(name: &str) -> Result<Self, OwnerError> {
        validate_name(name)?;
        Ok(Owner::Service(name.to_string()))
    }

    /// Owner of an isolation network; validates the name.
    pub fn isolation(net: &str) -> Result<Self, OwnerError> {
        validate_name(net)?;
        Ok(Owner::Isolation(net.to_string()))
    }

    /// True for owners this build understands.
    pub fn is_known(&self) -> bool {
        !matches!(self, Owner::Other(_))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Base => f.write_str(BASE),
            Owner::SharedNat => f.write_str(SHARED_NAT),
            Owner::Service(n) => write!(f, "{SERVICE_PREFIX}{n}"),
            Owner::Isolation(n) => write!(f, "{ISO_PREFIX}{n}"),
            Owner::Other(s) => f.write_str(s),
        }
    }
}

impl FromStr for Owner {
    type Err = OwnerError;

    /// Parse an owner string. Unknown but non-empty strings become
    /// [`Owner::Other`] so entries written by other builds survive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(OwnerError::Empty);
        }
        Ok(match s {
            BASE => Owner::Base,
            SHARED_NAT => Owner::SharedNat,
            _ => {
                if let Some(n) = s.strip_prefix(SERVICE_PREFIX) {
                    if validate_name(n).is_ok() {
                        return Ok(Owner::Service(n.to_string()));
                    }
                } else if let Some(n) = s.strip_prefix(ISO_PREFIX) {
                    if validate_name(n).is_ok() {
                        return Ok(Owner::Isolation(n.to_string()));
                    }
                }
                Owner::Other(s.to_string())
            }
        })
    }
}

impl Serialize for Owner {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Owner {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_form() {
        for s in [
            "base",
            "shared-nat",
            "service:web",
            "iso:web",
            "weird:thing",
        ] {
            let o: Owner = s.parse().unwrap();
            assert_eq!(o.to_string(), s);
        }
        assert_ne!(
            "service:x".parse::<Owner>().unwrap(),
            "iso:x".parse::<Owner>().unwrap()
        );
        assert!("".parse::<Owner>().is_err());
        assert!(Owner::service("bad name").is_err());
    }
}
