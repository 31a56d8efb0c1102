//! Collects the packet trace's lines (target `packet`, [`crate::device::TRACE_TARGET`])
//! on each test's own thread: for the stack's tests here, and, with the
//! `testing` feature, for the drivers' tests, which log their descriptors to
//! the same target.

use std::cell::RefCell;
use std::string::{String, ToString};
use std::vec::Vec;

struct Capture;
static CAPTURE: Capture = Capture;

std::thread_local! {
    static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == crate::device::TRACE_TARGET
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            LINES.with(|l| l.borrow_mut().push(record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// Turns the trace on (for the whole test binary) and empties this thread's lines.
pub fn start() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
    LINES.with(|l| l.borrow_mut().clear());
}

/// This thread's lines so far.
pub fn lines() -> Vec<String> {
    LINES.with(|l| l.borrow().clone())
}
