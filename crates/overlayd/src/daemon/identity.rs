//! Guards on recorded identity: a service's mode (and with it a dedicated
//! overlay's key, port and subnet) changes only when the caller says so
//! explicitly, never as a side effect of a routine `setup_service_overlay`.

use overlayd_proto::ServiceMode;

use super::error::{OpError, OpResult};

/// The mode a `setup_service_overlay` request leads to, given the mode the
/// service has on record (if any).
///
/// - `auto` keeps a recorded mode and makes a new service `shared`.
/// - an explicit mode equal to the recorded one confirms it.
/// - an explicit mode different from the recorded one is a conflict unless
///   `recreate` is set, because it would delete (or replace) the service's
///   network identity; the error names both explicit ways to do it.
pub fn resolve_service_mode(
    service: &str,
    requested: ServiceMode,
    recorded: Option<ServiceMode>,
    recreate: bool,
) -> OpResult<ServiceMode> {
    let Some(recorded) = recorded.map(ServiceMode::resolve) else {
        return Ok(requested.resolve());
    };
    if requested == ServiceMode::Auto {
        return Ok(recorded);
    }
    if requested == recorded || recreate {
        return Ok(requested);
    }
    let what = if recorded == ServiceMode::Dedicated {
        "would delete its WireGuard key, port and subnet (peers on other nodes would break)"
    } else {
        "would move it off the shared-nat network and give it a new identity"
    };
    Err(OpError::Conflict(format!(
        "service {service} is {rec}; changing it to {req} {what}. To keep it, omit --mode (auto keeps the recorded mode) or pass --mode {rec}. \
To change it, run `overlayd service down {service}` first, or `overlayd service up {service} --mode {req} --recreate` \
(setup_service_overlay with \"recreate\": true), which mints a new identity",
        rec = recorded.as_str(),
        req = requested.as_str(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServiceMode::*;

    #[test]
    fn auto_keeps_the_recorded_mode_and_makes_new_services_shared() {
        assert_eq!(
            resolve_service_mode("db", Auto, Some(Dedicated), false).unwrap(),
            Dedicated
        );
        assert_eq!(
            resolve_service_mode("web", Auto, Some(Shared), false).unwrap(),
            Shared
        );
        assert_eq!(
            resolve_service_mode("new", Auto, None, false).unwrap(),
            Shared
        );
        assert_eq!(
            resolve_service_mode("new", Dedicated, None, false).unwrap(),
            Dedicated
        );
    }

    #[test]
    fn an_explicit_change_is_refused_without_recreate() {
        let e = resolve_service_mode("db", Shared, Some(Dedicated), false).unwrap_err();
        assert!(matches!(e, OpError::Conflict(_)));
        let m = e.to_string();
        assert!(m.contains("service db is dedicated"), "{m}");
        assert!(m.contains("overlayd service down db"), "{m}");
        assert!(m.contains("--recreate"), "{m}");
        assert!(matches!(
            resolve_service_mode("web", Dedicated, Some(Shared), false),
            Err(OpError::Conflict(_))
        ));
    }

    #[test]
    fn recreate_allows_the_change_and_same_mode_is_a_confirmation() {
        assert_eq!(
            resolve_service_mode("db", Shared, Some(Dedicated), true).unwrap(),
            Shared
        );
        assert_eq!(
            resolve_service_mode("db", Dedicated, Some(Dedicated), false).unwrap(),
            Dedicated
        );
    }
}
