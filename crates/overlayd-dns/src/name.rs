//! Name validation: the zone, and record names given relative or fully qualified.

use hickory_proto::rr::{LowerName, Name};

use crate::DnsError;

/// Longest presentation form of a name, without the trailing dot (RFC 1035 §2.3.4).
const MAX_NAME_LEN: usize = 253;
/// Longest single label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// A validated, lower-cased zone.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// Fully qualified zone name (`overlay.internal.`).
    pub(crate) name: Name,
    /// The same, as the lookup key type hickory hands us for queries.
    pub(crate) lower: LowerName,
    /// Presentation form without the trailing dot (`overlay.internal`).
    pub(crate) text: String,
}

impl Zone {
    /// Parses and validates a zone such as `overlay.internal` or `overlay.internal.`.
    pub(crate) fn parse(zone: &str) -> Result<Self, DnsError> {
        let invalid = |reason: String| DnsError::InvalidZone {
            zone: zone.to_owned(),
            reason,
        };
        let lower = zone.to_ascii_lowercase();
        let text = lower.strip_suffix('.').unwrap_or(&lower);
        if text.is_empty() {
            return Err(invalid("the root zone cannot be served".into()));
        }
        check_labels(text).map_err(invalid)?;
        let name = Name::from_ascii(format!("{text}.")).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            lower: LowerName::new(&name),
            name,
            text: text.to_owned(),
        })
    }

    /// Normalizes a record name given relative (`web`) or fully qualified in
    /// the zone (`web.overlay.internal`, `web.overlay.internal.`).
    ///
    /// Names containing a dot must end in the zone: `web.example.com` is
    /// rejected as outside the zone rather than silently becoming
    /// `web.example.com.overlay.internal.`. The apex itself is not a record name.
    pub(crate) fn normalize(&self, input: &str) -> Result<Name, DnsError> {
        let invalid = |reason: String| DnsError::InvalidName {
            name: input.to_owned(),
            reason,
        };
        let outside = || DnsError::OutsideZone {
            name: input.to_owned(),
            zone: format!("{}.", self.text),
        };
        let lower = input.to_ascii_lowercase();
        let (body, absolute) = match lower.strip_suffix('.') {
            Some(body) => (body, true),
            None => (lower.as_str(), false),
        };
        if body.is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        let relative = if body == self.text {
            return Err(outside());
        } else if let Some(rel) = body
            .strip_suffix(self.text.as_str())
            .and_then(|rest| rest.strip_suffix('.'))
        {
            rel
        } else if absolute || body.contains('.') {
            // Report a malformed name as malformed before calling it foreign.
            check_labels(body).map_err(invalid)?;
            return Err(outside());
        } else {
            body
        };
        check_labels(relative).map_err(invalid)?;
        let full = format!("{relative}.{}", self.text);
        if full.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "the full name is {} characters long, more than {MAX_NAME_LEN}",
                full.len()
            )));
        }
        Name::from_ascii(format!("{full}.")).map_err(|e| invalid(e.to_string()))
    }
}

/// Checks every dot-separated label against the hostname rules of RFC 1123:
/// 1-63 characters of letters, digits and `-`, not starting or ending with `-`.
fn check_labels(text: &str) -> Result<(), String> {
    if text.len() > MAX_NAME_LEN {
        return Err(format!(
            "{} characters long, more than {MAX_NAME_LEN}",
            text.len()
        ));
    }
    for label in text.split('.') {
        check_label(label)?;
    }
    Ok(())
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label (two dots in a row, or a leading dot)".into());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "label {label:?} is {} characters long, more than {MAX_LABEL_LEN}",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!("label {label:?} contains {bad:?}"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with '-'"));
    }
    Ok(())
}

/// Validates `name` against `zone` and returns its canonical fully qualified,
/// lower-case form with a trailing dot (`web.overlay.internal.`).
///
/// This is the check the daemon runs before storing a name: `web`,
/// `WEB.overlay.internal` and `web.overlay.internal.` all normalize to the
/// same string, so they mean the same record.
pub fn normalize_name(zone: &str, name: &str) -> Result<String, DnsError> {
    let zone = Zone::parse(zone)?;
    Ok(zone.normalize(name)?.to_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "overlay.internal";

    #[test]
    fn relative_and_qualified_forms_agree() {
        let want = "web.overlay.internal.";
        for input in [
            "web",
            "WEB",
            "web.overlay.internal",
            "web.overlay.internal.",
            "Web.Overlay.Internal.",
        ] {
            assert_eq!(normalize_name(ZONE, input).unwrap(), want, "{input}");
        }
        assert_eq!(
            normalize_name("Overlay.Internal.", "web").unwrap(),
            want,
            "zone given with a trailing dot and capitals"
        );
    }

    #[test]
    fn multi_label_names_inside_the_zone() {
        assert_eq!(
            normalize_name(ZONE, "a.b.overlay.internal").unwrap(),
            "a.b.overlay.internal."
        );
        assert_eq!(
            normalize_name(ZONE, "1db-2").unwrap(),
            "1db-2.overlay.internal."
        );
    }

    #[test]
    fn malformed_names_are_invalid() {
        for input in [
            "",
            ".",
            "-web",
            "web-",
            "we_b",
            "we b",
            "web..overlay.internal",
            ".web",
            "*",
            "wéb",
            "web/1",
            &"a".repeat(64),
        ] {
            let err = normalize_name(ZONE, input).unwrap_err();
            assert!(
                matches!(err, DnsError::InvalidName { .. }),
                "{input:?} gave {err}"
            );
        }
    }

    #[test]
    fn foreign_names_are_outside_the_zone() {
        for input in [
            "web.example.com",
            "web.example.com.",
            "web.",
            "overlay.internal",
            "overlay.internal.",
            "xoverlay.internal",
            "web.overlay.internal.evil",
        ] {
            let err = normalize_name(ZONE, input).unwrap_err();
            assert!(
                matches!(err, DnsError::OutsideZone { .. }),
                "{input:?} gave {err}"
            );
        }
    }

    #[test]
    fn overlong_full_name_is_rejected() {
        let label = "a".repeat(63);
        let long = format!("{label}.{label}.{label}.{label}");
        let err = normalize_name(ZONE, &format!("{long}.overlay.internal")).unwrap_err();
        assert!(matches!(err, DnsError::InvalidName { .. }), "{err}");
    }

    #[test]
    fn bad_zones_are_rejected() {
        for zone in ["", ".", "a..b", "-x.internal", "x_y.internal"] {
            assert!(
                matches!(Zone::parse(zone), Err(DnsError::InvalidZone { .. })),
                "{zone:?}"
            );
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn label() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?"
        }

        proptest! {
            #[test]
            fn forms_agree_and_normalizing_is_idempotent(l in label(), m in label()) {
                let relative = normalize_name(ZONE, &l).unwrap();
                prop_assert_eq!(&normalize_name(ZONE, &format!("{l}.overlay.internal")).unwrap(), &relative);
                prop_assert_eq!(&normalize_name(ZONE, &format!("{l}.overlay.internal.")).unwrap(), &relative);
                prop_assert_eq!(&normalize_name(ZONE, &relative).unwrap(), &relative);
                prop_assert_eq!(relative.clone(), relative.to_ascii_lowercase());
                let deep = normalize_name(ZONE, &format!("{l}.{m}.overlay.internal")).unwrap();
                prop_assert!(deep.ends_with(".overlay.internal."));
            }

            #[test]
            fn anything_outside_ldh_is_rejected(l in label(), bad in "[^a-zA-Z0-9.-]") {
                let input = format!("{l}{bad}");
                prop_assert!(normalize_name(ZONE, &input).is_err());
            }
        }
    }
}
