//! The random seed for the TCP/IP stack (initial sequence numbers, ephemeral
//! ports): whatever a guesser must not know.
//!
//! The kernel gathers raw entropy — RDSEED, RDRAND, and the time-stamp counter
//! as a last resort — and this module mixes it into one 64-bit seed. Mixing
//! with a strong 64-bit finalizer means that one good source is enough, and
//! that even a TSC-only seed differs wildly between boots a few cycles apart.
//! It is never a constant: a source that failed contributes nothing, and with
//! none at all the seed still comes from the TSC.

/// Raw entropy samples; `None` where the CPU lacks the instruction or it
/// failed (both can return "no value" under load).
#[derive(Clone, Copy, Debug, Default)]
pub struct Entropy {
    /// From RDSEED: the hardware entropy source itself.
    pub rdseed: Option<u64>,
    /// From RDRAND: a DRBG seeded by that source.
    pub rdrand: Option<u64>,
    /// The time-stamp counter when sampled; always present.
    pub tsc: u64,
}

/// Where the seed's entropy came from, for the boot log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedSource {
    /// RDSEED (and maybe RDRAND) contributed.
    Hardware,
    /// RDRAND contributed, RDSEED did not.
    Drbg,
    /// Only the time-stamp counter: unpredictable only to the extent that boot
    /// timing is. Logged as a warning.
    TimestampOnly,
}

/// Mixes `entropy` into a 64-bit seed.
pub fn mix(entropy: Entropy) -> (u64, SeedSource) {
    let source = match (entropy.rdseed, entropy.rdrand) {
        (Some(_), _) => SeedSource::Hardware,
        (None, Some(_)) => SeedSource::Drbg,
        (None, None) => SeedSource::TimestampOnly,
    };
    let mut state = splitmix64(entropy.tsc);
    for sample in [entropy.rdseed, entropy.rdrand].into_iter().flatten() {
        state = splitmix64(state ^ sample);
    }
    (state, source)
}

/// The SplitMix64 output function (Steele, Lea and Flood, "Fast splittable
/// pseudorandom number generators", OOPSLA 2014): a bijection on u64 in which
/// every input bit affects every output bit.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn source_names_the_best_contributor() {
        let e = |rdseed, rdrand| Entropy { rdseed, rdrand, tsc: 1 };
        assert_eq!(mix(e(Some(1), Some(2))).1, SeedSource::Hardware);
        assert_eq!(mix(e(Some(1), None)).1, SeedSource::Hardware);
        assert_eq!(mix(e(None, Some(2))).1, SeedSource::Drbg);
        assert_eq!(mix(e(None, None)).1, SeedSource::TimestampOnly);
    }

    #[test]
    fn every_source_changes_the_seed() {
        let base = Entropy { rdseed: Some(10), rdrand: Some(20), tsc: 30 };
        let seed = mix(base).0;
        assert_ne!(seed, mix(Entropy { rdseed: Some(11), ..base }).0);
        assert_ne!(seed, mix(Entropy { rdrand: Some(21), ..base }).0);
        assert_ne!(seed, mix(Entropy { tsc: 31, ..base }).0);
    }

    #[test]
    fn timestamp_only_seeds_of_nearby_boots_differ_in_about_half_their_bits() {
        // Two boots a cycle apart must not get related seeds.
        for tsc in [0u64, 1, 1_000_000, u64::MAX - 1] {
            let a = mix(Entropy { tsc, ..Entropy::default() }).0;
            let b = mix(Entropy { tsc: tsc + 1, ..Entropy::default() }).0;
            let differing = (a ^ b).count_ones();
            assert!((16..=48).contains(&differing), "tsc {tsc}: only {differing} bits differ");
        }
    }

    #[test]
    fn zero_entropy_does_not_give_a_zero_seed() {
        assert_ne!(mix(Entropy::default()).0, 0);
    }
}
