//! Structured logging set-up, in one place: `tracing` to stderr, filtered by
//! `OVERLAYD_LOG` (then `RUST_LOG`), human or JSON lines.

use tracing_subscriber::EnvFilter;

/// Install the global subscriber. `default` is the filter when no
/// environment variable is set.
pub fn init(default: &str, json: bool) {
    let filter = std::env::var("OVERLAYD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!("{default},hickory_server=warn,hickory_proto=warn"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
