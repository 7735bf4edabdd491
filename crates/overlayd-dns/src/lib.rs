//! overlayd-dns: see Cargo.toml description.
