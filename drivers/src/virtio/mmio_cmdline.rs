//! Where a virtio-mmio device is, as the machine announces it on the kernel
//! command line: `virtio_mmio.device=<size>@<base>:<irq>[:<id>]` (Linux's
//! syntax, `Documentation/admin-guide/kernel-parameters.txt`), which QEMU's
//! `microvm` machine appends once per virtio-mmio transport with a device
//! when ACPI is off, e.g. `virtio_mmio.device=512@0xfeb00e00:12`.
//!
//! `size` takes Linux's `memparse` form (a number, decimal or `0x` hex, with
//! an optional `K`, `M` or `G`); `base` and `irq` are numbers; `id` (the
//! platform device's number under Linux) is accepted and ignored. Nothing
//! here trusts the value: a malformed one, a zero size, a region that wraps
//! or that ends past the 52-bit physical address limit, or an IRQ beyond
//! what an I/O APIC routes, is an error that names what is wrong.
//!
//! Ref: virtio 1.2, 4.2 (Virtio Over MMIO): the register block is 0x100
//! bytes of registers followed by the device's configuration space.

use core::fmt;

/// The command-line key.
pub const KEY: &str = "virtio_mmio.device";
/// The smallest register block that holds the virtio-mmio registers
/// (virtio 1.2, 4.2.2: the configuration space starts at 0x100).
pub const MIN_SIZE: u64 = 0x100;
/// x86-64's physical address limit (52 bits).
pub const PHYS_LIMIT: u64 = 1 << 52;
/// The highest GSI accepted: one I/O APIC has at most 256 inputs (its
/// "maximum redirection entry" is 8 bits); QEMU's machines have one, of 24.
pub const MAX_IRQ: u32 = 255;

/// One announced device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    /// Physical address of the register block.
    pub base: u64,
    /// Its size in bytes.
    pub size: u64,
    /// The interrupt (a GSI, an I/O APIC input).
    pub irq: u32,
}

/// Why a `virtio_mmio.device=` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not `size@base:irq[:id]`.
    Syntax,
    /// The size is not a number (with an optional K/M/G).
    BadSize,
    /// The base is not a number.
    BadBase,
    /// The IRQ is not a number.
    BadIrq,
    /// Smaller than the virtio-mmio registers.
    TooSmall,
    /// The region wraps or ends past the physical address limit.
    OutOfRange,
    /// The IRQ is past what an I/O APIC routes.
    IrqTooLarge,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            ParseError::Syntax => "expected SIZE@BASE:IRQ[:ID]",
            ParseError::BadSize => "SIZE is not a number (with an optional K, M or G)",
            ParseError::BadBase => "BASE is not a number",
            ParseError::BadIrq => "IRQ is not a number",
            ParseError::TooSmall => "SIZE is smaller than the virtio-mmio registers (0x100 bytes)",
            ParseError::OutOfRange => "the region wraps or ends past the 52-bit physical address limit",
            ParseError::IrqTooLarge => "IRQ is past what an I/O APIC routes (255)",
        })
    }
}

/// A number in C's notation: decimal, or hex after `0x`.
fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

/// Linux's `memparse`: a number with an optional binary suffix.
fn size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let value = number(digits)?;
    value.checked_mul(1 << shift)
}

/// Parses one value (what follows `virtio_mmio.device=`).
pub fn parse(value: &str) -> Result<MmioDevice, ParseError> {
    let (size_text, rest) = value.split_once('@').ok_or(ParseError::Syntax)?;
    let mut fields = rest.split(':');
    let base_text = fields.next().ok_or(ParseError::Syntax)?;
    let irq_text = fields.next().ok_or(ParseError::Syntax)?;
    // An optional id, then nothing.
    if fields.next().is_some_and(|id| number(id).is_none()) || fields.next().is_some() {
        return Err(ParseError::Syntax);
    }
    let size = size(size_text).ok_or(ParseError::BadSize)?;
    let base = number(base_text).ok_or(ParseError::BadBase)?;
    let irq = number(irq_text).ok_or(ParseError::BadIrq)?;
    if size < MIN_SIZE {
        return Err(ParseError::TooSmall);
    }
    match base.checked_add(size) {
        Some(end) if end <= PHYS_LIMIT => {}
        _ => return Err(ParseError::OutOfRange),
    }
    let irq = u32::try_from(irq).ok().filter(|&i| i <= MAX_IRQ).ok_or(ParseError::IrqTooLarge)?;
    Ok(MmioDevice { base, size, irq })
}

/// Every `virtio_mmio.device=` value on `cmdline` (space-separated words),
/// each parsed, in order.
pub fn devices(cmdline: &str) -> impl Iterator<Item = (&str, Result<MmioDevice, ParseError>)> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.strip_prefix(KEY)?.strip_prefix('='))
        .map(|value| (value, parse(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_qemu_microvm_appends_parses() {
        assert_eq!(parse("512@0xfeb00e00:12"), Ok(MmioDevice { base: 0xfeb0_0e00, size: 512, irq: 12 }));
        // Linux's other spellings: suffixes, hex sizes, an id.
        assert_eq!(parse("4K@0x10000000:5:3"), Ok(MmioDevice { base: 0x1000_0000, size: 4096, irq: 5 }));
        assert_eq!(parse("0x200@4096:23"), Ok(MmioDevice { base: 4096, size: 0x200, irq: 23 }));
        assert_eq!(parse("1M@0x0:0").map(|d| d.size), Ok(1 << 20));
    }

    #[test]
    fn malformed_values_are_errors_that_say_what() {
        for (value, error) in [
            ("", ParseError::Syntax),
            ("512", ParseError::Syntax),
            ("512@0xfeb00e00", ParseError::Syntax),
            ("512@0xfeb00e00:12:3:4", ParseError::Syntax),
            ("512@0xfeb00e00:12:x", ParseError::Syntax),
            ("@0xfeb00e00:12", ParseError::BadSize),
            ("5x2@0xfeb00e00:12", ParseError::BadSize),
            ("K@0x1000:1", ParseError::BadSize),
            ("512@:12", ParseError::BadBase),
            ("512@0x:12", ParseError::BadBase),
            ("512@-1:12", ParseError::BadBase),
            ("512@0xfeb00e00:", ParseError::BadIrq),
            ("512@0xfeb00e00:twelve", ParseError::BadIrq),
            ("0@0xfeb00e00:12", ParseError::TooSmall),
            ("255@0xfeb00e00:12", ParseError::TooSmall),
            ("512@0xffffffffffffff00:12", ParseError::OutOfRange),
            ("4K@0xffffffffffffff:12", ParseError::OutOfRange),
            ("17179869184G@0x0:1", ParseError::BadSize),
            ("16777216G@0x0:1", ParseError::OutOfRange),
            ("512@0xfeb00e00:256", ParseError::IrqTooLarge),
            ("512@0xfeb00e00:99999999999", ParseError::IrqTooLarge),
        ] {
            assert_eq!(parse(value), Err(error), "{value:?}");
        }
    }

    #[test]
    fn every_announcement_on_the_command_line_is_found() {
        let line = "log=info virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=512@0xfeb00c00:11 \
                    virtio_mmio.devicex=1 virtio_mmio.device=bad";
        let found: Vec<_> = devices(line).collect();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].1.map(|d| d.irq), Ok(12));
        assert_eq!(found[1].1.map(|d| d.base), Ok(0xfeb0_0c00));
        assert_eq!(found[2], ("bad", Err(ParseError::Syntax)));
        assert_eq!(devices("").count(), 0);
    }
}
