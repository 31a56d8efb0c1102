//! The `log` facade's back end: one line per record on the serial console,
//! stamped with the monotonic clock (seconds since the clock was calibrated).
//!
//! The level comes from the command line, `log=LEVEL[,TARGET=LEVEL]...`, as
//! with `RUST_LOG`: `log=info,packet=trace` keeps everything at `info` and
//! turns on the packet trace (target `packet`, see `net/src/trace.rs`).
//! `log::set_max_level` is set to the most verbose of them, so a disabled
//! `trace!` costs one comparison; records that pass it are matched against
//! the targets here.

use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Once;

use crate::clock;

/// Per-target levels a command line may set.
const MAX_DIRECTIVES: usize = 4;

/// What is logged: a default level and a few targets with their own.
struct Filter {
    default: LevelFilter,
    /// (target prefix, level); the longest matching prefix wins.
    targets: [Option<(&'static str, LevelFilter)>; MAX_DIRECTIVES],
}

impl Filter {
    /// Parses `LEVEL[,TARGET=LEVEL]...`; unknown words are skipped (and
    /// reported once the logger is up).
    fn parse(spec: &'static str) -> (Filter, Option<&'static str>) {
        let mut filter = Filter { default: LevelFilter::Info, targets: [None; MAX_DIRECTIVES] };
        let mut bad = None;
        let mut slots = filter.targets.iter_mut();
        for word in spec.split(',').filter(|w| !w.is_empty()) {
            match word.split_once('=') {
                None => match level(word) {
                    Some(l) => filter.default = l,
                    None => bad = Some(word),
                },
                Some((target, l)) => match (level(l), slots.next()) {
                    (Some(l), Some(slot)) => *slot = Some((target, l)),
                    _ => bad = Some(word),
                },
            }
        }
        (filter, bad)
    }

    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .flatten()
            .filter(|(prefix, _)| target.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default, |&(_, l)| l)
    }

    fn max(&self) -> LevelFilter {
        self.targets.iter().flatten().map(|&(_, l)| l).fold(self.default, core::cmp::max)
    }
}

fn level(name: &str) -> Option<LevelFilter> {
    Some(match name {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;
static FILTER: Once<Filter> = Once::new();

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
            && FILTER.get().is_some_and(|f| metadata.level() <= f.level_for(metadata.target()))
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

/// Installs the logger with the command line's `log=` value (`info` if
/// none). Called once, right after the serial port is up.
pub fn init(spec: Option<&'static str>) {
    let (filter, bad) = Filter::parse(spec.unwrap_or(""));
    let max = filter.max();
    FILTER.call_once(|| filter);
    // `set_logger` fails only if a logger is already installed, which would be
    // a bug in the boot sequence, not something to recover from.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(max);
    }
    if let Some(word) = bad {
        log::warn!(
            "log: ignoring \"{word}\" (levels: off error warn info debug trace; at most {MAX_DIRECTIVES} targets)"
        );
    }
}
