//! The runtime's heap: power-of-two size classes carved from a static arena,
//! with a free list per class.
//!
//! `berth` lives for milliseconds and allocates a few hundred KiB. musl's
//! allocator maps a fresh group of pages for each new size class and unmaps
//! it as soon as it empties: reading one /proc file into a growing buffer
//! costs an mmap and a munmap per doubling, about 80 of each per `run`, with
//! a page fault after each mmap. Here blocks come from a zero-initialised
//! static (bss: no system call, a page is faulted in once, on first touch),
//! and freed blocks are kept for reuse, never returned to the system. The
//! runtime is single-threaded, so the lock is never contended; it only makes
//! the allocator sound.
//!
//! Requests larger than the largest class, aligned to more than 16 bytes, or
//! made once the arena is used up go to the system allocator; `dealloc` tells
//! the two apart by address.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

/// Smallest block: room for the free-list link, and the alignment every
/// block gets.
const MIN: usize = 16;
/// Number of classes: 16 B to 64 KiB (the sync channel's receive buffer).
const CLASSES: usize = 13;
/// Largest block served from the arena.
pub const MAX: usize = MIN << (CLASSES - 1);

/// A heap over an arena of `N` bytes. `const`-constructed and all zero, so a
/// `static` of it lives in bss.
#[repr(C, align(4096))]
pub struct Heap<const N: usize> {
    arena: UnsafeCell<[u8; N]>,
    state: UnsafeCell<State>,
    lock: AtomicBool,
}

struct State {
    /// Offset of the first never-used byte of the arena.
    next: usize,
    /// Head of each class's list of freed blocks; each free block holds the
    /// address of the next in its first word.
    free: [*mut u8; CLASSES],
}

// SAFETY: every access to `arena` and `state` happens with `lock` held
// (see `locked`), and handed-out blocks are disjoint.
unsafe impl<const N: usize> Sync for Heap<N> {}

impl<const N: usize> Default for Heap<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The class index of a request of `size` bytes, if the arena serves it.
fn class(size: usize) -> Option<usize> {
    if size > MAX {
        return None;
    }
    let rounded = size.max(MIN).next_power_of_two();
    Some((rounded.trailing_zeros() - MIN.trailing_zeros()) as usize)
}

fn served(layout: &Layout) -> Option<usize> {
    if layout.align() > MIN {
        return None;
    }
    class(layout.size())
}

impl<const N: usize> Heap<N> {
    /// An empty heap.
    pub const fn new() -> Self {
        Heap {
            arena: UnsafeCell::new([0; N]),
            state: UnsafeCell::new(State {
                next: 0,
                free: [ptr::null_mut(); CLASSES],
            }),
            lock: AtomicBool::new(false),
        }
    }

    fn base(&self) -> *mut u8 {
        self.arena.get().cast()
    }

    fn owns(&self, p: *mut u8) -> bool {
        let b = self.base() as usize;
        (b..b + N).contains(&(p as usize))
    }

    fn locked<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the state.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    /// A block of class `c`, or null when the arena is used up; and whether
    /// it is fresh from the arena, so still all zero.
    fn take(&self, c: usize) -> (*mut u8, bool) {
        let base = self.base();
        self.locked(|st| {
            let head = st.free[c];
            if !head.is_null() {
                // SAFETY: a free block of ours, 16+ bytes; its first word is `give`'s link.
                st.free[c] = unsafe { head.cast::<*mut u8>().read() };
                return (head, false);
            }
            let size = MIN << c;
            if N - st.next < size {
                return (ptr::null_mut(), false);
            }
            // SAFETY: next + size <= N, so the block lies inside the arena.
            let p = unsafe { base.add(st.next) };
            st.next += size;
            (p, true)
        })
    }

    /// Puts a block of class `c` back on its list.
    fn give(&self, p: *mut u8, c: usize) {
        self.locked(|st| {
            // SAFETY: `p` is an unused block of 16+ aligned bytes: its first word is free.
            unsafe { p.cast::<*mut u8>().write(st.free[c]) };
            st.free[c] = p;
        })
    }
}

// SAFETY: blocks are disjoint, at least `layout.size()` long and 16-aligned
// (sizes are multiples of 16 from a 4096-aligned base), which covers every
// layout the arena accepts; the rest is the system allocator's.
unsafe impl<const N: usize> GlobalAlloc for Heap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(c) = served(&layout) {
            let (p, _) = self.take(c);
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if let Some(c) = served(&layout) {
            let (p, fresh) = self.take(c);
            if !p.is_null() {
                // Never-used arena memory is still bss zero: not touching it
                // spares a page fault per page of a large buffer.
                if !fresh {
                    // SAFETY: the block holds at least layout.size() bytes.
                    unsafe { p.write_bytes(0, layout.size()) };
                }
                return p;
            }
        }
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if self.owns(p) {
            // A block of ours was handed out for a served layout.
            if let Some(c) = served(&layout) {
                self.give(p, c);
            }
            return;
        }
        // SAFETY: not ours, so the system allocator made it with `layout`.
        unsafe { System.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(p) {
            // SAFETY: the system allocator made `p` with `layout`.
            return unsafe { System.realloc(p, layout, new_size) };
        }
        let old = served(&layout).unwrap_or(0);
        // SAFETY: the caller guarantees new_size is valid with this align.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if served(&new_layout) == Some(old) {
            return p;
        }
        // SAFETY: a valid non-zero layout, as the caller guarantees.
        let q = unsafe { self.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: both blocks hold the smaller size; distinct blocks never overlap.
            unsafe {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two() {
        assert_eq!(class(0), Some(0));
        assert_eq!(class(1), Some(0));
        assert_eq!(class(16), Some(0));
        assert_eq!(class(17), Some(1));
        assert_eq!(class(4096), Some(8));
        assert_eq!(class(MAX), Some(CLASSES - 1));
        assert_eq!(class(MAX + 1), None);
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        static H: Heap<65536> = Heap::new();
        let l = Layout::from_size_align(24, 8).unwrap();
        // SAFETY: valid layouts; blocks written within size, freed once with their layout.
        unsafe {
            let a = H.alloc(l);
            let b = H.alloc(l);
            assert!(H.owns(a) && H.owns(b));
            assert!((a as usize).is_multiple_of(16));
            assert!((b as usize).abs_diff(a as usize) >= 32);
            a.write_bytes(0xaa, 24);
            b.write_bytes(0xbb, 24);
            assert_eq!(*a.add(23), 0xaa);
            H.dealloc(a, l);
            assert_eq!(H.alloc(l), a, "a freed block is reused first");
            H.dealloc(a, l);
            H.dealloc(b, l);
        }
    }

    #[test]
    fn realloc_keeps_contents_and_grows_in_place_within_a_class() {
        static H: Heap<65536> = Heap::new();
        // SAFETY: as above; sizes passed to realloc are non-zero.
        unsafe {
            let l = Layout::from_size_align(20, 1).unwrap();
            let p = H.alloc(l);
            for i in 0..20 {
                *p.add(i) = u8::try_from(i).unwrap();
            }
            let q = H.realloc(p, l, 30);
            assert_eq!(q, p, "20 and 30 bytes share the 32-byte class");
            let r = H.realloc(q, Layout::from_size_align(30, 1).unwrap(), 1000);
            assert_ne!(r, q);
            for i in 0..20 {
                assert_eq!(*r.add(i), u8::try_from(i).unwrap());
            }
            H.dealloc(r, Layout::from_size_align(1000, 1).unwrap());
        }
    }

    #[test]
    fn zeroed_blocks_are_zero_fresh_or_reused() {
        static H: Heap<65536> = Heap::new();
        let l = Layout::from_size_align(4096, 8).unwrap();
        // SAFETY: as above.
        unsafe {
            let a = H.alloc_zeroed(l);
            assert!((0..4096).all(|i| *a.add(i) == 0));
            a.write_bytes(0x5a, 4096);
            H.dealloc(a, l);
            let b = H.alloc_zeroed(l);
            assert_eq!(b, a, "the freed block is reused");
            assert!((0..4096).all(|i| *b.add(i) == 0), "and zeroed again");
            H.dealloc(b, l);
        }
    }

    #[test]
    fn large_aligned_and_overflowing_requests_go_to_the_system() {
        static H: Heap<4096> = Heap::new();
        // SAFETY: as above.
        unsafe {
            let big = Layout::from_size_align(MAX + 1, 8).unwrap();
            let p = H.alloc(big);
            assert!(!p.is_null() && !H.owns(p));
            H.dealloc(p, big);
            let aligned = Layout::from_size_align(64, 64).unwrap();
            let p = H.alloc(aligned);
            assert!(!H.owns(p) && (p as usize).is_multiple_of(64));
            H.dealloc(p, aligned);
            // The 4 KiB arena holds one 4 KiB block; the next spills over,
            // and both free correctly.
            let l = Layout::from_size_align(4096, 8).unwrap();
            let a = H.alloc(l);
            let b = H.alloc(l);
            assert!(H.owns(a) && !H.owns(b));
            H.dealloc(b, l);
            H.dealloc(a, l);
            assert_eq!(H.alloc(l), a);
        }
    }
}
