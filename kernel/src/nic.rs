//! Finding the virtio-net card and bringing it up with `skiff_drivers`.

use skiff_drivers::pci::{self, Function};
use skiff_drivers::virtio::legacy::CpuPorts;
use skiff_drivers::virtio::net::{Mac, NetFeatures, VirtioNet};
use skiff_drivers::virtio::pci::{VirtioPciTransport, is_virtio_net, probe};

use crate::dma::KernelHal;
use crate::entropy;
use crate::pci::Pci;

/// The network card Skiff drives.
pub type Nic = VirtioNet<KernelHal, VirtioPciTransport<CpuPorts>>;

/// Finds the first virtio-net function, gives it any BAR the firmware left
/// empty, turns on bus mastering, and initialises it. `None` (logged) if
/// there is none or it cannot be driven.
pub fn init(pci: &mut Pci) -> Option<Nic> {
    let (memory_window, io_window) = pci::free_windows(&pci.functions);
    let Some(function) = pci.functions.iter_mut().find(|f| is_virtio_net(f)) else {
        log::warn!("no virtio-net card found (QEMU: -device virtio-net-pci)");
        return None;
    };
    let (mut memory, mut io) = (memory_window, io_window);
    match pci::assign_missing_bars(&mut pci.root, function, &mut memory, &mut io) {
        Ok(0) => {}
        Ok(n) => log::info!("virtio-net: assigned {n} BAR(s) the firmware left empty"),
        Err(e) => log::warn!("virtio-net: {e}"),
    }
    pci::enable_device(&mut pci.root, function.address);
    let function = function.clone();
    bring_up(pci, function)
}

fn bring_up(pci: &mut Pci, function: Function) -> Option<Nic> {
    // SAFETY: the legacy transport uses only the ports of this function's I/O
    // BAR 0, which nothing else in Skiff touches.
    let ports = unsafe { CpuPorts::new() };
    let transport = match probe::<KernelHal, _, _>(&mut pci.root, &function, ports) {
        Ok(t) => t,
        Err(e) => {
            log::error!("virtio-net at {}: {e}", function.address);
            return None;
        }
    };
    let kind = transport.kind();
    let (random, source) = entropy::seed();
    let nic = match Nic::new(transport, random) {
        Ok(nic) => nic,
        Err(e) => {
            log::error!("virtio-net at {}: {e}", function.address);
            return None;
        }
    };
    log::info!("virtio-net at {} ({kind} transport, {} config access)", function.address, pci.mechanism);
    log::info!("virtio-net: offered: {}", nic.offered_features());
    log::info!("virtio-net: wanted: {}", NetFeatures::WANTED);
    log::info!("virtio-net: negotiated: {}", nic.features());
    let mac_source =
        if nic.features().contains(NetFeatures::MAC) { "from the device" } else { "random, locally administered" };
    let (rx, tx) = nic.queue_sizes();
    log::info!(
        "virtio-net: MAC {} ({mac_source}), MTU {}, link {}, queues rx {rx} tx {tx}, checksum offload tx {} rx {}",
        Mac(nic.mac()),
        nic.mtu(),
        if nic.link_up() { "up" } else { "down" },
        if nic.tx_checksum_offload() { "on" } else { "off (software)" },
        if nic.rx_checksum_offload() { "on" } else { "off (software)" },
    );
    log::debug!("virtio-net: random seed from {source:?}");
    Some(nic)
}
