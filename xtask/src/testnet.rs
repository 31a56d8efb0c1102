//! Who is who on the test networks, in one place: the guest's MAC and
//! address, the gateway, and the guest's services. Both networks use the same
//! numbers: QEMU's user network (slirp, whose DHCP server leases 10.0.2.15
//! first and whose gateway is 10.0.2.2) and the TAP test network (`netns.rs`,
//! where the guest is given the same address statically).

use std::net::Ipv4Addr;

use crate::frames::{Mac, mac_text};

/// The MAC address the tests give the card (QEMU's `mac=`), and expect the
/// kernel to report. 52:54:00 is QEMU's own prefix.
pub const GUEST_MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// The guest's IPv4 address.
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The gateway: slirp's host address, or the TAP device's in the namespace.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The test networks' prefix length (10.0.2.0/24).
pub const PREFIX_LEN: u8 = 24;
/// The guest's HTTP port (net/src/apps).
pub const HTTP_PORT: u16 = 80;
/// The echo service's port (RFC 862): the guest's TCP echo (net/src/apps),
/// and the UDP echo server on the gateway's side of the TAP network.
pub const ECHO_PORT: u16 = 7;
/// The discard service's port (RFC 863): nothing listens there in the
/// guest, so a datagram to it is UDP received and dropped.
pub const DISCARD_PORT: u16 = 9;
/// Listening sockets of a guest: the pool's listeners, 4 HTTP + 4 echo
/// (net/src/pool.rs), refilled as connections take them.
pub const LISTENING_SOCKETS: u64 = 8;

/// [`GUEST_MAC`] as QEMU, `/stats` and tshark write it.
pub fn guest_mac_text() -> String {
    mac_text(GUEST_MAC)
}

/// The guest's address with its prefix, as `/stats` shows it: `10.0.2.15/24`.
pub fn guest_cidr() -> String {
    format!("{GUEST_IP}/{PREFIX_LEN}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_is_named_as_qemu_and_stats_name_it() {
        assert_eq!(guest_mac_text(), "52:54:00:12:34:56");
        assert_eq!(guest_cidr(), "10.0.2.15/24");
    }
}
