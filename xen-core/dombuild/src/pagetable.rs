//! The bootstrap page tables of a new PV domain, built as Xen builds them.
//!
//! Pure logic over a [`FrameWriter`], so host tests check it against a fake
//! memory. Invariant of the result: every page of the initial region maps
//! its pfn's machine frame with the user bit (the guest kernel runs in ring
//! 3), writable except the page-table frames themselves, which are mapped
//! read-only; the L4 is the first page-table frame.

use super::layout::{DomainLayout, P2mMapping, PAGE_SIZE};

use xen_public::pte::PteFlags;

/// Flags of intermediate entries (Xen's `BASE_PROT | _PAGE_DIRTY`).
pub const TABLE_PROT: PteFlags = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::ACCESSED).union(PteFlags::DIRTY).union(PteFlags::USER);
/// Flags of leaf entries (Xen's `L1_PROT | _PAGE_DIRTY`).
pub const LEAF_PROT: PteFlags = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::ACCESSED).union(PteFlags::DIRTY).union(PteFlags::USER);

/// Writes table entries into machine frames.
pub trait FrameWriter {
    /// Zero a whole frame.
    fn zero(&mut self, mfn: u64);
    /// Set entry `index` (0-511) of the table in `mfn`.
    fn write(&mut self, mfn: u64, index: usize, val: u64);
}

/// Level of a page-table frame: 1 (L1) to 4 (L4).
pub type Level = u8;

/// What [`build`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltTables {
    /// Machine frame of the L4.
    pub l4_mfn: u64,
    /// Level of each page-table frame, by index from the first one
    /// (`levels[i]` belongs to pfn `first_pt_pfn + i`); 0 = unused.
    pub levels: [Level; MAX_PT_FRAMES],
    /// Frames used.
    pub used: usize,
}

/// Most bootstrap page-table frames supported (enough for 1 GiB regions).
pub const MAX_PT_FRAMES: usize = 1024;

/// Why tables could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The layout's page-table area is too small (a layout bug).
    OutOfTableFrames,
    /// The P2M does not cover the region.
    P2mTooShort,
}

fn index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// Build the tables for `layout` with pfn -> mfn from `p2m`.
pub fn build(layout: &DomainLayout, p2m: &[u64], w: &mut impl FrameWriter) -> Result<BuiltTables, BuildError> {
    let pages = layout.region_pages();
    if (p2m.len() as u64) < pages {
        return Err(BuildError::P2mTooShort);
    }
    let first_pt = layout.pfn_of(layout.page_tables.start);
    let nr = (layout.nr_pt_frames as usize).min(MAX_PT_FRAMES);
    let mut out = BuiltTables { l4_mfn: p2m[first_pt as usize], levels: [0; MAX_PT_FRAMES], used: 1 };
    out.levels[0] = 4;
    w.zero(out.l4_mfn);
    // Current table at each level (index 1..=3), as an mfn.
    let mut current: [Option<u64>; 4] = [None; 4];
    for pfn in 0..pages {
        let va = layout.v_start + pfn * PAGE_SIZE;
        for level in (1..=3u32).rev() {
            // A level-N table covers 2^(12 + 9N) bytes.
            let span_mask = (1u64 << (12 + 9 * level)) - 1;
            let starts_new = current[level as usize].is_none() || va & span_mask == 0;
            if !starts_new {
                continue;
            }
            if out.used >= nr {
                return Err(BuildError::OutOfTableFrames);
            }
            let mfn = p2m[(first_pt + out.used as u64) as usize];
            out.levels[out.used] = level as Level;
            out.used += 1;
            w.zero(mfn);
            let parent = if level == 3 { out.l4_mfn } else { current[level as usize + 1].unwrap_or(out.l4_mfn) };
            w.write(parent, index(va, level + 1), (mfn << 12) | TABLE_PROT.bits());
            current[level as usize] = Some(mfn);
            // A new upper table means fresh lower tables too.
            current[1..level as usize].fill(None);
        }
        // The page-table frames themselves are mapped read-only.
        let prot = if layout.is_pt_pfn(pfn) { LEAF_PROT.difference(PteFlags::RW) } else { LEAF_PROT };
        let l1 = current[1].unwrap_or(out.l4_mfn);
        w.write(l1, index(va, 1), (p2m[pfn as usize] << 12) | prot.bits());
    }
    Ok(out)
}

/// Map the INIT_P2M list (Xen's `setup_pv_physmap`, 4 KiB pages): its data
/// pages at `m.va`, writable, through L3, L2 and L1 tables taken from the
/// frames after the data pages and hung off the L4 `l4_mfn` (whose slots
/// for `m.va` the layout keeps free). `p2m` maps every pfn the mapping
/// uses. Returns the level of each table frame, in pfn order.
pub fn map_p2m(l4_mfn: u64, m: &P2mMapping, p2m: &[u64], w: &mut impl FrameWriter) -> Result<[Level; MAX_PT_FRAMES], BuildError> {
    let first_table = m.first_pfn + m.data_pages;
    if (p2m.len() as u64) < first_table + m.table_frames {
        return Err(BuildError::P2mTooShort);
    }
    let mut levels = [0; MAX_PT_FRAMES];
    let mut used = 0u64;
    let mut current: [Option<u64>; 4] = [None; 4];
    for page in 0..m.data_pages {
        let va = m.va.start + page * PAGE_SIZE;
        for level in (1..=3u32).rev() {
            let span_mask = (1u64 << (12 + 9 * level)) - 1;
            if current[level as usize].is_some() && va & span_mask != 0 {
                continue;
            }
            if used >= m.table_frames || used as usize >= MAX_PT_FRAMES {
                return Err(BuildError::OutOfTableFrames);
            }
            let mfn = p2m[(first_table + used) as usize];
            levels[used as usize] = level as Level;
            used += 1;
            w.zero(mfn);
            let parent = if level == 3 { l4_mfn } else { current[level as usize + 1].unwrap_or(l4_mfn) };
            w.write(parent, index(va, level + 1), (mfn << 12) | TABLE_PROT.bits());
            current[level as usize] = Some(mfn);
            current[1..level as usize].fill(None);
        }
        let l1 = current[1].unwrap_or(l4_mfn);
        w.write(l1, index(va, 1), (p2m[(m.first_pfn + page) as usize] << 12) | LEAF_PROT.bits());
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{LayoutInput, compute};
    use std::collections::HashMap;
    use xen_public::pte::pte_maddr;

    #[derive(Default)]
    struct FakeMem(HashMap<u64, [u64; 512]>);

    impl FrameWriter for FakeMem {
        fn zero(&mut self, mfn: u64) {
            self.0.insert(mfn, [0; 512]);
        }
        fn write(&mut self, mfn: u64, index: usize, val: u64) {
            self.0.get_mut(&mfn).expect("write to a frame never zeroed")[index] = val;
        }
    }

    impl FakeMem {
        /// Walk like the MMU: returns the leaf entry and the AND of RW/US.
        fn walk(&self, l4: u64, va: u64) -> Option<(u64, bool, bool)> {
            let mut mfn = l4;
            let (mut rw, mut us) = (true, true);
            for level in (1..=4).rev() {
                let e = self.0.get(&mfn)?[index(va, level)];
                let f = PteFlags::of(e);
                if !f.contains(PteFlags::PRESENT) {
                    return None;
                }
                rw &= f.contains(PteFlags::RW);
                us &= f.contains(PteFlags::USER);
                if level == 1 {
                    return Some((e, rw, us));
                }
                mfn = pte_maddr(e) >> 12;
            }
            None
        }
    }

    fn layout(kernel_len: u64, nr_pages: u64, base: u64) -> DomainLayout {
        compute(&LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + kernel_len,
            initrd_len: 0,
            nr_pages,
            is_domu: false,
            p2m_base: None,
        })
        .unwrap()
    }

    /// A scattered, reversed p2m so pfn and mfn never coincide.
    fn p2m(n: u64) -> std::vec::Vec<u64> {
        (0..n).map(|pfn| 0x10_0000 - pfn * 3).collect()
    }

    fn check(base: u64, kernel_len: u64, nr_pages: u64) {
        let l = layout(kernel_len, nr_pages, base);
        let p2m = p2m(nr_pages);
        let mut mem = FakeMem::default();
        let t = build(&l, &p2m, &mut mem).unwrap();
        let first_pt = l.pfn_of(l.page_tables.start);
        assert_eq!(t.l4_mfn, p2m[first_pt as usize], "the L4 is the first page-table frame (pt_base)");
        assert!(t.used as u64 <= l.nr_pt_frames);
        for pfn in 0..l.region_pages() {
            let va = l.v_start + pfn * PAGE_SIZE;
            let (e, rw, us) = mem.walk(t.l4_mfn, va).expect("every region page is mapped");
            assert_eq!(pte_maddr(e) >> 12, p2m[pfn as usize]);
            assert!(us, "guest kernel runs in ring 3: user bit on every level");
            if l.is_pt_pfn(pfn) {
                assert!(!rw, "page-table frame pfn {pfn} must never be writable");
            } else {
                assert!(rw, "pfn {pfn} should be writable");
            }
        }
        assert!(mem.walk(t.l4_mfn, l.v_end).is_none(), "nothing mapped past v_end");
        // Every frame written is one of the page-table pfns.
        let pt_mfns: std::collections::HashSet<u64> = (0..l.nr_pt_frames).map(|i| p2m[(first_pt + i) as usize]).collect();
        assert!(mem.0.keys().all(|m| pt_mfns.contains(m)));
    }

    #[test]
    fn top_2g_dom0_tables_map_the_region_with_pt_frames_read_only() {
        check(0xffff_ffff_8000_0000, 0x15000, 16384);
    }

    #[test]
    fn region_spanning_several_l2_and_l3_tables() {
        check(0x3fc0_0000, 0x60_0000, 16384);
        check(0x0000_7f7f_ffc0_0000, 0x10_0000, 65536);
    }

    #[test]
    fn a_256_mib_domu_is_mapped_from_its_initial_region_p2m_alone() {
        // dom0's builder holds only the region's P2M entries; the tables
        // map exactly the region, so that is all they need.
        let base = 0xffff_ffff_8000_0000;
        let l = compute(&LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + 0x2_5000,
            initrd_len: 0,
            nr_pages: 65536,
            is_domu: true,
            p2m_base: None,
        })
        .unwrap();
        let head = p2m(l.region_pages());
        let mut mem = FakeMem::default();
        let t = build(&l, &head, &mut mem).unwrap();
        assert_eq!(t.used as u64, l.nr_pt_frames);
        assert_eq!(&t.levels[..t.used], &[4, 3, 2, 1, 1]);
        for pfn in [0, l.pfn_of(l.p2m.start), l.pfn_of(l.p2m.end - 1), l.pfn_of(l.start_info.start), l.region_pages() - 1] {
            let (e, _, _) = mem.walk(t.l4_mfn, l.v_start + pfn * PAGE_SIZE).unwrap();
            assert_eq!(pte_maddr(e) >> 12, head[pfn as usize], "pfn {pfn}");
        }
        assert!(mem.walk(t.l4_mfn, l.v_end).is_none(), "pfns past the region stay unmapped");
        assert_eq!(build(&l, &head[..head.len() - 1], &mut FakeMem::default()), Err(BuildError::P2mTooShort));
    }

    #[test]
    fn short_p2m_is_refused() {
        let l = layout(0x3000, 16384, 0xffff_ffff_8000_0000);
        assert_eq!(build(&l, &p2m(10), &mut FakeMem::default()), Err(BuildError::P2mTooShort));
    }

    /// Linux's INIT_P2M (`PUD_SIZE * PTRS_PER_PUD`, 512 GiB).
    const LINUX_P2M_BASE: u64 = 0x80_0000_0000;

    #[test]
    fn rule_init_p2m_list_is_mapped_at_its_address_outside_the_region() {
        // setup_pv_physmap: the list's pages at p2m_base, writable, user;
        // the region keeps no room for it and nothing else maps its frames.
        let base = 0xffff_ffff_8000_0000;
        let nr_pages = 262_144 + 17; // a P2M of just over 2 MiB: 2 L1s
        let l = compute(&LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + 0x15000,
            initrd_len: 0,
            nr_pages,
            is_domu: false,
            p2m_base: Some(LINUX_P2M_BASE),
        })
        .unwrap();
        let m = l.p2m_outside.unwrap();
        assert!(l.p2m.is_empty());
        assert_eq!(m.first_pfn, l.region_pages());
        assert_eq!(m.data_pages, (nr_pages * 8).div_ceil(4096));
        assert_eq!(m.table_frames, 1 + 1 + 2, "one L3, one L2, two L1s");
        let p2m = p2m(nr_pages);
        let mut mem = FakeMem::default();
        let t = build(&l, &p2m, &mut mem).unwrap();
        let levels = map_p2m(t.l4_mfn, &m, &p2m, &mut mem).unwrap();
        assert_eq!(&levels[..4], &[3, 2, 1, 1]);
        for page in 0..m.data_pages {
            let (e, rw, us) = mem.walk(t.l4_mfn, LINUX_P2M_BASE + page * PAGE_SIZE).expect("every P2M page is mapped");
            assert_eq!(pte_maddr(e) >> 12, p2m[(m.first_pfn + page) as usize]);
            assert!(rw && us);
        }
        assert!(mem.walk(t.l4_mfn, m.va.end).is_none(), "nothing past the list");
        // The region is still mapped as before.
        let (e, _, _) = mem.walk(t.l4_mfn, base).unwrap();
        assert_eq!(pte_maddr(e) >> 12, p2m[0]);
    }

    #[test]
    fn rule_init_p2m_tables_must_fit_the_frames_the_layout_counted() {
        let base = 0xffff_ffff_8000_0000;
        let l = compute(&LayoutInput {
            virt_base: base,
            kernel_start: base,
            kernel_end: base + 0x15000,
            initrd_len: 0,
            nr_pages: 8192,
            is_domu: false,
            p2m_base: Some(LINUX_P2M_BASE),
        })
        .unwrap();
        let mut m = l.p2m_outside.unwrap();
        m.table_frames -= 1;
        let p2m = p2m(8192);
        let mut mem = FakeMem::default();
        let t = build(&l, &p2m, &mut mem).unwrap();
        assert_eq!(map_p2m(t.l4_mfn, &m, &p2m, &mut mem), Err(BuildError::OutOfTableFrames));
        assert_eq!(map_p2m(t.l4_mfn, &l.p2m_outside.unwrap(), &p2m[..100], &mut mem), Err(BuildError::P2mTooShort));
    }
}
