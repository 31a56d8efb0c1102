//! What the kernel adds to `/stats`: uptime, heap, interrupts, main loop.
//! Plain numbers, read from the counters here and in `runloop`; the network
//! side renders them (`skiff_net::stats`).

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use skiff_net::stats::{HeapStats, HostStats, InterruptStats, MainLoopStats};

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

/// The kernel's side of `/stats`, now.
pub fn host_stats() -> HostStats {
    let heap = allocator::stats();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let start = load(&runloop::LOOP_START_TSC);
    // 0 until the loop has started; at least 1 after, as before.
    let loop_cycles = if start == 0 { 0 } else { clock::rdtsc().saturating_sub(start).max(1) };
    HostStats {
        uptime_ms: clock::now().as_millis() as u64,
        heap: HeapStats { in_use: heap.in_use as u64, peak: heap.peak as u64, size: heap.size as u64 },
        interrupts: InterruptStats {
            timer: interrupts::count(interrupts::TIMER_VECTOR),
            nic_config: interrupts::count(interrupts::NIC_CONFIG_VECTOR),
            nic_rx: interrupts::count(interrupts::NIC_RX_VECTOR),
            nic_tx: interrupts::count(interrupts::NIC_TX_VECTOR),
            total: interrupts::total(),
        },
        main_loop: MainLoopStats {
            mode: mode_name(),
            wakeups_device: load(&runloop::WAKE_DEVICE),
            wakeups_timer: load(&runloop::WAKE_TIMER),
            wakeups_other: load(&runloop::WAKE_OTHER),
            sleeps_raced: load(&runloop::SLEEPS_RACED),
            halted_cycles: load(&runloop::HALTED_TSC),
            loop_cycles,
        },
    }
}
