//! The initial virtual layout of a PV domain, as Xen's dom0 builder lays
//! it out (`xen/arch/x86/pv/dom0_build.c`) and the digest describes it.
//!
//! One contiguous region starting at the kernel's `VIRT_BASE`, mapped 1:1
//! onto the domain's first pfns: kernel, initrd, P2M list, start_info,
//! (domU only: xenstore page, console page), bootstrap page tables, one
//! stack page, then padding of at least 512 KiB up to a 4 MiB boundary.
//!
//! A kernel with `XEN_ELFNOTE_INIT_P2M` gets its P2M list outside that
//! region instead, at the note's address, in frames (data, then the page
//! tables mapping them) right after the region's pfns, as Xen's
//! `setup_pv_physmap` maps it ([`P2mMapping`]).
//!
//! Invariant of [`DomainLayout`]: every part is page-aligned and inside
//! `[v_start, v_end)`; `v_end` is 4 MiB aligned with at least 512 KiB after
//! the stack; `nr_pt_frames` page tables suffice to map the whole region.

/// Page size.
pub const PAGE_SIZE: u64 = 4096;
const MIB4: u64 = 4 << 20;
const MIN_PADDING: u64 = 512 << 10;
/// Size of `struct start_info`.
pub const START_INFO_SIZE: u64 = 1168;
/// Size of `struct dom0_vga_console_info`, which follows dom0's start_info.
pub const DOM0_VGA_CONSOLE_INFO_SIZE: u64 = 40;

/// A half-open virtual range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Region {
    /// Bytes covered.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Number of whole pages the region spans.
    pub fn pages(&self) -> u64 {
        (round_up(self.end, PAGE_SIZE) - self.start) / PAGE_SIZE
    }
}

/// What the builder knows before laying out.
#[derive(Clone, Copy, Debug)]
pub struct LayoutInput {
    /// `XEN_ELFNOTE_VIRT_BASE`: the region's start.
    pub virt_base: u64,
    /// Lowest virtual address of the kernel's PT_LOAD segments.
    pub kernel_start: u64,
    /// One past the highest.
    pub kernel_end: u64,
    /// Bytes of the initrd (boot module handed to the domain), 0 if none.
    pub initrd_len: u64,
    /// Pages the domain owns.
    pub nr_pages: u64,
    /// Whether this is a domU (gets xenstore and console pages).
    pub is_domu: bool,
    /// `XEN_ELFNOTE_INIT_P2M`: where to map the P2M list instead of the
    /// initial region.
    pub p2m_base: Option<u64>,
}

/// Why a layout cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The kernel starts below `VIRT_BASE` or is not page-aligned there.
    BadKernelRange,
    /// The initial region needs more pages than the domain has.
    TooSmall {
        /// Pages the region needs.
        needed: u64,
    },
    /// The region would wrap around the address space.
    Overflow,
    /// The region is not canonical or overlaps the hypervisor's reserved
    /// range (L4 slots 256-271).
    ReservedRange,
    /// The INIT_P2M address is not page-aligned, overlaps the initial
    /// region (Xen: "DOM0 P->M table overlaps initial mapping"), shares
    /// one of its 512 GiB L4 slots (not supported here), or is not a
    /// guest address.
    BadP2mBase,
}

/// The P2M list mapped at the kernel's INIT_P2M address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mMapping {
    /// The list's pages: `[p2m_base, p2m_base + 8 * nr_pages)`, page-rounded.
    pub va: Region,
    /// First pfn of its frames (`start_info.first_p2m_pfn`): the data pages
    /// first, then the page tables that map them.
    pub first_pfn: u64,
    /// Pages of the list.
    pub data_pages: u64,
    /// L3, L2 and L1 tables mapping them (the L4 is the region's).
    pub table_frames: u64,
}

impl P2mMapping {
    /// Every frame it takes (`start_info.nr_p2m_frames`).
    pub fn frames(&self) -> u64 {
        self.data_pages + self.table_frames
    }
}

/// End of the hypervisor-reserved virtual range.
const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;

/// Whether `[start, end)` is canonical and clear of the hypervisor's range.
pub fn guest_range_ok(start: u64, end: u64) -> bool {
    let canonical_low = end <= 0x0000_8000_0000_0000;
    let guest_high = start >= HYPERVISOR_VIRT_END;
    canonical_low || (guest_high && start < end)
}

/// The computed layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainLayout {
    /// Start of the region (`VIRT_BASE`).
    pub v_start: u64,
    /// Kernel image.
    pub kernel: Region,
    /// Initrd (empty if none).
    pub initrd: Region,
    /// P2M list: `nr_pages` u64 entries.
    pub p2m: Region,
    /// start_info (and, for dom0, the VGA console info behind it).
    pub start_info: Region,
    /// domU xenstore ring page.
    pub xenstore: Option<Region>,
    /// domU console ring page.
    pub console: Option<Region>,
    /// Bootstrap page tables; the L4 comes first.
    pub page_tables: Region,
    /// Frames in `page_tables`.
    pub nr_pt_frames: u64,
    /// The boot stack page.
    pub stack: Region,
    /// End of the mapped region.
    pub v_end: u64,
    /// The P2M list outside the region (INIT_P2M), if the kernel asked.
    pub p2m_outside: Option<P2mMapping>,
}

/// Round up to a power-of-two multiple.
pub const fn round_up(x: u64, to: u64) -> u64 {
    (x + to - 1) & !(to - 1)
}

/// Number of aligned `1 << shift` blocks touched by `[lo, hi)`.
/// Computed in 128 bits: at the top of the address space the rounded-up
/// end is 2^64.
fn blocks(lo: u64, hi: u64, shift: u32) -> u64 {
    let size = 1u128 << shift;
    let hi = (u128::from(hi) + size - 1) & !(size - 1);
    let lo = u128::from(lo) & !(size - 1);
    ((hi - lo) >> shift) as u64
}

/// Page-table frames needed to map `[v_start, v_end)` with 4 KiB pages:
/// one L4 plus every L3, L2 and L1 the range touches.
pub fn pt_frames_needed(v_start: u64, v_end: u64) -> u64 {
    1 + blocks(v_start, v_end, 39) + blocks(v_start, v_end, 30) + blocks(v_start, v_end, 21)
}

fn page(start: u64) -> Region {
    Region { start, end: start + PAGE_SIZE }
}

/// Lay out the initial region.
pub fn compute(inp: &LayoutInput) -> Result<DomainLayout, LayoutError> {
    let v_start = inp.virt_base;
    if inp.kernel_start < v_start || !inp.kernel_start.is_multiple_of(PAGE_SIZE) || inp.kernel_end < inp.kernel_start {
        return Err(LayoutError::BadKernelRange);
    }
    // Guard every later addition: with 64 MiB of slack beyond the initrd
    // and P2M, none of the sums below can wrap.
    let extra = inp.nr_pages.checked_mul(8).and_then(|p2m| p2m.checked_add(inp.initrd_len)).and_then(|x| x.checked_add(64 << 20));
    if extra.and_then(|x| inp.kernel_end.checked_add(x)).is_none() {
        return Err(LayoutError::Overflow);
    }

    let kernel = Region { start: inp.kernel_start, end: round_up(inp.kernel_end, PAGE_SIZE) };
    let initrd = Region { start: kernel.end, end: kernel.end + inp.initrd_len };
    let p2m_start = round_up(initrd.end, PAGE_SIZE);
    // With INIT_P2M the list takes no room in the region (Xen:
    // `vphysmap_end = vphysmap_start`).
    let p2m_len = if inp.p2m_base.is_some() { 0 } else { inp.nr_pages * 8 };
    let p2m = Region { start: p2m_start, end: p2m_start + p2m_len };
    let si_start = round_up(p2m.end, PAGE_SIZE);
    let mut start_info = Region { start: si_start, end: si_start + START_INFO_SIZE };
    let (xenstore, console, pt_start) = if inp.is_domu {
        let xs = page(round_up(start_info.end, PAGE_SIZE));
        let con = page(xs.end);
        (Some(xs), Some(con), con.end)
    } else {
        let pt = round_up(start_info.end, PAGE_SIZE);
        start_info.end += DOM0_VGA_CONSOLE_INFO_SIZE;
        (None, None, pt)
    };

    let mut nr_pt_frames = 2;
    let (page_tables, stack, v_end) = loop {
        let pt = Region { start: pt_start, end: pt_start + nr_pt_frames * PAGE_SIZE };
        let stack = page(pt.end);
        let mut v_end = round_up(stack.end, MIB4);
        if v_end - stack.end < MIN_PADDING {
            v_end += MIB4;
        }
        if pt_frames_needed(v_start, v_end) <= nr_pt_frames {
            break (pt, stack, v_end);
        }
        nr_pt_frames += 1;
    };
    if v_end > 0 && v_end - 1 < v_start {
        return Err(LayoutError::Overflow);
    }
    if !guest_range_ok(v_start, v_end) {
        return Err(LayoutError::ReservedRange);
    }
    let region_pages = (v_end.wrapping_sub(v_start)) / PAGE_SIZE;
    let p2m_outside = match inp.p2m_base {
        Some(base) => Some(p2m_mapping(base, inp.nr_pages, region_pages, v_start, v_end)?),
        None => None,
    };
    let needed = region_pages + p2m_outside.map_or(0, |m| m.frames());
    if needed > inp.nr_pages {
        return Err(LayoutError::TooSmall { needed });
    }
    Ok(DomainLayout { v_start, kernel, initrd, p2m, start_info, xenstore, console, page_tables, nr_pt_frames, stack, v_end, p2m_outside })
}

/// Where the INIT_P2M list goes and what it takes.
fn p2m_mapping(base: u64, nr_pages: u64, region_pages: u64, v_start: u64, v_end: u64) -> Result<P2mMapping, LayoutError> {
    let len = round_up(nr_pages * 8, PAGE_SIZE);
    let end = base.checked_add(len).ok_or(LayoutError::BadP2mBase)?;
    let l4_slots = |lo: u64, hi: u64| (lo >> 39, (hi - 1) >> 39);
    let (p_lo, p_hi) = l4_slots(base, end);
    let (r_lo, r_hi) = l4_slots(v_start, v_end);
    let overlaps = base < v_end && v_start < end;
    let shares_slot = p_lo <= r_hi && r_lo <= p_hi;
    if !base.is_multiple_of(PAGE_SIZE) || overlaps || shares_slot || !guest_range_ok(base, end) {
        return Err(LayoutError::BadP2mBase);
    }
    let table_frames = blocks(base, end, 39) + blocks(base, end, 30) + blocks(base, end, 21);
    Ok(P2mMapping { va: Region { start: base, end }, first_pfn: region_pages, data_pages: len / PAGE_SIZE, table_frames })
}

impl DomainLayout {
    /// The pfn backing a virtual address inside the region.
    pub fn pfn_of(&self, va: u64) -> u64 {
        (va - self.v_start) / PAGE_SIZE
    }

    /// Pages in the mapped region.
    pub fn region_pages(&self) -> u64 {
        (self.v_end - self.v_start) / PAGE_SIZE
    }

    /// Whether a pfn holds one of the bootstrap page tables.
    pub fn is_pt_pfn(&self, pfn: u64) -> bool {
        let first = self.pfn_of(self.page_tables.start);
        (first..first + self.nr_pt_frames).contains(&pfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
    const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;

    fn dom0(kernel_len: u64, initrd_len: u64, nr_pages: u64) -> LayoutInput {
        LayoutInput {
            virt_base: VIRT_BASE,
            kernel_start: VIRT_BASE,
            kernel_end: VIRT_BASE + kernel_len,
            initrd_len,
            nr_pages,
            is_domu: false,
            p2m_base: None,
        }
    }

    fn check_invariants(l: &DomainLayout) {
        let mut parts = std::vec![l.kernel, l.initrd, l.p2m, l.start_info, l.page_tables, l.stack];
        parts.extend(l.xenstore);
        parts.extend(l.console);
        for p in &parts {
            assert_eq!(p.start % PAGE_SIZE, 0, "{p:?} not page-aligned");
            assert!(p.start >= l.v_start && p.end <= l.v_end, "{p:?} outside region");
        }
        // Parts are in the digest's order and do not overlap.
        let order = [l.kernel, l.initrd, l.p2m, l.start_info];
        for w in order.windows(2) {
            assert!(round_up(w[0].end, PAGE_SIZE) <= w[1].start);
        }
        assert!(l.start_info.end <= l.page_tables.start || l.xenstore.is_some());
        assert_eq!(l.page_tables.end, l.stack.start);
        assert_eq!(l.v_end % MIB4, 0, "region must end on a 4 MiB boundary");
        assert!(l.v_end - l.stack.end >= MIN_PADDING, "at least 512 KiB of padding");
        assert!(pt_frames_needed(l.v_start, l.v_end) <= l.nr_pt_frames);
        assert_eq!(l.page_tables.len(), l.nr_pt_frames * PAGE_SIZE);
    }

    #[test]
    fn small_dom0_layout_follows_the_digest_rules() {
        let l = compute(&dom0(0x15000, 0, 16384)).unwrap();
        check_invariants(&l);
        assert_eq!(l.kernel, Region { start: VIRT_BASE, end: VIRT_BASE + 0x15000 });
        assert!(l.initrd.is_empty());
        assert_eq!(l.p2m.start, VIRT_BASE + 0x15000);
        assert_eq!(l.p2m.len(), 16384 * 8);
        assert_eq!(l.start_info.start, l.p2m.end);
        // 4 MiB region at -2 GiB: 1 L4 + 1 L3 + 1 L2 + 2 L1.
        assert_eq!(l.v_end, VIRT_BASE + (4 << 20));
        assert_eq!(l.nr_pt_frames, 5);
    }

    #[test]
    fn padding_under_512k_adds_another_4mib() {
        // Kernel filling almost 4 MiB leaves less than 512 KiB after the stack.
        // The stack ends less than 512 KiB short of 4 MiB.
        let l = compute(&dom0((4 << 20) - 0x30000, 0, 8192)).unwrap();
        check_invariants(&l);
        assert!(l.stack.end > VIRT_BASE + (4 << 20) - (512 << 10));
        assert_eq!(l.v_end, VIRT_BASE + (8 << 20));
    }

    #[test]
    fn initrd_sits_between_kernel_and_p2m() {
        let l = compute(&dom0(0x3000, 0x12345, 16384)).unwrap();
        check_invariants(&l);
        assert_eq!(l.initrd, Region { start: VIRT_BASE + 0x3000, end: VIRT_BASE + 0x3000 + 0x12345 });
        assert_eq!(l.p2m.start, round_up(l.initrd.end, PAGE_SIZE));
    }

    #[test]
    fn domu_gets_xenstore_and_console_pages_before_the_page_tables() {
        let mut inp = dom0(0x3000, 0, 8192);
        inp.is_domu = true;
        let l = compute(&inp).unwrap();
        check_invariants(&l);
        let xs = l.xenstore.unwrap();
        let con = l.console.unwrap();
        assert_eq!(xs.start, round_up(l.start_info.end, PAGE_SIZE));
        assert_eq!(con.start, xs.end);
        assert_eq!(l.page_tables.start, con.end);
        assert_eq!(l.start_info.len(), START_INFO_SIZE);
    }

    #[test]
    fn region_crossing_a_1gib_boundary_needs_more_tables() {
        let base = 0x3fe0_0000; // 2 MiB below 1 GiB, kernel runs past it
        let inp = LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + 0x30_0000,
            initrd_len: 0,
            nr_pages: 4096,
            is_domu: false,
            p2m_base: None,
        };
        let l = compute(&inp).unwrap();
        check_invariants(&l);
        // One L4, one L3, two L2 (one per GiB), one L1 per 2 MiB.
        assert_eq!(pt_frames_needed(l.v_start, l.v_end), 1 + 1 + 2 + (l.v_end - base) / (2 << 20));
    }

    #[test]
    fn region_in_the_hypervisor_range_is_rejected() {
        let base = HYPERVISOR_VIRT_START + (1 << 39);
        let inp = LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + 0x2000,
            initrd_len: 0,
            nr_pages: 4096,
            is_domu: false,
            p2m_base: None,
        };
        assert_eq!(compute(&inp), Err(LayoutError::ReservedRange));
        let low = 0x7fff_ffc0_0000;
        let inp = LayoutInput {
            virt_base: low,
            kernel_start: low,
            kernel_end: low + 0x40_0000,
            initrd_len: 0,
            nr_pages: 4096,
            is_domu: false,
            p2m_base: None,
        };
        assert_eq!(compute(&inp), Err(LayoutError::ReservedRange), "crosses the canonical hole");
    }

    #[test]
    fn too_few_pages_is_an_error() {
        assert_eq!(compute(&dom0(0x3000, 0, 512)), Err(LayoutError::TooSmall { needed: 1024 }));
    }

    #[test]
    fn bad_kernel_ranges_are_rejected() {
        let mut inp = dom0(0x3000, 0, 16384);
        inp.kernel_start = VIRT_BASE - 0x1000;
        assert_eq!(compute(&inp), Err(LayoutError::BadKernelRange));
        inp.kernel_start = VIRT_BASE + 0x10;
        assert_eq!(compute(&inp), Err(LayoutError::BadKernelRange));
    }

    #[test]
    fn huge_inputs_do_not_overflow() {
        assert_eq!(compute(&dom0(0x3000, u64::MAX - 10, 16384)), Err(LayoutError::Overflow));
        assert_eq!(compute(&dom0(0x3000, 0, u64::MAX / 4)), Err(LayoutError::Overflow));
        let near_top = LayoutInput {
            virt_base: !0xfff,
            kernel_start: !0xfff,
            kernel_end: u64::MAX,
            initrd_len: 0,
            nr_pages: 16,
            is_domu: false,
            p2m_base: None,
        };
        assert!(compute(&near_top).is_err());
    }

    fn domu(kernel_len: u64, nr_pages: u64) -> LayoutInput {
        LayoutInput { is_domu: true, ..dom0(kernel_len, 0, nr_pages) }
    }

    /// libxenguest's `alloc_pgtables_pv` (xg_dom_x86.c), step by step: from
    /// the end of the last segment (the console page), grow by the stack
    /// page, 512 KiB of padding and the tables `count_pgtables` finds for
    /// `[virt_base, try_virt_end]` until they fit below the 4 MiB-aligned
    /// end. Returns (v_end, page-table frames).
    fn libxenguest_pgtables(virt_base: u64, virt_alloc_end: u64) -> (u64, u64) {
        let extra = 1 + (512 << 10) / PAGE_SIZE;
        let mut pages = extra;
        loop {
            let try_virt_end = (virt_alloc_end + pages * PAGE_SIZE) | (MIB4 - 1);
            // One L4, then one table per level-N block the range touches.
            let count = |bits: u32| ((try_virt_end | ((1u64 << bits) - 1)) - (virt_base & !((1u64 << bits) - 1))) / (1u64 << bits) + 1;
            let pgtables = 1 + count(39) + count(30) + count(21);
            pages = pgtables + extra;
            if virt_alloc_end + pages * PAGE_SIZE <= try_virt_end + 1 {
                return (try_virt_end + 1, pgtables);
            }
        }
    }

    #[test]
    fn domu_of_64_128_256_mib_follows_libxenguest_layout() {
        for mib in [64u64, 128, 256] {
            let nr_pages = mib * 256;
            let l = compute(&domu(0x2_5000, nr_pages)).unwrap();
            check_invariants(&l);
            // kernel, P2M (8 bytes a page) right after it, start_info,
            // xenstore, console, page tables, stack: xg_dom_x86.c's order.
            assert_eq!(l.p2m, Region { start: VIRT_BASE + 0x2_5000, end: VIRT_BASE + 0x2_5000 + nr_pages * 8 }, "{mib} MiB");
            assert_eq!(l.start_info.start, round_up(l.p2m.end, PAGE_SIZE));
            let con = l.console.unwrap();
            assert_eq!(l.xenstore.unwrap().start, l.start_info.start + PAGE_SIZE);
            assert_eq!(con.start, l.start_info.start + 2 * PAGE_SIZE);
            assert_eq!(l.page_tables.start, con.end);
            assert_eq!((l.v_end, l.nr_pt_frames), libxenguest_pgtables(VIRT_BASE, con.end), "{mib} MiB");
            // All of it within the first 4 MiB: L4, L3, L2 and two L1s.
            assert_eq!(l.v_end, VIRT_BASE + MIB4);
            assert_eq!(l.nr_pt_frames, 5);
            assert_eq!(l.region_pages(), 1024);
        }
    }

    #[test]
    fn a_p2m_pushing_the_region_past_4mib_gets_more_l1_tables() {
        // 256 MiB (512 KiB of P2M) behind a 3.5 MiB kernel: the stack lands
        // past 4 MiB, so the region runs to 8 MiB with four L1s.
        let l = compute(&domu(0x38_0000, 65536)).unwrap();
        check_invariants(&l);
        assert_eq!(l.v_end, VIRT_BASE + 2 * MIB4);
        assert_eq!(l.nr_pt_frames, 1 + 1 + 1 + 4);
        let con = l.console.unwrap();
        assert_eq!((l.v_end, l.nr_pt_frames), libxenguest_pgtables(VIRT_BASE, con.end));
        // 1 GiB of P2M entries (2 MiB) likewise.
        let l = compute(&domu(0x2_5000, 262144)).unwrap();
        check_invariants(&l);
        assert_eq!((l.v_end, l.nr_pt_frames), libxenguest_pgtables(VIRT_BASE, l.console.unwrap().end));
    }

    #[test]
    fn many_sizes_keep_the_invariants() {
        for kernel in [0x1000u64, 0x7000, 0x10_0000, 0x3f_f000, 0x80_0000] {
            for initrd in [0u64, 1, 0x1000, 0x12_3456] {
                for nr_pages in [8192u64, 16384, 65536, 262144] {
                    if let Ok(l) = compute(&dom0(kernel, initrd, nr_pages)) {
                        check_invariants(&l);
                    }
                }
            }
        }
    }

    #[test]
    fn rule_init_p2m_takes_no_room_in_the_region_and_frames_after_it() {
        // Xen: vphysmap_end = vphysmap_start in the region; the list's
        // frames (data, then tables) follow the region's pfns.
        let mut inp = dom0(0x15000, 0, 16384);
        inp.p2m_base = Some(0x80_0000_0000);
        let l = compute(&inp).unwrap();
        check_invariants(&l);
        assert!(l.p2m.is_empty());
        assert_eq!(l.start_info.start, l.p2m.start);
        let m = l.p2m_outside.unwrap();
        assert_eq!(m.va, Region { start: 0x80_0000_0000, end: 0x80_0000_0000 + 16384 * 8 });
        assert_eq!((m.first_pfn, m.data_pages, m.table_frames), (l.region_pages(), 32, 3));
        assert_eq!(m.frames(), 35);
    }

    #[test]
    fn rule_init_p2m_overlapping_the_region_or_unaligned_is_refused() {
        let mut inp = dom0(0x15000, 0, 16384);
        for bad in [VIRT_BASE + 0x20_0000, VIRT_BASE - 0x1000, 0x80_0000_0008, HYPERVISOR_VIRT_START, !0xfff] {
            inp.p2m_base = Some(bad);
            assert_eq!(compute(&inp), Err(LayoutError::BadP2mBase), "{bad:#x}");
        }
    }

    #[test]
    fn rule_init_p2m_frames_count_against_the_domains_pages() {
        // A 4 MiB region (1024 pages) plus 3 data pages and 3 tables.
        let mut inp = dom0(0x3000, 0, 1027);
        inp.p2m_base = Some(0x80_0000_0000);
        assert_eq!(compute(&inp), Err(LayoutError::TooSmall { needed: 1024 + 3 + 3 }));
        inp.nr_pages = 1030;
        assert!(compute(&inp).is_ok());
    }
}
