//! Runs one userspace WireGuard device through `overlayd-wg` until SIGINT or
//! SIGTERM; used by `bench/throughput.sh`.
//!
//! ```text
//! wg_node <netns-path> <uapi-dir> <ifname> <listen-port> <private-key-file>
//!         <peer-public-key> <peer-endpoint> <peer-allowed-ip>
//! ```

use std::path::Path;

use nix::sys::signal::{SigSet, Signal};
use overlayd_wg::{
    parse_private_key, parse_public_key, DeviceConfig, PeerConfig, UserspaceBackend, WgBackend,
    DEFAULT_MTU,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [netns, uapi_dir, name, port, key_file, peer, endpoint, allowed] = args.as_slice() else {
        return Err(
            "usage: wg_node <netns-path> <uapi-dir> <ifname> <listen-port> \
                    <private-key-file> <peer-public-key> <peer-endpoint> <peer-allowed-ip>"
                .into(),
        );
    };
    // Block the stop signals before any thread exists so only sigwait sees them.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGINT);
    stop.add(Signal::SIGTERM);
    stop.thread_block()?;

    let backend = UserspaceBackend::with_netns(uapi_dir, Some(Path::new(netns)))?;
    let cfg = DeviceConfig {
        name: name.clone(),
        private_key: parse_private_key(&std::fs::read_to_string(key_file)?)?,
        listen_port: port.parse()?,
        mtu: DEFAULT_MTU,
        fwmark: None,
    };
    let handle = backend.create_or_adopt(&cfg)?;
    backend.set_peer(
        name,
        &PeerConfig {
            public_key: parse_public_key(peer)?,
            endpoint: Some(endpoint.parse()?),
            allowed_ips: vec![allowed.parse()?],
            persistent_keepalive: None,
        },
    )?;
    println!("ready {} ifindex {}", handle.name, handle.ifindex);
    let sig = stop.wait()?;
    eprintln!("{sig:?}: stopping {name}");
    backend.delete(name)?;
    Ok(())
}
