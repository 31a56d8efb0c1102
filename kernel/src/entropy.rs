//! Entropy for seeds: RDSEED, RDRAND, and the time-stamp counter, mixed by
//! `skiff_net::seed`. Both instructions can fail transiently; each is tried
//! a few times (Intel's DRNG guide suggests 10 for RDRAND).

use raw_cpuid::CpuId;
use skiff_net::seed::{self, Entropy, SeedSource};

const RETRIES: usize = 10;

/// A fresh 64-bit seed, and where its entropy came from.
pub fn seed() -> (u64, SeedSource) {
    let cpuid = CpuId::new();
    let has_rdrand = cpuid.get_feature_info().is_some_and(|f| f.has_rdrand());
    let has_rdseed = cpuid.get_extended_feature_info().is_some_and(|f| f.has_rdseed());
    let entropy = Entropy {
        rdseed: if has_rdseed { retry(rdseed) } else { None },
        rdrand: if has_rdrand { retry(rdrand) } else { None },
        tsc: crate::clock::rdtsc(),
    };
    seed::mix(entropy)
}

fn retry(f: fn() -> Option<u64>) -> Option<u64> {
    (0..RETRIES).find_map(|_| f())
}

fn rdrand() -> Option<u64> {
    let mut value = 0;
    // SAFETY: called only when CPUID reports RDRAND; it writes `value` only.
    let ok = unsafe { core::arch::x86_64::_rdrand64_step(&mut value) };
    (ok == 1).then_some(value)
}

fn rdseed() -> Option<u64> {
    let mut value = 0;
    // SAFETY: called only when CPUID reports RDSEED; it writes `value` only.
    let ok = unsafe { core::arch::x86_64::_rdseed64_step(&mut value) };
    (ok == 1).then_some(value)
}
