//! The ADD result, in the layout of the version the runtime asked for:
//! 1.0.0 and 1.1.0 as is, 0.3.0–0.4.0 with `ips[].version`. A `prevResult`
//! of any supported version is read into the same value, so a chained result
//! passes through with its unknown fields kept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::version_tuple;
use crate::error::{CniError, INVALID_CONFIG};

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// Name (inside `sandbox` when set).
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The namespace path for a container interface; absent on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Fields this plugin does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An address in a result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length, e.g. `10.201.0.2/24`.
    pub address: String,
    /// Default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Fields this plugin does not interpret (`version` of older layouts is dropped).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A route in a result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Route {
    /// Destination CIDR.
    pub dst: String,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    /// Fields this plugin does not interpret.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DNS settings in a result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A result, independent of the version it is printed in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl CniResult {
    /// Read a `prevResult` of any supported version.
    pub fn from_prev(v: &Value) -> Result<CniResult, CniError> {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("cniVersion");
        }
        let mut r: CniResult = serde_json::from_value(v).map_err(|e| {
            CniError::new(INVALID_CONFIG, "prevResult is not a CNI result")
                .with_details(e.to_string())
        })?;
        for ip in &mut r.ips {
            ip.extra.remove("version");
        }
        Ok(r)
    }

    /// Append `other` (this plugin's part) after the entries already here,
    /// shifting its interface indexes.
    pub fn append(&mut self, other: CniResult) {
        let shift = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + shift);
            ip
        }));
        self.routes.extend(other.routes);
        let dns = &mut self.dns;
        for n in other.dns.nameservers {
            if !dns.nameservers.contains(&n) {
                dns.nameservers.push(n);
            }
        }
        for s in other.dns.search {
            if !dns.search.contains(&s) {
                dns.search.push(s);
            }
        }
        if dns.domain.is_none() {
            dns.domain = other.dns.domain;
        }
    }

    /// The JSON of this result in the layout of `cni_version`.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        let legacy = version_tuple(cni_version) < (1, 0, 0);
        if let Some(m) = v.as_object_mut() {
            if legacy {
                if let Some(Value::Array(ips)) = m.get_mut("ips") {
                    for ip in ips.iter_mut().filter_map(Value::as_object_mut) {
                        let six = ip
                            .get("address")
                            .and_then(Value::as_str)
                            .is_some_and(|a| a.contains(':'));
                        ip.insert("version".into(), if six { "6" } else { "4" }.into());
                    }
                }
            }
            let mut out = Map::new();
            out.insert("cniVersion".into(), cni_version.into());
            out.extend(std::mem::take(m));
            return Value::Object(out);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "ovl-vabc".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("06:00:00:00:00:01".into()),
                    sandbox: Some("/proc/1/ns/net".into()),
                    ..Default::default()
                },
            ],
            ips: vec![IpConfig {
                address: "10.201.0.2/24".into(),
                gateway: Some("10.201.0.1".into()),
                interface: Some(1),
                ..Default::default()
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".into(),
                gw: Some("10.201.0.1".into()),
                ..Default::default()
            }],
            dns: Dns {
                nameservers: vec!["10.201.0.1".into()],
                search: vec!["overlay.internal".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn layout_follows_the_version() {
        let new = ours().to_json("1.1.0");
        assert_eq!(new["cniVersion"], "1.1.0");
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["ips"][0]["interface"], 1);
        assert_eq!(new["interfaces"][1]["sandbox"], "/proc/1/ns/net");
        assert_eq!(new["dns"]["search"][0], "overlay.internal");
        for old in ["0.3.0", "0.3.1", "0.4.0"] {
            let v = ours().to_json(old);
            assert_eq!(v["cniVersion"], old);
            assert_eq!(v["ips"][0]["version"], "4");
        }
    }

    #[test]
    fn prev_result_round_trips_and_keeps_unknown_fields() {
        let prev: Value = serde_json::from_str(
            r#"{"cniVersion":"0.4.0","interfaces":[{"name":"lo0","x-vendor":1}],
                "ips":[{"version":"4","address":"192.0.2.9/32","interface":0}],
                "routes":[{"dst":"192.0.2.0/24","priority":5}],"dns":{}}"#,
        )
        .unwrap();
        let mut r = CniResult::from_prev(&prev).unwrap();
        assert!(r.ips[0].extra.is_empty(), "old version tag dropped");
        r.append(ours());
        let v = r.to_json("1.0.0");
        assert_eq!(v["interfaces"][0]["x-vendor"], 1);
        assert_eq!(v["routes"][0]["priority"], 5);
        assert_eq!(
            v["ips"][1]["interface"], 2,
            "our index shifted past the previous interface"
        );
        assert_eq!(v["ips"].as_array().unwrap().len(), 2);
        assert!(v["ips"][0].get("version").is_none());
    }

    #[test]
    fn bad_prev_result_is_a_config_error() {
        let e = CniResult::from_prev(&serde_json::json!({"ips": 3})).unwrap_err();
        assert_eq!(e.code, INVALID_CONFIG);
    }
}
