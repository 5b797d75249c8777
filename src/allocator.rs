//! The global allocator: mimalloc, entered the way Rust's own `System`
//! allocator enters malloc.
//!
//! The `mimalloc` crate hands every request to `mi_malloc_aligned`, whose
//! fast path in mimalloc 3 only serves sizes whose block is a power of two;
//! every other size goes through its generic path, and some through an
//! over-allocation that marks the page as holding interior pointers. Rust
//! asks for alignments of 16 bytes or less almost always, and `mi_malloc`
//! aligns every block of 16 bytes or more to 16 (`MI_MAX_ALIGN_SIZE`) and
//! smaller ones to 8; so a request whose alignment is at most 16 and at most
//! its size goes straight to `mi_malloc`, `mi_zalloc` or `mi_realloc`, the
//! rest to the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// The alignment of every `mi_malloc` block of this size or more (mimalloc's `MI_MAX_ALIGN_SIZE`).
const MALLOC_ALIGN: usize = 16;

pub struct MiMalloc;

impl MiMalloc {
    /// Whether a plain block of `size` bytes is aligned enough (the test
    /// Rust's `System` allocator makes before calling malloc).
    fn malloc_aligns(align: usize, size: usize) -> bool {
        align <= MALLOC_ALIGN && align <= size
    }

    /// A new block from `plain` when a plain block is aligned enough, else from `aligned`.
    ///
    /// # Safety
    /// As `GlobalAlloc::alloc`.
    #[inline]
    unsafe fn allocate(
        layout: Layout,
        plain: unsafe extern "C" fn(usize) -> *mut c_void,
        aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
    ) -> *mut u8 {
        // SAFETY: plain FFI calls; mimalloc returns null on failure, as `GlobalAlloc` expects.
        unsafe {
            if Self::malloc_aligns(layout.align(), layout.size()) {
                plain(layout.size()).cast()
            } else {
                aligned(layout.size(), layout.align()).cast()
            }
        }
    }
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free`
// takes blocks of any of its entry points); alignments are honoured as the
// module documentation says.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `allocate`'s.
        unsafe { Self::allocate(layout, ffi::mi_malloc, ffi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe { Self::allocate(layout, ffi::mi_zalloc, ffi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract).
        unsafe {
            if Self::malloc_aligns(layout.align(), new_size) {
                ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Keeps this process's memory out of transparent huge pages. Where the
/// kernel gives them to every anonymous mapping (`enabled = always`, as on
/// our build machines), each fresh page mimalloc takes after returning one
/// faults in a whole 2 MiB page, zeroed: a create of 10 000 conversations
/// spent a sixth of its CPU in `clear_page_erms`, and ran 25 % faster
/// without. (mimalloc's own switch, `MIMALLOC_ALLOW_THP=0`, is read before
/// `main` and cannot be set from here.) Call first thing in `main`.
/// mimalloc's `mi_option_purge_delay`: its place in mimalloc 3's
/// `mi_option_t` (libmimalloc-sys names only the options it calls stable).
const MI_OPTION_PURGE_DELAY: ffi::mi_option_t = 15;

/// Returns freed pages to the system at once instead of after mimalloc's
/// delay (a second). A create's renderers free as much as they allocate, on many
/// blocking threads; with the delay the pages they had freed counted in the
/// server's peak: a create of 20 000 peaked at 346 MB, 192 MB without it, at
/// the same speed within noise. Call first thing in `main`.
pub fn return_freed_memory_at_once() {
    // SAFETY: sets an integer option; the index is checked by a test below.
    unsafe { ffi::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

pub fn refuse_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes one integer and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc 3's default purge delay is 1 000 ms (src/options.c).
        // SAFETY: reads integer options.
        unsafe {
            assert_eq!(ffi::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            return_freed_memory_at_once();
            assert_eq!(ffi::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
        }
    }

    /// Every alignment is honoured, zeroed blocks are zero, and a block
    /// keeps its bytes and its alignment when it grows or shrinks.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes_through_realloc() {
        let allocator = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 3, 8, 15, 16, 24, 40, 100, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every block is freed with the layout it has.
                unsafe {
                    let zeroed = allocator.alloc_zeroed(layout);
                    assert_eq!(zeroed as usize % align, 0, "alloc_zeroed {size} bytes aligned to {align}");
                    assert!(std::slice::from_raw_parts(zeroed, size).iter().all(|&b| b == 0));
                    allocator.dealloc(zeroed, layout);

                    let mut block = allocator.alloc(layout);
                    assert_eq!(block as usize % align, 0, "alloc {size} bytes aligned to {align}");
                    let pattern = |i: usize| (i % 251) as u8;
                    for i in 0..size {
                        block.add(i).write(pattern(i));
                    }
                    // Grown, then shrunk below the original size.
                    let mut current = layout;
                    for new_size in [size * 3, size.div_ceil(2)] {
                        block = allocator.realloc(block, current, new_size);
                        assert_eq!(block as usize % align, 0, "realloc to {new_size} bytes aligned to {align}");
                        let kept = size.min(new_size);
                        assert!((0..kept).all(|i| block.add(i).read() == pattern(i)), "realloc to {new_size} keeps the bytes");
                        current = Layout::from_size_align(new_size, align).unwrap();
                    }
                    allocator.dealloc(block, current);
                }
            }
        }
    }
}
