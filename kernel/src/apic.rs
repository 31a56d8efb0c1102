//! The local APIC: interrupt acknowledgement and the timer.
//!
//! Skiff uses x2APIC (registers as MSRs) where the CPU has it, and xAPIC
//! (registers in a 4 KiB MMIO page) otherwise. The legacy 8259 PICs are
//! remapped out of the exception range and masked: every interrupt Skiff
//! takes comes through the local APIC.

use core::time::Duration;

use core::sync::atomic::{AtomicBool, Ordering};

use raw_cpuid::CpuId;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use crate::interrupts::{self, PIC_VECTOR_BASE, SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::{clock, memory};

/// IA32_APIC_BASE: the APIC's physical base address and enable bits.
const IA32_APIC_BASE: u32 = 0x1B;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const APIC_BASE_ADDR_MASK: u64 = 0xF_FFFF_F000;
/// x2APIC register `r` (xAPIC offset `r << 4`) is MSR `0x800 + r`.
const X2APIC_MSR_BASE: u32 = 0x800;

/// Register offsets in the xAPIC page (Intel SDM vol. 3, table 11-1).
mod reg {
    pub const ID: u32 = 0x20;
    pub const VERSION: u32 = 0x30;
    pub const EOI: u32 = 0xB0;
    pub const SPURIOUS: u32 = 0xF0;
    pub const LVT_TIMER: u32 = 0x320;
    pub const TIMER_INITIAL: u32 = 0x380;
    pub const TIMER_CURRENT: u32 = 0x390;
    pub const TIMER_DIVIDE: u32 = 0x3E0;
}
const SPURIOUS_APIC_ENABLE: u32 = 1 << 8;
/// The version register's bits 7..0: the version (SDM vol. 3, 11.4.8).
const VERSION_MASK: u32 = 0xFF;
const LVT_MASKED: u32 = 1 << 16;
/// Divide configuration value for "divide by 16".
const TIMER_DIVIDE_BY_16: u32 = 0b0011;
/// How long the timer is measured against the TSC at boot: at divide-by-16
/// the timer counts tens of MHz, so 2 ms is over 10^5 counts (a 10^-5
/// quantum), far finer than any timeout needs.
const TIMER_CALIBRATION: Duration = Duration::from_millis(2);
/// How many times it is measured; the highest result is kept (see
/// `LocalApic::measure_timer_hz`).
const TIMER_CALIBRATION_RUNS: usize = 3;

enum Registers {
    X2Apic,
    XApic(VirtAddr),
}

struct LocalApic {
    regs: Registers,
    /// Timer ticks per second at divide-by-16.
    timer_hz: u64,
}

static APIC: Once<LocalApic> = Once::new();

impl LocalApic {
    /// The timer's rate, from one count-down against the TSC. The TSC
    /// interval brackets the timer's (read before the start, after the
    /// read-back), so a host that deschedules the vCPU at either end can
    /// only make the result lower, never higher; the highest of a few runs
    /// is then the closest. Counting the TSC inside the window only, a pause
    /// outside it once made a boot's rate 2.2 times too high, and every
    /// sleep 2.2 times too long.
    fn measure_timer_hz(&self) -> u64 {
        let start = clock::rdtsc();
        self.write(reg::TIMER_INITIAL, u32::MAX);
        clock::busy_wait(TIMER_CALIBRATION);
        let counted = u32::MAX - self.read(reg::TIMER_CURRENT);
        let took = clock::since(start);
        self.write(reg::TIMER_INITIAL, 0);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1);
        u64::from(counted).saturating_mul(1_000_000_000) / nanos
    }

    fn read(&self, offset: u32) -> u32 {
        match self.regs {
            // SAFETY: x2APIC mode is enabled and `offset` names an APIC
            // register, so the MSR exists; reading it has no side effects.
            Registers::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + (offset >> 4)).read() as u32 },
            // SAFETY: `base` maps the APIC's register page uncached, and
            // `offset` is a register inside it; registers are 32-bit aligned.
            Registers::XApic(base) => unsafe { (base + u64::from(offset)).as_ptr::<u32>().read_volatile() },
        }
    }

    /// The APIC id: the whole register in x2APIC mode, its top byte in xAPIC mode.
    fn id(&self) -> u8 {
        match self.regs {
            Registers::X2Apic => self.read(reg::ID) as u8,
            Registers::XApic(_) => (self.read(reg::ID) >> 24) as u8,
        }
    }

    fn write(&self, offset: u32, value: u32) {
        match self.regs {
            // SAFETY: as in `read`; the callers write values the SDM defines.
            Registers::X2Apic => unsafe { Msr::new(X2APIC_MSR_BASE + (offset >> 4)).write(u64::from(value)) },
            // SAFETY: as in `read`.
            Registers::XApic(base) => unsafe { (base + u64::from(offset)).as_mut_ptr::<u32>().write_volatile(value) },
        }
    }
}

/// Errors bringing up the APIC.
#[derive(Debug)]
pub enum ApicError {
    /// CPUID says there is no local APIC.
    NotPresent,
    /// Its register page could not be mapped.
    Map(memory::MemoryError),
    /// The timer did not count during calibration.
    TimerStopped,
}

impl core::fmt::Display for ApicError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            ApicError::NotPresent => write!(f, "the CPU has no local APIC"),
            ApicError::Map(e) => write!(f, "cannot map the APIC registers: {e}"),
            ApicError::TimerStopped => write!(f, "the APIC timer did not count during calibration"),
        }
    }
}

/// Masks the PICs, enables the local APIC and calibrates its timer.
pub fn init() -> Result<(), ApicError> {
    disable_legacy_pics();
    let features = CpuId::new().get_feature_info().ok_or(ApicError::NotPresent)?;
    if !features.has_apic() {
        return Err(ApicError::NotPresent);
    }
    let mut base_msr = Msr::new(IA32_APIC_BASE);
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC (checked above).
    let base = unsafe { base_msr.read() };
    let regs = if features.has_x2apic() {
        // SAFETY: the CPU supports x2APIC; enabling it switches register
        // access to MSRs, which is all this module uses from now on.
        unsafe { base_msr.write(base | APIC_BASE_ENABLE | APIC_BASE_X2APIC) };
        Registers::X2Apic
    } else {
        // SAFETY: as above; this keeps the base address and sets the global
        // enable bit, which firmware normally already set.
        unsafe { base_msr.write(base | APIC_BASE_ENABLE) };
        Registers::XApic(memory::map_mmio(base & APIC_BASE_ADDR_MASK, 4096).map_err(ApicError::Map)?)
    };
    let mut apic = LocalApic { regs, timer_hz: 0 };
    // Mask the timer before software-enabling the APIC, so nothing fires early.
    apic.write(reg::LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    apic.write(reg::SPURIOUS, SPURIOUS_APIC_ENABLE | u32::from(SPURIOUS_VECTOR));
    apic.write(reg::TIMER_DIVIDE, TIMER_DIVIDE_BY_16);

    apic.timer_hz = (0..TIMER_CALIBRATION_RUNS).map(|_| apic.measure_timer_hz()).max().unwrap_or(0);
    if apic.timer_hz == 0 {
        return Err(ApicError::TimerStopped);
    }

    let id = apic.id();
    log::info!(
        "local APIC: {} mode, id {id}, version {:#x}, timer {}.{:03} MHz (÷16), tsc-deadline: {}; 8259 PICs masked",
        if matches!(apic.regs, Registers::X2Apic) { "x2APIC" } else { "xAPIC" },
        apic.read(reg::VERSION) & VERSION_MASK,
        apic.timer_hz / 1_000_000,
        apic.timer_hz / 1_000 % 1_000,
        features.has_tsc_deadline(),
    );
    APIC.call_once(|| apic);
    interrupts::register(TIMER_VECTOR, on_timer);
    Ok(())
}

/// The timer's rate measured at boot, and one measured now (for the
/// in-kernel tests); zero before `init`.
#[cfg(feature = "ktest")]
pub fn timer_hz() -> (u64, u64) {
    APIC.get().map_or((0, 0), |apic| (apic.timer_hz, apic.measure_timer_hz()))
}

/// This CPU's local APIC id (the destination for MSI-X messages).
pub fn id() -> u8 {
    APIC.get().map_or(0, LocalApic::id)
}

/// Signals the end of an interrupt to the local APIC. Called by the dispatcher.
pub fn end_of_interrupt() {
    if let Some(apic) = APIC.get() {
        apic.write(reg::EOI, 0);
    }
}

/// Set by the timer interrupt, cleared by whoever waits for it.
pub static TIMER_EXPIRED: AtomicBool = AtomicBool::new(false);

fn on_timer(_vector: u8) {
    TIMER_EXPIRED.store(true, Ordering::Release);
}

/// Arms the timer to raise `TIMER_VECTOR` once, after `delay` (rounded up to a
/// tick, capped at the counter's range).
pub fn arm_timer(delay: Duration) {
    if let Some(apic) = APIC.get() {
        let ticks = (delay.as_nanos() * u128::from(apic.timer_hz)).div_ceil(1_000_000_000);
        let ticks = ticks.clamp(1, u128::from(u32::MAX)) as u32;
        apic.write(reg::LVT_TIMER, u32::from(TIMER_VECTOR)); // one-shot, unmasked
        apic.write(reg::TIMER_INITIAL, ticks);
    }
}

/// Remaps the 8259 PICs to `PIC_VECTOR_BASE..+16` and masks all their lines.
/// Remapping matters even when masked: a spurious IRQ 7 would otherwise
/// arrive on vector 15, in the exception range.
fn disable_legacy_pics() {
    const PIC1_CMD: u16 = 0x20;
    const PIC1_DATA: u16 = 0x21;
    const PIC2_CMD: u16 = 0xA0;
    const PIC2_DATA: u16 = 0xA1;
    /// ICW1: initialise, ICW4 follows.
    const ICW1_INIT: u8 = 0x11;
    /// ICW4: 8086 mode.
    const ICW4_8086: u8 = 0x01;
    let steps: [(u16, u8); 10] = [
        (PIC1_CMD, ICW1_INIT),
        (PIC2_CMD, ICW1_INIT),
        (PIC1_DATA, PIC_VECTOR_BASE),     // ICW2: vector base
        (PIC2_DATA, PIC_VECTOR_BASE + 8), // ICW2
        (PIC1_DATA, 1 << 2),              // ICW3: secondary on IRQ 2
        (PIC2_DATA, 2),                   // ICW3: cascade identity
        (PIC1_DATA, ICW4_8086),
        (PIC2_DATA, ICW4_8086),
        (PIC1_DATA, 0xFF), // mask all
        (PIC2_DATA, 0xFF),
    ];
    for (port, value) in steps {
        // SAFETY: the 8259 ports are the PC's standard PICs, programmed here
        // with the documented init sequence and nowhere else.
        unsafe { Port::<u8>::new(port).write(value) };
    }
}
