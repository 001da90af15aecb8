//! Grant tables (v1) in the guest: set up and map the table, grant and
//! end access to pages, map others' (or our own) grants, and copy. The
//! table's entries are `xen_public`'s `GrantEntryV1`; the operations take
//! the `GNTTABOP_*` argument structures ([`op`] picks the sub-op from the
//! type).

use crate::hypercall;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU16, Ordering};
use xen_public::grant_table::{
    GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GNTMAP_READONLY, GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabTransfer,
    GnttabUnmapGrantRef, GrantEntryV1,
};

pub use crate::hypercall::GnttabOp;
pub use xen_public::grant_table::{GrantType, GtfFlags};

/// Entries in one v1 table frame.
const ENTRIES_PER_FRAME: u32 = 4096 / size_of::<GrantEntryV1>() as u32;

/// `grant_table_op` on an array of one of `xen_public::grant_table`'s
/// argument structures; the sub-op is the type's ([`GnttabOp::CMD`]).
pub fn op<T: GnttabOp>(uops: &mut [T]) -> i64 {
    hypercall::grant_table_op(uops)
}

/// The grant table mapped at `va` (one frame: refs 0-511).
pub struct Table {
    va: u64,
}

impl Table {
    /// GNTTABOP_setup_table for one frame, and map it at `va` (a spare page
    /// we give up). Returns the per-op status on failure.
    pub fn setup(va: u64) -> Result<Table, i64> {
        let mut frame = 0u64;
        let (rc, status) = hypercall::gnttab_setup_table(xen_public::DOMID_SELF, core::slice::from_mut(&mut frame));
        if rc != 0 || status != 0 {
            return Err(if rc != 0 { rc } else { i64::from(status) });
        }
        let rc = hypercall::update_va_mapping(va, (frame << 12) | crate::mm::PTE_RW, 2);
        if rc != 0 {
            return Err(rc);
        }
        Ok(Table { va })
    }

    /// Where entry `gref` (modulo the frame) lies.
    fn entry(&self, gref: u32) -> u64 {
        self.va + u64::from(gref % ENTRIES_PER_FRAME) * size_of::<GrantEntryV1>() as u64
    }

    fn flags(&self, gref: u32) -> &AtomicU16 {
        // SAFETY: the table page is mapped at `va` and the entry lies in it;
        // `flags` is the entry's 2-aligned first u16, which the hypervisor
        // also updates atomically.
        unsafe { &*((self.entry(gref) + offset_of!(GrantEntryV1, flags) as u64) as *const AtomicU16) }
    }

    /// Write an entry's domain and frame fields (before its flags make it
    /// valid).
    fn set_domid_frame(&self, gref: u32, domid: u16, frame: u32) {
        let e = self.entry(gref);
        // SAFETY: the entry lies in our mapped table page; both fields are
        // naturally aligned.
        unsafe {
            ((e + offset_of!(GrantEntryV1, domid) as u64) as *mut u16).write_volatile(domid);
            ((e + offset_of!(GrantEntryV1, frame) as u64) as *mut u32).write_volatile(frame);
        }
    }

    /// Grant `domid` access to machine frame `frame` through `gref`:
    /// frame and domain first, then the flags that make it valid.
    pub fn grant(&self, gref: u32, domid: u16, frame: u64, readonly: bool) {
        self.set_domid_frame(gref, domid, frame as u32);
        core::sync::atomic::fence(Ordering::SeqCst);
        let flags = if readonly { GtfFlags::READONLY } else { GtfFlags::empty() };
        self.flags(gref).store(flags.with_type(GrantType::PermitAccess), Ordering::SeqCst);
    }

    /// Offer `gref` to receive a frame transferred by `domid`
    /// (GTF_accept_transfer): the frame field names the pfn it should get.
    pub fn accept_transfer(&self, gref: u32, domid: u16, pfn: u32) {
        self.set_domid_frame(gref, domid, pfn);
        core::sync::atomic::fence(Ordering::SeqCst);
        self.flags(gref).store(GtfFlags::empty().with_type(GrantType::AcceptTransfer), Ordering::SeqCst);
    }

    /// The frame field of an entry (after a transfer: the frame received).
    pub fn entry_frame(&self, gref: u32) -> u32 {
        // SAFETY: the entry lies in our mapped table page; the field is
        // 4-aligned and written by the hypervisor.
        unsafe { ((self.entry(gref) + offset_of!(GrantEntryV1, frame) as u64) as *const u32).read_volatile() }
    }

    /// Current flags word of an entry (type field and flags, raw).
    pub fn entry_flags(&self, gref: u32) -> u16 {
        self.flags(gref).load(Ordering::SeqCst)
    }

    /// The flag bits of an entry's current flags (its type left out).
    pub fn entry_gtf(&self, gref: u32) -> GtfFlags {
        GtfFlags::of(self.entry_flags(gref))
    }

    /// End access: clear the entry unless the hypervisor shows it in use
    /// (GTF_reading/GTF_writing); `false` if it is still mapped. (The
    /// bits are read whatever the type: an accept-transfer entry whose
    /// transfer completed has bit 3 set as GTF_transfer_completed, so it is
    /// left as it is too.)
    pub fn end_access(&self, gref: u32) -> bool {
        let f = self.flags(gref);
        let cur = f.load(Ordering::SeqCst);
        if GtfFlags::of(cur).intersects(GtfFlags::READING | GtfFlags::WRITING) {
            return false;
        }
        f.compare_exchange(cur, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}

/// GNTTABOP_map_grant_ref with host_map: `(status, handle)`.
pub fn map(host_addr: u64, gref: u32, dom: u16, readonly: bool) -> (i16, u32) {
    let flags = GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 };
    let mut m = GnttabMapGrantRef { host_addr, flags, ref_: gref, dom, ..Default::default() };
    let rc = op(core::slice::from_mut(&mut m));
    if rc != 0 {
        return (rc as i16, 0);
    }
    (m.status, m.handle)
}

/// GNTTABOP_unmap_grant_ref: the status.
pub fn unmap(host_addr: u64, handle: u32) -> i16 {
    let mut u = GnttabUnmapGrantRef { host_addr, handle, ..Default::default() };
    let rc = op(core::slice::from_mut(&mut u));
    if rc != 0 { rc as i16 } else { u.status }
}

/// One side of a GNTTABOP_copy.
#[derive(Clone, Copy, Debug)]
pub enum CopySide {
    /// A grant reference of `dom`.
    Gref(u32, u16),
    /// A machine frame (PV) of `dom`.
    Frame(u64, u16),
}

/// GNTTABOP_copy of `len` bytes: the status.
pub fn copy(src: CopySide, src_off: u16, dst: CopySide, dst_off: u16, len: u16) -> i16 {
    // The end, and whether it names a grant reference.
    let side = |s: CopySide, offset: u16| match s {
        CopySide::Gref(r, domid) => (GnttabCopyPtr { u: u64::from(r), domid, offset, _pad0: 0 }, true),
        CopySide::Frame(f, domid) => (GnttabCopyPtr { u: f, domid, offset, _pad0: 0 }, false),
    };
    let (source, src_gref) = side(src, src_off);
    let (dest, dst_gref) = side(dst, dst_off);
    let flags = if src_gref { GNTCOPY_SOURCE_GREF } else { 0 } | if dst_gref { GNTCOPY_DEST_GREF } else { 0 };
    let mut c = GnttabCopy { source, dest, len, flags, status: 0, _pad0: 0 };
    let rc = op(core::slice::from_mut(&mut c));
    if rc != 0 { rc as i16 } else { c.status }
}

/// GNTTABOP_transfer of frame `mfn` to `dom` through its grant `gref`:
/// `(result, status)`.
pub fn transfer(mfn: u64, dom: u16, gref: u32) -> (i64, i16) {
    let mut t = GnttabTransfer { mfn, domid: dom, ref_: gref, ..Default::default() };
    let rc = op(core::slice::from_mut(&mut t));
    (rc, t.status)
}
