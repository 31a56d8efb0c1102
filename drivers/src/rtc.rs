//! The CMOS real-time clock (MC146818-compatible, on every PC and in QEMU):
//! the date and time of day, read once at boot so that HTTP can send `Date`.
//!
//! The clock's registers sit behind an index port and a data port. It
//! ticks once a second, and while it updates (the "update in progress" flag,
//! set up to ~2 ms before) a read can see half of the old time and half of
//! the new: the time is read until two reads in a row agree, a bounded
//! number of times. Its format is BCD or binary and 12- or 24-hour, as
//! status register B says. It keeps only two digits of year: years are
//! taken as 20YY (the century register's place is not standard; ACPI says
//! where, when it says at all).
//!
//! Ref: Motorola MC146818A data sheet; OSDev "CMOS" (register map).

use crate::ports::IoPorts;

/// The index port: which CMOS register the data port reads.
pub const INDEX_PORT: u16 = 0x70;
/// The data port.
pub const DATA_PORT: u16 = 0x71;

/// Register numbers (MC146818A register map).
const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY_OF_MONTH: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const STATUS_A: u8 = 0x0A;
const STATUS_B: u8 = 0x0B;
/// Status A bit 7: an update is in progress; the time registers may be mid-change.
const UPDATE_IN_PROGRESS: u8 = 0x80;
/// Status B bit 1: hours count 0..=23 (else 1..=12 with a PM flag).
const HOURS_24: u8 = 0x02;
/// Status B bit 2: registers hold binary (else BCD).
const BINARY: u8 = 0x04;
/// In 12-hour mode, the hour register's bit 7 marks PM.
const PM: u8 = 0x80;

/// Polls of the update flag before giving up: an update lasts under 2 ms,
/// and a port read takes about a microsecond, so this is ample yet bounded.
const UIP_POLLS: usize = 100_000;
/// Whole reads until two agree: a tick falls between at most one pair.
const READ_ATTEMPTS: usize = 5;
/// The earliest year believed: a clock before this has lost its battery or was never set.
pub const MIN_YEAR: u64 = 2020;
/// The century assumed for the two-digit year.
const CENTURY: u64 = 2000;
/// Seconds in a day.
const DAY: u64 = 86_400;

/// Why the clock gave no time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcError {
    /// The update flag stayed set, or no two reads agreed.
    Unstable,
    /// A register held a value no clock shows (bad BCD, month 13, ...), or
    /// a year before `MIN_YEAR`.
    Absurd,
}

/// The raw time registers, and status B, as read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Raw {
    seconds: u8,
    minutes: u8,
    hours: u8,
    day: u8,
    month: u8,
    year: u8,
    status_b: u8,
}

/// The CMOS clock over its two ports.
pub struct Cmos<P: IoPorts> {
    ports: P,
}

impl<P: IoPorts> Cmos<P> {
    /// The clock behind `ports` (`INDEX_PORT` and `DATA_PORT`).
    pub fn new(ports: P) -> Self {
        Cmos { ports }
    }

    fn read(&mut self, register: u8) -> u8 {
        // Bit 7 of the index port is the NMI mask: left clear (NMIs enabled).
        self.ports.write8(INDEX_PORT, register);
        self.ports.read8(DATA_PORT)
    }

    fn read_raw(&mut self) -> Result<Raw, RtcError> {
        let mut polls = 0;
        while self.read(STATUS_A) & UPDATE_IN_PROGRESS != 0 {
            polls += 1;
            if polls >= UIP_POLLS {
                return Err(RtcError::Unstable);
            }
        }
        Ok(Raw {
            seconds: self.read(SECONDS),
            minutes: self.read(MINUTES),
            hours: self.read(HOURS),
            day: self.read(DAY_OF_MONTH),
            month: self.read(MONTH),
            year: self.read(YEAR),
            status_b: self.read(STATUS_B),
        })
    }

    /// The time now, in seconds since 1970-01-01T00:00:00Z (the clock is
    /// taken to keep UTC, as QEMU's does by default).
    pub fn unix_time(&mut self) -> Result<u64, RtcError> {
        let mut last = self.read_raw()?;
        for _ in 1..READ_ATTEMPTS {
            let next = self.read_raw()?;
            if next == last {
                return decode(next);
            }
            last = next;
        }
        Err(RtcError::Unstable)
    }
}

/// One register's value as a number, in the clock's format.
fn number(value: u8, binary: bool) -> Result<u64, RtcError> {
    if binary {
        return Ok(u64::from(value));
    }
    let (tens, ones) = (value >> 4, value & 0x0F);
    if tens > 9 || ones > 9 {
        return Err(RtcError::Absurd);
    }
    Ok(u64::from(tens * 10 + ones))
}

fn decode(raw: Raw) -> Result<u64, RtcError> {
    let binary = raw.status_b & BINARY != 0;
    let second = number(raw.seconds, binary)?;
    let minute = number(raw.minutes, binary)?;
    let hour = if raw.status_b & HOURS_24 != 0 {
        number(raw.hours, binary)?
    } else {
        // 12-hour: 12 AM is midnight, 12 PM noon.
        let h = number(raw.hours & !PM, binary)?;
        if !(1..=12).contains(&h) {
            return Err(RtcError::Absurd);
        }
        h % 12 + if raw.hours & PM != 0 { 12 } else { 0 }
    };
    let day = number(raw.day, binary)?;
    let month = number(raw.month, binary)?;
    let year = CENTURY + number(raw.year, binary)?;
    let valid = second < 60
        && minute < 60
        && hour < 24
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (MIN_YEAR..CENTURY + 100).contains(&year);
    if !valid {
        return Err(RtcError::Absurd);
    }
    Ok(days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second)
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (year >= 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let leap_days = |y: u64| y / 4 - y / 100 + y / 400; // leap years in 1..=y
    let years = year - 1970;
    let mut days = years * 365 + leap_days(year - 1) - leap_days(1969);
    days += (1..month).map(|m| days_in_month(year, m)).sum::<u64>();
    days + day - 1
}

#[cfg(test)]
mod test {
    use super::*;
    use std::cell::Cell;

    /// A CMOS whose registers the test sets; `ticks` changes the seconds
    /// register after that many reads of it (a tick between two reads), and
    /// `busy` reads of status A see the update flag first.
    struct FakeCmos {
        registers: [u8; 128],
        index: u8,
        busy: Cell<usize>,
        ticks: Cell<Option<usize>>,
    }

    impl FakeCmos {
        fn new(b: u8, time: [u8; 6]) -> Self {
            let mut registers = [0; 128];
            for (r, v) in [SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, YEAR].into_iter().zip(time) {
                registers[r as usize] = v;
            }
            registers[STATUS_B as usize] = b;
            FakeCmos { registers, index: 0, busy: Cell::new(0), ticks: Cell::new(None) }
        }
    }

    impl IoPorts for FakeCmos {
        fn read8(&self, port: u16) -> u8 {
            assert_eq!(port, DATA_PORT);
            match self.index {
                STATUS_A if self.busy.get() > 0 => {
                    self.busy.set(self.busy.get() - 1);
                    UPDATE_IN_PROGRESS
                }
                SECONDS => match self.ticks.get() {
                    Some(0) => {
                        self.ticks.set(None);
                        self.registers[0] + 1
                    }
                    Some(n) => {
                        self.ticks.set(Some(n - 1));
                        self.registers[0]
                    }
                    None => self.registers[0],
                },
                i => self.registers[i as usize],
            }
        }
        fn read16(&self, _: u16) -> u16 {
            unreachable!()
        }
        fn read32(&self, _: u16) -> u32 {
            unreachable!()
        }
        fn write8(&mut self, port: u16, value: u8) {
            assert_eq!(port, INDEX_PORT);
            self.index = value;
        }
        fn write16(&mut self, _: u16, _: u16) {
            unreachable!()
        }
        fn write32(&mut self, _: u16, _: u32) {
            unreachable!()
        }
    }

    /// 2024-02-29 13:45:07 UTC.
    const LEAP_DAY: u64 = 1_709_214_307;

    #[test]
    fn bcd_and_binary_and_both_hour_modes_read_the_same_time() {
        let cases = [
            (HOURS_24, [0x07, 0x45, 0x13, 0x29, 0x02, 0x24]),
            (HOURS_24 | BINARY, [7, 45, 13, 29, 2, 24]),
            (0, [0x07, 0x45, 0x01 | PM, 0x29, 0x02, 0x24]),
            (BINARY, [7, 45, 1 | PM, 29, 2, 24]),
        ];
        for (b, time) in cases {
            assert_eq!(Cmos::new(FakeCmos::new(b, time)).unix_time(), Ok(LEAP_DAY), "status B {b:#x}");
        }
    }

    #[test]
    fn twelve_am_is_midnight_and_twelve_pm_noon() {
        let at = |hour| Cmos::new(FakeCmos::new(0, [0, 0, hour, 0x01, 0x01, 0x25])).unix_time();
        assert_eq!(at(0x12), Ok(1_735_689_600)); // 2025-01-01 00:00
        assert_eq!(at(0x12 | PM), Ok(1_735_689_600 + 12 * 3600));
        assert_eq!(at(0x00), Err(RtcError::Absurd));
    }

    #[test]
    fn a_tick_between_reads_is_read_again() {
        let mut fake = FakeCmos::new(HOURS_24, [0x07, 0x45, 0x13, 0x29, 0x02, 0x24]);
        fake.ticks.set(Some(1)); // the second read sees :08
        fake.registers[0] = 0x07;
        fake.busy.set(3);
        // Reads: :07, :08 (differ), :07, :07 (agree) -- the fake goes back, which is fine for the test.
        assert_eq!(Cmos::new(fake).unix_time(), Ok(LEAP_DAY));
    }

    #[test]
    fn a_clock_forever_updating_gives_up() {
        let fake = FakeCmos::new(HOURS_24, [0; 6]);
        fake.busy.set(usize::MAX);
        assert_eq!(Cmos::new(fake).unix_time(), Err(RtcError::Unstable));
    }

    #[test]
    fn absurd_values_are_refused() {
        for time in [
            [0x60, 0, 0, 0x01, 0x01, 0x25], // second 60
            [0, 0, 0x24, 0x01, 0x01, 0x25], // hour 24
            [0, 0, 0, 0x30, 0x02, 0x24],    // 30 February
            [0, 0, 0, 0x29, 0x02, 0x25],    // 29 February, not a leap year
            [0, 0, 0, 0x01, 0x13, 0x25],    // month 13
            [0, 0, 0, 0x00, 0x01, 0x25],    // day 0
            [0, 0, 0, 0x01, 0x01, 0x1A],    // not BCD
            [0, 0, 0, 0x01, 0x01, 0x19],    // 2019: before MIN_YEAR
            [0xFF; 6],                      // nothing there
        ] {
            assert_eq!(Cmos::new(FakeCmos::new(HOURS_24, time)).unix_time(), Err(RtcError::Absurd), "{time:x?}");
        }
    }

    #[test]
    fn days_since_the_epoch_agree_with_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2099, 12, 31), 47_481);
    }
}
