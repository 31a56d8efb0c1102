//! A virtio-net card on virtio-mmio: QEMU's `microvm` machine has no PCI
//! (by default) and announces each virtio-mmio device on the kernel command
//! line, `virtio_mmio.device=512@0xfeb00e00:12`, when ACPI is off
//! (`skiff_drivers::virtio::mmio_cmdline` reads it). The same driver, stack
//! and main loop run over `virtio-drivers`' `MmioTransport`.
//!
//! Without ACPI there is no MADT to say where the I/O APIC is, so Skiff takes
//! the standard address. The device's interrupt line is level: QEMU raises it
//! while the device's interrupt status is non-zero, and the driver's
//! acknowledgement lowers it, as with a PCI card's INTx, so the same pin
//! handling (`nic::route_intx`, `nic::service`) serves it.
//!
//! Ref: virtio 1.2, 4.2 (Virtio Over MMIO).

use core::ptr::NonNull;

use skiff_drivers::virtio::card::CardTransport;
use skiff_drivers::virtio::mmio_cmdline::{self, MmioDevice};
use skiff_drivers::virtio::{DeviceType, MmioTransport, Transport, VirtIOHeader};

use crate::nic::{Nic, Signal};
use crate::qemu::{self, ExitCode};
use crate::{entropy, ioapic, memory, nic};

/// The I/O APIC's standard address (Intel 82093AA datasheet, 3.0; the MP
/// specification's default), where every QEMU x86 machine puts it, with
/// its first input at GSI 0.
const IOAPIC_STANDARD_ADDRESS: u64 = 0xFEC0_0000;
const IOAPIC_STANDARD_GSI_BASE: u32 = 0;

/// Finds the first virtio-net device among the command line's
/// `virtio_mmio.device=` announcements and brings it up, with its interrupt
/// routed (unless `use_irq` is false). `None` if there is none. A value that
/// does not parse is bad boot input: the kernel says why and stops.
pub fn init(cmdline: &str, use_irq: bool) -> Option<(Nic, Signal)> {
    for (value, parsed) in mmio_cmdline::devices(cmdline) {
        let device = match parsed {
            Ok(device) => device,
            Err(e) => {
                crate::println!("Skiff: boot stopped: {}={value}: {e}", mmio_cmdline::KEY);
                qemu::exit(ExitCode::BadBootInput)
            }
        };
        let Some(transport) = probe(&device) else { continue };
        if transport.device_type() != DeviceType::Network {
            log::info!("virtio-mmio at {:#x}: a {:?} device, not a network card", device.base, transport.device_type());
            continue;
        }
        let (random, source) = entropy::seed();
        let nic = match Nic::new_sized(CardTransport::Mmio(transport), random, crate::nic::queue_size(), |_| {}) {
            Ok(nic) => nic,
            Err(e) => {
                log::error!("virtio-net at {:#x} (virtio-mmio): {e}", device.base);
                return None;
            }
        };
        log::info!("virtio-net at {:#x} (virtio-mmio transport, IRQ {})", device.base, device.irq);
        nic::log_card(&nic, source);
        let signal = if !use_irq {
            log::info!("virtio-net: interrupts off (net.irq=off); the main loop polls the card on a timer");
            Signal::None
        } else if let Err(e) = ioapic::init(IOAPIC_STANDARD_ADDRESS, IOAPIC_STANDARD_GSI_BASE) {
            log::warn!("virtio-net: cannot map the I/O APIC: {e}; polling on a timer");
            Signal::None
        } else {
            nic::route_intx(IOAPIC_STANDARD_ADDRESS, &[device.irq])
        };
        return Some((nic, signal));
    }
    None
}

/// Maps one announced device's registers and checks them (`MmioTransport`
/// reads the magic value and version). `None`, logged, if they are not a
/// virtio-mmio device.
fn probe(device: &MmioDevice) -> Option<MmioTransport<'static>> {
    let virt = match memory::map_mmio(device.base, device.size) {
        Ok(virt) => virt,
        Err(e) => {
            log::warn!("virtio-mmio at {:#x}: {e}", device.base);
            return None;
        }
    };
    let header = NonNull::new(virt.as_mut_ptr::<VirtIOHeader>())?;
    let size = usize::try_from(device.size).ok()?;
    // SAFETY: `header` maps the announced register block, `size` bytes,
    // uncached and for good (`memory::map_mmio`); nothing else in Skiff
    // touches it, and the transport is the only owner from here on.
    match unsafe { MmioTransport::new(header, size) } {
        Ok(transport) => Some(transport),
        Err(e) => {
            log::warn!("virtio-mmio at {:#x}: {e}", device.base);
            None
        }
    }
}
