//! Structured logging set-up, in one place: `tracing` to stderr, filtered by
//! `OVERLAYD_LOG` (then `RUST_LOG`), human lines (coloured only on a
//! terminal) or JSON lines. An invalid filter is an error, not ignored.

use anyhow::{anyhow, Result};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Targets that are noisy at `info` and quiet by default.
const QUIET_TARGETS: &str = "hickory_server=warn,hickory_proto=warn,boringtun=warn";

/// Parse the filter from the environment; `default` applies when neither
/// `OVERLAYD_LOG` nor `RUST_LOG` is set.
pub fn filter_from_env(default: &str) -> Result<EnvFilter> {
    for var in ["OVERLAYD_LOG", "RUST_LOG"] {
        if let Ok(f) = std::env::var(var) {
            return EnvFilter::builder()
                .with_regex(false)
                .parse(&f)
                .map_err(|e| {
                    anyhow!("{var}={f:?} is not a valid log filter ({e}); use e.g. `info`, `debug` or `info,overlayd=debug`")
                });
        }
    }
    Ok(EnvFilter::new(format!("{default},{QUIET_TARGETS}")))
}

/// Install the global subscriber. `default` is the filter when no
/// environment variable is set.
pub fn init(default: &str, json: bool) -> Result<()> {
    let filter = filter_from_env(default)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filters_are_refused_and_valid_ones_accepted() {
        let parse = |f: &str| EnvFilter::builder().with_regex(false).parse(f);
        assert!(parse("info,overlayd=debug").is_ok());
        assert!(parse("overlayd=loud").is_err());
    }
}
