//! The legacy PIT (Intel 8254) as a stopwatch for the CPU's time-stamp
//! counter: its input clock is a fixed 1.193182 MHz on every PC.
//!
//! Channel 2 is gated by bit 0 of the PC's "port B" (0x61), and its output
//! (OUT2) reads back in bit 5, so a one-shot count can be started and
//! watched without interrupts. The TSC is read through a closure, so the
//! whole calibration runs on the host against a fake PIT.
//!
//! Nothing here trusts the hardware: every wait is bounded (by TSC cycles,
//! and by polls in case the TSC does not move either), and a rate outside
//! what any x86-64 CPU runs at is an error, not a clock that makes every
//! timer wrong.
//!
//! Ref: Intel 82C54 CHMOS Programmable Interval Timer datasheet (control
//! word, mode 0); IBM PC/AT Technical Reference (port B).

use core::fmt;

use crate::ports::IoPorts;

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Each calibration run waits this long on PIT channel 2: 2386 PIT ticks,
/// so the tick the count starts on and a poll of port B (a microsecond or
/// so) are each well under 0.1 % of the window, and three runs take 6 ms.
pub const CALIBRATION_MS: u64 = 2;
/// Clean runs whose median is kept (see [`Pit::calibrate_tsc`]).
pub const CALIBRATION_RUNS: usize = 3;
/// At most this many runs (32 ms) are made to find them.
pub const MAX_RUNS: usize = 16;
/// A run is clean when its ends are known to 1/CLEAN_RATIO of its length
/// (1 %, 20 µs; a poll of port B takes about a microsecond).
pub const CLEAN_RATIO: u64 = 100;

/// PIT channel 0's data port (read back when there is no port B).
pub const PIT_CHANNEL0: u16 = 0x40;
/// Channel 0, low byte then high byte, mode 0, binary: counts down from
/// what is written, and on past zero.
pub const PIT_CH0_ONESHOT: u8 = 0b0011_0000;
/// Latches channel 0's count for reading (counter latch command, channel 0).
pub const PIT_CH0_LATCH: u8 = 0b0000_0000;
/// The largest reload value, written to start a run: its window
/// (`CALIBRATION_COUNT` ticks) never sees the count wrap.
const FULL_COUNT: u16 = 0xFFFF;
/// A port that nothing decodes reads all ones; a real port B never does
/// (bits 6 and 7 are error flags).
const NO_PORT: u8 = 0xFF;
/// PIT ports: channel 2's data port, the mode/command port, and the PC's
/// "port B" (bit 0: channel 2 gate, bit 1: speaker enable, bit 5: channel 2 output).
pub const PIT_CHANNEL2: u16 = 0x42;
/// The PIT's mode/command port.
pub const PIT_COMMAND: u16 = 0x43;
/// The PC's port B.
pub const PORT_B: u16 = 0x61;
/// Port B: channel 2's gate, the speaker, channel 2's output.
const PORT_B_GATE2: u8 = 1 << 0;
const PORT_B_SPEAKER: u8 = 1 << 1;
const PORT_B_OUT2: u8 = 1 << 5;
/// Channel 2, low byte then high byte, mode 0 (interrupt on terminal count), binary.
pub const PIT_CH2_ONESHOT: u8 = 0b1011_0000;
/// The count of one run: `CALIBRATION_MS` of PIT ticks.
pub const CALIBRATION_COUNT: u64 = PIT_HZ * CALIBRATION_MS / 1000;

/// The slowest TSC accepted: slower than any x86-64 CPU's (the first ran at
/// 800 MHz; a TSC counts at the nominal rate whatever the power state).
pub const MIN_TSC_HZ: u64 = 100_000_000;
/// The fastest TSC accepted: well above any CPU's nominal clock (~6 GHz today).
pub const MAX_TSC_HZ: u64 = 20_000_000_000;
/// A run gives up once the TSC has advanced this far without the count
/// ending: ten windows at the fastest plausible rate (a second at 2 GHz).
pub const MAX_WAIT_CYCLES: u64 = MAX_TSC_HZ / 1000 * CALIBRATION_MS * 10;
/// ...or after this many polls of port B, for a TSC that does not move
/// either. A poll is a port read (about a microsecond on hardware, a VM exit
/// in a guest), so this is seconds, against a window of milliseconds.
pub const MAX_POLLS: u64 = 10_000_000;

/// Why the TSC could not be calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationError {
    /// Channel 2's count never ended: no PIT, or one that does not count.
    PitStuck {
        /// TSC cycles waited.
        cycles: u64,
        /// Polls of port B.
        polls: u64,
    },
    /// The measured rate is outside `MIN_TSC_HZ..=MAX_TSC_HZ`.
    Implausible {
        /// The median run, in Hz.
        hz: u64,
    },
}

impl fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CalibrationError::PitStuck { cycles, polls } => write!(
                f,
                "PIT channel 2 did not count down {CALIBRATION_MS} ms in {cycles} TSC cycles and {polls} polls"
            ),
            CalibrationError::Implausible { hz } => {
                write!(f, "TSC measured at {hz} Hz, outside {MIN_TSC_HZ}..={MAX_TSC_HZ} Hz (is there a PIT?)")
            }
        }
    }
}

/// The TSC rate from up to [`CALIBRATION_RUNS`] clean runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// The median run, in Hz.
    pub hz: u64,
    /// The slowest and fastest runs.
    pub min: u64,
    /// See `min`.
    pub max: u64,
    /// Runs made, and how many of them were clean.
    pub runs: usize,
    /// See `runs`.
    pub clean: usize,
}

/// PIT channel 2 and port B.
pub struct Pit<P: IoPorts> {
    ports: P,
}

impl<P: IoPorts> Pit<P> {
    /// The PIT behind `ports` (which must reach ports 0x42, 0x43 and 0x61).
    pub fn new(ports: P) -> Self {
        Pit { ports }
    }

    /// One calibration run: the TSC rate measured (with `rdtsc`) while
    /// channel 2 counts down [`CALIBRATION_MS`]. Not checked for
    /// plausibility (see [`Pit::calibrate_tsc`]).
    pub fn measure_tsc_hz(&mut self, rdtsc: &mut impl FnMut() -> u64) -> Result<u64, CalibrationError> {
        self.run(rdtsc).map(|run| run.hz)
    }

    /// One run, with how sure it is of its ends: on channel 2, or, on a
    /// machine without port B (QEMU's `microvm`), by reading channel 0 back.
    fn run(&mut self, rdtsc: &mut impl FnMut() -> u64) -> Result<Run, CalibrationError> {
        if self.ports.read8(PORT_B) == NO_PORT { self.run_readback(rdtsc) } else { self.run_gate(rdtsc) }
    }

    /// Channel 0's count, latched, with the TSC read just before and after.
    fn sample(&mut self, rdtsc: &mut impl FnMut() -> u64) -> (u64, u64, u64) {
        let before = rdtsc();
        self.ports.write8(PIT_COMMAND, PIT_CH0_LATCH);
        let low = self.ports.read8(PIT_CHANNEL0);
        let high = self.ports.read8(PIT_CHANNEL0);
        (u64::from(u16::from_le_bytes([low, high])), before, rdtsc())
    }

    /// A run on channel 0: a full count started, its value read back (each
    /// read bracketed by TSC reads) until `CALIBRATION_COUNT` ticks passed.
    fn run_readback(&mut self, rdtsc: &mut impl FnMut() -> u64) -> Result<Run, CalibrationError> {
        self.ports.write8(PIT_COMMAND, PIT_CH0_ONESHOT);
        // Low byte, then high byte (the access mode PIT_CH0_ONESHOT selects).
        let [low, high] = FULL_COUNT.to_le_bytes();
        self.ports.write8(PIT_CHANNEL0, low);
        self.ports.write8(PIT_CHANNEL0, high);
        let (mut polls, started) = (0, rdtsc());
        let give_up = |polls: u64, now: u64| now.wrapping_sub(started) > MAX_WAIT_CYCLES || polls >= MAX_POLLS;
        // The count is loaded on the PIT clock after the write: wait for it
        // to move, so the first sample is of a running count.
        let first = loop {
            let sample = self.sample(rdtsc);
            polls += 1;
            if sample.0 < u64::from(u16::MAX) {
                break sample;
            }
            if give_up(polls, sample.2) {
                return Err(CalibrationError::PitStuck { cycles: sample.2.saturating_sub(started), polls });
            }
        };
        let last = loop {
            let sample = self.sample(rdtsc);
            polls += 1;
            // Counting down from 0xFFFF: no wrap within a window.
            if first.0.saturating_sub(sample.0) >= CALIBRATION_COUNT {
                break sample;
            }
            if give_up(polls, sample.2) {
                return Err(CalibrationError::PitStuck { cycles: sample.2.saturating_sub(started), polls });
            }
            core::hint::spin_loop();
        };
        let ticks = first.0 - last.0;
        let start = first.1 / 2 + first.2 / 2;
        let cycles = (last.1 / 2 + last.2 / 2).saturating_sub(start);
        let uncertainty = first.2.saturating_sub(first.1) / 2 + last.2.saturating_sub(last.1) / 2;
        let hz = (u128::from(cycles) * u128::from(PIT_HZ) / u128::from(ticks)) as u64;
        Ok(Run { hz, cycles, uncertainty })
    }

    /// A run on channel 2, gated and watched through port B.
    fn run_gate(&mut self, rdtsc: &mut impl FnMut() -> u64) -> Result<Run, CalibrationError> {
        let count = CALIBRATION_COUNT;
        // Gate low (stop), speaker off; program a one-shot count.
        let b = self.ports.read8(PORT_B) & !(PORT_B_GATE2 | PORT_B_SPEAKER);
        self.ports.write8(PORT_B, b);
        self.ports.write8(PIT_COMMAND, PIT_CH2_ONESHOT);
        self.ports.write8(PIT_CHANNEL2, count as u8);
        self.ports.write8(PIT_CHANNEL2, (count >> 8) as u8);
        // Raising the gate starts the count; OUT2 goes high when it reaches
        // zero. Each end is bracketed by two TSC reads: the count started
        // between `start_before` and `start_after`, and ended after the TSC
        // read before the previous poll of port B and before `end`.
        let start_before = rdtsc();
        self.ports.write8(PORT_B, b | PORT_B_GATE2);
        let start_after = rdtsc();
        let mut polls = 0;
        let (mut previous, mut latest) = (start_after, start_after);
        let (ended, end) = loop {
            if self.ports.read8(PORT_B) & PORT_B_OUT2 != 0 {
                break (true, rdtsc());
            }
            polls += 1;
            (previous, latest) = (latest, rdtsc());
            if latest.wrapping_sub(start_after) > MAX_WAIT_CYCLES || polls >= MAX_POLLS {
                break (false, latest);
            }
            core::hint::spin_loop();
        };
        self.ports.write8(PORT_B, b);
        // A TSC that went backwards reads as no time at all (implausible).
        if !ended {
            return Err(CalibrationError::PitStuck { cycles: end.saturating_sub(start_after), polls });
        }
        let end_before = previous;
        // The middles of the two brackets, and half their widths.
        let start = start_before / 2 + start_after / 2;
        let cycles = (end_before / 2 + end / 2).saturating_sub(start);
        let uncertainty = start_after.saturating_sub(start_before) / 2 + end.saturating_sub(end_before) / 2;
        // `count` whole PIT ticks elapsed (not exactly CALIBRATION_MS).
        let hz = (u128::from(cycles) * u128::from(PIT_HZ) / u128::from(count)) as u64;
        Ok(Run { hz, cycles, uncertainty })
    }

    /// The TSC rate: the median of [`CALIBRATION_RUNS`] clean runs, which
    /// must be within `MIN_TSC_HZ..=MAX_TSC_HZ`.
    ///
    /// A run is clean when both its ends are known to within
    /// 1/[`CLEAN_RATIO`] of its length. A host that deschedules the vCPU
    /// between the count's end and the TSC read (or around the start) makes
    /// a run read fast by however long it was away, milliseconds against a
    /// window of a few: such runs are left out, up to [`MAX_RUNS`] in all.
    /// If too few runs are clean by then, the cleanest are used.
    pub fn calibrate_tsc(&mut self, rdtsc: &mut impl FnMut() -> u64) -> Result<Calibration, CalibrationError> {
        let mut runs = [Run::default(); MAX_RUNS];
        let mut done = 0;
        let mut clean = 0;
        while done < MAX_RUNS && clean < CALIBRATION_RUNS {
            let run = self.run(rdtsc)?;
            clean += usize::from(run.is_clean());
            runs[done] = run;
            done += 1;
        }
        // The cleanest first (all the clean ones, if there are enough).
        let runs = &mut runs[..done];
        runs.sort_unstable_by_key(|r| u128::from(r.uncertainty) * u128::from(u64::MAX) / u128::from(r.cycles.max(1)));
        let chosen = &mut runs[..CALIBRATION_RUNS.min(done)];
        chosen.sort_unstable_by_key(|r| r.hz);
        let hz = chosen[chosen.len() / 2].hz;
        if !(MIN_TSC_HZ..=MAX_TSC_HZ).contains(&hz) {
            return Err(CalibrationError::Implausible { hz });
        }
        Ok(Calibration { hz, min: chosen[0].hz, max: chosen[chosen.len() - 1].hz, runs: done, clean })
    }
}

/// One run's result.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    hz: u64,
    /// TSC cycles between the middles of the brackets around the two ends.
    cycles: u64,
    /// Half the two brackets' widths, together: how far off `cycles` can be.
    uncertainty: u64,
}

impl Run {
    fn is_clean(&self) -> bool {
        self.uncertainty.saturating_mul(CLEAN_RATIO) <= self.cycles
    }
}

#[cfg(test)]
mod test;
