//! The crate's single error type: every way a naming, tagging, IPAM or
//! planning decision can be refused.

use std::net::IpAddr;

use ipnet::IpNet;

/// Why the engine refused a request. Variants carry the values a caller
/// needs to produce a clear message (the conflicting owner, the range that
/// is full, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// An interface name is not usable by the kernel.
    #[error("invalid interface name {name:?}: {why}")]
    InvalidIfName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An interface-name prefix is not usable.
    #[error("invalid interface name prefix {prefix:?}: {why}")]
    InvalidPrefix {
        /// The rejected prefix.
        prefix: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No free interface name was found for an owner or attachment.
    #[error("no free interface name for {subject} after {attempts} attempts")]
    NamesExhausted {
        /// The owner or attachment handle that needed a name.
        subject: String,
        /// How many candidates were tried.
        attempts: u32,
    },
    /// An ownership tag cannot be built from the given values.
    #[error("cannot build ownership tag: {why}")]
    InvalidTag {
        /// What is wrong.
        why: String,
    },
    /// A subnet prefix length does not fit the pool or family.
    #[error("invalid prefix length /{prefix_len} for {pool}: {why}")]
    InvalidPrefixLen {
        /// The pool or subnet the length applies to.
        pool: IpNet,
        /// The rejected prefix length.
        prefix_len: u8,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A CIDR has host bits set where a network address is required.
    #[error("{given} has host bits set; did you mean {network}?")]
    HostBitsSet {
        /// The CIDR as given.
        given: IpNet,
        /// The network it truncates to.
        network: IpNet,
    },
    /// A requested subnet overlaps one already used by another network.
    #[error("subnet {requested} overlaps {existing} used by {owner}")]
    SubnetInUse {
        /// The subnet that was asked for.
        requested: IpNet,
        /// The subnet it overlaps.
        existing: IpNet,
        /// Who uses the existing subnet.
        owner: String,
    },
    /// A requested subnet overlaps a reserved range (cluster CIDR, node slice,
    /// node address, …).
    #[error("subnet {requested} overlaps reserved {reserved} ({why})")]
    SubnetReserved {
        /// The subnet that was asked for.
        requested: IpNet,
        /// The reserved range it overlaps.
        reserved: IpNet,
        /// What the reserved range is.
        why: String,
    },
    /// No free subnet of the wanted size is left in the pool.
    #[error("subnet pool {pool} is exhausted: no free /{prefix_len} left")]
    PoolExhausted {
        /// The pool that is full.
        pool: IpNet,
        /// The subnet size that was asked for.
        prefix_len: u8,
    },
    /// Two values of different address families were combined.
    #[error("address family mismatch: {a} vs {b}")]
    FamilyMismatch {
        /// The first value.
        a: String,
        /// The second value.
        b: String,
    },
    /// A node slice is not inside the cluster CIDR.
    #[error("node slice {slice} is not inside cluster CIDR {cluster}")]
    SliceOutsideCluster {
        /// The slice.
        slice: IpNet,
        /// The cluster CIDR.
        cluster: IpNet,
    },
    /// Every host address of a subnet is leased or reserved.
    #[error("no free address left in subnet {subnet}")]
    AddressesExhausted {
        /// The full subnet.
        subnet: IpNet,
    },
    /// An address is not inside the subnet it was meant for.
    #[error("address {addr} is not inside subnet {subnet}")]
    AddressOutsideSubnet {
        /// The address.
        addr: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// An address cannot be handed out (network, broadcast or gateway).
    #[error("address {addr} is the {what} of {subnet} and cannot be leased")]
    AddressReserved {
        /// The address.
        addr: IpAddr,
        /// The subnet.
        subnet: IpNet,
        /// Which special address it is.
        what: &'static str,
    },
    /// An address is already leased.
    #[error("address {addr} is already leased")]
    AddressInUse {
        /// The address.
        addr: IpAddr,
    },
}

/// Result alias for this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
