//! A global allocator that can refuse oversized single allocations on one thread, for a span of
//! code: the DICOM parser (dicom-rs) allocates an element's declared length with
//! `try_reserve_exact` and zero-fills it *before* reading, so a damaged length field (found by
//! fuzzing: a 7.6 kB file asked for ~3.7 GB) would make the daemon use gigabytes and, under the
//! unit's `MemoryMax=`, be killed again and again on the same file. Inside `with_single_alloc_cap`
//! an allocation larger than the cap fails, `try_reserve_exact` reports it, and the file is
//! rejected with a reason. Outside, it is the system allocator plus one thread-local read.
//!
//! Only effective where `CappedAlloc` is the `#[global_allocator]` (the `pe-sentinel` binary, the
//! fuzz targets, tests/fuzz_regressions.rs); elsewhere the cap is silently absent. Touches nothing
//! but memory. The one module with `unsafe` besides FFI: a `GlobalAlloc` impl must be unsafe.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The system allocator, refusing single allocations above the current thread's cap.
pub struct CappedAlloc;

fn allowed(size: usize) -> bool {
    // `try_with` fails only while the thread is being torn down: allow then.
    CAP.try_with(|c| size <= c.get()).unwrap_or(true)
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the GlobalAlloc contract;
// refusing an allocation by returning null is allowed by that contract.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !allowed(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !allowed(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` with single allocations on this thread limited to `max_bytes` (restored afterwards,
/// also on panic). Fallible allocations (`try_reserve`) above it fail; an infallible one aborts,
/// so choose a cap no legitimate allocation in `f` reaches.
pub fn with_single_alloc_cap<T>(max_bytes: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = CAP.try_with(|c| c.set(self.0));
        }
    }
    let previous = CAP.with(|c| c.replace(max_bytes.min(c.get())));
    let _restore = Restore(previous);
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_restored_and_nests_to_the_smaller() {
        with_single_alloc_cap(1000, || {
            assert_eq!(CAP.with(Cell::get), 1000);
            with_single_alloc_cap(5000, || assert_eq!(CAP.with(Cell::get), 1000));
            assert_eq!(CAP.with(Cell::get), 1000);
        });
        assert_eq!(CAP.with(Cell::get), usize::MAX);
    }
}
