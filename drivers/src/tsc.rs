//! The TSC's rate from what the CPU says about itself (CPUID leaves 0x15 and
//! 0x16), so that a CPU or hypervisor that tells needs no PIT stopwatch.
//!
//! Leaf 0x15 ("Time Stamp Counter and Nominal Core Crystal Clock") gives the
//! ratio of the TSC to the core crystal clock (EBX/EAX) and, where known, the
//! crystal's rate in Hz (ECX): TSC Hz = ECX × EBX / EAX. Some CPUs leave ECX
//! zero; then leaf 0x16's processor base frequency (EAX, in MHz) is the TSC's
//! nominal rate, which the ratio in leaf 0x15 confirms is defined at all.
//! A leaf 0x16 without a ratio in leaf 0x15 is not trusted: the base
//! frequency alone says nothing about the TSC on every CPU.
//!
//! The CPUID values are read by the kernel and passed in, so all of this is
//! tested on the host. A rate outside [`MIN_TSC_HZ`]..=[`MAX_TSC_HZ`] (the
//! PIT calibration's bounds) is not used.
//!
//! Ref: Intel SDM Vol. 2A, CPUID leaves 15H and 16H; Vol. 3B §18.7.3
//! ("Determining the Processor Base Frequency").

use crate::pit::{MAX_TSC_HZ, MIN_TSC_HZ};

/// The CPUID leaf with the TSC/crystal ratio and the crystal's rate.
pub const LEAF_TSC_CRYSTAL: u32 = 0x15;
/// The CPUID leaf with the processor's base frequency in MHz.
pub const LEAF_FREQUENCY: u32 = 0x16;

/// What the CPU reported, as raw register values; a leaf beyond the CPU's
/// highest basic leaf (CPUID 0's EAX) reads as all zeros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidClock {
    /// Leaf 0x15 EAX: the ratio's denominator (0: not enumerated).
    pub ratio_denominator: u32,
    /// Leaf 0x15 EBX: the ratio's numerator (0: not enumerated).
    pub ratio_numerator: u32,
    /// Leaf 0x15 ECX: the core crystal clock in Hz (0: not enumerated).
    pub crystal_hz: u32,
    /// Leaf 0x16 EAX bits 15:0: the processor base frequency in MHz (0: not enumerated).
    pub base_mhz: u32,
}

/// Which leaves gave the rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Leaf 0x15 alone: crystal × ratio.
    Crystal,
    /// Leaf 0x15's ratio with leaf 0x16's base frequency.
    BaseFrequency,
}

/// Leaf 0x16 EAX holds the base frequency in its low 16 bits.
const BASE_MHZ_MASK: u32 = 0xFFFF;

impl CpuidClock {
    /// The raw registers: leaf 0x15's EAX, EBX and ECX, leaf 0x16's EAX.
    pub fn from_registers(leaf15: [u32; 3], leaf16_eax: u32) -> Self {
        CpuidClock {
            ratio_denominator: leaf15[0],
            ratio_numerator: leaf15[1],
            crystal_hz: leaf15[2],
            base_mhz: leaf16_eax & BASE_MHZ_MASK,
        }
    }

    /// The TSC's rate in Hz and where it came from, or `None` if the CPU
    /// does not say (or says something implausible).
    pub fn tsc_hz(&self) -> Option<(u64, Source)> {
        if self.ratio_denominator == 0 || self.ratio_numerator == 0 {
            return None;
        }
        let (hz, source) = if self.crystal_hz != 0 {
            let hz = u64::from(self.crystal_hz) * u64::from(self.ratio_numerator) / u64::from(self.ratio_denominator);
            (hz, Source::Crystal)
        } else if self.base_mhz != 0 {
            (u64::from(self.base_mhz) * 1_000_000, Source::BaseFrequency)
        } else {
            return None;
        };
        (MIN_TSC_HZ..=MAX_TSC_HZ).contains(&hz).then_some((hz, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crystal_times_ratio() {
        // A Skylake client: 24 MHz crystal, ratio 216/2 → 2.592 GHz.
        let clock = CpuidClock::from_registers([2, 216, 24_000_000], 2600);
        assert_eq!(clock.tsc_hz(), Some((2_592_000_000, Source::Crystal)));
    }

    #[test]
    fn base_frequency_when_the_crystal_is_not_enumerated() {
        // Only the low 16 bits of leaf 0x16 EAX are the frequency.
        let clock = CpuidClock::from_registers([2, 200, 0], 0xABCD_0000 | 2100);
        assert_eq!(clock.tsc_hz(), Some((2_100_000_000, Source::BaseFrequency)));
    }

    #[test]
    fn nothing_without_a_ratio() {
        // Leaves absent (zeros), a ratio with a zero half, and a base
        // frequency without any ratio: the PIT must measure.
        assert_eq!(CpuidClock::default().tsc_hz(), None);
        assert_eq!(CpuidClock::from_registers([0, 216, 24_000_000], 2600).tsc_hz(), None);
        assert_eq!(CpuidClock::from_registers([2, 0, 24_000_000], 2600).tsc_hz(), None);
        assert_eq!(CpuidClock::from_registers([0, 0, 0], 2600).tsc_hz(), None);
        assert_eq!(CpuidClock::from_registers([2, 216, 0], 0).tsc_hz(), None);
    }

    #[test]
    fn implausible_rates_are_not_used() {
        // 1 Hz crystal; a ratio that makes 100 GHz; a 50 MHz base frequency.
        assert_eq!(CpuidClock::from_registers([1, 100, 1], 0).tsc_hz(), None);
        assert_eq!(CpuidClock::from_registers([1, 4_000, 25_000_000], 0).tsc_hz(), None);
        assert_eq!(CpuidClock::from_registers([1, 1, 0], 50).tsc_hz(), None);
        // The largest values cannot overflow.
        assert_eq!(CpuidClock::from_registers([1, u32::MAX, u32::MAX], 0).tsc_hz(), None);
    }
}
