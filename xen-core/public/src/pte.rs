//! x86-64 page-table entry bits, as Xen's PV ABI exposes them.
//!
//! A PV guest builds and edits its own page tables: the entries it hands to
//! `mmu_update` ([`crate::MmuUpdate::val`]), `update_va_mapping` and
//! `grant_table_op` (`GNTMAP_contains_pte`), and the bootstrap tables Xen
//! builds for it, are plain hardware x86-64 entries, which Xen validates bit
//! by bit before they reach the hardware. Xen's public headers leave these
//! bits to the architecture (its own names are `_PAGE_*` in
//! `asm-x86/page.h`), so they live here, shared by the hypervisor that
//! checks them, the domain builders that write the bootstrap tables and the
//! guests that write entries.
//!
//! Entries stay raw `u64` where they are wire formats or table contents;
//! [`PteFlags`] is for the code that decides on the bits
//! (`PteFlags::of(entry).contains(PteFlags::PRESENT)`), and `.bits()` gives
//! them back for building an entry (`(mfn << PAGE_SHIFT) | flags.bits()`).

/// Bits 12-51 of an entry: the machine address of the frame (or table) it
/// maps.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

bitflags::bitflags! {
    /// The bits of a page-table entry outside its address
    /// ([`PTE_ADDR_MASK`]). Every such bit has a name here (bits 9-11 and
    /// 52-62 as the two multi-bit fields the hardware ignores), so
    /// [`PteFlags::of`] drops nothing but the address.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PteFlags: u64 {
        /// `_PAGE_PRESENT`: the entry maps something.
        const PRESENT = 1 << 0;
        /// `_PAGE_RW`: writable.
        const RW = 1 << 1;
        /// `_PAGE_USER`: reachable from ring 3 (PV guests run there, so
        /// their entries carry it).
        const USER = 1 << 2;
        /// `_PAGE_PWT`: write-through.
        const PWT = 1 << 3;
        /// `_PAGE_PCD`: cache disabled.
        const PCD = 1 << 4;
        /// `_PAGE_ACCESSED`: set by the CPU on use.
        const ACCESSED = 1 << 5;
        /// `_PAGE_DIRTY`: set by the CPU on write (leaf entries).
        const DIRTY = 1 << 6;
        /// `_PAGE_PSE` in L2 and L3 entries: the entry maps a superpage.
        /// The same bit as [`PAT`](Self::PAT), which it is in L1 entries.
        const PSE = 1 << 7;
        /// `_PAGE_PAT` in L1 entries: the PAT index's third bit. The same
        /// bit as [`PSE`](Self::PSE), which it is in L2 and L3 entries.
        const PAT = 1 << 7;
        /// `_PAGE_GLOBAL`: kept across CR3 loads when CR4.PGE is set (leaf
        /// entries).
        const GLOBAL = 1 << 8;
        /// Bits 9-11: ignored by the CPU, free for software.
        const AVAIL = 0x7 << 9;
        /// Bits 52-62: ignored by the CPU (without protection keys), free
        /// for software.
        const AVAIL_HIGH = 0x7ff << 52;
        /// `_PAGE_NX`: no instruction fetch.
        const NX = 1 << 63;
    }
}

impl PteFlags {
    /// The flag bits of entry `entry` (everything but its address).
    pub const fn of(entry: u64) -> PteFlags {
        PteFlags::from_bits_retain(entry & !PTE_ADDR_MASK)
    }
}

/// The machine address an entry maps (bits 12-51).
pub const fn pte_maddr(entry: u64) -> u64 {
    entry & PTE_ADDR_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: an x86-64 entry is its flags (bits 0-11 and 52-63) plus a
    /// frame address (bits 12-51); every non-address bit is named, so a
    /// flag set and the address give the entry back.
    #[test]
    fn pte_flags_and_address_partition_the_entry() {
        assert_eq!(PteFlags::all().bits(), !PTE_ADDR_MASK);
        let e = 0x8000_0000_1234_5067u64;
        assert_eq!(PteFlags::of(e), PteFlags::NX | PteFlags::PRESENT | PteFlags::RW | PteFlags::USER | PteFlags::ACCESSED | PteFlags::DIRTY);
        assert_eq!(PteFlags::of(e).bits() | pte_maddr(e), e);
        assert_eq!(pte_maddr(e), 0x1234_5000);
    }

    /// ABI rule: the hardware bit positions Xen validates (`_PAGE_*`):
    /// P 0, RW 1, US 2, PWT 3, PCD 4, A 5, D 6, PSE/PAT 7, G 8, NX 63.
    #[test]
    fn pte_bits_are_the_hardware_ones() {
        assert_eq!((PteFlags::PRESENT | PteFlags::RW | PteFlags::USER | PteFlags::ACCESSED | PteFlags::DIRTY).bits(), 0x67);
        assert_eq!((PteFlags::PWT | PteFlags::PCD | PteFlags::PAT).bits(), 0x98);
        assert_eq!(PteFlags::PSE, PteFlags::PAT, "one bit, read by level");
        assert_eq!(PteFlags::GLOBAL.bits(), 0x100);
        assert_eq!(PteFlags::AVAIL.bits(), 0xe00);
        assert_eq!(PteFlags::AVAIL_HIGH.bits(), 0x7ff << 52);
        assert_eq!(PteFlags::NX.bits(), 1 << 63);
    }
}
