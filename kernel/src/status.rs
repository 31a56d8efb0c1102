//! What the kernel adds to `/stats`: uptime, heap, interrupts.

use core::sync::atomic::{AtomicU8, Ordering};

use skiff_net::json::JsonWriter;
use skiff_net::stack::Host;

use crate::runloop::{self, Mode};
use crate::{allocator, clock, interrupts};

static MODE: AtomicU8 = AtomicU8::new(0);

/// Records how the main loop waits, for `/stats`.
pub fn set_mode(mode: Mode) {
    MODE.store(mode as u8 + 1, Ordering::Relaxed);
}

fn mode_name() -> &'static str {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::Interrupts.name(),
        2 => Mode::TimerPoll.name(),
        3 => Mode::Busy.name(),
        _ => "starting",
    }
}

/// The kernel's side of `/stats`.
pub struct KernelHost;

impl Host for KernelHost {
    fn uptime_ms(&self) -> u64 {
        clock::now().as_millis() as u64
    }

    fn write_stats(&self, json: &mut JsonWriter) {
        let heap = allocator::stats();
        json.begin_object("heap");
        json.number("in_use", heap.in_use as u64);
        json.number("peak", heap.peak as u64);
        json.number("size", heap.size as u64);
        json.end_object();
        json.begin_object("interrupts");
        json.number("timer", interrupts::count(interrupts::TIMER_VECTOR));
        json.number("nic_config", interrupts::count(interrupts::NIC_CONFIG_VECTOR));
        json.number("nic_rx", interrupts::count(interrupts::NIC_RX_VECTOR));
        json.number("nic_tx", interrupts::count(interrupts::NIC_TX_VECTOR));
        json.number("total", (0..=255u8).map(interrupts::count).sum());
        json.end_object();
        let load = |c: &core::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        json.begin_object("main_loop");
        json.string("mode", mode_name());
        json.number("wakeups_device", load(&runloop::WAKE_DEVICE));
        json.number("wakeups_timer", load(&runloop::WAKE_TIMER));
        json.number("wakeups_other", load(&runloop::WAKE_OTHER));
        json.number("sleeps_raced", load(&runloop::SLEEPS_RACED));
        let start = load(&runloop::LOOP_START_TSC);
        let total = clock::rdtsc().saturating_sub(start).max(1);
        json.number("halted_permille", if start == 0 { 0 } else { load(&runloop::HALTED_TSC) * 1000 / total });
        json.end_object();
    }
}
