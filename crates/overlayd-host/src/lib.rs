//! overlayd-host: see Cargo.toml description.
