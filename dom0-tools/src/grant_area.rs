//! Dom0's grant-mapping area (target only): an empty 2 MiB window of
//! dom0's address space past its initial region ([`crate::va_space`]). Its
//! 512 slots start empty, a `GNTTABOP_map_grant_ref` with
//! `GNTMAP_host_map` fills one, and the unmap empties it again (Xen clears
//! the entry), so no dom0 page is ever displaced by a guest's.
//!
//! Invariant: a slot is handed out to one mapping at a time and is empty
//! whenever it is free; the L1 stays pinned for dom0's life.

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::{StartInfo, grants};
use xen_public::errno::ENOMEM;

/// Slots in the area (one L1 table).
pub const SLOTS: usize = 512;

/// The area and which of its slots are taken.
pub struct GrantArea {
    base: u64,
    used: [bool; SLOTS],
    free: usize,
}

/// A mapped grant: where, and the handle to unmap it with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// Its slot's virtual address.
    pub va: u64,
    /// The map's handle.
    pub handle: u32,
}

impl GrantArea {
    /// Make the area: an empty window of dom0's address space
    /// ([`crate::va_space::new_window`]).
    pub fn new(si: &StartInfo, pages: &mut EarlyAlloc) -> Option<GrantArea> {
        let base = crate::va_space::new_window(si, pages, &[])?;
        Some(GrantArea { base, used: [false; SLOTS], free: SLOTS })
    }

    /// Slots free.
    pub fn free(&self) -> usize {
        self.free
    }

    /// Map `gref` of `domid` (read-only if asked) in a free slot.
    pub fn map(&mut self, domid: u16, gref: u32, readonly: bool) -> Result<Mapped, i64> {
        let i = self.used.iter().position(|u| !u).ok_or(-ENOMEM)?;
        let va = self.base + i as u64 * 4096;
        let (status, handle) = grants::map(va, gref, domid, readonly);
        if status != 0 {
            return Err(i64::from(status));
        }
        self.used[i] = true;
        self.free -= 1;
        Ok(Mapped { va, handle })
    }

    /// Unmap `m` and free its slot.
    pub fn unmap(&mut self, m: Mapped) {
        let st = grants::unmap(m.va, m.handle);
        if st != 0 {
            pv_guest_kernel::println!("dom0: grant area: unmap of {:#x} failed: {st}; slot retired", m.va);
            return;
        }
        let i = ((m.va - self.base) / 4096) as usize;
        if let Some(u) = self.used.get_mut(i).filter(|u| **u) {
            *u = false;
            self.free += 1;
        }
    }
}
