//! A split driver's shared ring pages as mapped in this domain: the
//! `io/ring.h` [`RingPages`] access for a frontend's own granted pages and
//! for a backend's mappings of its frontend's grants (dom0's blkback).
//!
//! Invariant: a [`MappedPages`] exists only over pages its creator vouched
//! are mapped writable for as long as it lives ([`MappedPages::new`]); all
//! access to them is atomic (indices) or volatile (entries), never through
//! Rust references, as the peer writes them at any time. The ring layer
//! only asks for ranges inside one page.

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

    /// The address of ring offset `off` (inside the ring: the ring layer's
    /// contract; checked all the same, the first page standing in).
    fn at(&self, off: usize) -> u64 {
        let page = self.va.get(off / XEN_PAGE_SIZE).copied().unwrap_or(self.va[0]);
        page + (off % XEN_PAGE_SIZE) as u64
    }
}

impl RingPages for MappedPages {
    fn nr_pages(&self) -> usize {
        self.va.len()
    }

    fn load_idx(&self, off: usize) -> RingIdx {
        // SAFETY: `new`'s contract: the page is mapped; `off` is a 4-aligned
        // header index (ring layer), so the word is aligned and in the page.
        unsafe { AtomicU32::from_ptr(self.at(off & !3) as *mut u32).load(Ordering::Acquire) }
    }

    fn store_idx(&mut self, off: usize, v: RingIdx) {
        // SAFETY: as in `load_idx`.
        unsafe { AtomicU32::from_ptr(self.at(off & !3) as *mut u32).store(v, Ordering::Release) }
    }

    fn full_barrier(&self) {
        fence(Ordering::SeqCst);
    }

    fn read(&self, off: usize, buf: &mut [u8]) {
        let base = self.at(off);
        let room = XEN_PAGE_SIZE - off % XEN_PAGE_SIZE;
        for (i, b) in buf.iter_mut().take(room).enumerate() {
            // SAFETY: inside the mapped page (`i < room`).
            *b = unsafe { ((base + i as u64) as *const u8).read_volatile() };
        }
    }

    fn write(&mut self, off: usize, data: &[u8]) {
        let base = self.at(off);
        let room = XEN_PAGE_SIZE - off % XEN_PAGE_SIZE;
        for (i, b) in data.iter().take(room).enumerate() {
            // SAFETY: inside the mapped page (`i < room`).
            unsafe { ((base + i as u64) as *mut u8).write_volatile(*b) };
        }
    }
}
