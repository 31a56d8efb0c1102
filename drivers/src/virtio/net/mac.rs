//! MAC addresses: a random one for a device without its own, and how they print.

use core::fmt;

/// A unicast, locally administered MAC address from the low 46 bits of
/// `random` (IEEE 802: bit 0 of the first byte is the group bit, bit 1 the
/// local bit).
pub fn random_mac(random: u64) -> [u8; 6] {
    let b = random.to_le_bytes();
    [(b[0] & !0b11) | 0b10, b[1], b[2], b[3], b[4], b[5]]
}

/// Formats a MAC address as `52:54:00:12:34:56`.
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}
