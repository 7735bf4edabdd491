//! The `CNI_*` environment of one invocation: the command, the container,
//! its namespace and interface name, and `CNI_ARGS`.

use crate::error::{CniError, INVALID_ENV};

/// What the runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Release a container (idempotent).
    Del,
    /// Verify an attachment.
    Check,
    /// Report whether ADD can be served (1.1.0).
    Status,
    /// Release attachments not in the valid list (1.1.0).
    Gc,
    /// Report the supported versions.
    Version,
}

impl Command {
    /// Parse `CNI_COMMAND`.
    pub fn parse(s: &str) -> Result<Command, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => {
                return Err(
                    CniError::new(INVALID_ENV, format!("unknown CNI_COMMAND {other:?}"))
                        .with_details("expected ADD, DEL, CHECK, STATUS, GC or VERSION"),
                )
            }
        })
    }
}

/// The invocation's environment, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Option<String>,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `CNI_ARGS`, split into pairs.
    pub args: Vec<(String, String)>,
}

impl CniEnv {
    /// Read the environment through `get` (the process environment in
    /// `main`, a map in tests). Empty values count as absent.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> CniEnv {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        CniEnv {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: get("CNI_ARGS").map(|a| parse_args(&a)).unwrap_or_default(),
        }
    }

    /// `CNI_CONTAINERID`, required.
    pub fn require_container_id(&self) -> Result<&str, CniError> {
        self.container_id
            .as_deref()
            .ok_or_else(|| CniError::new(INVALID_ENV, "CNI_CONTAINERID is not set"))
    }

    /// `CNI_IFNAME`, required and a valid Linux interface name.
    pub fn require_ifname(&self) -> Result<&str, CniError> {
        let name = self
            .ifname
            .as_deref()
            .ok_or_else(|| CniError::new(INVALID_ENV, "CNI_IFNAME is not set"))?;
        validate_ifname(name)?;
        Ok(name)
    }

    /// `CNI_NETNS`, required.
    pub fn require_netns(&self) -> Result<&str, CniError> {
        self.netns
            .as_deref()
            .ok_or_else(|| CniError::new(INVALID_ENV, "CNI_NETNS is not set"))
    }

    /// The value of a `CNI_ARGS` key.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Split `CNI_ARGS` (`K=V;K2=V2`); pairs without `=` are ignored.
pub fn parse_args(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Linux interface name rules: 1–15 bytes, not `.` or `..`, no `/`, `:` or
/// whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = |why: &str| {
        Err(CniError::new(
            INVALID_ENV,
            format!("CNI_IFNAME {name:?} is not a valid interface name"),
        )
        .with_details(why.to_string()))
    };
    if name.is_empty() || name.len() > 15 {
        return bad("it must be 1 to 15 bytes long");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are reserved");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return bad("it must not contain '/', ':', whitespace or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn args_are_split_and_looked_up() {
        let vars: HashMap<&str, &str> = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_NETNS", ""),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;junk",
            ),
        ]
        .into();
        let env = CniEnv::from_lookup(|k| vars.get(k).map(|v| v.to_string()));
        assert_eq!(env.command.as_deref(), Some("ADD"));
        assert_eq!(env.netns, None, "empty counts as absent");
        assert_eq!(env.arg("K8S_POD_NAME"), Some("web-0"));
        assert_eq!(env.arg("junk"), None);
        assert!(env.require_container_id().is_err());
    }

    #[test]
    fn ifname_rules() {
        for ok in ["eth0", "net1", "123456789012345"] {
            validate_ifname(ok).unwrap();
        }
        for bad in ["", "1234567890123456", "a/b", "a b", "a:b", ".."] {
            assert_eq!(validate_ifname(bad).unwrap_err().code, INVALID_ENV);
        }
    }

    #[test]
    fn commands() {
        assert_eq!(Command::parse("GC").unwrap(), Command::Gc);
        assert_eq!(Command::parse("add").unwrap_err().code, INVALID_ENV);
    }
}
