//! Port I/O, behind a trait so that drivers of port-mapped devices (the
//! legacy virtio transport, the PIT) are tested on the host against fakes.

/// 8/16/32-bit port I/O. The kernel passes real ports; tests pass a fake.
pub trait IoPorts {
    /// Reads a byte from `port`.
    fn read8(&self, port: u16) -> u8;
    /// Reads 16 bits from `port`.
    fn read16(&self, port: u16) -> u16;
    /// Reads 32 bits from `port`.
    fn read32(&self, port: u16) -> u32;
    /// Writes a byte to `port`.
    fn write8(&mut self, port: u16, value: u8);
    /// Writes 16 bits to `port`.
    fn write16(&mut self, port: u16, value: u16);
    /// Writes 32 bits to `port`.
    fn write32(&mut self, port: u16, value: u32);
}

/// The CPU's I/O ports (`in`/`out` instructions).
#[cfg(target_arch = "x86_64")]
pub struct CpuPorts {
    _private: (),
}

#[cfg(target_arch = "x86_64")]
impl CpuPorts {
    /// Access to the I/O ports of one device.
    ///
    /// # Safety
    /// The driver built on this must be given only the ports of the device
    /// it drives (for a PCI function, the range of its I/O BAR), and nothing
    /// else may use them.
    pub unsafe fn new() -> Self {
        CpuPorts { _private: () }
    }
}

#[cfg(target_arch = "x86_64")]
impl IoPorts for CpuPorts {
    fn read8(&self, port: u16) -> u8 {
        // SAFETY: `port` is one of the device's ports (constructor
        // contract); reads of its registers have only the documented effects.
        unsafe { x86_64::instructions::port::Port::new(port).read() }
    }
    fn read16(&self, port: u16) -> u16 {
        // SAFETY: as in `read8`.
        unsafe { x86_64::instructions::port::Port::new(port).read() }
    }
    fn read32(&self, port: u16) -> u32 {
        // SAFETY: as in `read8`.
        unsafe { x86_64::instructions::port::Port::new(port).read() }
    }
    fn write8(&mut self, port: u16, value: u8) {
        // SAFETY: as in `read8`.
        unsafe { x86_64::instructions::port::Port::new(port).write(value) }
    }
    fn write16(&mut self, port: u16, value: u16) {
        // SAFETY: as in `read8`.
        unsafe { x86_64::instructions::port::Port::new(port).write(value) }
    }
    fn write32(&mut self, port: u16, value: u32) {
        // SAFETY: as in `read8`.
        unsafe { x86_64::instructions::port::Port::new(port).write(value) }
    }
}
