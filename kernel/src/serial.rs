//! The console: COM1, a 16550 UART at I/O port 0x3F8.
//!
//! Everything the kernel prints goes here; QEMU connects it to the terminal
//! (`cargo xtask run`) or to the test harness (`cargo xtask qemu`).

use core::fmt::{self, Write};

use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};
use x86_64::instructions::interrupts;

/// The standard I/O base of the first serial port on a PC.
pub const COM1: u16 = 0x3F8;

static CONSOLE: Mutex<Option<Console>> = Mutex::new(None);

/// COM1 with `\n` turned into `\r\n` for terminals.
struct Console(Uart16550<PioBackend>);

impl Console {
    fn open() -> Option<Self> {
        // SAFETY: COM1's eight registers are the PC's standard serial port and
        // nothing else in the kernel drives them; CONSOLE serialises all access
        // (the panic path bypasses it only when the kernel is about to stop).
        let mut uart = unsafe { Uart16550::new_port(COM1) }.ok()?;
        uart.init(Config::default()).ok()?;
        Some(Console(uart))
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(text) => {
                    self.0.send_bytes_exact(text.as_bytes());
                    self.0.send_bytes_exact(b"\r\n");
                }
                None => self.0.send_bytes_exact(line.as_bytes()),
            }
        }
        Ok(())
    }
}

/// Initialises COM1. Output before this call is lost.
pub fn init() {
    *CONSOLE.lock() = Console::open();
}

/// Writes formatted text to the console.
///
/// Interrupts are off while the lock is held, so that an interrupt handler that
/// prints cannot deadlock against the code it interrupted.
pub fn write_fmt(args: fmt::Arguments) {
    interrupts::without_interrupts(|| {
        if let Some(console) = CONSOLE.lock().as_mut() {
            let _ = console.write_fmt(args);
        }
    });
}

/// Writes formatted text on the way down (panic, fatal exception), without
/// waiting for the lock: whoever held it will never run again. The UART is
/// not re-initialised (that would drop bytes still in its FIFO) unless it was
/// never opened.
pub fn write_fmt_emergency(args: fmt::Arguments) {
    if CONSOLE.is_locked() {
        // SAFETY: the caller is stopping the machine with interrupts off on
        // the only CPU, so the lock's holder can never resume and touch the
        // UART again; a torn line is the worst that can happen.
        unsafe { CONSOLE.force_unlock() };
    }
    let mut console = CONSOLE.lock();
    if console.is_none() {
        *console = Console::open();
    }
    if let Some(console) = console.as_mut() {
        let _ = console.write_fmt(args);
    }
}

/// Prints to the console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::serial::write_fmt(format_args!($($arg)*)));
}

/// Prints a line to the console, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}
