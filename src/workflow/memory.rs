//! The memory a team's script may use: the process's allocator counts, per thread, the bytes
//! allocated (less those freed) while a script call runs there, and the call stops when that
//! passes [`super::script::LIMITS`]`.memory`. Rhai's own size limits (string, array and map
//! sizes) do not cover every way a script can grow a value (a map grown by `m[k] = v`, nested
//! arrays), and the daemon must stay inside its unit's `MemoryMax` whatever a script does.
//!
//! Counting is a thread-local flag and a thread-local sum, off outside script calls: the cost
//! for the rest of the process is one thread-local read per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting while [`Counting::start`] is in force on the thread.
pub struct Counting;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static NET: Cell<isize> = const { Cell::new(0) };
}

#[inline]
fn note(delta: isize) {
    // `try_with`: a thread being torn down has no locals left, and allocates all the same.
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = NET.try_with(|net| net.set(net.get().saturating_add(delta)));
        }
    });
}

fn size(bytes: usize) -> isize {
    isize::try_from(bytes).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only reads and
// writes two thread-locals that need no allocation and no destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(size(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            note(size(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as `alloc`.
        unsafe { System.dealloc(ptr, layout) };
        note(-size(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `alloc`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(size(new_size).saturating_sub(size(layout.size())));
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

impl Counting {
    /// Counts this thread's allocations from zero until [`Counting::stop`].
    pub fn start() {
        NET.set(0);
        ON.set(true);
    }

    pub fn stop() {
        ON.set(false);
    }

    /// Bytes allocated and not freed on this thread since [`Counting::start`].
    pub fn net() -> isize {
        NET.get()
    }
}

#[cfg(test)]
mod tests {
    use super::Counting;

    #[test]
    fn counts_what_this_thread_holds() {
        Counting::start();
        let kept = vec![0u8; 1 << 20];
        let held = Counting::net();
        drop(kept);
        let after = Counting::net();
        Counting::stop();
        assert!(held >= 1 << 20, "{held}");
        assert!(after < 1 << 10, "{after}");
    }
}
