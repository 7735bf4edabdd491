//! CNI errors: the spec's well-known codes, this plugin's own codes (100+),
//! and their JSON form printed on stdout.

use serde::Serialize;

/// Incompatible CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Unsupported field in the network configuration.
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Container unknown or does not exist.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Invalid necessary environment variables (`CNI_COMMAND`, `CNI_IFNAME`, …).
pub const INVALID_ENV: u32 = 4;
/// I/O failure (reading stdin).
pub const IO_FAILURE: u32 = 5;
/// Failed to decode content (stdin is not the expected JSON).
pub const DECODE_FAILURE: u32 = 6;
/// Invalid network configuration (a key of the wrong type or value, or a
/// network namespace that is not one).
pub const INVALID_CONFIG: u32 = 7;
/// Try again later: the daemon is unreachable or busy.
pub const TRY_AGAIN_LATER: u32 = 11;
/// STATUS: the plugin cannot service ADD requests.
pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
/// STATUS: not available, and existing containers may have limited connectivity.
pub const PLUGIN_NOT_AVAILABLE_LIMITED: u32 = 51;
/// overlayd refused the request: already attached, or a conflict it names.
pub const DAEMON_CONFLICT: u32 = 100;
/// overlayd could not carry out a kernel operation (it rolled back).
pub const DAEMON_HOST_FAILURE: u32 = 101;
/// overlayd could not read or write its durable state.
pub const DAEMON_STATE_FAILURE: u32 = 102;
/// CHECK found the container's interface, address or route missing or different.
pub const CHECK_FAILED: u32 = 103;
/// Any other failure reported by overlayd.
pub const DAEMON_OTHER: u32 = 104;

/// A CNI error: what the runtime reads from stdout when the plugin exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    /// Spec or plugin error code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation, possibly empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// The JSON printed on stdout, with the `cniVersion` of the request.
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.insert("cniVersion".into(), cni_version.into());
        }
        v.to_string()
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_spec_fields() {
        let e = CniError::new(TRY_AGAIN_LATER, "overlayd is not running").with_details("x");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 11);
        assert_eq!(v["msg"], "overlayd is not running");
        assert_eq!(v["details"], "x");
        let bare = CniError::new(4, "m").to_json("1.1.0");
        assert!(!bare.contains("details"));
    }
}
