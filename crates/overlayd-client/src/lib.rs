//! overlayd-client: see Cargo.toml description.
