//! The hypervisor's own page tables.
//!
//! After boot the hypervisor runs on tables built here, replacing the
//! trampoline's: the image at its link address with per-section rights (text
//! read-only and executable, rodata read-only, data and bss writable, both
//! no-execute) and a direct map of all RAM at [`DIRECTMAP_VIRT_START`].
//! The low identity map is gone, so the lower half is free for guests.
//!
//! Invariant: every mapping lies inside Xen's reserved L4 slots 256-271 and,
//! except on the path to the read-only M2P table, no entry carries the user
//! bit, so ring-3 guests can never reach hypervisor memory through them.

use super::boot::{__data_start, __image_end, __rodata_end, __rodata_start, __text_end, __text_start};
use super::{BOOT_DIRECTMAP_LIMIT, DIRECTMAP_VIRT_END, DIRECTMAP_VIRT_START, XEN_VIRT_OFFSET, cpu};
use crate::mm::Mfn;
use crate::mm::frame_alloc::FrameAllocator;
use xen_public::pte::{PteFlags, pte_maddr};

const PAGE: u64 = 4096;
const LARGE: u64 = 2 << 20;
const CR4_PGE: u64 = 1 << 7;
/// CR4.OSFXSR | CR4.OSXMMEXCPT: guests may use SSE (the hypervisor does not).
const CR4_OSFXSR_XMM: u64 = (1 << 9) | (1 << 10);

/// Out of frames while building tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfFrames;

type Table = [u64; 512];

/// The table in frame `mfn`, through the boot direct map.
///
/// # Safety
/// `mfn` must be a page-table frame that this module allocated and nothing
/// else references mutably, and it must lie below the boot direct map's limit.
unsafe fn table(mfn: Mfn) -> &'static mut Table {
    debug_assert!(mfn.maddr() < BOOT_DIRECTMAP_LIMIT);
    // SAFETY: per the contract, the frame is mapped and exclusively ours.
    unsafe { &mut *(super::maddr_to_virt(mfn.maddr()) as *mut Table) }
}

fn alloc_table(alloc: &mut FrameAllocator<'_>) -> Result<Mfn, OutOfFrames> {
    let mfn = alloc.alloc().ok_or(OutOfFrames)?;
    if mfn.maddr() >= BOOT_DIRECTMAP_LIMIT {
        return Err(OutOfFrames);
    }
    // SAFETY: the frame was just allocated, so nobody else refers to it.
    unsafe { table(mfn) }.fill(0);
    Ok(mfn)
}

/// A set of page tables under construction.
struct Builder<'a, 'b> {
    l4: Mfn,
    alloc: &'a mut FrameAllocator<'b>,
}

impl Builder<'_, '_> {
    /// The table at `depth` (1 = L3 .. 3 = L1) covering `va`, creating
    /// intermediate tables as needed. Only the M2P path gets the user bit.
    fn descend(&mut self, va: u64, depth: u32) -> Result<Mfn, OutOfFrames> {
        let user = if (RO_MPT_VIRT_START..RO_MPT_VIRT_END).contains(&va) { PteFlags::USER } else { PteFlags::empty() };
        let mut mfn = self.l4;
        for level in 0..depth {
            let shift = 39 - 9 * level;
            let idx = ((va >> shift) & 511) as usize;
            // SAFETY: `mfn` is one of our own table frames.
            let entry = unsafe { table(mfn)[idx] };
            mfn = if PteFlags::of(entry).contains(PteFlags::PRESENT) {
                Mfn::containing(pte_maddr(entry))
            } else {
                let new = alloc_table(self.alloc)?;
                // SAFETY: as above; no other reference to this table is live.
                let t = unsafe { table(mfn) };
                t[idx] = new.maddr() | (PteFlags::PRESENT | PteFlags::RW | user).bits();
                new
            };
        }
        Ok(mfn)
    }

    fn map_4k(&mut self, va: u64, pa: u64, flags: PteFlags) -> Result<(), OutOfFrames> {
        let l1 = self.descend(va, 3)?;
        // SAFETY: `l1` is one of our own table frames.
        let t = unsafe { table(l1) };
        t[((va >> 12) & 511) as usize] = pa | flags.bits();
        Ok(())
    }

    fn map_2m(&mut self, va: u64, pa: u64, flags: PteFlags) -> Result<(), OutOfFrames> {
        let l2 = self.descend(va, 2)?;
        // SAFETY: `l2` is one of our own table frames.
        let t = unsafe { table(l2) };
        t[((va >> 21) & 511) as usize] = pa | (flags | PteFlags::PSE).bits();
        Ok(())
    }

    fn map_range_4k(&mut self, start: u64, end: u64, flags: PteFlags) -> Result<(), OutOfFrames> {
        for va in (start..end).step_by(PAGE as usize) {
            self.map_4k(va, va - XEN_VIRT_OFFSET, flags)?;
        }
        Ok(())
    }
}

/// Read-only machine-to-phys table as guests see it (L4 slot 256).
pub const RO_MPT_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the read-only M2P window (1 GiB: 128 Mi entries, 512 GiB of RAM).
pub const RO_MPT_VIRT_END: u64 = RO_MPT_VIRT_START + (1 << 30);

/// What [`build`] mapped.
#[derive(Clone, Copy, Debug)]
// A private field, not #[non_exhaustive]: that would not stop the rest of
// this crate from making a `Layout`.
#[allow(clippy::manual_non_exhaustive)]
pub struct Layout {
    /// The new L4 table (the "idle" table whose hypervisor slots every
    /// guest L4 copies).
    pub l4: Mfn,
    /// First frame of the machine-to-phys table (contiguous).
    pub m2p: Mfn,
    /// Entries in the machine-to-phys table.
    pub m2p_entries: u64,
    /// Bytes of RAM covered by the direct map.
    pub directmap_bytes: u64,
    /// Page-table frames used.
    pub table_frames: u64,
    /// Only [`build`] makes a `Layout`, so [`activate`] gets built tables.
    _built: (),
}

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

/// Build the hypervisor's tables: the image, a direct map of `[0, ram_top)`
/// and the machine-to-phys table, mapped read-only and user-visible at
/// [`RO_MPT_VIRT_START`] (the only user-visible hypervisor mapping).
pub fn build(alloc: &mut FrameAllocator<'_>, ram_top: u64) -> Result<Layout, OutOfFrames> {
    let before = alloc.free_frames();
    let l4 = alloc_table(alloc)?;
    let mut b = Builder { l4, alloc };
    // SAFETY: linker-script symbols; only their addresses are used.
    let (text, text_end, ro, ro_end, data, end) = unsafe {
        (symbol(&__text_start), symbol(&__text_end), symbol(&__rodata_start), symbol(&__rodata_end), symbol(&__data_start), symbol(&__image_end))
    };
    let (p, rw, a, d, g, nx) = (PteFlags::PRESENT, PteFlags::RW, PteFlags::ACCESSED, PteFlags::DIRTY, PteFlags::GLOBAL, PteFlags::NX);
    b.map_range_4k(text, text_end, p | a | g)?;
    b.map_range_4k(ro, ro_end, p | a | g | nx)?;
    b.map_range_4k(data, end, p | rw | a | d | g | nx)?;
    let top = ram_top.div_ceil(LARGE) * LARGE;
    let top = top.min(DIRECTMAP_VIRT_END - DIRECTMAP_VIRT_START);
    let flags = p | rw | a | d | g | nx;
    for pa in (0..top).step_by(LARGE as usize) {
        b.map_2m(DIRECTMAP_VIRT_START + pa, pa, flags)?;
    }
    // The local APIC's registers, uncached (PWT | PCD).
    b.map_4k(super::apic::LAPIC_VA, super::apic::LAPIC_PHYS, p | rw | PteFlags::PWT | PteFlags::PCD | g | nx)?;
    let m2p_entries = (ram_top / PAGE).min((RO_MPT_VIRT_END - RO_MPT_VIRT_START) / 8);
    let m2p_frames = (m2p_entries * 8).div_ceil(PAGE);
    let m2p = b.alloc.alloc_contiguous(m2p_frames).ok_or(OutOfFrames)?;
    for i in 0..m2p_frames {
        b.map_4k(RO_MPT_VIRT_START + i * PAGE, m2p.maddr() + i * PAGE, p | PteFlags::USER | a | g | nx)?;
    }
    let table_frames = before - b.alloc.free_frames() - m2p_frames;
    Ok(Layout { l4, m2p, m2p_entries, directmap_bytes: top, table_frames, _built: () })
}

/// Switch this CPU to tables made by [`build`]. Global pages stay off:
/// guest L1 entries may carry G (as Xen allows), and with CR4.PGE clear it
/// has no effect, so no guest TLB entry outlives a CR3 switch (to another
/// domain, or between a guest's kernel and user tables).
///
/// Called once, by `setup` at boot, after which nothing may live outside
/// the image or the direct map (the low identity map disappears): what
/// `setup` keeps from boot memory it reaches through the direct map.
pub fn activate(layout: &Layout) {
    // SAFETY: OSFXSR/OSXMMEXCPT are architectural on x86_64; `layout` can
    // only come from `build`, whose tables map this code, the stack (in
    // .bss) and the direct map; boot memory in use is reached through the
    // direct map (see above).
    unsafe {
        cpu::write_cr4((cpu::read_cr4() & !CR4_PGE) | CR4_OSFXSR_XMM);
        cpu::write_cr3(layout.l4.maddr());
    }
}

/// Load a guest's L4 (machine address `maddr`) into CR3 unless it is
/// loaded already. The caller passes only a base pointer the frame table
/// validated as an L4 and a vCPU holds a reference to (`mmu.rs`); every
/// validated L4 carries the hypervisor's slots, so this code, its stack
/// and the direct map stay mapped.
pub fn load_guest_l4(maddr: u64) {
    if maddr != 0 && cpu::read_cr3() != maddr {
        super::tlb_clock::stamp_flush();
        // SAFETY: a validated, referenced L4 with the hypervisor's slots
        // (the caller's contract above).
        unsafe { cpu::write_cr3(maddr) };
    }
}

/// Run on the hypervisor's own (idle) tables, so a CPU that halts holds
/// no guest's CR3: whatever it runs next loads a new CR3, which flushes
/// the TLB, and a destroyed guest's L4 is never left loaded anywhere.
pub fn load_idle_tables() {
    let Some(idle) = crate::mm::machine::IDLE_L4.get() else { return };
    if cpu::read_cr3() != idle.maddr() {
        super::tlb_clock::stamp_flush();
        // SAFETY: the idle L4 maps the image, the stacks and the direct
        // map, like every guest L4's hypervisor slots.
        unsafe { cpu::write_cr3(idle.maddr()) };
    }
}
