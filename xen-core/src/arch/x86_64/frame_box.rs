//! [`FrameBox`]: a value that lives in frames of the hypervisor's frame
//! allocator rather than in the image or on a stack, for large per-domain
//! structures that exist only while their domain does.
//!
//! Invariant: a `FrameBox` owns `pages` contiguous frames, allocated for it
//! alone, holding one initialised `T` at their start (through the direct
//! map); it drops the `T` and gives the frames back exactly once.

use super::maddr_to_virt;
use crate::mm::Mfn;
use crate::mm::machine::FRAMES;
use core::ptr::NonNull;

/// A `T` stored in frames of its own.
pub struct FrameBox<T> {
    ptr: NonNull<T>,
    first: Mfn,
    pages: u64,
}

// SAFETY: a FrameBox owns its T exclusively, like a Box.
unsafe impl<T: Send> Send for FrameBox<T> {}

impl<T> FrameBox<T> {
    /// Move `value` into fresh frames; gives it back when memory is short.
    pub fn new(value: T) -> Result<FrameBox<T>, T> {
        const { assert!(core::mem::align_of::<T>() <= 4096) };
        let pages = core::mem::size_of::<T>().div_ceil(4096).max(1) as u64;
        let Some(first) = crate::mm::machine::alloc_contiguous(pages) else { return Err(value) };
        let ptr = maddr_to_virt(first.maddr()) as *mut T;
        // SAFETY: the frames were just allocated for this box alone; the
        // direct map maps them writable and page-aligned, so `ptr` is valid
        // and aligned for `T`.
        unsafe { ptr.write(value) };
        // SAFETY: direct-map addresses lie in the high half, never at 0.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        Ok(FrameBox { ptr, first, pages })
    }
}

/// Give `pages` frames from `first` back to the allocator.
fn free_frames(first: Mfn, pages: u64) {
    if let Some(f) = FRAMES.lock().as_mut() {
        for i in 0..pages {
            let _ = f.free(Mfn(first.0 + i));
        }
    }
}

impl<T> core::ops::Deref for FrameBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` holds an initialised T owned by this box (invariant).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> core::ops::DerefMut for FrameBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for FrameBox<T> {
    fn drop(&mut self) {
        // SAFETY: the T is initialised and dropped only here, once.
        unsafe { core::ptr::drop_in_place(self.ptr.as_ptr()) };
        free_frames(self.first, self.pages);
    }
}

/// A slice of `T` that lives in frames of its own (the frame table, the
/// auditor's scratch windows): like [`FrameBox`], for `len` plain values.
///
/// Invariant: owns `pages` contiguous frames allocated for it alone, whose
/// start holds `len` initialised `T`s; gives the frames back exactly once
/// (unless leaked for the hypervisor's lifetime).
pub struct FrameSlice<T: Copy> {
    ptr: NonNull<T>,
    len: usize,
    first: Mfn,
    pages: u64,
}

impl<T: Copy> FrameSlice<T> {
    /// `pages` fresh contiguous frames holding as many copies of `fill` as
    /// fit; `None` when memory is short.
    pub fn with_pages(pages: u64, fill: T) -> Option<FrameSlice<T>> {
        const { assert!(core::mem::align_of::<T>() <= 4096 && core::mem::size_of::<T>() > 0) };
        let first = crate::mm::machine::alloc_contiguous(pages.max(1))?;
        let len = (pages.max(1) * 4096) as usize / core::mem::size_of::<T>();
        let ptr = maddr_to_virt(first.maddr()) as *mut T;
        for i in 0..len {
            // SAFETY: the frames were just allocated for this slice alone;
            // the direct map maps them writable and page-aligned; `i` is
            // below the number of `T`s that fit.
            unsafe { ptr.add(i).write(fill) };
        }
        // SAFETY: direct-map addresses lie in the high half, never at 0.
        let ptr = unsafe { NonNull::new_unchecked(ptr) };
        Some(FrameSlice { ptr, len, first, pages: pages.max(1) })
    }

    /// Frames enough for `len` copies of `fill` (at least `len` of them).
    pub fn with_len(len: usize, fill: T) -> Option<FrameSlice<T>> {
        let pages = len.checked_mul(core::mem::size_of::<T>())?.div_ceil(4096) as u64;
        FrameSlice::with_pages(pages, fill)
    }

    /// Keep the slice for the rest of the hypervisor's life.
    pub fn leak(self) -> &'static mut [T] {
        let (ptr, len) = (self.ptr, self.len);
        core::mem::forget(self);
        // SAFETY: the frames are never freed now (the slice was forgotten),
        // and this is the only reference to them.
        unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), len) }
    }
}

// SAFETY: a FrameSlice owns its values exclusively, like a Box<[T]>.
unsafe impl<T: Copy + Send> Send for FrameSlice<T> {}

impl<T: Copy> core::ops::Deref for FrameSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialised Ts owned by this slice (invariant).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> core::ops::DerefMut for FrameSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Copy> Drop for FrameSlice<T> {
    fn drop(&mut self) {
        free_frames(self.first, self.pages);
    }
}
