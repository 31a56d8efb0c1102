//! The I/O APIC: routes a pin (a global system interrupt, GSI) to a vector
//! on a CPU. Skiff uses it only for a network card without MSI-X, whose INTx
//! line is level-triggered: the handler masks the pin, the main loop
//! acknowledges the card (reading its ISR deasserts the line) and unmasks.
//!
//! Two registers, select then window: every access is a pair, so it happens
//! with interrupts off (the handler runs with them off anyway).
//!
//! Ref: Intel 82093AA I/O APIC datasheet, 3.2 (registers), 3.2.4
//! (redirection table).

use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::interrupts;

use crate::memory;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
/// The bytes to map: IOREGSEL and IOWIN, each a 32-bit register (3.1).
const REGISTER_BYTES: u64 = IOWIN + 0x10;
const REG_VERSION: u32 = 0x01;
/// IOAPICVER bits 23..16: the highest redirection entry, pins minus one (3.2.2).
const VERSION_MAX_ENTRY_SHIFT: u32 = 16;
const VERSION_MAX_ENTRY_MASK: u32 = 0xFF;
const REG_REDIRECTION: u32 = 0x10;
/// Redirection entry bits: level-triggered, masked.
const LEVEL: u32 = 1 << 15;
const MASKED: u32 = 1 << 16;

struct IoApic {
    base: VirtAddr,
    gsi_base: u32,
    pins: u32,
}

static IOAPIC: Once<IoApic> = Once::new();

impl IoApic {
    fn read(&self, register: u32) -> u32 {
        interrupts::without_interrupts(|| {
            // SAFETY: `base` maps the I/O APIC's registers uncached
            // (`init`); a select/window pair with interrupts off.
            unsafe {
                (self.base + IOREGSEL).as_mut_ptr::<u32>().write_volatile(register);
                (self.base + IOWIN).as_ptr::<u32>().read_volatile()
            }
        })
    }

    fn write(&self, register: u32, value: u32) {
        interrupts::without_interrupts(|| {
            // SAFETY: as in `read`.
            unsafe {
                (self.base + IOREGSEL).as_mut_ptr::<u32>().write_volatile(register);
                (self.base + IOWIN).as_mut_ptr::<u32>().write_volatile(value);
            }
        })
    }

    fn pin(&self, gsi: u32) -> Option<u32> {
        gsi.checked_sub(self.gsi_base).filter(|&p| p < self.pins)
    }
}

/// Maps the I/O APIC at `address` serving GSIs from `gsi_base`, all pins masked.
pub fn init(address: u64, gsi_base: u32) -> Result<u32, memory::MemoryError> {
    let base = memory::map_mmio(address, REGISTER_BYTES)?;
    let mut ioapic = IoApic { base, gsi_base, pins: 0 };
    ioapic.pins = ((ioapic.read(REG_VERSION) >> VERSION_MAX_ENTRY_SHIFT) & VERSION_MAX_ENTRY_MASK) + 1;
    for pin in 0..ioapic.pins {
        ioapic.write(REG_REDIRECTION + 2 * pin, MASKED);
    }
    let pins = ioapic.pins;
    IOAPIC.call_once(|| ioapic);
    Ok(pins)
}

/// Routes `gsi` to `vector` on the CPU with APIC id `apic_id`, level-triggered
/// and active-high (how QEMU's ACPI tables describe PCI interrupts), masked.
/// False if the I/O APIC does not serve `gsi`.
pub fn route_level(gsi: u32, vector: u8, apic_id: u8) -> bool {
    let Some(ioapic) = IOAPIC.get() else { return false };
    let Some(pin) = ioapic.pin(gsi) else { return false };
    ioapic.write(REG_REDIRECTION + 2 * pin + 1, u32::from(apic_id) << 24);
    ioapic.write(REG_REDIRECTION + 2 * pin, u32::from(vector) | LEVEL | MASKED);
    true
}

/// Masks or unmasks `gsi`.
pub fn set_masked(gsi: u32, masked: bool) {
    let Some(ioapic) = IOAPIC.get() else { return };
    let Some(pin) = ioapic.pin(gsi) else { return };
    let low = ioapic.read(REG_REDIRECTION + 2 * pin);
    ioapic.write(REG_REDIRECTION + 2 * pin, if masked { low | MASKED } else { low & !MASKED });
}

/// Whether `gsi` is masked (`None` if no I/O APIC serves it).
#[cfg(feature = "ktest")]
pub fn is_masked(gsi: u32) -> Option<bool> {
    let ioapic = IOAPIC.get()?;
    let pin = ioapic.pin(gsi)?;
    Some(ioapic.read(REG_REDIRECTION + 2 * pin) & MASKED != 0)
}
