//! The legacy PIT (Intel 8254) as a stopwatch for the CPU's time-stamp
//! counter: its input clock is a fixed 1.193182 MHz on every PC.
//!
//! Channel 2 is gated by bit 0 of the PC's "port B" (0x61), and its output
//! (OUT2) reads back in bit 5, so a one-shot count can be started and
//! watched without interrupts. The TSC is read through a closure, so the
//! whole calibration runs on the host against a fake PIT.
//!
//! Ref: Intel 82C54 CHMOS Programmable Interval Timer datasheet (control
//! word, mode 0); IBM PC/AT Technical Reference (port B).

use crate::ports::IoPorts;

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Each calibration run waits this long on PIT channel 2.
pub const CALIBRATION_MS: u64 = 10;
/// Runs; the median is kept, so one run disturbed by the host does not count.
pub const CALIBRATION_RUNS: usize = 5;

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

/// The TSC rate from [`CALIBRATION_RUNS`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// The median run, in Hz.
    pub hz: u64,
    /// The slowest and fastest runs.
    pub min: u64,
    /// See `min`.
    pub max: u64,
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
    /// channel 2 counts down [`CALIBRATION_MS`].
    pub fn measure_tsc_hz(&mut self, rdtsc: &mut impl FnMut() -> u64) -> u64 {
        let count = CALIBRATION_COUNT;
        // Gate low (stop), speaker off; program a one-shot count.
        let b = self.ports.read8(PORT_B) & !(PORT_B_GATE2 | PORT_B_SPEAKER);
        self.ports.write8(PORT_B, b);
        self.ports.write8(PIT_COMMAND, PIT_CH2_ONESHOT);
        self.ports.write8(PIT_CHANNEL2, count as u8);
        self.ports.write8(PIT_CHANNEL2, (count >> 8) as u8);
        // Raising the gate starts the count; OUT2 goes high when it reaches zero.
        self.ports.write8(PORT_B, b | PORT_B_GATE2);
        let start = rdtsc();
        while self.ports.read8(PORT_B) & PORT_B_OUT2 == 0 {
            core::hint::spin_loop();
        }
        let end = rdtsc();
        self.ports.write8(PORT_B, b);
        // `count` whole PIT ticks elapsed (not exactly CALIBRATION_MS).
        (end - start) * PIT_HZ / count
    }

    /// [`CALIBRATION_RUNS`] runs; the median is the TSC rate.
    pub fn calibrate_tsc(&mut self, rdtsc: &mut impl FnMut() -> u64) -> Calibration {
        let mut runs = [0u64; CALIBRATION_RUNS];
        for run in &mut runs {
            *run = self.measure_tsc_hz(rdtsc);
        }
        runs.sort_unstable();
        Calibration { hz: runs[CALIBRATION_RUNS / 2], min: runs[0], max: runs[CALIBRATION_RUNS - 1] }
    }
}

#[cfg(test)]
mod test;
