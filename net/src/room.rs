//! Room in growable lists: the apps' and the pool's connection lists grow
//! with a crowd, and must give the memory back once it has gone, so that
//! the heap returns to its baseline even while a connection or two remain.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Entries a list keeps room for however few it holds; beyond this a list
/// at most a quarter full gives memory back (`shrink_when_sparse`), so that
/// after a crowd has gone the heap is back at its baseline, even while a
/// connection or two remain.
pub const KEEP_ROOM: usize = 16;
/// A list is sparse when it holds at most 1/SPARSE of its room; it then
/// keeps room for twice what it holds, so that growing and shrinking cost
/// amortised O(1) per entry.
pub const SPARSE: usize = 4;

/// The room a list of `len` entries in `capacity` slots should shrink to,
/// if it should: the apps' and the pool's lists grow with a crowd and must
/// not pin its size once it has gone (`KEEP_ROOM`, `SPARSE`).
pub fn sparse_room(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP_ROOM && len.saturating_mul(SPARSE) <= capacity).then(|| (len * 2).max(KEEP_ROOM))
}

/// Gives a sparse list's memory back (see [`sparse_room`]).
pub fn shrink_when_sparse<T>(list: &mut Vec<T>) {
    if let Some(room) = sparse_room(list.len(), list.capacity()) {
        list.shrink_to(room);
    }
}

/// As [`shrink_when_sparse`], for a queue.
pub fn shrink_queue_when_sparse<T>(list: &mut VecDeque<T>) {
    if let Some(room) = sparse_room(list.len(), list.capacity()) {
        list.shrink_to(room);
    }
}

#[cfg(test)]
mod test {
    use super::{KEEP_ROOM, sparse_room};

    #[test]
    fn a_list_shrinks_only_when_sparse_and_keeps_room_for_twice_its_length() {
        assert_eq!(sparse_room(0, KEEP_ROOM), None, "small lists keep their room");
        assert_eq!(sparse_room(100, 300), None, "a third full is not sparse");
        assert_eq!(sparse_room(100, 400), Some(200));
        assert_eq!(sparse_room(1, 1000), Some(KEEP_ROOM));
    }
}
