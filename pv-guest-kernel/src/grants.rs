//! Grant tables (v1) in the guest: set up and map the table, grant and
//! end access to pages, map others' (or our own) grants, and copy.

use crate::hypercall::hypercall5;
use core::sync::atomic::{AtomicU16, Ordering};
use xen_public::hypercall as nr;

/// GTF_permit_access.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// GTF_accept_transfer.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// GTF_transfer_committed.
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// GTF_transfer_completed.
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;
/// GTF_readonly.
pub const GTF_READONLY: u16 = 1 << 2;
/// GTF_reading.
pub const GTF_READING: u16 = 1 << 3;
/// GTF_writing.
pub const GTF_WRITING: u16 = 1 << 4;

/// `grant_table_op(cmd, uop, count)` on structures of ours.
pub fn op<T>(cmd: u32, uop: &mut [T]) -> i64 {
    // SAFETY: the structures are ours and sized for the command by the caller.
    unsafe { hypercall5(nr::GRANT_TABLE_OP, u64::from(cmd), uop.as_mut_ptr() as u64, uop.len() as u64, 0, 0) }
}

/// The grant table mapped at `va` (one frame: refs 0-511).
pub struct Table {
    va: u64,
}

impl Table {
    /// GNTTABOP_setup_table for one frame, and map it at `va` (a spare page
    /// we give up). Returns the per-op status on failure.
    pub fn setup(va: u64) -> Result<Table, i64> {
        // {dom, pad, nr_frames, status, pad, frame_list}
        let mut frame = 0u64;
        let mut s: [u64; 3] = [u64::from(xen_public::DOMID_SELF) | (1 << 32), 0, &mut frame as *mut u64 as u64];
        let rc = op(2, core::slice::from_mut(&mut s));
        let status = (s[1] & 0xffff) as i16;
        if rc != 0 || status != 0 {
            return Err(if rc != 0 { rc } else { i64::from(status) });
        }
        let rc = crate::hypercall::update_va_mapping(va, (frame << 12) | 0x67, 2);
        if rc != 0 {
            return Err(rc);
        }
        Ok(Table { va })
    }

    fn flags(&self, gref: u32) -> &AtomicU16 {
        // SAFETY: the table page is mapped at `va`; each entry is 8 bytes
        // with the flags in its first 16 bits; `gref` < 512.
        unsafe { &*((self.va + u64::from(gref % 512) * 8) as *const AtomicU16) }
    }

    /// Grant `domid` access to machine frame `frame` through `gref`:
    /// frame and domain first, then the flags that make it valid.
    pub fn grant(&self, gref: u32, domid: u16, frame: u64, readonly: bool) {
        let e = (self.va + u64::from(gref % 512) * 8) as *mut u16;
        // SAFETY: the entry lies in our mapped table page.
        unsafe {
            e.add(1).write_volatile(domid);
            (e.add(2) as *mut u32).write_volatile(frame as u32);
        }
        core::sync::atomic::fence(Ordering::SeqCst);
        self.flags(gref).store(GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 }, Ordering::SeqCst);
    }

    /// Offer `gref` to receive a frame transferred by `domid`
    /// (GTF_accept_transfer): the frame field names the pfn it should get.
    pub fn accept_transfer(&self, gref: u32, domid: u16, pfn: u32) {
        let e = (self.va + u64::from(gref % 512) * 8) as *mut u16;
        // SAFETY: the entry lies in our mapped table page.
        unsafe {
            e.add(1).write_volatile(domid);
            (e.add(2) as *mut u32).write_volatile(pfn);
        }
        core::sync::atomic::fence(Ordering::SeqCst);
        self.flags(gref).store(GTF_ACCEPT_TRANSFER, Ordering::SeqCst);
    }

    /// The frame field of an entry (after a transfer: the frame received).
    pub fn entry_frame(&self, gref: u32) -> u32 {
        // SAFETY: the entry lies in our mapped table page; the field is
        // 4-aligned and written by the hypervisor.
        unsafe { ((self.va + u64::from(gref % 512) * 8 + 4) as *const u32).read_volatile() }
    }

    /// Current flags of an entry.
    pub fn entry_flags(&self, gref: u32) -> u16 {
        self.flags(gref).load(Ordering::SeqCst)
    }

    /// End access: clear the entry unless the hypervisor shows it in use
    /// (GTF_reading/GTF_writing); `false` if it is still mapped.
    pub fn end_access(&self, gref: u32) -> bool {
        let f = self.flags(gref);
        let cur = f.load(Ordering::SeqCst);
        if cur & (GTF_READING | GTF_WRITING) != 0 {
            return false;
        }
        f.compare_exchange(cur, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}

/// GNTTABOP_map_grant_ref with host_map: `(status, handle)`.
pub fn map(host_addr: u64, gref: u32, dom: u16, readonly: bool) -> (i16, u32) {
    let flags: u64 = 2 | if readonly { 4 } else { 0 };
    // {host_addr, flags, ref, dom, status, handle, dev_bus_addr}
    let mut m: [u64; 4] = [host_addr, flags | (u64::from(gref) << 32), u64::from(dom), 0];
    let rc = op(0, core::slice::from_mut(&mut m));
    if rc != 0 {
        return (rc as i16, 0);
    }
    (((m[2] >> 16) & 0xffff) as i16, (m[2] >> 32) as u32)
}

/// GNTTABOP_unmap_grant_ref: the status.
pub fn unmap(host_addr: u64, handle: u32) -> i16 {
    let mut u: [u64; 3] = [host_addr, 0, u64::from(handle)];
    let rc = op(1, core::slice::from_mut(&mut u));
    if rc != 0 { rc as i16 } else { ((u[2] >> 32) & 0xffff) as i16 }
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
    let side = |s: CopySide, off: u16| match s {
        CopySide::Gref(r, d) => (u64::from(r), u64::from(d) | (u64::from(off) << 16), 1u16),
        CopySide::Frame(f, d) => (f, u64::from(d) | (u64::from(off) << 16), 0u16),
    };
    let (sv, sw, sf) = side(src, src_off);
    let (dv, dw, df) = side(dst, dst_off);
    let flags = u64::from(sf | (df << 1));
    let mut c: [u64; 5] = [sv, sw, dv, dw, u64::from(len) | (flags << 16)];
    let rc = op(5, core::slice::from_mut(&mut c));
    if rc != 0 { rc as i16 } else { ((c[4] >> 32) & 0xffff) as i16 }
}

/// GNTTABOP_transfer of frame `mfn` to `dom` through its grant `gref`:
/// `(result, status)`.
pub fn transfer(mfn: u64, dom: u16, gref: u32) -> (i64, i16) {
    // {mfn, domid @8, ref @12, status @16}
    let mut t: [u64; 3] = [mfn, u64::from(dom) | (u64::from(gref) << 32), 0];
    let rc = op(4, core::slice::from_mut(&mut t));
    (rc, (t[2] & 0xffff) as i16)
}
