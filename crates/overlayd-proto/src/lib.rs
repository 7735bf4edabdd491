//! overlayd-proto: see Cargo.toml description.
