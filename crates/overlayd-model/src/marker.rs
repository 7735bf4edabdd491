//! The in-memory network-state marker (SPEC §2): entries indexed by owner
//! for O(1) lookup, insertion order kept, and the exact v1 JSON shape
//! `{"version":1,"networks":[…]}` on the way in and out. Unknown fields at
//! the top level and in entries, and entries of unknown kinds, are kept.

use indexmap::IndexMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::entry::NetworkEntry;
use crate::error::{ModelError, Result};
use crate::owner::Owner;

/// The newest marker format this build reads and writes.
pub const CURRENT_VERSION: u32 = 1;

const VERSION_KEY: &str = "version";
const NETWORKS_KEY: &str = "networks";

/// Every host-level network overlayd created, keyed by owner.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    /// Format version (always [`CURRENT_VERSION`] once loaded or created).
    pub version: u32,
    /// Entries keyed by their owner's string form, in file order.
    networks: IndexMap<String, NetworkEntry>,
    /// Unknown top-level fields, written back unchanged.
    pub extra: Map<String, Value>,
}

impl Default for Marker {
    fn default() -> Self {
        Marker {
            version: CURRENT_VERSION,
            networks: IndexMap::new(),
            extra: Map::new(),
        }
    }
}

impl Marker {
    /// An empty marker of the current version.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entry of `owner`, if recorded. O(1).
    pub fn get(&self, owner: &Owner) -> Option<&NetworkEntry> {
        self.networks.get(owner.to_string().as_str())
    }

    /// The entry whose owner string is `owner`, if recorded. O(1).
    pub fn get_str(&self, owner: &str) -> Option<&NetworkEntry> {
        self.networks.get(owner)
    }

    /// Insert or replace the entry of `entry.owner`; a replaced entry keeps
    /// its position and is returned.
    pub fn upsert(&mut self, entry: NetworkEntry) -> Option<NetworkEntry> {
        self.networks.insert(entry.owner.to_string(), entry)
    }

    /// Remove and return the entry of `owner`, keeping the others' order.
    pub fn remove(&mut self, owner: &Owner) -> Option<NetworkEntry> {
        self.networks.shift_remove(owner.to_string().as_str())
    }

    /// Whether `owner` has an entry.
    pub fn contains(&self, owner: &Owner) -> bool {
        self.get(owner).is_some()
    }

    /// Entries in file / insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &NetworkEntry> + '_ {
        self.networks.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.networks.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Parse marker JSON. Content errors are [`ModelError::CorruptMarker`] or
    /// [`ModelError::DuplicateOwner`] (both satisfy
    /// [`ModelError::is_corrupt_marker`]); a version above
    /// [`CURRENT_VERSION`] is [`ModelError::NewerVersion`].
    pub fn from_json_slice(bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| ModelError::CorruptMarker { reason };
        // Pass 1 reads only the version (skipping the rest cheaply), so a
        // newer format is refused before its shape is judged.
        let head: Head =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
        let version = match head.version {
            Some(Value::Number(n)) => n
                .as_u64()
                .ok_or_else(|| corrupt(format!("\"version\" is not a positive integer: {n}")))?,
            Some(other) => {
                return Err(corrupt(format!("\"version\" is not a number: {other}")));
            }
            None => return Err(corrupt("\"version\" is missing".into())),
        };
        if version > u64::from(CURRENT_VERSION) {
            return Err(ModelError::NewerVersion {
                found: version,
                supported: CURRENT_VERSION,
            });
        }
        if version == 0 {
            return Err(corrupt("\"version\" 0 was never a marker format".into()));
        }
        // Pass 2 streams the entries straight into their typed form.
        let body: Body = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        let list = body
            .networks
            .ok_or_else(|| corrupt("\"networks\" is missing".into()))?;
        let mut networks = IndexMap::with_capacity(list.len());
        for entry in list {
            let key = entry.owner.to_string();
            if networks.contains_key(&key) {
                return Err(ModelError::DuplicateOwner { owner: key });
            }
            networks.insert(key, entry);
        }
        Ok(Marker {
            // Lossless: at most CURRENT_VERSION, checked above.
            version: version as u32,
            networks,
            extra: body.extra,
        })
    }

    /// Keep every good entry of a marker that [`Marker::from_json_slice`]
    /// rejected as corrupt: each entry of the `networks` array is judged on
    /// its own (entries of foreign kinds included), the first of duplicated
    /// owners is kept, and unknown top-level fields survive. Returns the
    /// salvaged marker and one reason per dropped entry; `None` when the file
    /// is not a JSON object of a known version with a `networks` array
    /// (nothing to salvage).
    pub fn salvage(bytes: &[u8]) -> Option<(Self, Vec<String>)> {
        let Ok(Value::Object(mut top)) = serde_json::from_slice::<Value>(bytes) else {
            return None;
        };
        let version = top.remove(VERSION_KEY)?.as_u64()?;
        if version == 0 || version > u64::from(CURRENT_VERSION) {
            return None;
        }
        let Value::Array(list) = top.remove(NETWORKS_KEY)? else {
            return None;
        };
        let mut networks = IndexMap::with_capacity(list.len());
        let mut dropped = Vec::new();
        for (i, v) in list.into_iter().enumerate() {
            match serde_json::from_value::<NetworkEntry>(v) {
                Ok(e) => {
                    let key = e.owner.to_string();
                    if networks.contains_key(&key) {
                        dropped.push(format!(
                            "entry {i}: owner {key:?} is recorded twice; the first is kept"
                        ));
                    } else {
                        networks.insert(key, e);
                    }
                }
                Err(e) => dropped.push(format!("entry {i}: {e}")),
            }
        }
        Some((
            Marker {
                version: CURRENT_VERSION,
                networks,
                extra: top,
            },
            dropped,
        ))
    }

    /// The v1 on-disk form: pretty JSON with a trailing newline.
    pub fn to_json_vec(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + self.networks.len() * 256);
        serde_json::to_writer_pretty(&mut out, self)
            .map_err(|source| ModelError::Encode { source })?;
        out.push(b'\n');
        Ok(out)
    }
}

/// The version alone; every other field is skipped unparsed.
#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    version: Option<Value>,
}

/// A v1 marker body: entries typed, unknown top-level fields kept.
struct Body {
    networks: Option<Vec<NetworkEntry>>,
    extra: Map<String, Value>,
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct BodyVisitor;

        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = Body;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a marker object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Body, A::Error> {
                let mut body = Body {
                    networks: None,
                    extra: Map::new(),
                };
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        VERSION_KEY => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        NETWORKS_KEY => {
                            if body.networks.is_some() {
                                return Err(de::Error::duplicate_field(NETWORKS_KEY));
                            }
                            body.networks = Some(map.next_value::<NetworkList>()?.0);
                        }
                        _ => {
                            let v = map.next_value::<Value>()?;
                            body.extra.insert(key, v);
                        }
                    }
                }
                Ok(body)
            }
        }

        d.deserialize_map(BodyVisitor)
    }
}

/// The `networks` array, with the failing entry's index in errors.
struct NetworkList(Vec<NetworkEntry>);

impl<'de> Deserialize<'de> for NetworkList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = NetworkList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of network entries")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<NetworkList, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                loop {
                    match seq.next_element::<NetworkEntry>() {
                        Ok(Some(e)) => out.push(e),
                        Ok(None) => return Ok(NetworkList(out)),
                        Err(e) => {
                            return Err(de::Error::custom(format_args!(
                                "\"networks\" entry {} is invalid: {e}",
                                out.len()
                            )))
                        }
                    }
                }
            }
        }

        d.deserialize_seq(ListVisitor)
    }
}

/// Serialises the entries as a JSON array without copying them.
struct EntryList<'a>(&'a IndexMap<String, NetworkEntry>);

impl Serialize for EntryList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0.values() {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl Serialize for Marker {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let extra = self
            .extra
            .iter()
            .filter(|(k, _)| k.as_str() != VERSION_KEY && k.as_str() != NETWORKS_KEY);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(VERSION_KEY, &self.version)?;
        map.serialize_entry(NETWORKS_KEY, &EntryList(&self.networks))?;
        for (k, v) in extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'a> IntoIterator for &'a Marker {
    type Item = &'a NetworkEntry;
    type IntoIter = indexmap::map::Values<'a, String, NetworkEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.networks.values()
    }
}

impl FromIterator<NetworkEntry> for Marker {
    /// Collect entries; a later entry replaces an earlier one of the same owner.
    fn from_iter<I: IntoIterator<Item = NetworkEntry>>(iter: I) -> Self {
        let mut m = Marker::default();
        for e in iter {
            m.upsert(e);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{KIND_HCN_INTERNAL, KIND_LINUX_BRIDGE};

    fn bridge(owner: Owner, n: u8) -> NetworkEntry {
        NetworkEntry::new(
            owner,
            KIND_LINUX_BRIDGE,
            &format!("ovl-br{n}"),
            "4f1c1c6e-0000-4000-8000-000000000000",
            &format!("10.210.{n}.0/24"),
        )
    }

    #[test]
    fn empty_marker_has_exact_v1_shape() {
        let m = Marker::default();
        let v: Value = serde_json::from_slice(&m.to_json_vec().unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"version": 1, "networks": []}));
    }

    #[test]
    fn upsert_replaces_in_place_and_remove_keeps_order() {
        let mut m = Marker::new();
        assert!(m.upsert(bridge(Owner::Base, 1)).is_none());
        assert!(m.upsert(bridge(Owner::SharedNat, 2)).is_none());
        assert!(m
            .upsert(bridge(Owner::isolation("a").unwrap(), 3))
            .is_none());
        let old = m.upsert(bridge(Owner::SharedNat, 9)).unwrap();
        assert_eq!(old.name, "ovl-br2");
        let names: Vec<_> = m.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ovl-br1", "ovl-br9", "ovl-br3"]);
        assert_eq!(m.remove(&Owner::Base).unwrap().name, "ovl-br1");
        assert!(m.remove(&Owner::Base).is_none());
        assert_eq!(m.len(), 2);
        assert_eq!(m.iter().next().unwrap().owner, Owner::SharedNat);
        assert!(m.get(&Owner::isolation("a").unwrap()).is_some());
        assert!(m.get(&Owner::service("a").unwrap()).is_none());
    }

    #[test]
    fn salvage_keeps_every_good_entry_including_foreign_kinds() {
        let json = br#"{"version":1,"custom":7,"networks":[
            {"owner":"base","kind":"linux-bridge","name":"a","id":"1","subnet":"10.200.0.0/28"},
            {"owner":"base","kind":"linux-bridge","name":"b","id":"2","subnet":"10.200.0.0/28"},
            {"owner":"iso:x","kind":"hcn-internal","name":"h","id":"3","subnet":"10.9.0.0/24"},
            {"owner":"service:y","kind":"linux-bridge"}
        ]}"#;
        assert!(Marker::from_json_slice(json)
            .unwrap_err()
            .is_corrupt_marker());
        let (m, dropped) = Marker::salvage(json).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(&Owner::Base).unwrap().name, "a");
        assert_eq!(m.get_str("iso:x").unwrap().kind, "hcn-internal");
        assert_eq!(m.extra.get("custom"), Some(&serde_json::json!(7)));
        assert_eq!(dropped.len(), 2, "{dropped:?}");
        assert!(Marker::salvage(b"{not json").is_none());
        assert!(Marker::salvage(br#"{"version":9,"networks":[]}"#).is_none());
    }

    #[test]
    fn duplicate_owner_is_corrupt() {
        let raw = br#"{"version":1,"networks":[
            {"owner":"base","kind":"linux-bridge","name":"a","id":"x","subnet":"10.0.0.0/24"},
            {"owner":"base","kind":"linux-bridge","name":"b","id":"y","subnet":"10.0.1.0/24"}]}"#;
        let e = Marker::from_json_slice(raw).unwrap_err();
        assert!(matches!(e, ModelError::DuplicateOwner { ref owner } if owner == "base"));
        assert!(e.is_corrupt_marker());
    }

    #[test]
    fn bad_shapes_are_corrupt_and_newer_is_refused() {
        for raw in [
            &b""[..],
            b"[]",
            b"{\"networks\":[]}",
            b"{\"version\":\"1\",\"networks\":[]}",
            b"{\"version\":0,\"networks\":[]}",
            b"{\"version\":1}",
            b"{\"version\":1,\"networks\":{}}",
            b"{\"version\":1,\"networks\":[{\"owner\":\"base\"}]}",
            b"{\"version\":1,\"networks\":[{\"owner\":\"\",\"kind\":\"k\",\"name\":\"n\",\"id\":\"i\",\"subnet\":\"s\"}]}",
        ] {
            let e = Marker::from_json_slice(raw).unwrap_err();
            assert!(e.is_corrupt_marker(), "{e}");
        }
        let e = Marker::from_json_slice(b"{\"version\":2,\"networks\":\"whatever\"}").unwrap_err();
        assert!(matches!(
            e,
            ModelError::NewerVersion {
                found: 2,
                supported: 1,
            }
        ));
    }

    #[test]
    fn unknown_fields_and_kinds_round_trip() {
        let raw = serde_json::json!({
            "version": 1,
            "networks": [
                {"owner": "iso:w", "kind": KIND_HCN_INTERNAL, "name": "n", "id": "guid",
                 "subnet": "10.1.0.0/24", "hcn_flags": {"a": [1, 2]}, "zz": null},
                {"owner": "future:thing", "kind": "linux-bridge", "name": "m", "id": "i",
                 "subnet": "10.2.0.0/24", "wg_port": 51822}
            ],
            "written_by": "overlayd 9.9"
        });
        let m = Marker::from_json_slice(raw.to_string().as_bytes()).unwrap();
        assert_eq!(m.len(), 2);
        assert!(!m.get_str("iso:w").unwrap().is_linux_managed());
        let back: Value = serde_json::from_slice(&m.to_json_vec().unwrap()).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn extra_cannot_shadow_known_keys() {
        let mut m = Marker::default();
        m.extra.insert("version".into(), Value::from(7));
        m.extra.insert("networks".into(), Value::from("x"));
        let back = Marker::from_json_slice(&m.to_json_vec().unwrap()).unwrap();
        assert_eq!(back.version, 1);
        assert!(back.is_empty());
    }
}
