//! A fake configuration space for host tests: functions with registers,
//! BARs that answer the all-ones sizing probe, and capability lists. Clones
//! share one state, so a test keeps a handle after giving one to `PciRoot`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};

/// One BAR's hardware behaviour: its size and its low type bits.
#[derive(Clone, Copy, Default)]
pub struct FakeBar {
    pub size: u64,
    /// Bit 0: I/O; bits 2..1 = 0b10: 64-bit memory.
    pub type_bits: u32,
}

struct FakeFunction {
    regs: [u32; 64],
    bars: [FakeBar; 6],
    probing: [bool; 6],
}

#[derive(Default)]
struct State {
    functions: HashMap<DeviceFunction, FakeFunction>,
    writes: Vec<(DeviceFunction, u8, u32)>,
}

#[derive(Clone, Default)]
pub struct FakeConfig(Rc<RefCell<State>>);

impl FakeConfig {
    /// Adds a function with IDs, class, and the given BARs at address zero.
    pub fn add(&self, at: DeviceFunction, vendor: u16, device: u16, class: u8, bars: [FakeBar; 6]) {
        let mut f = FakeFunction { regs: [0; 64], bars, probing: [false; 6] };
        f.regs[0] = u32::from(device) << 16 | u32::from(vendor);
        f.regs[2] = u32::from(class) << 24;
        for (i, bar) in bars.iter().enumerate() {
            f.regs[4 + i] = bar.type_bits;
        }
        self.0.borrow_mut().functions.insert(at, f);
    }

    /// Gives a function a capability list: (id, offset) pairs, chained in order.
    pub fn capabilities(&self, at: DeviceFunction, caps: &[(u8, u8)]) {
        let mut state = self.0.borrow_mut();
        let f = state.functions.get_mut(&at).expect("add the function first");
        f.regs[1] |= 1 << (16 + 4); // status: capability list present
        f.regs[0x34 / 4] = caps.first().map_or(0, |c| u32::from(c.1));
        for (i, (id, offset)) in caps.iter().enumerate() {
            let next = caps.get(i + 1).map_or(0, |c| c.1);
            f.regs[usize::from(*offset) / 4] = u32::from(next) << 8 | u32::from(*id);
        }
    }

    /// A register as the function holds it (not the sizing probe's answer).
    pub fn reg(&self, at: DeviceFunction, offset: u8) -> u32 {
        self.0.borrow().functions[&at].regs[usize::from(offset) / 4]
    }

    /// Sets a register directly.
    pub fn set_reg(&self, at: DeviceFunction, offset: u8, value: u32) {
        self.0.borrow_mut().functions.get_mut(&at).expect("no such function").regs[usize::from(offset) / 4] = value;
    }

    /// Every configuration write so far, in order.
    pub fn writes(&self) -> Vec<(DeviceFunction, u8, u32)> {
        self.0.borrow().writes.clone()
    }
}

/// Which BAR a register offset belongs to, and whether it is a 64-bit BAR's upper half.
fn bar_slot(f: &FakeFunction, offset: u8) -> Option<(usize, bool)> {
    if !(0x10..0x28).contains(&offset) {
        return None;
    }
    let i = usize::from(offset - 0x10) / 4;
    if i > 0 && f.bars[i - 1].type_bits & 0b110 == 0b100 {
        return Some((i - 1, true));
    }
    Some((i, false))
}

impl ConfigurationAccess for FakeConfig {
    fn read_word(&self, at: DeviceFunction, offset: u8) -> u32 {
        let state = self.0.borrow();
        let Some(f) = state.functions.get(&at) else { return u32::MAX };
        if let Some((i, upper)) = bar_slot(f, offset)
            && f.probing[usize::from(offset - 0x10) / 4]
        {
            if f.bars[i].size == 0 {
                return 0; // an unimplemented BAR is hard-wired to zero
            }
            let mask = !(f.bars[i].size - 1);
            return if upper { (mask >> 32) as u32 } else { mask as u32 & !0xF | f.bars[i].type_bits };
        }
        f.regs[usize::from(offset) / 4]
    }

    fn write_word(&mut self, at: DeviceFunction, offset: u8, data: u32) {
        let mut state = self.0.borrow_mut();
        state.writes.push((at, offset, data));
        let Some(f) = state.functions.get_mut(&at) else { return };
        if bar_slot(f, offset).is_some() {
            f.probing[usize::from(offset - 0x10) / 4] = data == u32::MAX;
            if data == u32::MAX {
                return;
            }
        }
        if offset == 0x04 {
            // Status (upper half) is read-only or write-one-to-clear: writing
            // the command register leaves it alone.
            f.regs[1] = f.regs[1] & 0xFFFF_0000 | data & 0xFFFF;
            return;
        }
        f.regs[usize::from(offset) / 4] = data;
    }

    unsafe fn unsafe_clone(&self) -> Self {
        self.clone()
    }
}
