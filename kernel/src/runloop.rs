//! The main loop: serve, then sleep until the card or a timer needs us.
//!
//! One turn, NAPI-style:
//! 1. With the card's queue interrupts off, poll the stack (and so the card)
//!    until a poll finds nothing to do.
//! 2. Ask the stack when it next needs attention (TCP retransmission,
//!    keep-alive, TIME-WAIT, DHCP), and arm the local APIC timer for then.
//! 3. Turn queue interrupts back on, then, with interrupts off, look once
//!    more for work that arrived in between — the re-enable race: a buffer
//!    used just before step 3 raised no interrupt — and for the timer having
//!    fired already (a short sleep can end before the halt), and only then
//!    halt, with `sti; hlt` as one step so that no interrupt slips in before
//!    the halt.
//!
//! Handlers only record that work is pending (`nic::WORK_PENDING`,
//! `apic::TIMER_EXPIRED`); the stack runs here, never in a handler.
//!
//! The loop drives any card through `skiff_net::device::NetDevice`: it names
//! no card type, so a new transport or card changes nothing here.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use skiff_net::device::{NetDevice, TxHalf};
use skiff_net::phy::Adapter;
use skiff_net::stack::Stack;
use skiff_net::trace::TARGET as TRACE;
use x86_64::instructions::interrupts;

use crate::nic::{self, Signal};
use crate::qemu::{self, ExitCode};
use crate::{apic, clock, status};

/// The longest sleep, even when the stack asks for none: a cheap heartbeat.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// Without device interrupts, how often the card is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Polls in one turn before the loop goes on to its sleep step (which looks
/// for work again): a bound, so that no card can keep the loop in step 1.
const MAX_POLLS_PER_TURN: usize = 64;
/// The longest wait for the card to take back a transmit buffer when the
/// stack has something to send now and every buffer is with the card: its
/// transmit interrupt normally ends the wait long before.
const TX_FULL_WAIT: Duration = Duration::from_millis(10);

/// How the loop waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Halt until an interrupt (the card's or the timer's).
    Interrupts,
    /// Halt until a short timer: the card has no usable interrupts.
    TimerPoll,
    /// Never halt (for comparison in benchmarks: `net.poll=busy`).
    Busy,
}

impl Mode {
    /// The mode's name in `/stats`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Interrupts => "interrupts",
            Mode::TimerPoll => "timer-poll",
            Mode::Busy => "busy",
        }
    }
}

/// How the loop is asked to run, from the kernel command line.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Never halt (`net.poll=busy`).
    pub busy: bool,
    /// Look for work once more after turning interrupts back on (step 3).
    /// Only `net.race_check=off` turns it off, for the exercise that shows
    /// what it is for (docs/exercises.md): without it, a frame that came in
    /// while interrupts were off waits for the next interrupt or the timer.
    pub race_check: bool,
}

/// Wake-ups by cause, and time spent halted, for `/stats`.
pub static WAKE_DEVICE: AtomicU64 = AtomicU64::new(0);
pub static WAKE_TIMER: AtomicU64 = AtomicU64::new(0);
pub static WAKE_OTHER: AtomicU64 = AtomicU64::new(0);
/// Sleeps skipped because work arrived while interrupts were being re-enabled.
pub static SLEEPS_RACED: AtomicU64 = AtomicU64::new(0);
pub static HALTED_TSC: AtomicU64 = AtomicU64::new(0);
pub static LOOP_START_TSC: AtomicU64 = AtomicU64::new(0);

/// Serves until the card fails (then QEMU exits with `DeviceFailed`).
pub fn run<D: NetDevice>(mut adapter: Adapter<D>, mut stack: Stack, signal: Signal, options: Options) -> ! {
    let mode = match (options.busy, signal) {
        (true, _) => Mode::Busy,
        (false, Signal::Msix | Signal::Intx) => Mode::Interrupts,
        (false, Signal::None) => Mode::TimerPoll,
    };
    status::set_mode(mode);
    log::info!("main loop: {}", mode.name());
    if !options.race_check {
        log::warn!("main loop: the re-enable race re-check is off (net.race_check=off): work may wait for the timer");
    }
    LOOP_START_TSC.store(clock::rdtsc(), Ordering::Relaxed);
    loop {
        // 1. Work, with the card quiet.
        if mode == Mode::Interrupts {
            adapter.device_mut().set_interrupts(false);
        }
        for _ in 0..MAX_POLLS_PER_TURN {
            if nic::service(signal, adapter.device_mut()) {
                adapter.device_mut().config_changed();
            }
            let busy = stack.poll(clock::now(), &mut adapter, &status::host_stats());
            if !busy && !adapter.device().has_work() {
                break;
            }
        }
        stop_if_failed(adapter.device());
        if mode == Mode::Busy {
            core::hint::spin_loop();
            continue;
        }

        // 2. Until when may we sleep?
        let mut sleep = stack.poll_delay(clock::now()).unwrap_or(MAX_SLEEP).min(MAX_SLEEP);
        // While an INTx pin is parked (a storm on a shared line), the card's
        // interrupts on it are lost: poll as if there were none.
        if mode == Mode::TimerPoll || (signal == Signal::Intx && nic::intx_parked()) {
            sleep = sleep.min(POLL_INTERVAL);
        }
        // The stack wants to send now but every transmit buffer is with the
        // card: polling again cannot help; wait for the card to return one.
        if sleep.is_zero() && !adapter.device_mut().split().1.has_room() {
            sleep = TX_FULL_WAIT;
        }
        if sleep.is_zero() {
            continue;
        }
        apic::TIMER_EXPIRED.store(false, Ordering::Release);
        apic::arm_timer(sleep);
        log::trace!(target: TRACE, "sleep   for up to {} us (the stack's next deadline, or the heartbeat)", sleep.as_micros());

        // 3. Interrupts back on; look again; sleep.
        if mode == Mode::Interrupts {
            adapter.device_mut().set_interrupts(true);
        }
        interrupts::disable();
        let timer_fired = apic::TIMER_EXPIRED.load(Ordering::Acquire);
        let card_work = || nic::WORK_PENDING.swap(false, Ordering::AcqRel) || adapter.device().has_work();
        if !may_halt(timer_fired, options.race_check, card_work) {
            interrupts::enable();
            if timer_fired {
                log::trace!(target: TRACE, "sleep   skipped: the timer fired before the halt");
            } else {
                SLEEPS_RACED.fetch_add(1, Ordering::Relaxed);
                log::trace!(target: TRACE, "sleep   skipped: work came in while interrupts were turned back on ({})", nic::take_fired());
            }
            continue;
        }
        // Forget what fired before this point, so that the wake-up line
        // names only the interrupt that ended the halt.
        nic::take_fired();
        let before = clock::rdtsc();
        interrupts::enable_and_hlt();
        HALTED_TSC.fetch_add(clock::rdtsc() - before, Ordering::Relaxed);
        let halted = clock::since(before).as_micros();
        if nic::WORK_PENDING.swap(false, Ordering::AcqRel) {
            WAKE_DEVICE.fetch_add(1, Ordering::Relaxed);
            log::trace!(target: TRACE, "wake    by the card: {}, after {halted} us halted", nic::take_fired());
        } else if apic::TIMER_EXPIRED.load(Ordering::Acquire) {
            WAKE_TIMER.fetch_add(1, Ordering::Relaxed);
            log::trace!(target: TRACE, "wake    by the timer (local APIC), after {halted} us halted");
            // A heartbeat for cards that change without telling (a device
            // may set DEVICE_NEEDS_RESET and send no notification).
            adapter.device_mut().config_changed();
        } else {
            WAKE_OTHER.fetch_add(1, Ordering::Relaxed);
            log::trace!(target: TRACE, "wake    by another interrupt, after {halted} us halted");
        }
    }
}

/// Whether the loop may halt now, interrupts off and the timer armed for
/// this sleep: not if that timer has already fired (interrupts are on until
/// this step, and a sleep of a millisecond or two, as TCP's loss recovery
/// asks for, can end before it, more so on a busy host; halting then waits
/// for the card's next interrupt, however long that is: a retransmission
/// due in 1 ms waited 30 s), nor, with `race_check`, if the card has work
/// (the re-enable race; `card_work` is asked only then).
pub(crate) fn may_halt(timer_fired: bool, race_check: bool, card_work: impl FnOnce() -> bool) -> bool {
    !(timer_fired || (race_check && card_work()))
}

/// A card that has failed cannot serve again without a reset, which would
/// lose every connection anyway: say why and stop the machine, so that
/// whatever runs it (a supervisor, a test) sees a clear failure and restarts
/// it, rather than a guest that silently stopped answering.
fn stop_if_failed<D: NetDevice>(device: &D) {
    if let Some(failure) = device.failure() {
        log::error!("network card failed: {failure}; stopping (counters: {:?})", device.counters());
        qemu::exit(ExitCode::DeviceFailed);
    }
}
