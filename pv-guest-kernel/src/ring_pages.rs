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
/// write at the same time (a granted or shared page): volatile accesses,
/// never a Rust reference to the shared bytes, so a racing peer can change
/// what is read but not the meaning of the program.
///
/// # Safety
/// `src..src + dst.len()` is mapped readable for the whole copy.
pub unsafe fn copy_from_shared(src: u64, dst: &mut [u8]) {
    let mut words = dst.chunks_exact_mut(8);
    let mut at = src;
    for w in &mut words {
        // SAFETY: inside the caller's readable range; unaligned is fine for
        // read_unaligned, and it is volatile through the pointer cast.
        let v = unsafe { core::ptr::read_volatile(at as *const [u8; 8]) };
        w.copy_from_slice(&v);
        at += 8;
    }
    for b in words.into_remainder() {
        // SAFETY: as above.
        *b = unsafe { core::ptr::read_volatile(at as *const u8) };
        at += 1;
    }
}

/// Copy `src` to memory at `dst` that another domain may read or write at
/// the same time, with volatile accesses (see [`copy_from_shared`]).
///
/// # Safety
/// `dst..dst + src.len()` is mapped writable for the whole copy and is no
/// Rust object's memory.
pub unsafe fn copy_to_shared(dst: u64, src: &[u8]) {
    let mut words = src.chunks_exact(8);
    let mut at = dst;
    for w in &mut words {
        let mut v = [0u8; 8];
        v.copy_from_slice(w);
        // SAFETY: inside the caller's writable range.
        unsafe { core::ptr::write_volatile(at as *mut [u8; 8], v) };
        at += 8;
    }
    for b in words.remainder() {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(at as *mut u8, *b) };
        at += 1;
    }
}
