//! The allocator of every wasm build (the core module and both JS builds):
//! power-of-two size classes, each with a free list, carved from
//! `memory.grow`n pages. A few hundred bytes of code where Rust's default
//! (dlmalloc) was ~8 KB, and faster for what one call allocates: an
//! allocation pops a list or bumps a pointer, a free pushes.
//!
//! Memory freed to a class is reused by that class only (no splitting or
//! merging), so an instance holds at most about twice what it ever held at
//! once per class; wasm memory never shrinks with dlmalloc either. The module
//! has one thread (wasm32-unknown-unknown without atomics).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

const PAGE: usize = 64 * 1024;
/// Every block is at least this big and this aligned: a free block holds the
/// next one's address, and 16 covers every alignment Rust uses on wasm32.
const MIN: usize = 16;
/// Classes 2^0 .. 2^31 bytes (the small ones unused); wasm32's memory is 4 GiB.
const CLASSES: usize = 32;

struct State {
    /// The first free block of each class, 0 for none; each holds the next.
    free: [usize; CLASSES],
    /// The bump region: `next` up to `end`, not yet handed out.
    next: usize,
    end: usize,
}

pub struct Heap(UnsafeCell<State>);

// SAFETY: wasm32-unknown-unknown (without the atomics feature) has one thread.
unsafe impl Sync for Heap {}

impl Heap {
    pub const fn new() -> Self {
        Self(UnsafeCell::new(State {
            free: [0; CLASSES],
            next: 0,
            end: 0,
        }))
    }
}

/// The class of a layout: the power of two its blocks have; `None` if too big.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(MIN);
    let class = (usize::BITS - (size - 1).leading_zeros()) as usize;
    (class < CLASSES).then_some(class)
}

impl State {
    /// A fresh block of `size` bytes aligned to `align`, from the bump region,
    /// growing memory when it runs out; null when memory cannot grow.
    fn bump(&mut self, size: usize, align: usize) -> *mut u8 {
        let fits = |next: usize, end: usize| {
            let start = next.checked_add(align - 1)? & !(align - 1);
            let stop = start.checked_add(size)?;
            (stop <= end).then_some((start, stop))
        };
        let (start, stop) = match fits(self.next, self.end) {
            Some(found) => found,
            None => {
                let Some(pages) = size
                    .checked_add(align)
                    .and_then(|n| n.checked_add(PAGE - 1))
                    .map(|n| n / PAGE)
                else {
                    return ptr::null_mut();
                };
                let old = core::arch::wasm32::memory_grow(0, pages);
                if old == usize::MAX {
                    return ptr::null_mut();
                }
                let (Some(base), Some(end)) =
                    (old.checked_mul(PAGE), (old + pages).checked_mul(PAGE))
                else {
                    return ptr::null_mut();
                };
                if base != self.end {
                    // Not right after the region: start again at the new pages.
                    self.next = base;
                }
                self.end = end;
                match fits(self.next, self.end) {
                    Some(found) => found,
                    None => return ptr::null_mut(),
                }
            }
        };
        self.next = stop;
        start as *mut u8
    }
}

// SAFETY: blocks are handed out once until freed, sized and aligned for their
// layout; a freed block goes back to its layout's class.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: one thread, and no allocator call re-enters another.
        let state = unsafe { &mut *self.0.get() };
        let Some(class) = class(layout) else {
            return ptr::null_mut();
        };
        let Some(head) = state.free.get_mut(class) else {
            return ptr::null_mut();
        };
        if *head != 0 && layout.align() <= MIN {
            let block = *head as *mut u8;
            // SAFETY: a free block holds the address of the next one.
            *head = unsafe { block.cast::<usize>().read() };
            return block;
        }
        state.bump(1 << class, layout.align().max(MIN))
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.0.get() };
        if let Some(head) = class(layout).and_then(|class| state.free.get_mut(class)) {
            // SAFETY: the block is at least MIN bytes, MIN-aligned, and no longer in use.
            unsafe { block.cast::<usize>().write(*head) };
            *head = block as usize;
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller passes a size valid for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if class(new_layout) == class(layout) {
            return block;
        }
        // SAFETY: `new_layout` is non-zero in size, as the caller guarantees.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and do not overlap.
            unsafe {
                ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        new
    }
}
