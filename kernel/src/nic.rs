//! Finding the virtio-net card, bringing it up with `skiff_drivers`, and
//! routing its interrupts.
//!
//! Interrupts come by MSI-X: table entry 0 signals configuration changes,
//! entry 1 the receive queue, entry 2 the transmit queue, each to its own
//! vector on this CPU. A card without MSI-X (QEMU `vectors=0`) interrupts
//! through its INTx line and the I/O APIC. Which I/O APIC pin that line
//! reaches is in the ACPI `_PRT`, which takes an AML interpreter to read;
//! Skiff instead listens on every pin it could be (the PCI GSIs 16–23 on
//! q35, the firmware's interrupt-line IRQ on `pc`). A pin that fires is
//! unmasked again once the card's ISR was read, whether or not the card had
//! interrupted, unless it keeps firing with the card quiet: then it is left
//! masked for a while (`skiff_drivers::pci::intx`, after Linux's handling of
//! shared lines).

use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, Ordering};

use skiff_drivers::pci::intx::{self, Pins, STORM_LIMIT, STORM_RETRY, SharedLines};
use skiff_drivers::pci::{self, BarInfo, ConfigurationAccess, Function, MsixInfo, MsixTable};
use skiff_drivers::virtio::card::CardTransport;
use skiff_drivers::virtio::legacy::CpuPorts;
use skiff_drivers::virtio::net::{MAX_QUEUE_SIZE, Mac, NetFeatures, VirtioNet};
use skiff_drivers::virtio::pci::{VectorError, is_virtio_net, probe};
use skiff_net::device::NetDevice;

use crate::dma::KernelHal;
use crate::interrupts::{self, INTX_VECTOR_BASE, NIC_CONFIG_VECTOR, NIC_RX_VECTOR, NIC_TX_VECTOR};
use crate::pci::Pci;
use crate::{acpi, apic, clock, entropy, ioapic, memory};

/// The network card Skiff drives, on PCI or virtio-mmio (`nic_mmio`).
pub type Nic = VirtioNet<KernelHal, CardTransport<CpuPorts>>;

/// MSI-X table entries, as the device is told them (spec 4.1.4.3: the
/// driver picks which entry serves configuration changes and each queue).
const ENTRY_CONFIG: u16 = 0;
const ENTRY_RX: u16 = 1;
const ENTRY_TX: u16 = 2;
const ENTRIES_NEEDED: u16 = 3;
/// Queue indices (spec 5.1.2).
const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;

/// The most descriptors per queue to ask the card for (`net.queue_size`).
static QUEUE_SIZE: AtomicU16 = AtomicU16::new(MAX_QUEUE_SIZE);

/// Reads `net.queue_size` (1 to `MAX_QUEUE_SIZE`; a modern card rounds it
/// down to a power of two, a legacy one keeps its own), before the card is
/// brought up. Only the exercise that shows a tiny queue sets it.
pub fn set_queue_size(value: Option<&str>) {
    let Some(value) = value else { return };
    match value.parse::<u16>() {
        Ok(n) if (1..=MAX_QUEUE_SIZE).contains(&n) => QUEUE_SIZE.store(n, Ordering::Relaxed),
        _ => log::warn!("net.queue_size={value} ignored: expected 1 to {MAX_QUEUE_SIZE}"),
    }
}

/// The queue size to ask a card for.
pub fn queue_size() -> u16 {
    QUEUE_SIZE.load(Ordering::Relaxed)
}

/// Set by the card's interrupt handlers; the main loop clears it.
pub static WORK_PENDING: AtomicBool = AtomicBool::new(false);
/// Set by the configuration-change handler: re-read the link.
pub static CONFIG_CHANGED: AtomicBool = AtomicBool::new(false);
/// Which of the card's interrupts fired since the main loop last asked
/// (`take_fired`), for the packet trace's wake-up lines.
static FIRED: AtomicU8 = AtomicU8::new(0);
const FIRED_RX: u8 = 1 << 0;
const FIRED_TX: u8 = 1 << 1;
const FIRED_CONFIG: u8 = 1 << 2;
const FIRED_INTX: u8 = 1 << 3;

/// The card's interrupts that fired, as the trace names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired(u8);

impl core::fmt::Display for Fired {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        let mut sep = "";
        let mut name = |f: &mut core::fmt::Formatter, bit: u8, args: core::fmt::Arguments| {
            if self.0 & bit == 0 {
                return Ok(());
            }
            f.write_str(sep)?;
            sep = " + ";
            f.write_fmt(args)
        };
        name(f, FIRED_RX, format_args!("rx interrupt (vector {NIC_RX_VECTOR:#x})"))?;
        name(f, FIRED_TX, format_args!("tx interrupt (vector {NIC_TX_VECTOR:#x})"))?;
        name(f, FIRED_CONFIG, format_args!("config interrupt (vector {NIC_CONFIG_VECTOR:#x})"))?;
        name(f, FIRED_INTX, format_args!("INTx interrupt (rx, tx or config: the ISR says which)"))?;
        if self.0 == 0 { f.write_str("no card interrupt") } else { Ok(()) }
    }
}

/// The card's interrupts that fired since the last call.
pub fn take_fired() -> Fired {
    Fired(FIRED.swap(0, Ordering::AcqRel))
}

/// How the card signals work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// MSI-X, a vector per queue and one for configuration changes.
    Msix,
    /// INTx through the I/O APIC, on one of the candidate pins.
    Intx,
    /// No interrupts: poll on a timer.
    None,
}

/// Candidate INTx pins: vector `INTX_VECTOR_BASE + i` serves `INTX_GSI[i]`.
const INTX_CANDIDATES: usize = intx::MAX_PINS;
static INTX_GSI: [AtomicU32; INTX_CANDIDATES] = [const { AtomicU32::new(u32::MAX) }; INTX_CANDIDATES];
/// Candidates whose pin fired and is masked, waiting for the main loop.
static INTX_PENDING: AtomicU8 = AtomicU8::new(0);
/// Unclaimed fires and parked pins; the main loop's alone (handlers only
/// set `INTX_PENDING`).
static INTX_LINES: spin::Mutex<SharedLines> = spin::Mutex::new(SharedLines::new());
/// The interrupt-line register in a type-0 configuration header.
const INTERRUPT_LINE: u8 = 0x3C;
/// PCI interrupt GSIs on q35 (PIRQ A–H, QEMU's ICH9).
const Q35_PCI_GSIS: core::ops::RangeInclusive<u32> = 16..=23;

/// Finds the first virtio-net function, gives it any BAR the firmware left
/// empty, turns on bus mastering, sets up MSI-X where it can, and
/// initialises it. `None` (logged) if there is none or it cannot be driven.
pub fn init(pci: &mut Pci, use_msix: bool, rsdp: Option<u64>) -> Option<(Nic, Signal)> {
    let (mut memory_window, io_window) = pci::free_windows(&pci.functions);
    if let Some(base) = pci.ecam_base {
        memory_window = memory_window.clear_of(base, pci::Ecam::SIZE as u64);
    }
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
    let msix = if use_msix { setup_msix(pci, &function) } else { None };
    let (nic, vectors) = bring_up(pci, &function, msix.is_some())?;
    let signal = match msix {
        Some(()) => match vectors {
            Some(Ok(())) => {
                log::info!(
                    "virtio-net: MSI-X: config on vector {NIC_CONFIG_VECTOR:#x}, rx on {NIC_RX_VECTOR:#x}, tx on {NIC_TX_VECTOR:#x}"
                );
                Signal::Msix
            }
            Some(Err(e)) => {
                log::warn!("virtio-net: {e}; polling instead of interrupts");
                Signal::None
            }
            None => Signal::None,
        },
        None if use_msix => setup_intx(pci, &function, rsdp),
        None => {
            log::info!("virtio-net: interrupts off (net.irq=off); the main loop polls the card on a timer");
            Signal::None
        }
    };
    Some((nic, signal))
}

/// Routes the card's INTx line through the I/O APIC (see the module's
/// comment for why several pins).
fn setup_intx(pci: &Pci, function: &Function, rsdp: Option<u64>) -> Signal {
    let Some((info, overrides)) = rsdp.and_then(acpi::find_ioapic) else {
        log::warn!("virtio-net: no MSI-X and no I/O APIC in the MADT; the main loop polls the card on a timer");
        return Signal::None;
    };
    if let Err(e) = ioapic::init(info.address, info.gsi_base) {
        log::warn!("virtio-net: cannot map the I/O APIC: {e}; polling on a timer");
        return Signal::None;
    }
    let gsis: Vec<u32> = if pci.mechanism == "ECAM" {
        Q35_PCI_GSIS.collect()
    } else {
        // The firmware's interrupt-line register holds the ISA IRQ it routed the pin to.
        // Interrupt Line is the low byte of the dword at 0x3C (PCI 3.0, 6.2.4).
        let [line, ..] = pci.access.read_word(function.address, INTERRUPT_LINE).to_le_bytes();
        let gsi = overrides.get(usize::from(line)).copied().flatten().map_or(u32::from(line), |o| o.gsi);
        core::iter::once(gsi).collect()
    };
    route_intx(info.address, &gsis)
}

/// Routes each of `gsis` (level-triggered) to an INTx candidate's vector
/// through the I/O APIC at `address`, which `ioapic::init` has mapped.
pub fn route_intx(address: u64, gsis: &[u32]) -> Signal {
    let apic_id = apic::id();
    let mut routed = 0;
    for (i, gsi) in gsis.iter().enumerate().take(INTX_CANDIDATES) {
        let vector = INTX_VECTOR_BASE + i as u8;
        if ioapic::route_level(*gsi, vector, apic_id) {
            INTX_GSI[i].store(*gsi, Ordering::Relaxed);
            interrupts::register(vector, on_intx);
            ioapic::set_masked(*gsi, false);
            routed += 1;
        }
    }
    if routed == 0 {
        log::warn!("virtio-net: no I/O APIC pin for INTx; polling on a timer");
        return Signal::None;
    }
    log::info!("virtio-net: no MSI-X; INTx through the I/O APIC at {address:#x}, on GSI {gsis:?}");
    Signal::Intx
}

/// An INTx candidate's vector: mask the (level-triggered) pin until the main
/// loop has acknowledged the card, and note the work.
fn on_intx(vector: u8) {
    let i = usize::from(vector - INTX_VECTOR_BASE);
    if let Some(gsi) = INTX_GSI.get(i).map(|g| g.load(Ordering::Relaxed)) {
        ioapic::set_masked(gsi, true);
        INTX_PENDING.fetch_or(1 << i, Ordering::AcqRel);
    }
    FIRED.fetch_or(FIRED_INTX, Ordering::AcqRel);
    WORK_PENDING.store(true, Ordering::Release);
}

/// Main loop: takes in what the card's interrupts signalled since the last
/// call. Returns whether its configuration may have changed.
pub fn service(signal: Signal, device: &mut impl NetDevice) -> bool {
    // INTx: one ISR read acknowledges the card and says whether the
    // configuration changed. (A second read could swallow an interrupt that
    // arrived in between and leave its pin masked.)
    let mut intx_config = false;
    if signal == Signal::Intx {
        service_intx(|| {
            let cause = device.acknowledge_interrupt();
            intx_config = cause.config;
            cause.any()
        });
    }
    // MSI-X: the configuration vector is its own signal; no ISR read.
    let msix_config = CONFIG_CHANGED.swap(false, Ordering::AcqRel);
    intx_config || msix_config
}

/// INTx: if a candidate pin fired, calls `acknowledge`, which reads the
/// card's ISR (deasserting its line) and says whether the card had
/// interrupted, and then unmasks the pins that fired (see the module's
/// comment for the pins left masked). Also unmasks parked pins that are due
/// for another try.
pub fn service_intx(acknowledge: impl FnOnce() -> bool) {
    let mut lines = INTX_LINES.lock();
    let now = clock::now();
    set_masked(lines.retry_parked(now), false);
    let pending = INTX_PENDING.swap(0, Ordering::AcqRel);
    if pending == 0 {
        return;
    }
    let serviced = lines.serviced(Pins(pending), acknowledge(), now);
    for i in serviced.newly_parked.iter() {
        log::warn!(
            "virtio-net: GSI {} fired {STORM_LIMIT} times in a row while the card had not interrupted; masked, tried again every {STORM_RETRY:?}",
            INTX_GSI[i].load(Ordering::Relaxed)
        );
    }
    set_masked(serviced.unmask, false);
}

/// Whether a candidate pin is masked for a storm: the card's interrupts on
/// it are lost meanwhile, so the main loop should poll the card.
pub fn intx_parked() -> bool {
    !INTX_LINES.lock().parked().is_empty()
}

/// For the in-kernel tests: runs the first routed candidate pin's handler,
/// as if its line had fired, and returns its GSI.
#[cfg(feature = "ktest")]
pub fn simulate_intx_fire() -> Option<u32> {
    let i = INTX_GSI.iter().position(|g| g.load(Ordering::Relaxed) != u32::MAX)?;
    on_intx(INTX_VECTOR_BASE + i as u8);
    Some(INTX_GSI[i].load(Ordering::Relaxed))
}

fn set_masked(pins: Pins, masked: bool) {
    for i in pins.iter() {
        ioapic::set_masked(INTX_GSI[i].load(Ordering::Relaxed), masked);
    }
}

/// Programs the MSI-X table and enables MSI-X. `None` (logged) if the card
/// has no usable MSI-X.
fn setup_msix(pci: &mut Pci, function: &Function) -> Option<()> {
    let info = MsixInfo::read(&pci.access, function)?;
    if info.table_size < ENTRIES_NEEDED {
        log::warn!("virtio-net: MSI-X table has {} entries, {ENTRIES_NEEDED} needed", info.table_size);
        return None;
    }
    let Some(Some(BarInfo::Memory { address, size, .. })) = function.bars.get(usize::from(info.table_bar)) else {
        log::warn!("virtio-net: MSI-X table in BAR {}, which is not a memory BAR", info.table_bar);
        return None;
    };
    if u64::from(info.table_offset) + info.table_bytes() as u64 > *size {
        log::warn!("virtio-net: MSI-X table runs past its BAR");
        return None;
    }
    let table = address.saturating_add(u64::from(info.table_offset));
    let virt = match memory::map_mmio(table, info.table_bytes() as u64) {
        Ok(virt) => virt,
        Err(e) => {
            log::warn!("virtio-net: cannot map the MSI-X table: {e}");
            return None;
        }
    };
    // SAFETY: `virt` maps the function's MSI-X table (inside its BAR, checked
    // above) uncached and for good; only this code writes it.
    let mut table = unsafe { MsixTable::new(NonNull::new(virt.as_mut_ptr())?, info.table_size) };
    let apic_id = apic::id();
    for (entry, vector) in [(ENTRY_CONFIG, NIC_CONFIG_VECTOR), (ENTRY_RX, NIC_RX_VECTOR), (ENTRY_TX, NIC_TX_VECTOR)] {
        table.route(entry, vector, apic_id);
    }
    interrupts::register(NIC_CONFIG_VECTOR, on_config_change);
    interrupts::register(NIC_RX_VECTOR, on_queue);
    interrupts::register(NIC_TX_VECTOR, on_queue);
    info.enable(&mut pci.access, function);
    Some(())
}

/// A queue's MSI-X vector: note the work; the main loop does it.
fn on_queue(vector: u8) {
    FIRED.fetch_or(if vector == NIC_RX_VECTOR { FIRED_RX } else { FIRED_TX }, Ordering::AcqRel);
    WORK_PENDING.store(true, Ordering::Release);
}

/// The configuration-change vector: note it; the main loop re-reads the link.
fn on_config_change(_vector: u8) {
    FIRED.fetch_or(FIRED_CONFIG, Ordering::AcqRel);
    CONFIG_CHANGED.store(true, Ordering::Release);
    WORK_PENDING.store(true, Ordering::Release);
}

/// Initialises the card; with MSI-X on, also gives it its vectors (at the
/// point of initialisation the spec asks) and returns how that went.
fn bring_up(pci: &mut Pci, function: &Function, msix_enabled: bool) -> Option<(Nic, Option<Result<(), VectorError>>)> {
    // SAFETY: the legacy transport uses only the ports of this function's I/O
    // BAR 0, which nothing else in Skiff touches.
    let ports = unsafe { CpuPorts::new() };
    let transport = match probe::<KernelHal, _, _>(&mut pci.root, &pci.access, function, ports, msix_enabled) {
        Ok(t) => t,
        Err(e) => {
            log::error!("virtio-net at {}: {e}", function.address);
            return None;
        }
    };
    let kind = transport.kind();
    let (random, source) = entropy::seed();
    let mut vectors = None;
    let access = pci.access.clone();
    let set_vectors = |transport: &mut CardTransport<CpuPorts>| {
        if let (true, CardTransport::Pci(transport)) = (msix_enabled, transport) {
            let queues = [(RX_QUEUE, ENTRY_RX), (TX_QUEUE, ENTRY_TX)];
            vectors = Some(transport.set_msix_vectors::<KernelHal, _>(&access, function, ENTRY_CONFIG, &queues));
        }
    };
    let nic = match Nic::new_sized(CardTransport::Pci(transport), random, queue_size(), set_vectors) {
        Ok(nic) => nic,
        Err(e) => {
            log::error!("virtio-net at {}: {e}", function.address);
            return None;
        }
    };
    log::info!("virtio-net at {} ({kind} transport, {} config access)", function.address, pci.mechanism);
    log_card(&nic, source);
    Some((nic, vectors))
}

/// Logs what the card offered and what was negotiated, its MAC, MTU, link
/// and queues.
pub fn log_card(nic: &Nic, source: skiff_net::seed::SeedSource) {
    log::info!("virtio-net: offered: {}", nic.offered_features());
    log::info!("virtio-net: wanted: {}", NetFeatures::WANTED);
    log::info!("virtio-net: negotiated: {}", nic.features());
    let mac_source =
        if nic.features().contains(NetFeatures::MAC) { "from the device" } else { "random, locally administered" };
    let (rx, tx) = nic.queue_sizes();
    let info = nic.info();
    log::info!(
        "virtio-net: MAC {} ({mac_source}), MTU {}, link {}, queues rx {rx} tx {tx}, checksum offload tx {} rx {}",
        Mac(info.mac),
        info.mtu,
        if nic.link_up() { "up" } else { "down" },
        if info.tx_checksum_offload { "on" } else { "off (software)" },
        if info.rx_checksum_offload { "on" } else { "off (software)" },
    );
    log::debug!("virtio-net: random seed from {source:?}");
}
