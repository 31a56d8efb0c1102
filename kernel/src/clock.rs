//! The monotonic clock: the CPU's time-stamp counter, calibrated against the
//! legacy PIT (whose input clock is a fixed 1.193182 MHz on every PC).
//!
//! `now()` is the time since calibration. Before `init` it reads zero, which
//! the first log lines show.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use x86_64::instructions::port::Port;

/// The PIT's input clock, in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Each calibration run waits this long on PIT channel 2.
const CALIBRATION_MS: u64 = 10;
/// Runs; the median is kept, so one run disturbed by the host does not count.
pub const CALIBRATION_RUNS: usize = 5;

/// PIT ports: channel 2's data port, the mode/command port, and the PC's
/// "port B" (bit 0: channel 2 gate, bit 1: speaker enable, bit 5: channel 2 output).
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
const PORT_B: u16 = 0x61;
/// Channel 2, low byte then high byte, mode 0 (interrupt on terminal count), binary.
const PIT_CH2_ONESHOT: u8 = 0b1011_0000;

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
    let hz = tsc_hz();
    if hz == 0 {
        return Duration::ZERO;
    }
    let ticks = rdtsc().saturating_sub(TSC_AT_INIT.load(Ordering::Relaxed));
    Duration::from_nanos((u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64)
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

/// Measures the TSC frequency and starts the clock.
pub fn init() {
    let mut runs = [0u64; CALIBRATION_RUNS];
    for run in &mut runs {
        *run = measure_tsc_hz();
    }
    runs.sort_unstable();
    let hz = runs[CALIBRATION_RUNS / 2];
    let (min, max) = (runs[0], runs[CALIBRATION_RUNS - 1]);
    TSC_AT_INIT.store(rdtsc(), Ordering::Relaxed);
    TSC_HZ.store(hz, Ordering::Relaxed);
    let invariant = raw_cpuid::CpuId::new().get_advanced_power_mgmt_info().is_some_and(|i| i.has_invariant_tsc());
    log::info!(
        "TSC at {}.{:03} MHz (PIT, {CALIBRATION_RUNS} runs of {CALIBRATION_MS} ms, spread {} kHz), invariant: {invariant}",
        hz / 1_000_000,
        hz / 1_000 % 1_000,
        (max - min) / 1_000
    );
}

/// One calibration run: the TSC rate measured while PIT channel 2 counts down `CALIBRATION_MS`.
pub fn measure_tsc_hz() -> u64 {
    let mut port_b = Port::<u8>::new(PORT_B);
    let mut command = Port::<u8>::new(PIT_COMMAND);
    let mut channel2 = Port::<u8>::new(PIT_CHANNEL2);
    let count = PIT_HZ * CALIBRATION_MS / 1000;
    // SAFETY: the PIT and port B are standard PC devices that nothing else in
    // Skiff uses; channel 2 only drives the (disabled) speaker.
    unsafe {
        // Gate low (stop), speaker off; program a one-shot count.
        let b = port_b.read() & !0b11;
        port_b.write(b);
        command.write(PIT_CH2_ONESHOT);
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        // Raising the gate starts the count; OUT2 goes high when it reaches zero.
        port_b.write(b | 1);
        let start = rdtsc();
        while port_b.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let end = rdtsc();
        port_b.write(b);
        // `count` whole PIT ticks elapsed (not exactly CALIBRATION_MS).
        (end - start) * PIT_HZ / count
    }
}
