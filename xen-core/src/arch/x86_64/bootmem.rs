//! Memory the boot loader and firmware left below 4 GiB, reached through
//! the boot-time direct map while the hypervisor starts; and the faults
//! the `selftest=` option raises on purpose.
//!
//! Invariant: [`reserved`] is only given ranges that `setup` keeps out of
//! the frame allocator for good (the multiboot2 block and the boot
//! modules), so nothing ever writes the bytes it hands out; [`carve`] is
//! only given a range just removed from free RAM, so its slice is the only
//! way to those bytes. Both check that the range lies below 4 GiB.

use super::{BOOT_DIRECTMAP_LIMIT, maddr_to_virt};

/// Whether `[maddr, maddr + len)` lies below the boot direct map's end.
fn in_reach(maddr: u64, len: u64) -> bool {
    maddr.checked_add(len).is_some_and(|end| end <= BOOT_DIRECTMAP_LIMIT)
}

/// The bytes of a range the boot loader reserved (see the invariant);
/// `None` past 4 GiB.
pub fn reserved(maddr: u64, len: usize) -> Option<&'static [u8]> {
    if !in_reach(maddr, len as u64) {
        return None;
    }
    // SAFETY: below 4 GiB, which the boot direct map and the final tables'
    // direct map both cover; the range is reserved for good, so nothing
    // writes it while the slice lives (module invariant).
    Some(unsafe { core::slice::from_raw_parts(maddr_to_virt(maddr) as *const u8, len) })
}

/// The `words` u64s of a page-aligned range just carved out of free RAM
/// (see the invariant); `None` past 4 GiB or unaligned.
pub fn carve(maddr: u64, words: usize) -> Option<&'static mut [u64]> {
    let bytes = (words as u64).checked_mul(8)?;
    if !in_reach(maddr, bytes) || !maddr.is_multiple_of(4096) {
        return None;
    }
    // SAFETY: below 4 GiB, in the direct map; page-aligned, so aligned for
    // u64; the range left free RAM for good, so this slice is the only way
    // to it (module invariant).
    Some(unsafe { core::slice::from_raw_parts_mut(maddr_to_virt(maddr) as *mut u64, words) })
}

/// Copy firmware memory (ACPI tables) at `maddr` into `buf`; `false` past
/// 4 GiB.
pub fn read(maddr: u64, buf: &mut [u8]) -> bool {
    if !in_reach(maddr, buf.len() as u64) {
        return false;
    }
    // SAFETY: the boot tables map all of [0, 4 GiB) at the direct map;
    // firmware tables are plain memory; the bytes are copied out.
    unsafe { core::ptr::copy_nonoverlapping(maddr_to_virt(maddr) as *const u8, buf.as_mut_ptr(), buf.len()) };
    true
}

/// A deliberate fault for the `selftest=` boot option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// #PF: a read of an unmapped low address.
    Page,
    /// #GP: a read of a non-canonical address.
    GeneralProtection,
    /// #UD: `ud2`.
    InvalidOpcode,
    /// #DF: a push on an unmapped stack.
    Double,
}

/// Raise `f`; its handler is fatal, so this never returns normally.
pub fn raise(f: Fault) {
    match f {
        // SAFETY: deliberately faulting: the low half is unmapped after
        // `paging::activate`, and the fault handler never returns.
        Fault::Page => unsafe {
            core::ptr::read_volatile(0xdead_b000 as *const u64);
        },
        // SAFETY: deliberately faulting: a non-canonical address.
        Fault::GeneralProtection => unsafe {
            core::ptr::read_volatile(0x8000_0000_0000_0000 as *const u64);
        },
        // SAFETY: `ud2` raises #UD, whose handler never returns.
        Fault::InvalidOpcode => unsafe { core::arch::asm!("ud2", options(nomem, nostack)) },
        // SAFETY: a push on an unmapped stack faults, and delivering that
        // #PF on the same stack faults again: #DF, taken on its IST stack.
        Fault::Double => unsafe { core::arch::asm!("mov rsp, 0xdead0000", "push rax", options(nomem)) },
    }
}
