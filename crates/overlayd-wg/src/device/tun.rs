//! Opening the TUN interface with `tun-rs`: `IFF_TUN | IFF_NO_PI |
//! IFF_VNET_HDR` and the TSO/USO offloads, so the kernel hands the device
//! up to 64 KiB TCP/UDP super-packets (split into segments by
//! `SyncDevice::recv_multiple`) and takes coalesced ones
//! (`SyncDevice::send_multiple`, GRO in our loop). The queue is
//! non-blocking; its descriptor is the interface's lifetime.

pub(crate) use tun_rs::SyncDevice;

/// Creates TUN interface `name` in the calling thread's network namespace.
pub(crate) fn open(name: &str) -> std::io::Result<SyncDevice> {
    let dev = tun_rs::DeviceBuilder::new()
        .name(name)
        .offload(true)
        .build_sync()?;
    dev.set_nonblocking(true)?;
    Ok(dev)
}
