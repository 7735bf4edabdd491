//! The ownership tag overlayd writes into a link's `ifalias`, so "this link
//! with this name is ours" can be checked on a live host (SPEC §2 `id`).
//!
//! Shapes (values percent-encoded, fields space-separated, order free):
//! - `overlayd:v1 owner=<owner> id=<id>` on a network's bridge / WireGuard device;
//! - `overlayd:v1 attach=<handle-key> id=<id>` on an attachment's host veth;
//! - `overlayd:v1 attach#=<16 hex> id=<id>` when the handle key is too long
//!   for the 255-byte `ifalias`; it then carries a stable digest of the key.
//!
//! Each shape may carry ` inst=<instance>`: the daemon instance (one data
//! directory) that made the link. Two daemons sharing a namespace only
//! adopt, collect and purge links of their own instance; a tag without
//! `inst` (written before instances were tagged) counts as every
//! instance's, so links of earlier builds are still adopted.
//!
//! Only aliases starting with [`TAG_PREFIX`] count; anything else is foreign.

use std::fmt;

use overlayd_model::Owner;

use crate::error::{EngineError, Result};
use crate::hash::{hex64, stable_hash};

/// Prefix (with version) of every tag this build writes and understands.
pub const TAG_PREFIX: &str = "overlayd:v1";
/// Prefix shared by every overlayd tag version.
pub const TAG_FAMILY: &str = "overlayd:";
/// Longest `ifalias` the kernel stores (`IFALIASZ - 1`).
pub const MAX_ALIAS_LEN: usize = 255;
/// Longest identity accepted in a tag.
pub const MAX_ID_LEN: usize = 64;

const DIGEST_DOMAIN: &str = "overlayd-attach-key-v1";

/// Which attachment a veth tag names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttachKey {
    /// The handle key verbatim.
    Exact(String),
    /// A stable digest of a handle key too long to store verbatim.
    Digest(u64),
}

impl AttachKey {
    /// The key form for `key`: verbatim when its encoding fits, digest otherwise.
    fn for_key(key: &str, id_len: usize) -> AttachKey {
        let budget = MAX_ALIAS_LEN - TAG_PREFIX.len() - " attach= id=".len() - id_len;
        if encode(key).len() <= budget {
            AttachKey::Exact(key.to_string())
        } else {
            AttachKey::Digest(attach_digest(key))
        }
    }

    /// Whether this names the attachment with handle key `key`.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            AttachKey::Exact(k) => k == key,
            AttachKey::Digest(d) => *d == attach_digest(key),
        }
    }
}

fn attach_digest(key: &str) -> u64 {
    stable_hash(DIGEST_DOMAIN, &[key.as_bytes()])
}

/// What a tagged link belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TagSubject {
    /// A host-level network (bridge or WireGuard device) of this owner.
    Network(Owner),
    /// The host-side veth of an attachment.
    Attachment(AttachKey),
}

/// A parsed or to-be-written ownership tag. Built only through the
/// validating constructors or [`parse_tag`], so it always renders to a valid
/// alias of at most [`MAX_ALIAS_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    subject: TagSubject,
    id: String,
    inst: Option<String>,
}

/// Longest instance id accepted in a tag.
pub const MAX_INSTANCE_LEN: usize = 16;

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(EngineError::InvalidTag {
            why: format!("id must be 1..={MAX_ID_LEN} bytes"),
        });
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(EngineError::InvalidTag {
            why: "id may only contain letters, digits and '-'".to_string(),
        });
    }
    Ok(())
}

impl Tag {
    /// Tag for `owner`'s network with identity `id`.
    pub fn network(owner: &Owner, id: &str) -> Result<Tag> {
        validate_id(id)?;
        let tag = Tag {
            subject: TagSubject::Network(owner.clone()),
            id: id.to_string(),
            inst: None,
        };
        if tag.to_string().len() > MAX_ALIAS_LEN {
            return Err(EngineError::InvalidTag {
                why: format!("owner {owner} is too long for a {MAX_ALIAS_LEN}-byte ifalias"),
            });
        }
        Ok(tag)
    }

    /// Tag for the host veth of the attachment with handle key `key`. Keys
    /// too long for the alias are stored as a digest.
    pub fn attachment(key: &str, id: &str) -> Result<Tag> {
        validate_id(id)?;
        if key.is_empty() {
            return Err(EngineError::InvalidTag {
                why: "attachment handle key is empty".to_string(),
            });
        }
        Ok(Tag {
            subject: TagSubject::Attachment(AttachKey::for_key(key, id.len())),
            id: id.to_string(),
            inst: None,
        })
    }

    /// This tag marked as made by daemon instance `inst` (letters, digits
    /// and '-', at most [`MAX_INSTANCE_LEN`] bytes). An attachment key that
    /// no longer fits the alias with it is stored as a digest.
    pub fn in_instance(mut self, inst: &str) -> Result<Tag> {
        if inst.is_empty()
            || inst.len() > MAX_INSTANCE_LEN
            || !inst.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(EngineError::InvalidTag {
                why: format!("instance id must be 1..={MAX_INSTANCE_LEN} letters, digits or '-'"),
            });
        }
        self.inst = Some(inst.to_string());
        if self.to_string().len() > MAX_ALIAS_LEN {
            match &self.subject {
                TagSubject::Attachment(AttachKey::Exact(k)) => {
                    self.subject = TagSubject::Attachment(AttachKey::Digest(attach_digest(k)));
                }
                TagSubject::Network(o) => {
                    return Err(EngineError::InvalidTag {
                        why: format!("owner {o} is too long for a {MAX_ALIAS_LEN}-byte ifalias"),
                    })
                }
                TagSubject::Attachment(AttachKey::Digest(_)) => {}
            }
        }
        Ok(self)
    }

    /// The instance that made the link, when the tag says.
    pub fn instance(&self) -> Option<&str> {
        self.inst.as_deref()
    }

    /// Whether instance `inst` may treat the link as its own: the tag names
    /// `inst`, or names no instance (written before instances were tagged).
    pub fn belongs_to(&self, inst: &str) -> bool {
        self.inst.as_deref().is_none_or(|i| i == inst)
    }

    /// What the tagged link belongs to.
    pub fn subject(&self) -> &TagSubject {
        &self.subject
    }

    /// The identity recorded in the tag.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner, for network tags.
    pub fn owner(&self) -> Option<&Owner> {
        match &self.subject {
            TagSubject::Network(o) => Some(o),
            TagSubject::Attachment(_) => None,
        }
    }

    /// True when this tags `owner`'s network with identity `id`.
    pub fn is_network(&self, owner: &Owner, id: &str) -> bool {
        self.owner() == Some(owner) && self.id == id
    }

    /// True when this tags the veth of attachment `key` (and, when given,
    /// identity `id`).
    pub fn is_attachment(&self, key: &str, id: Option<&str>) -> bool {
        match &self.subject {
            TagSubject::Attachment(k) => k.matches(key) && id.is_none_or(|i| i == self.id),
            TagSubject::Network(_) => false,
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(TAG_PREFIX)?;
        match &self.subject {
            TagSubject::Network(o) => write!(f, " owner={}", encode(&o.to_string()))?,
            TagSubject::Attachment(AttachKey::Exact(k)) => write!(f, " attach={}", encode(k))?,
            TagSubject::Attachment(AttachKey::Digest(d)) => write!(f, " attach#={}", hex64(*d))?,
        }
        write!(f, " id={}", self.id)?;
        if let Some(i) = &self.inst {
            write!(f, " inst={i}")?;
        }
        Ok(())
    }
}

/// Whether `alias` is in overlayd's tag family (any version), even if this
/// build cannot parse it. Such links are never adopted and never deleted by
/// a build that does not understand them.
pub fn is_overlayd_alias(alias: &str) -> bool {
    alias.starts_with(TAG_FAMILY)
}

/// Parse an `ifalias` into a tag; `None` for anything that is not a
/// well-formed v1 overlayd tag. Unknown `key=value` fields are ignored so
/// later v1 builds may add some.
pub fn parse_tag(alias: &str) -> Option<Tag> {
    if alias.len() > MAX_ALIAS_LEN {
        return None;
    }
    let mut words = alias.split(' ');
    if words.next()? != TAG_PREFIX {
        return None;
    }
    let mut subject = None;
    let mut id = None;
    let mut inst = None;
    for w in words {
        let (k, v) = w.split_once('=')?;
        let slot = match k {
            "owner" => {
                let owner: Owner = decode(v)?.parse().ok()?;
                Some(TagSubject::Network(owner))
            }
            "attach" => Some(TagSubject::Attachment(AttachKey::Exact(decode(v)?))),
            "attach#" => {
                if v.len() != 16 {
                    return None;
                }
                let d = u64::from_str_radix(v, 16).ok()?;
                Some(TagSubject::Attachment(AttachKey::Digest(d)))
            }
            "id" => {
                if id.replace(v.to_string()).is_some() {
                    return None;
                }
                None
            }
            "inst" => {
                if inst.replace(v.to_string()).is_some() {
                    return None;
                }
                None
            }
            _ => None,
        };
        if let Some(s) = slot {
            if subject.replace(s).is_some() {
                return None;
            }
        }
    }
    let id = id?;
    validate_id(&id).ok()?;
    if let Some(TagSubject::Attachment(AttachKey::Exact(k))) = &subject {
        if k.is_empty() {
            return None;
        }
    }
    let tag = Tag {
        subject: subject?,
        id,
        inst: None,
    };
    match inst {
        Some(i) => tag.in_instance(&i).ok(),
        None => Some(tag),
    }
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'_' | b'-' | b'@' | b'+' | b',')
}

/// Percent-encode every byte outside a conservative plain set.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`encode`]; `None` on malformed escapes or invalid UTF-8.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if is_plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ID: &str = "6f1c1d3e-2b7a-4c1e-9a55-0e4b2f9d7a10";

    #[test]
    fn network_tag_round_trips() {
        for o in [
            Owner::Base,
            Owner::SharedNat,
            Owner::Service("web".into()),
            Owner::Isolation("a.b_c-d".into()),
            Owner::Other("weird thing=1%".into()),
        ] {
            let t = Tag::network(&o, ID).unwrap();
            let s = t.to_string();
            assert!(s.starts_with("overlayd:v1 owner="), "{s}");
            assert!(s.len() <= MAX_ALIAS_LEN);
            let back = parse_tag(&s).unwrap();
            assert_eq!(back, t);
            assert!(back.is_network(&o, ID));
            assert!(!back.is_network(&o, "other-id"));
            assert!(!back.is_attachment("pid:1", None));
        }
        assert_eq!(
            Tag::network(&Owner::Service("web".into()), ID)
                .unwrap()
                .to_string(),
            format!("overlayd:v1 owner=service:web id={ID}")
        );
    }

    #[test]
    fn instance_tags_round_trip_and_belong_only_to_their_instance() {
        let t = Tag::network(&Owner::Base, ID)
            .unwrap()
            .in_instance("a1b2c3d4")
            .unwrap();
        let s = t.to_string();
        assert_eq!(s, format!("overlayd:v1 owner=base id={ID} inst=a1b2c3d4"));
        let back = parse_tag(&s).unwrap();
        assert_eq!(back, t);
        assert!(back.is_network(&Owner::Base, ID));
        assert!(back.belongs_to("a1b2c3d4"));
        assert!(!back.belongs_to("ffff0000"));
        // Written before instances were tagged: every instance's.
        let legacy = parse_tag(&format!("overlayd:v1 owner=base id={ID}")).unwrap();
        assert_eq!(legacy.instance(), None);
        assert!(legacy.belongs_to("a1b2c3d4") && legacy.belongs_to("ffff0000"));
        // Bad instance ids are refused, and do not parse.
        for bad in [
            "",
            "has space",
            "x".repeat(MAX_INSTANCE_LEN + 1).as_str(),
            "a=b",
        ] {
            assert!(
                Tag::network(&Owner::Base, ID)
                    .unwrap()
                    .in_instance(bad)
                    .is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_tag(&format!("overlayd:v1 owner=base id={ID} inst=")).is_none());
        assert!(parse_tag(&format!("overlayd:v1 owner=base id={ID} inst=a inst=b")).is_none());
        // A long attachment key that fits without the instance becomes a
        // digest with it, and still matches its key.
        let key = "k".repeat(MAX_ALIAS_LEN - TAG_PREFIX.len() - " attach= id=".len() - ID.len());
        let t = Tag::attachment(&key, ID).unwrap();
        assert!(matches!(
            t.subject(),
            TagSubject::Attachment(AttachKey::Exact(_))
        ));
        let t = t.in_instance("a1b2c3d4").unwrap();
        assert!(matches!(
            t.subject(),
            TagSubject::Attachment(AttachKey::Digest(_))
        ));
        assert!(t.to_string().len() <= MAX_ALIAS_LEN);
        assert!(parse_tag(&t.to_string())
            .unwrap()
            .is_attachment(&key, Some(ID)));
    }

    #[test]
    fn attach_tag_round_trips_and_digests_long_keys() {
        let t = Tag::attachment("pid:4242", ID).unwrap();
        assert_eq!(
            t.to_string(),
            format!("overlayd:v1 attach=pid:4242 id={ID}")
        );
        assert!(parse_tag(&t.to_string())
            .unwrap()
            .is_attachment("pid:4242", Some(ID)));

        let long = format!("netns:/run/netns/{}", "x y".repeat(200));
        let t = Tag::attachment(&long, ID).unwrap();
        let s = t.to_string();
        assert!(s.len() <= MAX_ALIAS_LEN, "{}", s.len());
        assert!(s.contains("attach#="));
        let back = parse_tag(&s).unwrap();
        assert!(back.is_attachment(&long, Some(ID)));
        assert!(!back.is_attachment("netns:/other", Some(ID)));
        assert!(!back.is_attachment(&long, Some("nope")));
        assert!(back.owner().is_none());
    }

    #[test]
    fn rejects_foreign_and_malformed() {
        for bad in [
            "",
            "my bridge",
            "overlayd:v2 owner=base id=x",
            "overlayd:v1",
            "overlayd:v1 owner=base",
            "overlayd:v1 id=abc",
            "overlayd:v1 owner=base attach=pid:1 id=abc",
            "overlayd:v1 owner=base id=abc id=def",
            "overlayd:v1 owner=base id=a_b",
            "overlayd:v1 owner= id=abc",
            "overlayd:v1 owner=ba%2 id=abc",
            "overlayd:v1 owner=ba%ZZ id=abc",
            "overlayd:v1 owner=a=b id=abc",
            "overlayd:v1 attach= id=abc",
            "overlayd:v1 attach#=123 id=abc",
            "overlayd:v1  owner=base id=abc",
            "xoverlayd:v1 owner=base id=abc",
            "overlayd:v1x owner=base id=abc",
        ] {
            assert!(parse_tag(bad).is_none(), "{bad:?}");
        }
        assert!(is_overlayd_alias("overlayd:v2 owner=base id=x"));
        assert!(!is_overlayd_alias("docker bridge"));
    }

    #[test]
    fn tolerates_field_order_and_unknown_fields() {
        let t = parse_tag("overlayd:v1 id=abc future=1 owner=iso:n").unwrap();
        assert!(t.is_network(&Owner::Isolation("n".into()), "abc"));
        assert_eq!(t.id(), "abc");
    }

    #[test]
    fn constructor_validation() {
        assert!(Tag::network(&Owner::Base, "").is_err());
        assert!(Tag::network(&Owner::Base, "a b").is_err());
        assert!(Tag::network(&Owner::Base, &"a".repeat(65)).is_err());
        assert!(Tag::network(&Owner::Other("x".repeat(300)), ID).is_err());
        assert!(Tag::attachment("", ID).is_err());
    }

    proptest! {
        #[test]
        fn any_attach_key_round_trips(key in "\\PC{1,300}", id in "[a-zA-Z0-9-]{1,64}") {
            let t = Tag::attachment(&key, &id).unwrap();
            let s = t.to_string();
            prop_assert!(s.len() <= MAX_ALIAS_LEN);
            let back = parse_tag(&s).unwrap();
            prop_assert!(back.is_attachment(&key, Some(&id)));
            prop_assert_eq!(back, t);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,300}") {
            let _ = parse_tag(&s);
        }
    }
}
