//! QEMU's firmware configuration device (fw_cfg), used to pass Skiff a command
//! line: `-fw_cfg name=opt/skiff/cmdline,string=mode=test`.
//!
//! The bootloader has no command line of its own, and fw_cfg is on every x86
//! QEMU machine (q35 and pc, BIOS and UEFI) behind two I/O ports. See QEMU's
//! `docs/specs/fw_cfg.rst`: a 16-bit selector port, an 8-bit data port, and a
//! file directory at a fixed selector whose entries are big-endian.

use x86_64::instructions::port::{Port, PortWriteOnly};

const SELECTOR_PORT: u16 = 0x510;
const DATA_PORT: u16 = 0x511;
/// Selects the 4-byte signature "QEMU".
const SELECT_SIGNATURE: u16 = 0x0000;
/// Selects the file directory: a big-endian u32 count, then the entries.
const SELECT_FILE_DIR: u16 = 0x0019;
/// Bytes in a directory entry's name field, NUL-padded.
const FILE_NAME_LEN: usize = 56;

/// The fw_cfg device, if this machine has one.
pub struct FwCfg {
    selector: PortWriteOnly<u16>,
    data: Port<u8>,
}

impl FwCfg {
    /// Finds the device by its signature; `None` outside QEMU.
    pub fn probe() -> Option<Self> {
        let mut dev = FwCfg { selector: PortWriteOnly::new(SELECTOR_PORT), data: Port::new(DATA_PORT) };
        dev.select(SELECT_SIGNATURE);
        let mut signature = [0u8; 4];
        dev.read(&mut signature);
        (&signature == b"QEMU").then_some(dev)
    }

    /// Reads the file `name` into `buf`; returns the bytes read (at most
    /// `buf.len()`), or `None` if there is no such file.
    pub fn read_file(&mut self, name: &str, buf: &mut [u8]) -> Option<usize> {
        self.select(SELECT_FILE_DIR);
        let count = self.read_be_u32();
        for _ in 0..count {
            let size = self.read_be_u32() as usize;
            let select = self.read_be_u16();
            let _reserved = self.read_be_u16();
            let mut entry_name = [0u8; FILE_NAME_LEN];
            self.read(&mut entry_name);
            let end = entry_name.iter().position(|&b| b == 0).unwrap_or(FILE_NAME_LEN);
            if &entry_name[..end] == name.as_bytes() {
                let len = size.min(buf.len());
                self.select(select);
                self.read(&mut buf[..len]);
                return Some(len);
            }
        }
        None
    }

    fn select(&mut self, key: u16) {
        // SAFETY: 0x510 is fw_cfg's selector register (probe() checked the
        // signature behind it); selecting an item has no other effect.
        unsafe { self.selector.write(key) }
    }

    fn read(&mut self, buf: &mut [u8]) {
        for byte in buf {
            // SAFETY: 0x511 is fw_cfg's data register; reading it only advances
            // the offset within the selected item.
            *byte = unsafe { self.data.read() };
        }
    }

    fn read_be_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.read(&mut b);
        u32::from_be_bytes(b)
    }

    fn read_be_u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        self.read(&mut b);
        u16::from_be_bytes(b)
    }
}
