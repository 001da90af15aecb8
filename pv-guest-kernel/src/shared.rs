//! Mapping `shared_info` and reading the fields the runtime needs.

use crate::hypercall;
use core::sync::atomic::{AtomicU64, Ordering};

/// Where shared_info is mapped, 0 until [`map`] succeeds.
static SHARED_INFO_VA: AtomicU64 = AtomicU64::new(0);

const PTE_FLAGS: u64 = 0x67; // present, writable, user, accessed, dirty
const UVMF_INVLPG: u64 = 2;
const VCPU0_CR2: u64 = 16;

/// Map the shared_info frame (machine address `maddr`) at `va`, a page of
/// the initial region the caller gives up.
pub fn map(va: u64, maddr: u64) -> i64 {
    let rc = hypercall::update_va_mapping(va, (maddr & !0xfff) | PTE_FLAGS, UVMF_INVLPG);
    if rc == 0 {
        SHARED_INFO_VA.store(va, Ordering::Release);
    }
    rc
}

/// `vcpu_info[0].arch.cr2`, once shared_info is mapped.
pub fn cr2() -> Option<u64> {
    let va = SHARED_INFO_VA.load(Ordering::Acquire);
    // SAFETY: a non-zero value means `map` mapped the shared_info page
    // there; the field is 8-aligned and written only by the hypervisor.
    (va != 0).then(|| unsafe { ((va + VCPU0_CR2) as *const u64).read_volatile() })
}
