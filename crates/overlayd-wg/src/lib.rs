//! overlayd-wg: see Cargo.toml description.
