//! The balloon: hand memory the guest does not use back to the hypervisor
//! (XENMEM_decrease_reservation), as Linux's balloon driver does, so that
//! many small domains fit in a machine.
//!
//! Invariant: a page is given back only after its last mapping is gone
//! (the hypervisor refuses a frame with references), and its P2M entry is
//! then marked invalid, so the guest never names a frame it lost.

use crate::alloc::EarlyAlloc;
use crate::hypercall;
use crate::mm::{self, Errno};
use xen_public::StartInfo;

/// Frames given back per hypercall.
const BATCH: usize = 64;

/// Give back the frames in `list` (already unmapped): how many went.
fn decrease(list: &[u64]) -> Result<u64, Errno> {
    let rc = hypercall::decrease_reservation(xen_public::DOMID_SELF, list);
    if rc < 0 { Err(Errno(rc)) } else { Ok(rc as u64) }
}

/// Give back every page `pages` has not handed out yet (the rest of the
/// initial region's padding): unmap each, return its frame, and mark it
/// gone in the P2M. Returns the number of pages given back.
pub fn release_unused(si: &StartInfo, pages: &mut EarlyAlloc, virt_base: u64) -> Result<u64, Errno> {
    let mut list = [0u64; BATCH];
    let mut n = 0;
    let mut released = 0;
    while let Some(va) = pages.alloc_page() {
        let pfn = (va - virt_base) / 4096;
        if pfn >= si.nr_pages {
            break;
        }
        let mfn = mm::p2m(si, pfn);
        mm::unmap(va)?;
        mm::set_p2m(si, pfn, mm::INVALID_P2M_ENTRY);
        list[n] = mfn;
        n += 1;
        if n == BATCH {
            released += decrease(&list)?;
            n = 0;
        }
    }
    released += decrease(&list[..n])?;
    Ok(released)
}
