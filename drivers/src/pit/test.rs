//! The calibration against a fake PIT and TSC that share one clock.

use std::cell::Cell;
use std::rc::Rc;

use super::*;

/// TSC cycles each port B poll takes (about a microsecond at 3 GHz).
const POLL_CYCLES: u64 = 3_000;
/// TSC cycles each `rdtsc` takes.
const RDTSC_CYCLES: u64 = 30;
/// Polls after which the fake gives up on the driver ever stopping.
const FAKE_POLL_LIMIT: u64 = 50_000_000;

/// How the fake PIT's channel 2 behaves.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Counts at `PIT_HZ` against a TSC of this many Hz.
    Counts { tsc_hz: u64 },
    /// As `Counts`, but in every other run (the first, the third, ...) the
    /// vCPU is descheduled for `stall_cycles` right after the poll that sees
    /// the count end, before the driver can read the TSC: a busy host.
    StallsAtTheEnd { tsc_hz: u64, stall_cycles: u64 },
    /// Never reaches zero: OUT2 stays low.
    Stuck,
    /// No PIT at all: every port reads all ones (so OUT2 reads high at
    /// once, and channel 0 never moves).
    Absent,
    /// A PIT counting at `PIT_HZ` against a TSC of this many Hz, but no port
    /// B (QEMU's microvm): only channel 0, read back, can measure.
    NoPortB { tsc_hz: u64 },
}

/// Port B and channel 2, on a TSC that the test shares.
struct FakePit {
    tsc: Rc<Cell<u64>>,
    behaviour: Behaviour,
    gate_raised_at: Cell<Option<u64>>,
    command: Cell<Option<u8>>,
    count: Cell<Vec<u8>>,
    polls: Cell<u64>,
    /// Runs started (one-shot commands written), and whether this run's end was seen.
    runs: Cell<u64>,
    ended: Cell<bool>,
    /// Channel 0: the bytes of its count written so far, the TSC its count
    /// was loaded at, and the latched bytes still to be read.
    ch0_written: Cell<Vec<u8>>,
    ch0_loaded_at: Cell<Option<u64>>,
    ch0_latched: Cell<Vec<u8>>,
}

impl FakePit {
    fn new(behaviour: Behaviour) -> (Self, Rc<Cell<u64>>) {
        let tsc = Rc::new(Cell::new(1 << 40));
        let pit = FakePit {
            tsc: tsc.clone(),
            behaviour,
            gate_raised_at: Cell::new(None),
            command: Cell::new(None),
            count: Cell::new(Vec::new()),
            polls: Cell::new(0),
            runs: Cell::new(0),
            ended: Cell::new(false),
            ch0_written: Cell::new(Vec::new()),
            ch0_loaded_at: Cell::new(None),
            ch0_latched: Cell::new(Vec::new()),
        };
        (pit, tsc)
    }

    fn out2(&self) -> bool {
        let Some(start) = self.gate_raised_at.get() else { return false };
        let count = self.count.take();
        self.count.set(count.clone());
        assert_eq!(self.command.get(), Some(PIT_CH2_ONESHOT), "channel 2 not programmed for a one-shot");
        let ticks = match count[..] {
            [low, high] => u64::from(u16::from_le_bytes([low, high])),
            _ => panic!("count written as {count:?}, not low then high byte"),
        };
        match self.behaviour {
            Behaviour::Counts { tsc_hz } | Behaviour::StallsAtTheEnd { tsc_hz, .. } => {
                self.tsc.get() - start >= ticks * tsc_hz / PIT_HZ
            }
            Behaviour::Stuck => false,
            Behaviour::Absent | Behaviour::NoPortB { .. } => true,
        }
    }

    /// Channel 0's count now: counting down from 0xFFFF once loaded, and on
    /// past zero; 0xFFFF before the load.
    fn ch0_count(&self) -> u16 {
        let (Some(loaded), Behaviour::NoPortB { tsc_hz }) = (self.ch0_loaded_at.get(), self.behaviour) else {
            return u16::MAX;
        };
        let ticks = self.tsc.get().saturating_sub(loaded) * PIT_HZ / tsc_hz;
        u16::MAX.wrapping_sub(ticks as u16)
    }
}

impl IoPorts for FakePit {
    fn read8(&self, port: u16) -> u8 {
        if let Behaviour::Absent = self.behaviour {
            return 0xFF;
        }
        if port == PIT_CHANNEL0 {
            let mut latched = self.ch0_latched.take();
            assert!(!latched.is_empty(), "channel 0 read without a latch");
            let byte = latched.remove(0);
            self.ch0_latched.set(latched);
            return byte;
        }
        if let Behaviour::NoPortB { .. } = self.behaviour {
            assert_eq!(port, PORT_B, "only port B and channel 0 are read");
            return 0xFF;
        }
        assert_eq!(port, PORT_B, "only port B is read");
        self.polls.set(self.polls.get() + 1);
        assert!(self.polls.get() < FAKE_POLL_LIMIT, "the driver polls the PIT forever");
        self.tsc.set(self.tsc.get() + POLL_CYCLES);
        let gate = u8::from(self.gate_raised_at.get().is_some());
        let out2 = self.out2();
        if let Behaviour::StallsAtTheEnd { stall_cycles, .. } = self.behaviour
            && out2
            && !self.ended.replace(true)
            && self.runs.get() % 2 == 1
        {
            self.tsc.set(self.tsc.get() + stall_cycles);
        }
        gate | if out2 { PORT_B_OUT2 } else { 0 }
    }
    fn read16(&self, _: u16) -> u16 {
        unreachable!("the PIT has byte ports")
    }
    fn read32(&self, _: u16) -> u32 {
        unreachable!("the PIT has byte ports")
    }
    fn write8(&mut self, port: u16, value: u8) {
        match (port, value) {
            (PIT_COMMAND, PIT_CH0_ONESHOT) => {
                self.ch0_written.set(Vec::new());
                self.ch0_loaded_at.set(None);
                return;
            }
            (PIT_COMMAND, PIT_CH0_LATCH) => {
                self.ch0_latched.set(self.ch0_count().to_le_bytes().to_vec());
                return;
            }
            (PIT_CHANNEL0, _) => {
                let mut written = self.ch0_written.take();
                written.push(value);
                assert!(written.len() <= 2, "channel 0's count written as {written:?}");
                if let (2, Behaviour::NoPortB { tsc_hz }) = (written.len(), self.behaviour) {
                    assert_eq!(written, [0xFF, 0xFF], "channel 0 not given a full count");
                    // Loaded on the next PIT clock.
                    self.ch0_loaded_at.set(Some(self.tsc.get() + tsc_hz / PIT_HZ));
                }
                self.ch0_written.set(written);
                return;
            }
            _ => {}
        }
        match port {
            PORT_B if value & PORT_B_GATE2 != 0 => self.gate_raised_at.set(Some(self.tsc.get())),
            PORT_B => self.gate_raised_at.set(None),
            PIT_COMMAND => {
                self.runs.set(self.runs.get() + 1);
                self.ended.set(false);
                self.command.set(Some(value));
                self.count.set(Vec::new());
            }
            PIT_CHANNEL2 => {
                let mut count = self.count.take();
                count.push(value);
                self.count.set(count);
            }
            _ => panic!("write to port {port:#x}"),
        }
    }
    fn write16(&mut self, _: u16, _: u16) {
        unreachable!("the PIT has byte ports")
    }
    fn write32(&mut self, _: u16, _: u32) {
        unreachable!("the PIT has byte ports")
    }
}

/// A TSC reader on the shared clock.
fn rdtsc(tsc: &Rc<Cell<u64>>) -> impl FnMut() -> u64 {
    let tsc = tsc.clone();
    move || {
        tsc.set(tsc.get() + RDTSC_CYCLES);
        tsc.get()
    }
}

#[test]
fn a_counting_pit_measures_the_tsc_within_a_poll() {
    for tsc_hz in [1_000_000_000, 2_994_000_000, 5_000_000_000] {
        let (pit, tsc) = FakePit::new(Behaviour::Counts { tsc_hz });
        let calibration = Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc)).unwrap();
        // One poll late at most: POLL_CYCLES in a CALIBRATION_MS window.
        let error = POLL_CYCLES * 1000 / CALIBRATION_MS + RDTSC_CYCLES * 1000 / CALIBRATION_MS;
        assert!(calibration.hz.abs_diff(tsc_hz) <= error, "{calibration:?} for {tsc_hz} Hz");
        assert!(calibration.min <= calibration.hz && calibration.hz <= calibration.max);
    }
}

#[test]
fn runs_the_host_disturbed_at_the_end_are_left_out() {
    // Every other run, the vCPU loses 10 ms between the count ending and the
    // TSC read: such a run reads several times too fast. A median over runs
    // that are mostly disturbed would be that wrong too.
    let tsc_hz = 2_300_000_000;
    let stall_cycles = tsc_hz / 100;
    let (pit, tsc) = FakePit::new(Behaviour::StallsAtTheEnd { tsc_hz, stall_cycles });
    let calibration = Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc)).unwrap();
    let error = 2 * (POLL_CYCLES * 1000 / CALIBRATION_MS + RDTSC_CYCLES * 1000 / CALIBRATION_MS);
    assert!(calibration.hz.abs_diff(tsc_hz) <= error, "{calibration:?} for {tsc_hz} Hz");
    assert_eq!((calibration.runs, calibration.clean), (2 * CALIBRATION_RUNS, CALIBRATION_RUNS));
}

#[test]
fn without_port_b_channel_0_read_back_measures_the_tsc() {
    for tsc_hz in [1_000_000_000, 2_300_000_000, 5_000_000_000] {
        let (pit, tsc) = FakePit::new(Behaviour::NoPortB { tsc_hz });
        let calibration = Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc)).unwrap();
        // A PIT tick (the count's resolution) and a few TSC reads.
        let error = tsc_hz / CALIBRATION_COUNT + 10 * RDTSC_CYCLES * 1000 / CALIBRATION_MS;
        assert!(calibration.hz.abs_diff(tsc_hz) <= error, "{calibration:?} for {tsc_hz} Hz");
        assert_eq!(calibration.clean, CALIBRATION_RUNS);
    }
}

#[test]
fn a_pit_that_never_counts_is_an_error_not_a_hang() {
    let (pit, tsc) = FakePit::new(Behaviour::Stuck);
    let result = Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc));
    assert!(matches!(result, Err(CalibrationError::PitStuck { .. })), "{result:?}");
}

#[test]
fn no_pit_at_all_is_an_error_not_a_hang() {
    // Every port reads all ones: no port B, and channel 0 never moves.
    let (pit, tsc) = FakePit::new(Behaviour::Absent);
    let result = Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc));
    assert!(matches!(result, Err(CalibrationError::PitStuck { .. })), "{result:?}");
}

#[test]
fn a_pit_that_never_counts_on_a_tsc_that_never_counts_is_an_error_not_a_hang() {
    let (pit, tsc) = FakePit::new(Behaviour::Stuck);
    let result = Pit::new(pit).calibrate_tsc(&mut || tsc.get() - tsc.get() + 1);
    assert!(matches!(result, Err(CalibrationError::PitStuck { .. })), "{result:?}");
}

#[test]
fn absurd_rates_are_errors() {
    // A TSC far faster than any CPU's, or far slower.
    for behaviour in [Behaviour::Counts { tsc_hz: 50_000_000_000 }, Behaviour::Counts { tsc_hz: 10_000_000 }] {
        let (pit, tsc) = FakePit::new(behaviour);
        let result = Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc));
        assert!(matches!(result, Err(CalibrationError::Implausible { .. })), "{result:?}");
    }
    // The ends of the plausible range are accepted.
    for tsc_hz in [MIN_TSC_HZ + MIN_TSC_HZ / 10, MAX_TSC_HZ - MAX_TSC_HZ / 10] {
        let (pit, tsc) = FakePit::new(Behaviour::Counts { tsc_hz });
        assert!(Pit::new(pit).calibrate_tsc(&mut rdtsc(&tsc)).is_ok(), "{tsc_hz} Hz refused");
    }
}
