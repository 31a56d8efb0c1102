//! Sharing level-triggered INTx lines: when to unmask a pin that fired.
//!
//! Without MSI-X, a PCI function interrupts on a level-triggered line that
//! other functions may share, reaching the CPU through an interrupt
//! controller pin (and Skiff, unable to read the ACPI `_PRT`, listens on
//! every pin the card's line could be on). The pin's handler masks it; the
//! main loop reads the card's ISR, which deasserts the card's line, and then
//! unmasks. A pin that fired while the card had not interrupted is someone
//! else's interrupt: it is unmasked all the same (the card may share it,
//! and its next interrupt must get through), unless it keeps firing with
//! nobody claiming it. Linux does the same for shared lines (the spurious
//! IRQ detector in `kernel/irq/spurious.c`, "nobody cared"): a line that
//! fires unhandled again and again is disabled, and polled later. Here a
//! pin that fires unclaimed [`STORM_LIMIT`] times in a row is parked
//! (left masked), and tried again every [`STORM_RETRY`]; a claimed fire
//! ends the count.
//!
//! This is the decision alone, with no hardware, so that the host tests it;
//! the kernel masks and unmasks the pins.

use core::time::Duration;

/// Pins tracked; pin `i` is bit `i` of a [`Pins`] set.
pub const MAX_PINS: usize = 8;
/// Consecutive fires of a pin, none claimed by the card, that make a storm.
/// Skiff drives only the card, so a foreign device's level-triggered line
/// stays asserted until its own (absent) driver services it: every unmask
/// fires again at once. A handful of unclaimed fires is normal (a fire that
/// raced with the previous ISR read); a hundred in a row is a stuck line.
pub const STORM_LIMIT: u32 = 100;
/// How long a stormy pin stays masked before it is tried again (Linux polls
/// its disabled spurious lines every 100 ms; Skiff's main loop wakes at
/// least every second, and a try that finds the storm still going costs
/// one interrupt).
pub const STORM_RETRY: Duration = Duration::from_secs(1);

/// A set of pins: bit `i` is pin `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pins(pub u8);

impl Pins {
    /// No pins.
    pub const NONE: Pins = Pins(0);

    /// Whether pin `i` is in the set.
    pub fn contains(self, i: usize) -> bool {
        i < MAX_PINS && self.0 & (1 << i) != 0
    }

    /// The pins in the set, in order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_PINS).filter(move |&i| self.contains(i))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn with(self, i: usize) -> Pins {
        Pins(self.0 | (1 << i))
    }
}

/// What to do after the card's ISR was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Serviced {
    /// Pins to unmask.
    pub unmask: Pins,
    /// Pins parked for a storm for the first time: log them (once).
    pub newly_parked: Pins,
}

/// Per-pin counts of unclaimed fires, and which pins are parked.
#[derive(Clone, Debug, Default)]
pub struct SharedLines {
    unclaimed: [u32; MAX_PINS],
    /// When each parked pin was parked; `None` for pins not parked.
    parked_at: [Option<Duration>; MAX_PINS],
    /// Pins whose storm was logged already.
    logged: Pins,
}

impl SharedLines {
    /// No fires seen yet.
    pub const fn new() -> Self {
        SharedLines { unclaimed: [0; MAX_PINS], parked_at: [None; MAX_PINS], logged: Pins::NONE }
    }

    /// After the pins in `fired` fired (each masked by its handler) and the
    /// card's ISR was read: `card_claimed` is whether the card had
    /// interrupted. Returns the pins to unmask: all of them if the card
    /// claimed (any of them may be its own), otherwise all but those whose
    /// run of unclaimed fires reached [`STORM_LIMIT`], which are parked at `now`.
    pub fn serviced(&mut self, fired: Pins, card_claimed: bool, now: Duration) -> Serviced {
        let mut result = Serviced::default();
        for i in fired.iter() {
            if card_claimed {
                self.unclaimed[i] = 0;
                self.parked_at[i] = None;
                result.unmask = result.unmask.with(i);
                continue;
            }
            self.unclaimed[i] = self.unclaimed[i].saturating_add(1);
            if self.unclaimed[i] >= STORM_LIMIT {
                self.parked_at[i] = Some(now);
                if !self.logged.contains(i) {
                    self.logged = self.logged.with(i);
                    result.newly_parked = result.newly_parked.with(i);
                }
            } else {
                result.unmask = result.unmask.with(i);
            }
        }
        result
    }

    /// Pins parked at least [`STORM_RETRY`] before `now`: unmask them for
    /// another try. Their count stays at the limit, so one more unclaimed
    /// fire parks them again; a claimed one clears it.
    pub fn retry_parked(&mut self, now: Duration) -> Pins {
        let mut due = Pins::NONE;
        for (i, parked_at) in self.parked_at.iter_mut().enumerate() {
            if parked_at.is_some_and(|at| now.saturating_sub(at) >= STORM_RETRY) {
                *parked_at = None;
                due = due.with(i);
            }
        }
        due
    }

    /// Pins parked now (masked for a storm): while any is, the card's
    /// interrupts may be lost, and the main loop should poll.
    pub fn parked(&self) -> Pins {
        self.parked_at.iter().enumerate().filter(|(_, at)| at.is_some()).fold(Pins::NONE, |set, (i, _)| set.with(i))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const T0: Duration = Duration::from_secs(5);

    #[test]
    fn a_pin_that_fires_while_the_card_is_quiet_is_unmasked_again() {
        // Another device on the card's pin interrupts once; the card had not.
        let mut lines = SharedLines::new();
        let serviced = lines.serviced(Pins(0b100), false, T0);
        assert_eq!(serviced.unmask, Pins(0b100), "the card's interrupts on this pin would be lost");
        // The card's next interrupt on it gets through and is claimed.
        assert_eq!(lines.serviced(Pins(0b100), true, T0).unmask, Pins(0b100));
        assert!(lines.parked().is_empty());
    }

    #[test]
    fn pins_the_card_claims_are_unmasked_whatever_their_history() {
        let mut lines = SharedLines::new();
        for _ in 0..STORM_LIMIT - 1 {
            lines.serviced(Pins(0b11), false, T0);
        }
        // A claim on both ends both runs: the count starts again.
        assert_eq!(lines.serviced(Pins(0b11), true, T0).unmask, Pins(0b11));
        for _ in 0..STORM_LIMIT - 1 {
            assert_eq!(lines.serviced(Pins(0b01), false, T0).unmask, Pins(0b01));
        }
    }

    #[test]
    fn a_storm_parks_the_pin_logs_once_and_is_retried_later() {
        let mut lines = SharedLines::new();
        for n in 1..STORM_LIMIT {
            let s = lines.serviced(Pins(0b1000), false, T0);
            assert_eq!(s.unmask, Pins(0b1000), "fire {n}");
        }
        let s = lines.serviced(Pins(0b1000), false, T0);
        assert_eq!(s, Serviced { unmask: Pins::NONE, newly_parked: Pins(0b1000) });
        assert_eq!(lines.parked(), Pins(0b1000));
        // Not before its time.
        assert_eq!(lines.retry_parked(T0 + STORM_RETRY / 2), Pins::NONE);
        assert_eq!(lines.retry_parked(T0 + STORM_RETRY), Pins(0b1000));
        assert!(lines.parked().is_empty());
        // Still storming: parked again at once, not logged again.
        let later = T0 + STORM_RETRY;
        assert_eq!(lines.serviced(Pins(0b1000), false, later), Serviced::default());
        assert_eq!(lines.parked(), Pins(0b1000));
        assert_eq!(lines.retry_parked(later + STORM_RETRY), Pins(0b1000));
        // The storm is over and the card interrupts on the pin: back to normal.
        assert_eq!(lines.serviced(Pins(0b1000), true, later + STORM_RETRY).unmask, Pins(0b1000));
        assert_eq!(lines.serviced(Pins(0b1000), false, later + STORM_RETRY).unmask, Pins(0b1000));
    }

    #[test]
    fn a_storm_on_one_pin_leaves_the_others_alone() {
        let mut lines = SharedLines::new();
        for _ in 0..STORM_LIMIT {
            lines.serviced(Pins(0b1), false, T0);
        }
        assert_eq!(lines.parked(), Pins(0b1));
        assert_eq!(lines.serviced(Pins(0b10), false, T0).unmask, Pins(0b10));
        assert_eq!(lines.serviced(Pins(0b10), true, T0).unmask, Pins(0b10));
        assert_eq!(lines.parked(), Pins(0b1));
    }
}
