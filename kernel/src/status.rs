//! What the kernel adds to `/stats`: uptime, heap, interrupts.

use skiff_net::json::JsonWriter;
use skiff_net::stack::Host;

use crate::{allocator, clock, interrupts};

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
        json.number("total", (0..=255u8).map(interrupts::count).sum());
        json.end_object();
    }
}
