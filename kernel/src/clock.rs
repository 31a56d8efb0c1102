//! The monotonic clock: the CPU's time-stamp counter, at the rate CPUID
//! leaves 0x15/0x16 give where the CPU offers them (`skiff_drivers::tsc`),
//! else calibrated against the legacy PIT (whose input clock is a fixed
//! 1.193182 MHz on every PC; `skiff_drivers::pit`). Both are tested on the host.
//!
//! `now()` is the time since calibration. Before `init` it reads zero, which
//! the first log lines show.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use skiff_drivers::pit::{CALIBRATION_MS, Pit};
use skiff_drivers::ports::CpuPorts;
use skiff_drivers::tsc::{CpuidClock, Source};

/// Runs; the median is kept (see `skiff_drivers::pit`).
pub const CALIBRATION_RUNS: usize = skiff_drivers::pit::CALIBRATION_RUNS;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_INIT: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The calibrated TSC frequency in Hz (0 before `init`).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Time since `init`.
pub fn now() -> Duration {
    between(TSC_AT_INIT.load(Ordering::Relaxed), rdtsc())
}

/// Time since the TSC read `tsc` (zero before `init`, or for a later `tsc`).
pub fn since(tsc: u64) -> Duration {
    between(tsc, rdtsc())
}

/// Time between two TSC reads (zero before `init`, or if `later` is not).
fn between(earlier: u64, later: u64) -> Duration {
    let hz = tsc_hz();
    if hz == 0 {
        return Duration::ZERO;
    }
    let ticks = later.saturating_sub(earlier);
    Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64)
}

/// How long bring-up ran from the TSC read `entry` until the clock started
/// (`init`; zero for an `entry` after that): from the TSC read `init` kept,
/// so it is the same whenever asked. (Subtracting `now()` from
/// `since(entry)` read the TSC twice: a vCPU descheduled between the reads
/// for longer than this made the result negative, and a panic.)
pub fn before_start(entry: u64) -> Duration {
    between(entry, TSC_AT_INIT.load(Ordering::Relaxed))
}

/// The TSC when the clock started (`init`).
#[cfg(feature = "ktest")]
pub fn started_tsc() -> u64 {
    TSC_AT_INIT.load(Ordering::Relaxed)
}

/// Converts a duration to TSC ticks.
pub fn ticks_for(d: Duration) -> u64 {
    (d.as_nanos() * u128::from(tsc_hz()) / 1_000_000_000) as u64
}

/// Spins for `d`.
pub fn busy_wait(d: Duration) {
    let end = rdtsc() + ticks_for(d);
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// The PIT, through the CPU's ports.
fn pit() -> Pit<CpuPorts> {
    // SAFETY: the PIT (0x42, 0x43) and port B (0x61) are standard PC devices
    // that nothing else in Skiff uses; channel 2 only drives the (disabled) speaker.
    Pit::new(unsafe { CpuPorts::new() })
}

/// What CPUID leaves 0x15 and 0x16 say about the clocks (zeros for a leaf
/// the CPU does not have: raw-cpuid reads a leaf only if CPUID 0 lists it).
fn cpuid_clock() -> CpuidClock {
    let cpuid = raw_cpuid::CpuId::new();
    let leaf15 = cpuid.get_tsc_info().map_or([0; 3], |t| [t.denominator(), t.numerator(), t.nominal_frequency()]);
    let leaf16 = cpuid.get_processor_frequency_info().map_or(0, |f| u32::from(f.processor_base_frequency()));
    log::debug!("CPUID: leaf 0x15 (eax, ebx, ecx) {leaf15:?}, leaf 0x16 base {leaf16} MHz");
    CpuidClock::from_registers(leaf15, leaf16)
}

/// Finds the TSC frequency (CPUID, else the PIT) and starts the clock.
pub fn init() {
    let invariant = raw_cpuid::CpuId::new().get_advanced_power_mgmt_info().is_some_and(|i| i.has_invariant_tsc());
    let mhz = |hz: u64| (hz / 1_000_000, hz / 1_000 % 1_000);
    let hz = match cpuid_clock().tsc_hz() {
        Some((hz, source)) => {
            let how = match source {
                Source::Crystal => "CPUID 0x15: crystal × ratio",
                Source::BaseFrequency => "CPUID 0x15 ratio, 0x16 base frequency",
            };
            let (whole, frac) = mhz(hz);
            log::info!("TSC at {whole}.{frac:03} MHz ({how}), invariant: {invariant}");
            hz
        }
        None => {
            // Without a working clock every timer is wrong: fail the boot (the panic
            // handler prints this and exits QEMU with a failure code).
            let calibration = match pit().calibrate_tsc(&mut rdtsc) {
                Ok(calibration) => calibration,
                Err(e) => panic!("TSC calibration failed: {e}"),
            };
            let (whole, frac) = mhz(calibration.hz);
            log::info!(
                "TSC at {whole}.{frac:03} MHz (PIT, median of {} runs of {CALIBRATION_MS} ms, {} of {} runs clean, \
                 spread {} kHz), invariant: {invariant}",
                CALIBRATION_RUNS.min(calibration.runs),
                calibration.clean,
                calibration.runs,
                (calibration.max - calibration.min) / 1_000
            );
            calibration.hz
        }
    };
    TSC_AT_INIT.store(rdtsc(), Ordering::Relaxed);
    TSC_HZ.store(hz, Ordering::Relaxed);
}

/// One calibration run: the TSC rate measured while PIT channel 2 counts
/// down `CALIBRATION_MS` (an error if the count never ends).
#[cfg(feature = "ktest")]
pub fn measure_tsc_hz() -> Result<u64, skiff_drivers::pit::CalibrationError> {
    pit().measure_tsc_hz(&mut rdtsc)
}
