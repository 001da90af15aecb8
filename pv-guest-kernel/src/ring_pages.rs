//! A split driver's shared ring pages as mapped in this domain: the
//! `io/ring.h` [`RingPages`] access for a frontend's own granted pages and
//! for a backend's mappings of its frontend's grants (dom0's blkback).
//!
//! Invariant: a [`MappedPages`] exists only over pages its creator vouched
//! are mapped writable for as long as it lives ([`MappedPages::new`]); all
//! access to them is atomic (indices) or volatile (entries), never through
//! Rust references, as the peer writes them at any time. The ring layer
//! only asks for ranges inside one page; an offset outside the ring reads
//! nothing and writes nothing. [`copy_from_shared`] and [`copy_to_shared`]
//! are the same discipline for a split driver's data pages.

use core::sync::atomic::{AtomicU32, Ordering, fence};
use xen_public::io::ring::{MAX_RING_PAGE_ORDER, RingIdx, RingPages, XEN_PAGE_SIZE};

/// Most pages a ring may have (`1 << MAX_RING_PAGE_ORDER`).
pub const MAX_RING_PAGES: usize = 1 << MAX_RING_PAGE_ORDER;

/// A ring's pages, each at its own virtual address.
pub struct MappedPages {
    va: heapless::Vec<u64, MAX_RING_PAGES>,
}

impl MappedPages {
    /// The ring over the pages at `vas` (in ring order); `None` for none
    /// or more than [`MAX_RING_PAGES`], or a page not page-aligned.
    ///
    /// # Safety
    /// Each address is a page mapped writable in this domain, shared with
    /// the peer and used for nothing else, for as long as the result lives.
    pub unsafe fn new(vas: &[u64]) -> Option<MappedPages> {
        if vas.is_empty() || vas.iter().any(|va| va % XEN_PAGE_SIZE as u64 != 0) {
            return None;
        }
        Some(MappedPages { va: heapless::Vec::from_slice(vas).ok()? })
    }

    /// The first page's address (where the indices are).
    pub fn first_page(&self) -> u64 {
        self.va[0]
    }

    /// The address of ring offset `off`, if it is inside the ring (the ring
    /// layer's contract; checked all the same).
    fn at(&self, off: usize) -> Option<u64> {
        Some(self.va.get(off / XEN_PAGE_SIZE)? + (off % XEN_PAGE_SIZE) as u64)
    }
}

impl RingPages for MappedPages {
    fn nr_pages(&self) -> usize {
        self.va.len()
    }

    fn load_idx(&self, off: usize) -> RingIdx {
        let Some(at) = self.at(off & !3) else { return 0 };
        // SAFETY: `new`'s contract: the page is mapped; `off` is a 4-aligned
        // header index (ring layer), so the word is aligned and in the page.
        unsafe { AtomicU32::from_ptr(at as *mut u32).load(Ordering::Acquire) }
    }

    fn store_idx(&mut self, off: usize, v: RingIdx) {
        let Some(at) = self.at(off & !3) else { return };
        // SAFETY: as in `load_idx`.
        unsafe { AtomicU32::from_ptr(at as *mut u32).store(v, Ordering::Release) }
    }

    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }

    fn read(&self, off: usize, buf: &mut [u8]) {
        if let Some(at) = self.at(off) {
            let room = XEN_PAGE_SIZE - off % XEN_PAGE_SIZE;
            let n = buf.len().min(room);
            // SAFETY: `at` is in a page `new` vouched for, `n` bytes fit in it.
            unsafe { copy_from_shared(at, &mut buf[..n]) };
        }
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        if let Some(at) = self.at(off) {
            let room = XEN_PAGE_SIZE - off % XEN_PAGE_SIZE;
            let n = data.len().min(room);
            // SAFETY: as in `read`; the page is mapped writable.
            unsafe { copy_to_shared(at, &data[..n]) };
        }
    }
}

/// Copy `dst.len()` bytes from memory at `src` that another domain may
/// write at the same time (a granted or shared page): in assembly, never
/// through a Rust reference to the shared bytes, so a racing peer can
/// change what is read but not the meaning of the program.
///
/// # Safety
/// `src..src + dst.len()` is mapped readable for the whole copy.
pub unsafe fn copy_from_shared(src: u64, dst: &mut [u8]) {
    // SAFETY: the caller's contract: `src..src + len` readable; `dst` is
    // ours. The copy is one `rep movsq` plus a byte tail in assembly,
    // opaque to the compiler, so a peer writing meanwhile is no data race
    // in Rust's model.
    unsafe { rep_movs(dst.as_mut_ptr() as u64, src, dst.len()) }
}

/// `len` bytes from `src` to `dst` with `rep movsq` and `rep movsb`.
///
/// # Safety
/// Both ranges are mapped (readable, writable) for `len` bytes and do not
/// overlap.
unsafe fn rep_movs(dst: u64, src: u64, len: usize) {
    // SAFETY: the caller's contract; DF is clear in the guest kernel (the
    // ABI's rule at every call).
    unsafe {
        core::arch::asm!(
            "rep movsq",
            "mov rcx, {tail}",
            "rep movsb",
            tail = in(reg) len % 8,
            inout("rcx") len / 8 => _,
            inout("rsi") src => _,
            inout("rdi") dst => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copy `src` to memory at `dst` that another domain may read or write at
/// the same time (see [`copy_from_shared`]).
///
/// # Safety
/// `dst..dst + src.len()` is mapped writable for the whole copy and is no
/// Rust object's memory.
pub unsafe fn copy_to_shared(dst: u64, src: &[u8]) {
    // SAFETY: the caller's contract: `dst..dst + len` writable and no Rust
    // object's memory; `src` is ours.
    unsafe { rep_movs(dst, src.as_ptr() as u64, src.len()) }
}
