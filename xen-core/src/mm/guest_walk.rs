//! Software walks of a guest's page tables, for copying hypercall arguments
//! to and from guest virtual memory.
//!
//! The hypervisor never dereferences a guest pointer directly: it walks the
//! guest's tables (read through [`PhysRead`]), requires present and user
//! access at every level (and writable for writes), refuses the hypervisor's
//! own range and non-canonical addresses, and then touches the frame
//! through the direct map. A failed walk is `-EFAULT`, never a fault in the
//! hypervisor.
#![forbid(unsafe_code)]

use xen_public::pte::{PteFlags, pte_maddr};

/// Reads machine memory (the direct map on the target, a fake in tests).
pub trait PhysRead {
    /// Read the 8-byte word at machine address `maddr` (8-aligned).
    fn read_u64(&self, maddr: u64) -> u64;
}

/// A guest access that cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The guest virtual address.
    pub va: u64,
}

/// Whether `va` may be a guest address at all (Xen's x86_64 `access_ok`
/// and `__addr_ok` for a 64-bit PV guest): below the canonical hole, or
/// above the hypervisor's L4 slots 256-271. Whether it is mapped is found
/// out when it is used.
pub fn guest_va_ok(va: u64) -> bool {
    !(0x0000_8000_0000_0000..xen_public::HYPERVISOR_VIRT_END).contains(&va)
}

/// Translate a guest virtual address to a machine address.
pub fn translate(mem: &impl PhysRead, l4_maddr: u64, va: u64, write: bool) -> Result<u64, Fault> {
    if !guest_va_ok(va) {
        return Err(Fault { va });
    }
    let mut table = pte_maddr(l4_maddr);
    for level in (1..=4u32).rev() {
        let idx = (va >> (12 + 9 * (level - 1))) & 511;
        let e = mem.read_u64(table + idx * 8);
        let flags = PteFlags::of(e);
        let need = if write { PteFlags::PRESENT | PteFlags::USER | PteFlags::RW } else { PteFlags::PRESENT | PteFlags::USER };
        if !flags.contains(need) {
            return Err(Fault { va });
        }
        if level > 1 && flags.contains(PteFlags::PSE) {
            // Superpages are never validated for PV guests.
            return Err(Fault { va });
        }
        table = pte_maddr(e);
    }
    Ok(table | (va & 0xfff))
}

/// The end of `cur`'s page, or `end` if that comes first. The last page of
/// the address space ends at `end` (its end, 2^64, does not fit a u64: an
/// access there must neither wrap to address 0 nor overflow).
fn page_end(cur: u64, end: u64) -> u64 {
    (cur & !0xfff).checked_add(0x1000).map_or(end, |next| next.min(end))
}

/// Split `[va, va + len)` into per-page machine chunks `(maddr, offset, n)`
/// where `offset` is the position in the caller's buffer; calls `f` on each.
pub fn for_each_chunk(
    mem: &impl PhysRead,
    l4_maddr: u64,
    va: u64,
    len: usize,
    write: bool,
    mut f: impl FnMut(u64, usize, usize),
) -> Result<(), Fault> {
    let end = va.checked_add(len as u64).ok_or(Fault { va })?;
    // Translate everything first, so a fault part-way changes nothing.
    let mut cur = va;
    while cur < end {
        translate(mem, l4_maddr, cur, write)?;
        cur = page_end(cur, end);
    }
    let mut cur = va;
    let mut done = 0usize;
    while cur < end {
        let page_end = page_end(cur, end);
        let n = (page_end - cur) as usize;
        let maddr = translate(mem, l4_maddr, cur, write)?;
        f(maddr, done, n);
        done += n;
        cur = page_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const P: u64 = PteFlags::PRESENT.bits();
    const RW: u64 = PteFlags::RW.bits();
    const US: u64 = PteFlags::USER.bits();
    const PS: u64 = PteFlags::PSE.bits();

    struct Mem(HashMap<u64, u64>);

    impl PhysRead for Mem {
        fn read_u64(&self, maddr: u64) -> u64 {
            *self.0.get(&maddr).unwrap_or(&0)
        }
    }

    /// Tables at 0x1000 (L4), 0x2000 (L3), 0x3000 (L2), 0x4000 (L1) mapping
    /// va 0x40_0000 -> 0x10_0000 (rw) and 0x40_1000 -> 0x11_0000 (ro).
    fn mem() -> Mem {
        let mut m = HashMap::new();
        let t = P | RW | US;
        m.insert(0x1000, 0x2000 | t);
        m.insert(0x2000, 0x3000 | t);
        m.insert(0x3000 + 2 * 8, 0x4000 | t);
        m.insert(0x4000, 0x10_0000 | t);
        m.insert(0x4008, 0x11_0000 | P | US);
        Mem(m)
    }

    #[test]
    fn translates_through_four_levels() {
        assert_eq!(translate(&mem(), 0x1000, 0x40_0123, true), Ok(0x10_0123));
        assert_eq!(translate(&mem(), 0x1000, 0x40_1fff, false), Ok(0x11_0fff));
    }

    #[test]
    fn write_to_read_only_page_faults() {
        assert_eq!(translate(&mem(), 0x1000, 0x40_1000, true), Err(Fault { va: 0x40_1000 }));
    }

    #[test]
    fn unmapped_supervisor_and_superpage_entries_fault() {
        let mut m = mem();
        assert!(translate(&m, 0x1000, 0x40_2000, false).is_err(), "not present");
        m.0.insert(0x4000, 0x10_0000 | P | RW);
        assert!(translate(&m, 0x1000, 0x40_0000, false).is_err(), "no user bit");
        m.0.insert(0x3000 + 2 * 8, 0x4000 | P | RW | US | PS);
        assert!(translate(&m, 0x1000, 0x40_1000, false).is_err(), "PSE");
    }

    #[test]
    fn hypervisor_range_and_non_canonical_addresses_fault() {
        for va in [0xffff_8000_0000_0000, 0xffff_82d0_4020_0000, 0xffff_87ff_ffff_ffff, 0x0000_8000_0000_0000, 0x8000_0000_0000_0000] {
            assert_eq!(translate(&mem(), 0x1000, va, false), Err(Fault { va }));
        }
    }

    #[test]
    fn chunks_split_at_page_boundaries_and_fault_before_any_copy() {
        let mut seen = Vec::new();
        for_each_chunk(&mem(), 0x1000, 0x40_0ff0, 0x20, false, |m, off, n| seen.push((m, off, n))).unwrap();
        assert_eq!(seen, [(0x10_0ff0, 0, 0x10), (0x11_0000, 0x10, 0x10)]);
        let mut called = false;
        let r = for_each_chunk(&mem(), 0x1000, 0x40_0ff0, 0x20, true, |_, _, _| called = true);
        assert!(r.is_err() && !called, "second page is read-only: nothing written");
        assert!(for_each_chunk(&mem(), 0x1000, u64::MAX - 4, 16, false, |_, _, _| {}).is_err());
    }

    /// Xen's `access_ok` lets a 64-bit PV guest use its top page
    /// (0xffff_ffff_ffff_f000): an access ending there is one chunk, never
    /// an overflow or a wrap to address 0 (which is mapped here too).
    #[test]
    fn the_last_page_of_the_address_space_is_one_chunk_without_wrapping() {
        let mut m = mem();
        let t = P | RW | US;
        m.0.insert(0x1000 + 511 * 8, 0x5000 | t);
        m.0.insert(0x5000 + 511 * 8, 0x6000 | t);
        m.0.insert(0x6000 + 511 * 8, 0x7000 | t);
        m.0.insert(0x7000 + 511 * 8, 0x20_0000 | t);
        m.0.insert(0x3000, 0x4000 | t); // VA 0 maps too: a wrap would reach it.
        for (va, len) in [(0xffff_ffff_ffff_fff0, 15), (0xffff_ffff_ffff_f000, 4095), (0xffff_ffff_ffff_fffe, 1)] {
            let mut seen = Vec::new();
            for_each_chunk(&m, 0x1000, va, len, true, |m, off, n| seen.push((m, off, n))).unwrap();
            assert_eq!(seen, [(0x20_0000 | (va & 0xfff), 0, len)], "va {va:#x} len {len}");
        }
        // One that would end at 2^64 does not fit the range arithmetic:
        // refused as a fault, nothing touched.
        let mut called = false;
        assert!(for_each_chunk(&m, 0x1000, 0xffff_ffff_ffff_fff0, 16, true, |_, _, _| called = true).is_err());
        assert!(!called);
    }
}
