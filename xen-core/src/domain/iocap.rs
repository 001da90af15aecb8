//! I/O capabilities (Xen's `iocap.h` and `rangeset.c`): which I/O ports a
//! domain may drive, and which machine frames that are not RAM (MMIO) it
//! may map; and the machine's own map of what is RAM.
//!
//! Owns [`RangeSet`], a bounded set of inclusive `u64` ranges, and the
//! policies built from it: dom0's ports and iomem as Xen 4.17's
//! `dom0_setup_permissions` (`xen/arch/x86/dom0_build.c`) leaves them, minus
//! what xen-core drives itself; a domU gets none. Invariants: the ranges of
//! a set are sorted, disjoint and never adjacent; an operation that would
//! need more than the set's capacity fails and leaves the set unchanged
//! (never unbounded memory, never a panic).
#![forbid(unsafe_code)]

/// Ranges one set holds at most.
pub const RANGES: usize = 32;

/// The set is full: the operation changed nothing (Xen's -ENOMEM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// A set of `u64` values as sorted, disjoint, non-adjacent inclusive
/// ranges (Xen's `struct rangeset`, bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSet {
    ranges: [(u64, u64); RANGES],
    len: usize,
}

impl Default for RangeSet {
    fn default() -> Self {
        Self::new()
    }
}

impl RangeSet {
    /// The empty set.
    pub const fn new() -> Self {
        RangeSet { ranges: [(0, 0); RANGES], len: 0 }
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges[..self.len]
    }

    /// Whether every value of `[s, e]` is in the set (Xen's
    /// `rangeset_contains_range`; an empty or reversed range is not).
    pub fn contains_range(&self, s: u64, e: u64) -> bool {
        s <= e && self.ranges().iter().any(|&(a, b)| a <= s && e <= b)
    }

    /// Whether `x` is in the set.
    pub fn contains(&self, x: u64) -> bool {
        self.contains_range(x, x)
    }

    /// Whether any value of `[s, e]` is in the set.
    pub fn overlaps(&self, s: u64, e: u64) -> bool {
        s <= e && self.ranges().iter().any(|&(a, b)| a <= e && s <= b)
    }

    /// Add `[s, e]` (Xen's `rangeset_add_range`).
    pub fn add(&mut self, s: u64, e: u64) -> Result<(), Full> {
        if s > e {
            return Ok(());
        }
        let mut out = RangeSet::new();
        let (mut ns, mut ne) = (s, e);
        let mut placed = false;
        for &(a, b) in self.ranges() {
            // Merge overlapping or adjacent ranges into the new one.
            if b.checked_add(1).is_none_or(|b1| b1 >= ns) && ne.checked_add(1).is_none_or(|e1| e1 >= a) {
                ns = ns.min(a);
                ne = ne.max(b);
                continue;
            }
            if !placed && a > ne {
                out.push(ns, ne)?;
                placed = true;
            }
            out.push(a, b)?;
        }
        if !placed {
            out.push(ns, ne)?;
        }
        *self = out;
        Ok(())
    }

    /// Remove `[s, e]` (Xen's `rangeset_remove_range`).
    pub fn remove(&mut self, s: u64, e: u64) -> Result<(), Full> {
        if s > e {
            return Ok(());
        }
        let mut out = RangeSet::new();
        for &(a, b) in self.ranges() {
            if b < s || a > e {
                out.push(a, b)?;
                continue;
            }
            if a < s {
                out.push(a, s - 1)?;
            }
            if b > e {
                out.push(e + 1, b)?;
            }
        }
        *self = out;
        Ok(())
    }

    fn push(&mut self, a: u64, b: u64) -> Result<(), Full> {
        let slot = self.ranges.get_mut(self.len).ok_or(Full)?;
        *slot = (a, b);
        self.len += 1;
        Ok(())
    }
}

/// I/O ports xen-core drives itself, which no domain may touch directly:
/// the COM1 UART of its console (Xen's `ns16550_endboot` denies dom0 its
/// serial port the same way), and QEMU's isa-debug-exit port, through which
/// it stops the machine.
pub const XEN_OWN_PORTS: [(u16, u16); 2] = [(0x3f8, 0x3ff), (0xf4, 0xf4)];

/// Ports Xen 4.17's `dom0_setup_permissions` denies the hardware domain:
/// the PICs, the PIT, PIT channel 2 / speaker control, and the PCI
/// configuration data ports (0xcf8 has its own rule, `admin_io_okay`).
/// The PIC and PIT are also the ones xen-core programs (`arch/x86_64`).
/// Xen also denies the ACPI PM timer's ports, which xen-core does not use
/// or know (the FADT is not parsed): left to dom0.
pub const DOM0_DENIED_PORTS: [(u16, u16); 5] = [(0x20, 0x21), (0xa0, 0xa1), (0x40, 0x43), (0x61, 0x61), (0xcfc, 0xcff)];

/// The I/O ports dom0 may use: all (Xen's `ioports_permit_access(d, 0,
/// 0xFFFF)`) minus [`DOM0_DENIED_PORTS`] and [`XEN_OWN_PORTS`].
pub fn dom0_ioports() -> RangeSet {
    let mut s = RangeSet::new();
    // Five holes in one range: never near the capacity.
    let _ = s.add(0, 0xffff);
    for (a, b) in DOM0_DENIED_PORTS.iter().chain(XEN_OWN_PORTS.iter()) {
        let _ = s.remove(u64::from(*a), u64::from(*b));
    }
    s
}

/// Machine frames (not RAM) that dom0 may not map, as Xen 4.17's
/// `dom0_setup_permissions`: the local APIC and the MSI address range
/// 0xfee00000-0xfeefffff (which holds it), and the page of xen-core's AP
/// trampoline (below 1 MiB, which Xen leaves to I/O). The I/O APIC is not
/// denied: Xen 4.17 puts it in `mmio_ro_ranges` instead (dom0 may read
/// it), see [`MMIO_RO_FRAMES`]. The HyperTransport range is AMD-only and
/// past any QEMU machine's physical address width here; xen-core uses no
/// HPET, so dom0 keeps it.
pub const DOM0_DENIED_FRAMES: [(u64, u64); 2] = [(0xfee00, 0xfeeff), (0x8, 0x8)];

/// Frames every mapping of which is forced read-only (Xen's
/// `mmio_ro_ranges`): the I/O APIC at its usual address (xen-core does
/// not parse the MADT's I/O APIC entries; it does not drive the I/O APIC).
pub const MMIO_RO_FRAMES: [(u64, u64); 1] = [(0xfec00, 0xfec00)];

/// Physical address bits of the frames dom0 may map (Xen permits
/// `[0, 2^paddr_bits)`; 52 is the architectural most).
pub const PADDR_BITS: u32 = 52;

/// The frames dom0 may map when they are not RAM: all of the physical
/// address space minus [`DOM0_DENIED_FRAMES`] and `unusable` (E820
/// unusable ranges above 1 MiB, which Xen denies too).
pub fn dom0_iomem(unusable: &[(u64, u64)]) -> RangeSet {
    let mut s = RangeSet::new();
    let _ = s.add(0, (1 << (PADDR_BITS - 12)) - 1);
    for &(a, b) in DOM0_DENIED_FRAMES.iter() {
        let _ = s.remove(a, b);
    }
    for &(a, b) in unusable {
        let _ = s.remove(a.max(0x100), b);
    }
    s
}

/// Xen's `PADDR_MASK >> PAGE_SHIFT` (INVALID_MFN as an L1 entry holds it):
/// mapping it without I/O memory permission is -EINVAL, not -EPERM.
pub const INVALID_MFN_IN_PTE: u64 = (1 << (PADDR_BITS - 12)) - 1;

/// The CPU's physical address width as Xen 4.17 computes `paddr_bits`:
/// CPUID 0x80000008 EAX[7:0] where the CPU has that leaf, else 36.
pub fn paddr_bits(max_extended_leaf: u32, leaf_80000008_eax: u32) -> u32 {
    let bits = leaf_80000008_eax & 0xff;
    if max_extended_leaf >= 0x8000_0008 && (36..=PADDR_BITS).contains(&bits) { bits } else { 36 }
}

/// The frames of [`MMIO_RO_FRAMES`] as a set.
pub fn mmio_ro() -> RangeSet {
    let mut s = RangeSet::new();
    for &(a, b) in MMIO_RO_FRAMES.iter() {
        let _ = s.add(a, b);
    }
    s
}

/// The machine's memory as MMIO mapping sees it (Xen: `mfn_valid` and
/// ownership by `dom_io`): which frames are RAM, whose L1 mappings follow
/// the frame table's reference rules; every other frame is I/O. Xen
/// treats the first MiB and every E820 range that is not RAM as I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MachineMap {
    /// RAM frames (E820 usable, at or above 1 MiB).
    pub ram: RangeSet,
    /// Non-RAM frames dom0 may map.
    pub dom0_iomem: RangeSet,
    /// Non-RAM frames only ever mapped read-only (Xen's `mmio_ro_ranges`).
    pub mmio_ro: RangeSet,
}

impl MachineMap {
    /// A map in which every frame below `nr_frames` is RAM and dom0 may map
    /// every other (host tests of the frame table).
    pub fn all_ram(nr_frames: u64) -> Self {
        let mut ram = RangeSet::new();
        let _ = ram.add(0, nr_frames.saturating_sub(1));
        if nr_frames == 0 {
            ram = RangeSet::new();
        }
        MachineMap { ram, dom0_iomem: dom0_iomem(&[]), mmio_ro: mmio_ro() }
    }

    /// Keep dom0's I/O memory below the CPU's physical address width:
    /// Xen 4.17 permits the hardware domain `[0, 2^paddr_bits)` only
    /// (`dom0_setup_permissions`, `domain_max_paddr_bits`).
    pub fn limit_paddr_bits(&mut self, paddr_bits: u32) -> Result<(), Full> {
        let first_beyond = 1u64 << (paddr_bits.clamp(12, PADDR_BITS) - 12);
        self.dom0_iomem.remove(first_beyond, u64::MAX)
    }

    /// Whether `mfn` is RAM.
    pub fn is_ram(&self, mfn: u64) -> bool {
        self.ram.contains(mfn)
    }

    /// Whether a domain (`io`: it has the hardware domain's I/O
    /// capabilities) may map the non-RAM frame `mfn` (Xen's
    /// `iomem_access_permitted`).
    pub fn iomem_permitted(&self, io: bool, mfn: u64) -> bool {
        io && self.dom0_iomem.contains(mfn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rangeset_add_merges_overlapping_and_adjacent_ranges() {
        let mut s = RangeSet::new();
        s.add(10, 20).unwrap();
        s.add(30, 40).unwrap();
        s.add(21, 29).unwrap();
        assert_eq!(s.ranges(), &[(10, 40)]);
        s.add(0, 5).unwrap();
        s.add(50, u64::MAX).unwrap();
        assert_eq!(s.ranges(), &[(0, 5), (10, 40), (50, u64::MAX)]);
        s.add(6, 9).unwrap();
        assert_eq!(s.ranges(), &[(0, 40), (50, u64::MAX)]);
    }

    #[test]
    fn rangeset_remove_splits_and_contains_follows() {
        let mut s = RangeSet::new();
        s.add(0, 0xffff).unwrap();
        s.remove(0x3f8, 0x3ff).unwrap();
        assert!(s.contains(0x3f7) && !s.contains(0x3f8) && !s.contains(0x3ff) && s.contains(0x400));
        assert!(!s.contains_range(0x3f0, 0x3f8), "a range touching a hole is not contained");
        assert!(s.overlaps(0x3f0, 0x3f8) && !s.overlaps(0x3f8, 0x3ff));
        s.remove(0, 0xffff).unwrap();
        assert!(s.ranges().is_empty());
        assert!(!s.contains_range(5, 4), "a reversed range is never contained");
    }

    #[test]
    fn rangeset_full_fails_and_changes_nothing() {
        let mut s = RangeSet::new();
        for i in 0..RANGES as u64 {
            s.add(i * 4, i * 4 + 1).unwrap();
        }
        let before = s;
        assert_eq!(s.add(1000, 1001), Err(Full));
        assert_eq!(s, before);
        // Splitting a range needs one more: refused, unchanged.
        let mut t = RangeSet::new();
        t.add(0, 1_000_000).unwrap();
        for i in 1..RANGES as u64 {
            t.remove(i * 10, i * 10).unwrap();
        }
        let before = t;
        assert_eq!(t.remove(5000, 5000), Err(Full));
        assert_eq!(t, before);
    }

    #[test]
    fn dom0_ports_are_all_but_pic_pit_pci_data_and_xen_core_uart() {
        let p = dom0_ioports();
        for port in [0x20, 0x21, 0xa0, 0xa1, 0x40, 0x43, 0x61, 0xcfc, 0xcff, 0x3f8, 0x3ff, 0xf4] {
            assert!(!p.contains(port), "port {port:#x} must be denied");
        }
        for port in [0x0, 0x60, 0x64, 0x70, 0x80, 0xcf8, 0xcfb, 0xc000, 0xffff, 0x2f8, 0x3f7, 0x400] {
            assert!(p.contains(port), "port {port:#x} must be permitted");
        }
    }

    #[test]
    fn dom0_iomem_denies_lapic_msi_and_unusable_ranges_and_keeps_the_ioapic_read_only() {
        let m = dom0_iomem(&[(0x50, 0x60), (0x200, 0x2ff)]);
        assert!(m.contains(0xfec00) && mmio_ro().contains(0xfec00), "Xen 4.17 lets dom0 read the I/O APIC");
        for f in [0xfee00, 0xfeeff, 0x8, 0x200, 0x2ff] {
            assert!(!m.contains(f), "frame {f:#x} must be denied");
        }
        for f in [0xfebf0, 0xfd000, 0xb8, 0x50, 0x300, 0xfef00, (1 << 40) - 1] {
            assert!(m.contains(f), "frame {f:#x} must be permitted");
        }
        assert!(!m.contains(1 << 40), "past 2^52 bytes of physical address space");
    }

    #[test]
    fn domu_has_no_iomem_permission() {
        let map = MachineMap::all_ram(0x1000);
        assert!(!map.iomem_permitted(false, 0xfebf0));
        assert!(map.iomem_permitted(true, 0xfebf0));
        assert!(!map.iomem_permitted(true, 0xfee00));
        assert!(map.is_ram(0xfff) && !map.is_ram(0x1000));
    }

    #[test]
    fn dom0_iomem_stops_at_the_cpus_physical_address_width() {
        // Xen 4.17's dom0_setup_permissions permits [0, 2^paddr_bits).
        assert_eq!(paddr_bits(0x8000_0008, 0x3028), 40, "QEMU's qemu64: 40 bits");
        assert_eq!(paddr_bits(0x8000_0004, 0x3028), 36, "no leaf 0x80000008: 36, as Xen");
        let mut map = MachineMap::all_ram(0x1000);
        map.limit_paddr_bits(40).unwrap();
        assert!(map.iomem_permitted(true, (1 << 28) - 1));
        assert!(!map.iomem_permitted(true, 1 << 28), "the first frame past 2^40 bytes");
        assert!(!map.iomem_permitted(true, INVALID_MFN_IN_PTE));
        assert!(!map.iomem_permitted(true, 0xfee00), "the holes stay");
    }
}
