//! overlayd-engine: see Cargo.toml description.
