//! A counting wrapper around the system allocator, so `bench` can report how often the engines
//! allocate per slice (the project's own per-slice code allocates nothing: see
//! tests/hot_path_allocations.rs). The binary installs it as the global allocator; the counter is
//! per thread (a const-initialized thread-local `Cell`, which never allocates or recurses), so it
//! costs one add per allocation. Touches nothing else.
//! The crate denies `unsafe`; this module allows it for the `GlobalAlloc` forwarding only.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations and reallocations of the calling thread.
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to `System`; the counters are thread-local `Cell`s
// with const initializers, so updating them neither allocates nor re-enters the allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: usize) {
    // `try_with`: during thread teardown the slot may be gone; such allocations go uncounted.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
    let _ = BYTES.try_with(|c| c.set(c.get() + bytes as u64));
}

/// Allocations and bytes requested so far on the calling thread.
pub fn this_thread() -> (u64, u64) {
    (ALLOCATIONS.with(Cell::get), BYTES.with(Cell::get))
}

/// Whether the counting allocator is installed (in the `pe-sentinel` binary it is; in library
/// users and most tests it is not, and counts stay at zero).
pub fn installed() -> bool {
    let before = this_thread().0;
    let probe = std::hint::black_box(Vec::<u8>::with_capacity(1));
    let after = this_thread().0;
    drop(probe);
    after > before
}
