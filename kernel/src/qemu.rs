//! Leaving QEMU with an exit code, through its `isa-debug-exit` device.
//!
//! The harness starts QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
//! Writing `v` to that port ends QEMU with exit status `(v << 1) | 1`, so the
//! status is always odd and never collides with QEMU's own 0 (clean exit) or
//! 1 (error). On a machine without the device the write does nothing and the
//! kernel halts instead.

use x86_64::instructions::port::Port;

/// The I/O port the harness maps `isa-debug-exit` to.
pub const DEBUG_EXIT_PORT: u16 = 0xF4;

/// Why the kernel stopped. The harness (`xtask/src/qemu.rs`) decodes the same
/// values from QEMU's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Clean shutdown; in test mode, every in-kernel test passed. QEMU exits with 33.
    #[cfg_attr(not(feature = "ktest"), allow(dead_code))]
    Success = 0x10,
    /// At least one in-kernel test failed. QEMU exits with 35.
    #[cfg_attr(not(feature = "ktest"), allow(dead_code))]
    TestsFailed = 0x11,
    /// A Rust panic. QEMU exits with 37.
    Panic = 0x12,
    /// A CPU exception the kernel cannot recover from. QEMU exits with 39.
    CpuException = 0x13,
    /// The network card failed (e.g. it asked for a reset). QEMU exits with 41.
    DeviceFailed = 0x14,
    /// The boot input was unusable (PVH: a bad start info). QEMU exits with 43.
    BadBootInput = 0x15,
    /// `mode=test` on a kernel built without the in-kernel tests (feature
    /// `ktest`). QEMU exits with 45.
    #[cfg_attr(feature = "ktest", allow(dead_code))]
    NoTests = 0x16,
}

/// Stops the machine with `code`.
pub fn exit(code: ExitCode) -> ! {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xF4 is either QEMU's debug-exit device, whose only effect
    // is to end the VM, or unassigned, in which case the write is ignored.
    unsafe { port.write(code as u32) };
    halt_forever()
}

/// Halts the CPU for good, with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
