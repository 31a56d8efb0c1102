//! Checksum offload, the virtio side of it (spec 5.1.6.2, 5.1.6.4.1).
//!
//! With CSUM the device finishes what the driver starts: the driver writes
//! the pseudo-header sum into the TCP/UDP checksum field and says in the
//! header where the segment starts (`csum_start`) and where in it the field
//! is (`csum_offset`); the device sums from `csum_start` to the end of the
//! buffer and stores the result. With GUEST_CSUM the device may hand the
//! driver such half-done frames, which the driver completes the same way
//! before the stack sees them.
//!
//! The protocol arithmetic (RFC 1071 sums, pseudo-headers, finding the
//! segment) is the stack's: `skiff_net::checksum`.

use skiff_net::checksum::{find_segment, fold, sum};

/// A checksum that computes to zero is sent as all ones: for UDP, zero
/// means "no checksum" (RFC 768), and in one's complement both are zero.
const ZERO_CHECKSUM_SENT_AS: u16 = 0xFFFF;

/// Prepares a frame for the device to checksum: writes the folded
/// pseudo-header sum into the checksum field and returns the header's
/// `(csum_start, csum_offset)`. `None` if the frame is not TCP/UDP we can
/// describe (the caller then checksums in software, or not at all).
pub fn prepare(frame: &mut [u8]) -> Option<(u16, u16)> {
    let segment = find_segment(frame)?;
    // The device sums to the end of the buffer, so the segment must end there.
    if segment.start + segment.len != frame.len() {
        return None;
    }
    let at = segment.csum_at();
    frame[at..at + 2].copy_from_slice(&fold(segment.pseudo_sum).to_be_bytes());
    Some((u16::try_from(segment.start).ok()?, segment.transport.csum_offset()))
}

/// Completes a partial checksum as a device would: sums from `start` to
/// `end` (the field holds the pseudo-header sum) and stores the result at
/// `start + offset`. A zero result is stored as 0xFFFF, its equal in ones'
/// complement, since zero means "no checksum" to UDP. Returns `false`, and
/// changes nothing, if the offsets do not fit in `frame[..end]`.
pub fn complete(frame: &mut [u8], start: usize, offset: usize, end: usize) -> bool {
    let Some(at) = start.checked_add(offset) else { return false };
    if end > frame.len() || start >= end || at.checked_add(2).is_none_or(|e| e > end) {
        return false;
    }
    let value = !fold(sum(&frame[start..end], 0));
    let value = if value == 0 { ZERO_CHECKSUM_SENT_AS } else { value };
    frame[at..at + 2].copy_from_slice(&value.to_be_bytes());
    true
}

/// Completes a received frame whose header says NEEDS_CSUM at `start`/`offset`:
/// the sum runs to the end of the IP payload when the frame's own headers
/// place the segment at `start` (Ethernet padding is not summed), else to the
/// end of the frame. Returns `false` if the offsets do not fit.
pub fn complete_received(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let end = find_segment(frame).filter(|s| s.start == start).map_or(frame.len(), |s| s.start + s.len);
    complete(frame, start, offset, end)
}

#[cfg(test)]
mod test {
    use super::*;
    use skiff_net::checksum::{fill_in_software, test_frames::udp4_frame, verify};

    #[test]
    fn prepared_then_completed_is_a_valid_checksum() {
        let mut frame = udp4_frame(b"checksum me");
        let (start, offset) = prepare(&mut frame).expect("a UDP frame can be offloaded");
        assert_eq!((start, offset), (34, 6));
        assert_eq!(verify(&frame), Some(false), "a partial checksum is not yet valid");
        assert!(complete_received(&mut frame, usize::from(start), usize::from(offset)));
        assert_eq!(verify(&frame), Some(true));
    }

    #[test]
    fn offload_then_device_completion_gives_the_software_result() {
        let mut frame = udp4_frame(b"partial checksum");
        let mut software = frame.clone();
        assert!(fill_in_software(&mut software));
        let (start, offset) = prepare(&mut frame).expect("offloadable");
        // What the device does with NEEDS_CSUM: sum from csum_start to the end.
        let end = frame.len();
        assert!(complete(&mut frame, usize::from(start), usize::from(offset), end));
        assert_eq!(frame, software);
    }

    #[test]
    fn a_zero_sum_is_stored_as_ffff() {
        let mut segment = vec![0u8; 8];
        assert!(complete(&mut segment, 0, 6, 8));
        assert_eq!(&segment[6..8], &[0xff, 0xff], "zero would mean no UDP checksum");
    }

    #[test]
    fn complete_refuses_offsets_outside_the_frame() {
        let mut f = vec![1u8; 40];
        let before = f.clone();
        assert!(!complete(&mut f, 40, 0, 40), "start at the end");
        assert!(!complete(&mut f, 30, 9, 40), "field straddles the end");
        assert!(!complete(&mut f, usize::MAX, 6, 40), "overflow");
        assert!(!complete(&mut f, 0, usize::MAX, 40), "overflow");
        assert!(!complete(&mut f, 0, 6, 41), "end past the frame");
        assert_eq!(f, before);
    }

    #[test]
    fn offsets_past_the_frame_change_nothing() {
        let mut frame = udp4_frame(b"x");
        let before = frame.clone();
        let len = frame.len();
        assert!(!complete(&mut frame, len - 1, 6, len));
        assert!(!complete(&mut frame, 34, usize::MAX, len));
        assert!(!complete(&mut frame, 34, 6, len + 1));
        assert_eq!(frame, before);
    }

    #[test]
    fn padding_after_the_segment_is_not_offloaded() {
        let mut frame = udp4_frame(b"x");
        frame.extend_from_slice(&[0; 8]);
        assert_eq!(prepare(&mut frame), None);
    }
}
