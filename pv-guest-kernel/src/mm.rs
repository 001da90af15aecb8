//! A safe page-table API over the MMU hypercalls: map and unmap pages,
//! make page tables from spare pages and pin them, update entries, and
//! batch mappings into one multicall.
//!
//! Invariant: a page becomes a page table only after its last writable
//! mapping is gone (Xen refuses otherwise), and is mapped writable again
//! only after it is unpinned.

use crate::hypercall::{self, Multicall};
use xen_public::MmuUpdate;
use xen_public::pte::PteFlags;
use xen_public::xen::UVMF_INVLPG;

/// The flags of a writable guest mapping: P | RW | US | A | D (0x67).
pub const PTE_RW: u64 = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::USER).union(PteFlags::ACCESSED).union(PteFlags::DIRTY).bits();
/// The flags of a read-only guest mapping: P | US | A (0x25).
pub const PTE_RO: u64 = PteFlags::PRESENT.union(PteFlags::USER).union(PteFlags::ACCESSED).bits();
/// MMUEXT commands used here.
const MMUEXT_PIN_L1_TABLE: u32 = 0;
const MMUEXT_UNPIN_TABLE: u32 = 4;

/// A hypercall's negative errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i64);

fn ok(rc: i64) -> Result<(), Errno> {
    if rc == 0 { Ok(()) } else { Err(Errno(rc)) }
}

/// A P2M entry with no frame behind it (Xen's INVALID_P2M_ENTRY).
pub const INVALID_P2M_ENTRY: u64 = !0;

/// The machine frame behind `pfn`, from the P2M list at
/// `start_info.mfn_list` ([`INVALID_P2M_ENTRY`] past `nr_pages`).
pub fn p2m(si: &crate::StartInfo, pfn: u64) -> u64 {
    if pfn >= si.nr_pages {
        return INVALID_P2M_ENTRY;
    }
    // SAFETY: the hypervisor (or dom0's builder) maps the P2M list, with
    // `nr_pages` entries, in the initial region; `pfn` is below that.
    unsafe { (si.mfn_list as *const u64).add(pfn as usize).read() }
}

/// Record that `pfn` is now backed by `mfn` (or by nothing).
pub fn set_p2m(si: &crate::StartInfo, pfn: u64, mfn: u64) {
    if pfn < si.nr_pages {
        // SAFETY: as in `p2m`; the initial region is mapped writable.
        unsafe { (si.mfn_list as *mut u64).add(pfn as usize).write(mfn) }
    }
}

/// The machine frame of a page of the initial region.
pub fn mfn_of(si: &crate::StartInfo, va: u64) -> u64 {
    p2m(si, (va - crate::notes::VIRT_BASE) / 4096)
}

/// Map `va` (which must already have an L1) to machine frame `mfn`.
pub fn map(va: u64, mfn: u64, writable: bool) -> Result<(), Errno> {
    let flags = if writable { PTE_RW } else { PTE_RO };
    ok(hypercall::update_va_mapping(va, (mfn << 12) | flags, UVMF_INVLPG))
}

/// Unmap `va`.
pub fn unmap(va: u64) -> Result<(), Errno> {
    ok(hypercall::update_va_mapping(va, 0, UVMF_INVLPG))
}

/// Pin the frame `mfn` as a level-`level` table (1-4).
pub fn pin(mfn: u64, level: u8) -> Result<(), Errno> {
    ok(hypercall::mmuext_one(MMUEXT_PIN_L1_TABLE + u32::from(level) - 1, mfn, 0))
}

/// Unpin a table.
pub fn unpin(mfn: u64) -> Result<(), Errno> {
    ok(hypercall::mmuext_one(MMUEXT_UNPIN_TABLE, mfn, 0))
}

/// `mmu_update` requests on our own tables, with the number done.
pub fn mmu_update(reqs: &[MmuUpdate]) -> (i64, u32) {
    hypercall::mmu_update(reqs, xen_public::DOMID_SELF)
}

/// Set entry `idx` of the table in `table_mfn` (a NORMAL_PT_UPDATE).
pub fn set_entry(table_mfn: u64, idx: usize, val: u64) -> Result<(), Errno> {
    ok(mmu_update(&[MmuUpdate { ptr: (table_mfn << 12) + idx as u64 * 8, val }]).0)
}

/// A page table made from a spare page: its contents were written while
/// the page was still writable, then its mapping was made read-only and
/// the frame pinned.
pub struct Table {
    /// Where the page is mapped (read-only while pinned).
    pub va: u64,
    /// Its machine frame.
    pub mfn: u64,
}

impl Table {
    /// Turn the spare page at `va` (frame `mfn`) into a pinned table of
    /// `level`, with `entries` as its initial contents.
    pub fn new(va: u64, mfn: u64, level: u8, entries: &[(usize, u64)]) -> Result<Table, Errno> {
        // SAFETY: `va` is a spare, writable page of ours.
        let page = unsafe { &mut *(va as *mut [u64; 512]) };
        page.fill(0);
        for &(i, e) in entries {
            page[i % 512] = e;
        }
        map(va, mfn, false)?;
        if let Err(e) = pin(mfn, level) {
            let _ = map(va, mfn, true);
            return Err(e);
        }
        Ok(Table { va, mfn })
    }

    /// Unpin and make the page writable again.
    pub fn release(self) -> Result<(), Errno> {
        unpin(self.mfn)?;
        map(self.va, self.mfn, true)
    }
}

/// Up to 16 `update_va_mapping` calls sent as one multicall.
#[derive(Default)]
pub struct Batch {
    calls: Multicall<'static, 16>,
}

impl Batch {
    /// Queue a mapping; `false` if the batch is full.
    pub fn map(&mut self, va: u64, mfn: u64, writable: bool) -> bool {
        let flags = if writable { PTE_RW } else { PTE_RO };
        self.calls.update_va_mapping(va, (mfn << 12) | flags, UVMF_INVLPG)
    }

    /// Send the batch: the multicall's result, and each call's result.
    pub fn flush(&mut self) -> (i64, [i64; 16]) {
        let rc = self.calls.issue();
        let mut results = [0i64; 16];
        for (i, r) in results.iter_mut().enumerate().take(self.calls.len()) {
            *r = self.calls.result(i);
        }
        self.calls.clear();
        (rc, results)
    }
}
