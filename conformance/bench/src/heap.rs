//! Live heap bytes, counted. A resident set says what a process got from the
//! kernel, and after a burst of traffic that includes all the memory the
//! allocator keeps for later; the count here says what the program still
//! holds. Counting is off unless a process turns it on (the memory workloads'
//! child processes do), so the throughput and latency workloads pay one
//! uncontended load per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The system allocator, with a count of the bytes it has handed out and not
/// yet been given back.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Starts counting. Memory allocated before and freed after makes the count
/// lower than the truth, so only differences between two counts mean anything.
pub fn start() {
    ON.store(true, Ordering::Relaxed);
}

/// Bytes allocated and not freed since counting started.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn count(delta: isize) {
    if ON.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every method hands its arguments to `System` unchanged and returns
// what `System` returned, so the allocator's contract is `System`'s; counting
// touches no memory it hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator (that is, `System`)
        // handed out, with the layout it was allocated with.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s
        // contract for `new_size`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}
