//! Finding the ECAM base in the DSDT when there is no MCFG table.
//!
//! QEMU's `microvm,pcie=on` has PCI Express (a generic "GPEX" host bridge,
//! configuration through ECAM only, no ports 0xCF8/0xCFC) but publishes no
//! MCFG: its only announcement of the ECAM window is the host bridge's `_CBA`
//! method in the DSDT (ACPI 6.5, 6.5.6), `Method (_CBA) { Return (base) }`
//! (QEMU's `hw/pci-host/gpex-acpi.c`). Skiff has no AML interpreter, and needs
//! none for this: the method's body is a single return of a constant, which
//! is found by its encoding.
//!
//! Ref: ACPI 6.5, 20.2.5.2 (`DefMethod := MethodOp PkgLength NameString
//! MethodFlags TermList`), 20.2.5.3 (`DefReturn := ReturnOp ArgObject`),
//! 20.2.3 (integer constants) and 20.2.4 (`PkgLength`).

/// `MethodOp` (ACPI 6.5, 20.2.5.2).
const METHOD_OP: u8 = 0x14;
/// `ReturnOp` (ACPI 6.5, 20.2.5.3).
const RETURN_OP: u8 = 0xA4;
/// Integer prefixes (ACPI 6.5, 20.2.3): the constant's width follows from them.
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;
const QWORD_PREFIX: u8 = 0x0E;
/// The method's name: a root-relative `\_CBA` or a plain segment both end so.
const NAME: &[u8; 4] = b"_CBA";
/// `MethodFlags`' argument count (bits 0-2): `_CBA` takes none.
const ARG_COUNT_MASK: u8 = 0b111;
/// ECAM is 4 KiB per function and 1 MiB per bus (PCI Express Base 6.0, 7.2.2):
/// a base that is not 1 MiB aligned is not one.
const ECAM_ALIGN: u64 = 1 << 20;

/// The ECAM base the first `_CBA` method in `aml` (a DSDT or SSDT body,
/// without its header) returns, if it returns a constant.
///
/// A `_CBA` whose body is anything else (a computed value, a reference) is
/// skipped: reading it would take an interpreter. So is a base of 0 or one
/// not aligned to a bus.
pub fn find_cba(aml: &[u8]) -> Option<u64> {
    let mut at = 0;
    while let Some(found) = aml.get(at..)?.iter().position(|&b| b == METHOD_OP) {
        let method = at + found;
        if let Some(base) = method_cba(aml.get(method + 1..)?) {
            return Some(base);
        }
        at = method + 1;
    }
    None
}

/// The constant a `_CBA` method returns, given the bytes after its `MethodOp`.
fn method_cba(bytes: &[u8]) -> Option<u64> {
    let (length, length_bytes) = pkg_length(bytes)?;
    // The package length counts its own bytes and everything up to the
    // method's end: the method must lie within `bytes`.
    let method = bytes.get(..length)?;
    let rest = method.get(length_bytes..)?;
    let rest = rest.strip_prefix(b"\\").unwrap_or(rest);
    let rest = rest.strip_prefix(NAME.as_slice())?;
    let (&flags, rest) = rest.split_first()?;
    if flags & ARG_COUNT_MASK != 0 {
        return None;
    }
    let rest = rest.strip_prefix(&[RETURN_OP])?;
    let (&prefix, value) = rest.split_first()?;
    let width = match prefix {
        BYTE_PREFIX => 1,
        WORD_PREFIX => 2,
        DWORD_PREFIX => 4,
        QWORD_PREFIX => 8,
        _ => return None,
    };
    let mut le = [0u8; 8];
    le[..width].copy_from_slice(value.get(..width)?);
    let base = u64::from_le_bytes(le);
    (base != 0 && base % ECAM_ALIGN == 0).then_some(base)
}

/// A `PkgLength` (ACPI 6.5, 20.2.4): the length it encodes and how many bytes
/// encode it. The lead byte's bits 7-6 count the bytes that follow; with none,
/// bits 5-0 are the length, otherwise bits 3-0 are its low nibble and each
/// following byte adds 8 more bits.
fn pkg_length(bytes: &[u8]) -> Option<(usize, usize)> {
    let (&lead, more) = bytes.split_first()?;
    let follow = usize::from(lead >> 6);
    if follow == 0 {
        return Some((usize::from(lead & 0x3F), 1));
    }
    let mut length = usize::from(lead & 0x0F);
    for (i, &b) in more.get(..follow)?.iter().enumerate() {
        length |= usize::from(b) << (4 + 8 * i);
    }
    Some((length, 1 + follow))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Method (_CBA, 0, NotSerialized) { Return (0xE0000000) }` as QEMU 7.2
    /// encodes it for microvm (from its DSDT), between other objects.
    const QEMU_MICROVM: &[u8] = &[
        0x08, b'_', b'U', b'I', b'D', 0x00, // Name (_UID, Zero)
        0x14, 0x0C, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0x00, 0x00, 0x00, 0xE0, // the method
        0x08, b'_', b'C', b'R', b'S', 0x11, // Name (_CRS, Buffer ...
    ];

    #[test]
    fn finds_the_constant_qemu_microvm_returns() {
        assert_eq!(find_cba(QEMU_MICROVM), Some(0xE000_0000));
    }

    #[test]
    fn reads_every_integer_width_and_long_package_lengths() {
        let qword = [0x14, 0x10, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0E, 0, 0, 0, 0, 0x10, 0, 0, 0];
        assert_eq!(find_cba(&qword), Some(0x10_0000_0000));
        // The same method with a two-byte PkgLength (0x4D 0x00 encodes 13).
        let long = [0x14, 0x4D, 0x00, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0, 0, 0, 0xB0];
        assert_eq!(find_cba(&long), Some(0xB000_0000));
        let root = [0x14, 0x0D, b'\\', b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0, 0, 0xF0, 0];
        assert_eq!(find_cba(&root), Some(0x00F0_0000));
    }

    #[test]
    fn other_methods_and_method_op_bytes_in_data_are_passed_over() {
        // A `_STA` method first, and a 0x14 byte inside a buffer's data.
        let mut aml = vec![0x14, 0x09, b'_', b'S', b'T', b'A', 0x00, 0xA4, 0x0A, 0x0F, 0x11, 0x03, 0x14];
        aml.extend_from_slice(QEMU_MICROVM);
        assert_eq!(find_cba(&aml), Some(0xE000_0000));
    }

    #[test]
    fn what_is_not_a_constant_ecam_base_is_refused() {
        let cases: &[&[u8]] = &[
            // Returns a named object, not a constant.
            &[0x14, 0x0B, b'_', b'C', b'B', b'A', 0x00, 0xA4, b'B', b'A', b'S', b'E'],
            // Takes an argument.
            &[0x14, 0x0C, b'_', b'C', b'B', b'A', 0x01, 0xA4, 0x0C, 0, 0, 0, 0xE0],
            // Returns zero, or an address not aligned to a bus.
            &[0x14, 0x0C, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0, 0, 0, 0],
            &[0x14, 0x0C, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0, 0x10, 0, 0xE0],
            // Cut short, and a package length that runs past the table.
            &[0x14, 0x0C, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0, 0],
            &[0x14, 0x3F, b'_', b'C', b'B', b'A', 0x00, 0xA4, 0x0C, 0, 0, 0, 0xE0],
            &[0x14, 0xC0],
            &[0x14],
            &[],
        ];
        for aml in cases {
            assert_eq!(find_cba(aml), None, "{aml:02x?}");
        }
    }
}
