//! The network configuration on stdin: the spec's keys (`cniVersion`,
//! `name`, `type`, `prevResult`, `runtimeConfig`, GC's valid attachments)
//! and overlayd's own (`service`, `mode`, `isolation`, `ipv6`, `join_global`,
//! `dns_name`, `socket`). Unknown keys are tolerated.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{CniError, DECODE_FAILURE, INCOMPATIBLE_VERSION, INVALID_CONFIG};

/// The versions this plugin accepts, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version this plugin implements.
pub const CURRENT_VERSION: &str = "1.1.0";

/// Default daemon socket.
pub const DEFAULT_SOCKET: &str = overlayd_client::DEFAULT_SOCKET;

/// Whether, and under which name, a container is registered in DNS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DnsName {
    /// `true` (default): `K8S_POD_NAME` from `CNI_ARGS`, else `CNI_CONTAINERID`;
    /// `false`: no name.
    Derived(bool),
    /// This exact name.
    Fixed(String),
}

impl Default for DnsName {
    fn default() -> Self {
        DnsName::Derived(true)
    }
}

/// One valid attachment listed for GC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    pub ifname: String,
}

/// The configuration this plugin reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetConf {
    /// Requested spec version.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Network name: part of every attachment's key.
    pub name: String,
    /// Plugin type (`overlayd-cni`).
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    /// overlayd service the containers belong to (default: `name`).
    #[serde(default)]
    pub service: Option<String>,
    /// Service mode: `auto`, `shared` or `dedicated` (default `auto`).
    #[serde(default)]
    pub mode: Option<String>,
    /// Isolation network to attach to instead of the service's network.
    #[serde(default)]
    pub isolation: Option<String>,
    /// Make the isolation network dual-stack (an IPv6 subnet from the
    /// daemon's `local_pool6` beside the IPv4 one) when ADD creates it.
    #[serde(default)]
    pub ipv6: bool,
    /// Attach a shared service's containers to the base overlay.
    #[serde(default)]
    pub join_global: bool,
    /// DNS registration.
    #[serde(default)]
    pub dns_name: DnsName,
    /// Daemon socket.
    #[serde(default)]
    pub socket: Option<String>,
    /// The previous plugin's result (chained ADD, CHECK).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    /// GC: attachments to keep.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// GC: the key under its misspelled name, accepted too.
    #[serde(rename = "cni.dev/attachments", default)]
    pub attachments: Option<Vec<ValidAttachment>>,
    /// Capabilities the runtime filled in (`portMappings`).
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
}

/// `runtimeConfig`: what the runtime passes for the plugin's capabilities.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RuntimeConfig {
    /// The `portMappings` capability: ports to publish on the host.
    #[serde(rename = "portMappings", default)]
    pub port_mappings: Vec<CniPortMapping>,
}

/// One entry of the `portMappings` capability (as containerd, CRI and
/// podman send it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CniPortMapping {
    /// Host port.
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    /// Container port.
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// `tcp` (default), `udp` or `sctp`.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Host address to bind; empty or absent means every address.
    #[serde(rename = "hostIP", default)]
    pub host_ip: Option<String>,
}

impl NetConf {
    /// The `portMappings` as overlayd publish requests; a bad entry is
    /// error 7 naming it.
    pub fn publish(&self) -> Result<Vec<overlayd_proto::PortMapping>, CniError> {
        self.runtime_config
            .port_mappings
            .iter()
            .map(|m| {
                let protocol = match m.protocol.as_deref().filter(|p| !p.is_empty()) {
                    Some(p) => p.to_ascii_lowercase().parse().map_err(|e: String| {
                        CniError::new(INVALID_CONFIG, format!("portMappings: {e}"))
                    })?,
                    None => overlayd_proto::PortProtocol::Tcp,
                };
                if m.host_port == 0 || m.container_port == 0 {
                    return Err(CniError::new(
                        INVALID_CONFIG,
                        format!(
                            "portMappings: hostPort {} and containerPort {} must be 1-65535",
                            m.host_port, m.container_port
                        ),
                    ));
                }
                Ok(overlayd_proto::PortMapping {
                    host_ip: m.host_ip.clone().filter(|h| !h.is_empty()),
                    host_port: m.host_port,
                    host_port_end: None,
                    container_port: m.container_port,
                    container_port_end: None,
                    protocol,
                })
            })
            .collect()
    }
}

impl NetConf {
    /// Parse stdin. Not JSON → code 6; JSON with a key of the wrong type or
    /// without `cniVersion`/`name` → code 7; an unsupported version → code 1.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(DECODE_FAILURE, "the network configuration is not JSON")
                .with_details(e.to_string())
        })?;
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(INVALID_CONFIG, "invalid network configuration")
                .with_details(e.to_string())
        })?;
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                INCOMPATIBLE_VERSION,
                format!("cniVersion {:?} is not supported", conf.cni_version),
            )
            .with_details(format!("supported: {}", SUPPORTED_VERSIONS.join(", "))));
        }
        if let Some(m) = &conf.mode {
            m.parse::<overlayd_proto::ServiceMode>()
                .map_err(|e| CniError::new(INVALID_CONFIG, format!("mode: {e}")))?;
        }
        Ok(conf)
    }

    /// The overlayd service: `service`, else the network name.
    pub fn service(&self) -> &str {
        self.service.as_deref().unwrap_or(&self.name)
    }

    /// The service mode (`auto` when not given).
    pub fn mode(&self) -> overlayd_proto::ServiceMode {
        self.mode
            .as_deref()
            .and_then(|m| m.parse().ok())
            .unwrap_or_default()
    }

    /// The daemon socket.
    pub fn socket(&self) -> &str {
        self.socket.as_deref().unwrap_or(DEFAULT_SOCKET)
    }

    /// GC's list of attachments to keep (either spelling; absent = none).
    pub fn valid_attachments(&self) -> Vec<ValidAttachment> {
        let mut v = self.valid_attachments.clone().unwrap_or_default();
        v.extend(self.attachments.clone().unwrap_or_default());
        v
    }

    /// Whether the requested version is at least `min` (versions compared
    /// numerically).
    pub fn version_at_least(&self, min: &str) -> bool {
        version_tuple(&self.cni_version) >= version_tuple(min)
    }
}

/// `"1.0.0"` → `(1, 0, 0)`; unparsable parts count as 0.
pub fn version_tuple(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// The DNS name for a container: a configured fixed name, else
/// `K8S_POD_NAME`, else the container id, made a valid DNS label
/// (lowercase letters, digits and `-`, at most 63 bytes). `None` when
/// disabled or nothing usable is left.
pub fn dns_label(setting: &DnsName, pod_name: Option<&str>, container_id: &str) -> Option<String> {
    let raw = match setting {
        DnsName::Derived(false) => return None,
        DnsName::Derived(true) => pod_name.unwrap_or(container_id),
        DnsName::Fixed(name) => return Some(name.clone()),
    };
    let mut label: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() {
                c
            } else {
                '-'
            }
        })
        .collect();
    label.truncate(63);
    let label = label.trim_matches('-').to_string();
    (!label.is_empty()).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_defaults_and_unknown_keys() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"ovl","type":"overlayd-cni","whatever":{"x":1},"ipam":{}}"#,
        )
        .unwrap();
        assert_eq!(c.service(), "ovl");
        assert_eq!(c.mode(), overlayd_proto::ServiceMode::Auto);
        assert_eq!(c.socket(), DEFAULT_SOCKET);
        assert_eq!(c.dns_name, DnsName::Derived(true));
        assert!(!c.join_global);
        let c = NetConf::parse(
            br#"{"cniVersion":"0.3.1","name":"ovl","service":"web","mode":"dedicated","isolation":"red","join_global":true,"dns_name":false,"socket":"/tmp/s"}"#,
        )
        .unwrap();
        assert_eq!(c.service(), "web");
        assert_eq!(c.mode(), overlayd_proto::ServiceMode::Dedicated);
        assert_eq!(c.isolation.as_deref(), Some("red"));
        assert!(c.join_global);
        assert_eq!(c.dns_name, DnsName::Derived(false));
        assert_eq!(c.socket(), "/tmp/s");
    }

    #[test]
    fn errors_carry_the_spec_codes() {
        assert_eq!(NetConf::parse(b"nope").unwrap_err().code, DECODE_FAILURE);
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0"}"#)
                .unwrap_err()
                .code,
            INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","join_global":"yes"}"#)
                .unwrap_err()
                .code,
            INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","mode":"fast"}"#)
                .unwrap_err()
                .code,
            INVALID_CONFIG
        );
        assert_eq!(
            NetConf::parse(br#"{"cniVersion":"0.2.0","name":"n"}"#)
                .unwrap_err()
                .code,
            INCOMPATIBLE_VERSION
        );
    }

    #[test]
    fn gc_accepts_both_spellings() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],"cni.dev/attachments":[{"containerID":"b","ifname":"eth1"}]}"#,
        )
        .unwrap();
        let v = c.valid_attachments();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].container_id, "b");
    }

    #[test]
    fn version_order() {
        assert!(version_tuple("1.1.0") > version_tuple("1.0.0"));
        assert!(version_tuple("0.4.0") > version_tuple("0.3.1"));
        assert!(version_tuple("1.0.0") > version_tuple("0.4.0"));
    }

    #[test]
    fn dns_labels() {
        let d = DnsName::default();
        assert_eq!(dns_label(&d, Some("Web_0"), "x").as_deref(), Some("web-0"));
        assert_eq!(
            dns_label(&d, None, "default-web1").as_deref(),
            Some("default-web1")
        );
        let long = "a".repeat(64);
        assert_eq!(dns_label(&d, None, &long).unwrap().len(), 63);
        assert_eq!(dns_label(&d, None, "__"), None);
        assert_eq!(dns_label(&DnsName::Derived(false), None, "x"), None);
        assert_eq!(
            dns_label(&DnsName::Fixed("db".into()), Some("p"), "x").as_deref(),
            Some("db")
        );
    }
}
