//! Which TCP connection a frame belongs to, so that the damage can be drawn
//! per connection rather than per frame of the whole link.
//!
//! Drawn per frame of the link, one seed gives two guests different
//! damage: a guest that sends one frame more (an extra ACK, a segment cut
//! otherwise) shifts every later draw, so the same seed loses one guest's
//! SYN-ACK and the other's data segment, and the bench's sequential GETs,
//! whose time is mostly handshakes lost to the 1 s initial RTO, swung by
//! ±20 % between guests on the draw alone. Drawn per (connection, index of
//! the frame in its direction of that connection), both guests' k-th
//! connections lose the same frames: the client's SYN and request, and the
//! guest's SYN-ACK and its n-th segment, whoever sends them. Connections
//! are numbered from a mark (the client's "the loads begin", see
//! `relay::mark`), in the order their first SYN reaches the guest, so that
//! the polls before the loads (which differ: Skiff's `/stats`, boot time)
//! do not shift the numbering. Frames of anything else (ARP, connections
//! opened before the mark) keep the direction's sequential stream.

use std::collections::HashMap;

use crate::frames::{ACK, SYN, parse_tcp};

/// At most this many connections are told apart (the stress run's long
/// size opens a few thousand); later ones take the sequential stream.
pub const MAX_FLOWS: usize = 1 << 16;

/// A connection's two ends: (client address, client port, guest address,
/// guest port), the same key for both directions.
type Tuple = ([u8; 4], u16, [u8; 4], u16);

/// A connection opened since the mark.
struct Flow {
    number: u32,
    /// The client's initial sequence number: a SYN with another one for
    /// the same ends is a new connection (the host reuses a port as soon
    /// as the last connection on it is closed), not a retransmission.
    isn: u32,
    /// Frames carried so far, towards the guest and from it.
    frames: [u64; 2],
}

/// The connections opened since the mark, by their ends.
#[derive(Default)]
pub struct Flows {
    by_tuple: HashMap<Tuple, Flow>,
    next: u32,
}

impl Flows {
    /// The loads begin: number connections from 0 again.
    pub fn mark(&mut self) {
        self.by_tuple.clear();
        self.next = 0;
    }

    /// How many connections have been numbered since the mark.
    pub fn count(&self) -> u32 {
        self.next
    }

    /// `(connection, index of this frame in its direction)` for a TCP frame
    /// of a connection opened since the mark; `None` for anything else. A
    /// SYN towards the guest for an unknown pair of ends opens one.
    pub fn place(&mut self, frame: &[u8], to_guest: bool) -> Option<(u32, u64)> {
        let t = parse_tcp(frame)?;
        let tuple = if to_guest {
            (t.src.octets(), t.src_port, t.dst.octets(), t.dst_port)
        } else {
            (t.dst.octets(), t.dst_port, t.src.octets(), t.src_port)
        };
        let opening = to_guest && t.flags & (SYN | ACK) == SYN;
        let known = self.by_tuple.get(&tuple).map(|f| f.isn);
        if opening && known != Some(t.seq) && (known.is_some() || self.by_tuple.len() < MAX_FLOWS) {
            self.by_tuple.insert(tuple, Flow { number: self.next, isn: t.seq, frames: [0, 0] });
            self.next += 1;
        }
        let flow = self.by_tuple.get_mut(&tuple)?;
        let slot = &mut flow.frames[usize::from(!to_guest)];
        let index = *slot;
        *slot += 1;
        Some((flow.number, index))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::frames::{self, Ipv4, PROTO_TCP, Tcp};

    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn segment(to_guest: bool, client_port: u16, flags: u8) -> Vec<u8> {
        segment_at(to_guest, client_port, flags, 1)
    }

    fn segment_at(to_guest: bool, client_port: u16, flags: u8, seq: u32) -> Vec<u8> {
        let (src, dst, sp, dp) =
            if to_guest { (CLIENT, GUEST, client_port, 80) } else { (GUEST, CLIENT, 80, client_port) };
        let tcp = Tcp { src_port: sp, dst_port: dp, seq, ack: 1, flags, window: 512 };
        frames::ipv4_frame([1; 6], [2; 6], &Ipv4::new(src, dst, PROTO_TCP), &tcp.build(src, dst, b""))
    }

    #[test]
    fn connections_are_numbered_from_the_mark_by_their_first_syn() {
        let mut f = Flows::default();
        // A connection from before the mark, and its late frames after it: not numbered.
        assert_eq!(f.place(&segment(true, 1000, SYN), true), Some((0, 0)));
        f.mark();
        assert_eq!(f.place(&segment(true, 1000, ACK), true), None);
        // The first connection after the mark is 0, whatever its port.
        assert_eq!(f.place(&segment(true, 5000, SYN), true), Some((0, 0)));
        assert_eq!(f.place(&segment(false, 5000, SYN | ACK), false), Some((0, 0)));
        // Its SYN again (the SYN-ACK was lost) is the same connection, next index.
        assert_eq!(f.place(&segment(true, 5000, SYN), true), Some((0, 1)));
        assert_eq!(f.place(&segment(false, 5000, SYN | ACK), false), Some((0, 1)));
        assert_eq!(f.place(&segment(true, 4000, SYN), true), Some((1, 0)));
        assert_eq!(f.place(&segment(true, 5000, ACK), true), Some((0, 2)));
        // The guest cannot open one, nor can a frame that is not TCP.
        assert_eq!(f.place(&segment(false, 6000, SYN), false), None);
        assert_eq!(f.place(&[0u8; 64], true), None);
        assert_eq!(f.count(), 2);
        // The host reuses port 5000 for a new connection (another initial
        // sequence number): a new number, its frames counted from 0.
        assert_eq!(f.place(&segment_at(true, 5000, SYN, 777), true), Some((2, 0)));
        assert_eq!(f.place(&segment_at(true, 5000, SYN, 777), true), Some((2, 1)));
        assert_eq!(f.place(&segment(false, 5000, SYN | ACK), false), Some((2, 0)));
    }
}
