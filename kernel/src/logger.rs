//! The `log` facade's back end: one line per record on the serial console,
//! stamped with the monotonic clock (seconds since the clock was calibrated).

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::clock;

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let nanos = clock::now().as_nanos();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        // "skiff_kernel::memory" → "memory", "skiff_drivers::pci" →
        // "drivers::pci": the kernel's own prefix is noise here.
        let target = record.target();
        let target = target.strip_prefix("skiff_kernel::").or_else(|| target.strip_prefix("skiff_")).unwrap_or(target);
        crate::println!(
            "[{:5}.{:06}] {level} {target}: {}",
            nanos / 1_000_000_000,
            nanos % 1_000_000_000 / 1_000,
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the logger. Called once, right after the serial port is up.
pub fn init(level: LevelFilter) {
    // `set_logger` fails only if a logger is already installed, which would be
    // a bug in the boot sequence, not something to recover from.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
