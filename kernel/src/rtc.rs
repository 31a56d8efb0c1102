//! The wall-clock time at boot, from the CMOS real-time clock (the
//! decoding is `skiff_drivers::rtc`, tested on the host), for the network
//! stack's HTTP `Date` header (`NetConfig::boot_unix_secs`).

use core::time::Duration;

use skiff_drivers::ports::CpuPorts;
use skiff_drivers::rtc::{Cmos, RtcError};

/// Seconds since the Unix epoch at `since_boot` ago (the monotonic clock's
/// zero), or why the RTC could not tell.
pub fn boot_unix_secs(since_boot: Duration) -> Result<u64, RtcError> {
    // SAFETY: the CMOS index and data ports (0x70, 0x71) belong to the RTC;
    // nothing else in Skiff uses them, and this runs once, on the boot CPU,
    // before the main loop (no concurrent index/data pairs).
    let ports = unsafe { CpuPorts::new() };
    let now = Cmos::new(ports).unix_time()?;
    Ok(now.saturating_sub(since_boot.as_secs()))
}
