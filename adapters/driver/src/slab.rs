//! Recycled buffers for payload bytes.
//!
//! Every stream write copies the application's bytes into a buffer, and every
//! link read fills one. Allocating those afresh on a fast link makes the system
//! allocator return memory to the kernel and fault it back in, page by page,
//! which costs more than the copies themselves. Instead, payload memory comes in
//! slabs of [`SLAB`] bytes that are cut into `Bytes`; a used slab waits in a
//! bounded, process-wide list until every piece cut from it has been dropped, and
//! is then handed out again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};

/// The size of one slab.
pub const SLAB: usize = 256 * 1024;
/// How many used slabs wait for reuse, process-wide: at most 8 MiB, beyond which
/// the oldest is left to the allocator.
const MAX_WAITING: usize = 32;
/// How many used slabs wait for reuse once no session in the process is using
/// a slab: an idle server keeps 1 MiB for the next burst, not 8.
const IDLE_WAITING: usize = 4;
/// Writes smaller than this are copied into an allocation of their own: the
/// allocator's small-size caches serve them well, and a small piece held for long
/// would keep a whole slab from being reused.
pub const SMALL_COPY: usize = 4 * 1024;

/// A quiet link's reads land in buffers of this size from the allocator rather
/// than in slabs: an idle session then holds 4 KiB instead of 256 KiB, and
/// thousands of short-lived sessions do not scatter slabs across the allocator's
/// arenas (which kept the resident set growing after the sessions were gone).
pub const SMALL_BUF: usize = 4 * 1024;

/// An idle link (new, or quiet for a while) waits for its next bytes with a
/// buffer this small: a silent session should cost well under a page.
pub const IDLE_BUF: usize = 512;

static WAITING: Mutex<VecDeque<BytesMut>> = Mutex::new(VecDeque::new());
/// Slabs that a reader or writer is cutting pieces from right now.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many slabs readers and writers of all sessions in this process are
/// cutting pieces from right now: an idle session holds none (its link has
/// been quiet for a second), so this tells whether idle sessions gave their
/// buffers back.
pub fn slabs_held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// A buffer with room for at least [`SLAB`] bytes: a used slab whose pieces are
/// all gone when there is one, a new one otherwise.
pub fn fresh_slab() -> BytesMut {
    {
        let mut waiting = WAITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(at) = waiting.iter_mut().position(|slab| slab.try_reclaim(SLAB)) {
            if let Some(slab) = waiting.remove(at) {
                return slab;
            }
        }
    }
    BytesMut::with_capacity(SLAB)
}

/// Hands a used slab back: it is reused once every piece cut from it is dropped.
fn retire(mut slab: BytesMut) {
    slab.clear();
    let mut waiting = WAITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    waiting.push_back(slab);
    if waiting.len() > MAX_WAITING {
        waiting.pop_front();
    }
}

/// How many used slabs wait for reuse.
pub fn slabs_waiting() -> usize {
    WAITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
}

/// Lets the allocator have all but `IDLE_WAITING` of the waiting slabs, if
/// no reader or writer in the process holds a slab: everything is quiet.
pub fn trim_when_quiet() {
    if HELD.load(Ordering::Relaxed) > 0 {
        return;
    }
    let mut waiting = WAITING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    while waiting.len() > IDLE_WAITING {
        waiting.pop_front();
    }
}

/// The slab a writer or reader is cutting pieces from: taken from the waiting slabs when
/// first needed, handed back when full or dropped.
#[derive(Default)]
pub struct SlabBuf {
    slab: Option<BytesMut>,
    /// Whether the current buffer is a small one (see [`SMALL_BUF`]), which goes
    /// back to the allocator rather than to the waiting list.
    small: bool,
}

impl SlabBuf {
    /// The current slab, replaced by a fresh one first when it has less than
    /// `room` bytes left (`room` at most [`SLAB`]).
    pub fn with_room(&mut self, room: usize) -> &mut BytesMut {
        self.ensure_room(room, None)
    }

    /// Like [`with_room`](Self::with_room), but a buffer without `room` left is
    /// replaced by a small one ([`SMALL_BUF`], `room` at most that) instead of a
    /// slab: for reads while the link is quiet.
    pub fn with_small_room(&mut self, room: usize) -> &mut BytesMut {
        self.ensure_room(room, Some(SMALL_BUF))
    }

    /// The current buffer if it has [`IDLE_BUF`] bytes left, else a new one
    /// of that size: for the reads of an idle link.
    pub fn with_idle_room(&mut self) -> &mut BytesMut {
        self.ensure_room(IDLE_BUF, Some(IDLE_BUF))
    }

    /// The current buffer if it has `room` left, else a new one: a small one
    /// of `small` bytes, or a slab.
    fn ensure_room(&mut self, room: usize, small: Option<usize>) -> &mut BytesMut {
        let enough = self
            .slab
            .as_ref()
            .is_some_and(|slab| slab.capacity() - slab.len() >= room);
        if !enough {
            self.drop_current();
            self.small = small.is_some();
        }
        self.slab.get_or_insert_with(|| {
            if let Some(size) = small {
                BytesMut::with_capacity(size)
            } else {
                HELD.fetch_add(1, Ordering::Relaxed);
                fresh_slab()
            }
        })
    }

    /// Whether the current buffer is a slab (not a small buffer, not none).
    pub fn holds_slab(&self) -> bool {
        self.slab.is_some() && !self.small
    }

    /// The bytes added to the current slab since the last piece was cut.
    pub fn take_filled(&mut self) -> Bytes {
        self.slab.as_mut().map(|slab| slab.split().freeze()).unwrap_or_default()
    }

    /// `data` as `Bytes`: small writes get an allocation of their own, larger ones
    /// a piece of the slab.
    pub fn copy(&mut self, data: &[u8]) -> Bytes {
        if data.len() < SMALL_COPY || data.len() > SLAB {
            return Bytes::copy_from_slice(data);
        }
        let slab = self.with_room(data.len());
        slab.extend_from_slice(data);
        slab.split().freeze()
    }
}

impl SlabBuf {
    /// Lets go of the current buffer: a slab goes to the waiting list, a small one to
    /// the allocator.
    fn drop_current(&mut self) {
        if let Some(slab) = self.slab.take() {
            if !self.small {
                HELD.fetch_sub(1, Ordering::Relaxed);
                retire(slab);
            }
        }
    }
}

impl Drop for SlabBuf {
    fn drop(&mut self) {
        self.drop_current();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slab_comes_back_once_its_pieces_are_dropped() {
        let mut writes = SlabBuf::default();
        let data = vec![3u8; SLAB / 2];
        let first = writes.copy(&data);
        let second = writes.copy(&data);
        let first_slab = first.as_ptr();
        assert_eq!(
            second.as_ptr(),
            first_slab.wrapping_add(SLAB / 2),
            "both halves of one slab"
        );
        // The slab is full: the next piece needs another. The first slab waits
        // while its pieces are alive...
        let third = writes.copy(&data);
        assert_ne!(third.as_ptr(), first_slab);
        assert_eq!((&first[..], &second[..], &third[..]), (&data[..], &data[..], &data[..]));
        drop((first, second));
        // ...and is handed out again once they are gone (other tests may take it
        // first, so look for it among a few).
        let reused = (0..MAX_WAITING)
            .map(|_| fresh_slab())
            .any(|slab| slab.as_ptr() == first_slab);
        assert!(reused, "the first slab was not reused");
    }

    #[test]
    fn quiet_reads_take_a_small_buffer_and_keep_using_a_slab_with_room() {
        let mut reads = SlabBuf::default();
        assert_eq!(reads.with_small_room(SMALL_BUF).capacity(), SMALL_BUF);
        reads.with_small_room(SMALL_BUF).extend_from_slice(&[1; SMALL_BUF]);
        assert_eq!(reads.take_filled().len(), SMALL_BUF);
        // Full: the next quiet read gets another small buffer, not a slab.
        assert_eq!(reads.with_small_room(SMALL_BUF).capacity(), SMALL_BUF);
        assert!(!reads.holds_slab());
    }

    #[test]
    fn idle_reads_take_a_tiny_buffer_or_use_the_room_left() {
        let mut reads = SlabBuf::default();
        assert_eq!(reads.with_idle_room().capacity(), IDLE_BUF);
        reads.with_idle_room().extend_from_slice(&[1; IDLE_BUF / 2]);
        assert_eq!(reads.take_filled().len(), IDLE_BUF / 2);
        // Half full: too little left for an idle read, so a fresh tiny one.
        assert_eq!(reads.with_idle_room().capacity(), IDLE_BUF);
        // A small buffer with room serves idle reads as it is.
        let mut reads = SlabBuf::default();
        reads.with_small_room(SMALL_BUF);
        assert_eq!(reads.with_idle_room().capacity(), SMALL_BUF);
        assert!(!reads.holds_slab());
    }

    #[test]
    fn small_and_oversized_writes_get_their_own_allocation() {
        let mut writes = SlabBuf::default();
        let small = writes.copy(b"hello");
        assert_eq!(&small[..], b"hello");
        assert!(writes.slab.is_none(), "a small write does not take a slab");
        let huge = vec![1u8; SLAB + 1];
        assert_eq!(writes.copy(&huge).len(), SLAB + 1);
        assert!(writes.slab.is_none());
    }
}
