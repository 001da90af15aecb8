//! The frame table and PV page-type validation: the heart of PV memory
//! safety. A guest maps only frames it owns, and never holds a writable
//! mapping of a live page table.
//!
//! For every machine frame the table records the owner, the type (none,
//! L1-L4, segment descriptor, writable), the type count, the total
//! reference count, and the pinned/validated flags. Invariants:
//! - a frame's type changes only while its type count is 0;
//! - a validated Ln table (n >= 2) holds one type reference on the L(n-1)
//!   table of every present entry, and one general reference; an L1 holds a
//!   general reference on every mapped frame and a writable type reference
//!   where the mapping is writable;
//! - a "linear" (recursive) entry, pointing at a table of its own level, is
//!   allowed only read-only, holds only a general reference, and freezes the
//!   target's type while it exists;
//! - every operation that fails leaves the table and the page tables exactly
//!   as they were.
//!
//! Pure logic over [`PageMem`], so the host tests drive it with a model.
#![forbid(unsafe_code)]

/// Reads and writes page-table entries in machine frames.
pub trait PageMem {
    /// Entry `idx` (0-511) of the table in `mfn`.
    fn read(&self, mfn: u64, idx: usize) -> u64;
    /// Set entry `idx` of the table in `mfn`.
    fn write(&mut self, mfn: u64, idx: usize, val: u64);
    /// An L4 was just validated: install the hypervisor's own slots
    /// (256-271) in it, as Xen's `init_xen_l4_slots` does.
    fn init_xen_l4_slots(&mut self, _mfn: u64) {}
}

/// A frame's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum PageType {
    /// No type yet.
    #[default]
    None = 0,
    /// An L1 page table.
    L1 = 1,
    /// An L2 page table.
    L2 = 2,
    /// An L3 page table.
    L3 = 3,
    /// An L4 page table.
    L4 = 4,
    /// A GDT/LDT page.
    SegDesc = 5,
    /// Mapped writable.
    Writable = 6,
}

impl PageType {
    /// The page-table type of a level (1-4).
    pub fn table(level: u8) -> PageType {
        match level {
            1 => PageType::L1,
            2 => PageType::L2,
            3 => PageType::L3,
            _ => PageType::L4,
        }
    }

    /// The level of a page-table type.
    pub fn level(self) -> Option<u8> {
        match self {
            PageType::L1 => Some(1),
            PageType::L2 => Some(2),
            PageType::L3 => Some(3),
            PageType::L4 => Some(4),
            _ => None,
        }
    }
}

/// Per-frame state (Xen's `struct page_info`, reduced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Owning domain, or [`NO_OWNER`].
    pub owner: u16,
    /// Current type.
    pub ty: PageType,
    /// References of the current type.
    pub type_count: u32,
    /// All references (the allocation itself counts one).
    pub count: u32,
    /// Read-only linear (recursive) mappings of this table.
    pub linear_count: u32,
    /// Pinned by the guest (MMUEXT_PIN_*).
    pub pinned: bool,
    /// Contents validated for the current type.
    pub validated: bool,
    /// Validation of this table is in progress (it cannot be retyped, and
    /// a reference to it from below is a loop).
    pub validating: bool,
}

/// Owner of frames no domain owns (free, or the hypervisor's).
pub const NO_OWNER: u16 = 0x7ff2; // DOMID_XEN

impl PageInfo {
    /// A frame nobody owns.
    pub const FREE: PageInfo =
        PageInfo { owner: NO_OWNER, ty: PageType::None, type_count: 0, count: 0, linear_count: 0, pinned: false, validated: false, validating: false };
}

/// Why an operation failed; each maps to Xen's errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// Bad flags, type conflict, bad level, PSE, Xen slot, not pinned (-EINVAL).
    Inval,
    /// Frame not owned, or a writable mapping of a page table (-EBUSY).
    Busy,
}

impl MmError {
    /// The negated errno.
    pub fn errno(self) -> i64 {
        match self {
            MmError::Inval => -22,
            MmError::Busy => -16,
        }
    }
}

type Res = Result<(), MmError>;

/// Entry bits.
pub mod pte {
    /// Present.
    pub const P: u64 = 1;
    /// Writable.
    pub const RW: u64 = 2;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// Page size (superpage) at L2/L3; PAT at L1.
    pub const PSE: u64 = 1 << 7;
    /// Frame address.
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
}

/// Bits a guest may set at every level: P, RW, US, A, D, AVAIL (9-11),
/// AVAIL_HIGH (52-62), NX.
const BASE_ALLOWED: u64 = 0x1 | 0x2 | 0x4 | 0x20 | 0x40 | 0xe00 | (0x7ff << 52) | (1 << 63);
/// L1 also allows G.
const L1_ALLOWED: u64 = BASE_ALLOWED | 0x100;
/// Cache attributes (PWT, PCD, PAT) in L1 entries, for domains with I/O access.
const L1_CACHE_ATTRS: u64 = 0x8 | 0x10 | 0x80;
/// First and one-past-last L4 slot the hypervisor owns.
pub const XEN_SLOTS: core::ops::Range<usize> = 256..272;

fn mfn_of(e: u64) -> u64 {
    (e & pte::ADDR) >> 12
}

/// The frame table over caller-provided storage, indexed by mfn.
pub struct FrameTable<'a> {
    frames: &'a mut [PageInfo],
    /// Frames of destroyed domains whose last reference went, waiting for
    /// the caller to give them back to the allocator ([`Self::take_freed`]).
    freed: [u64; FREED_BATCH],
    nr_freed: usize,
}

/// Freed orphan frames remembered between two [`FrameTable::take_freed`].
const FREED_BATCH: usize = 64;
/// Owner of a frame whose domain was destroyed while others still
/// referenced the frame: it is freed when its count reaches 0.
pub const ORPHAN: u16 = 0x7ff4; // DOMID_COW's neighbour, never a real domid

/// Who is asking: the domain whose tables are changed and whose frames
/// may be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Who {
    /// The domain.
    pub dom: u16,
    /// Whether it has I/O access (may set cache attributes).
    pub io: bool,
    /// Whose frames L1 entries may map: `dom` itself, or the foreign
    /// domain a privileged caller names (`mmu_update`'s `foreigndom`).
    pub pg: u16,
}

impl Who {
    /// A domain acting on its own tables and frames.
    pub const fn own(dom: u16, io: bool) -> Who {
        Who { dom, io, pg: dom }
    }
}

impl<'a> FrameTable<'a> {
    /// A table over `frames` (one entry per machine frame).
    pub fn new(frames: &'a mut [PageInfo]) -> Self {
        FrameTable { frames, freed: [0; FREED_BATCH], nr_freed: 0 }
    }

    /// A frame's state.
    pub fn info(&self, mfn: u64) -> Option<&PageInfo> {
        self.frames.get(mfn as usize)
    }

    /// Every frame's state, indexed by mfn (read-only: for the auditor,
    /// `mm/audit.rs`).
    pub fn frames(&self) -> &[PageInfo] {
        self.frames
    }

    fn at(&mut self, mfn: u64) -> &mut PageInfo {
        &mut self.frames[mfn as usize]
    }

    /// Give a free frame to `dom` (the allocation reference).
    pub fn assign(&mut self, mfn: u64, dom: u16) -> Res {
        let f = self.frames.get_mut(mfn as usize).ok_or(MmError::Inval)?;
        if f.owner != NO_OWNER || f.count != 0 {
            return Err(MmError::Busy);
        }
        *f = PageInfo { owner: dom, count: 1, ..PageInfo::FREE };
        Ok(())
    }

    /// Take a frame back from `dom` (the allocation reference), if nothing
    /// else references it; `true` if it is now free.
    pub fn release(&mut self, mfn: u64, dom: u16) -> bool {
        match self.frames.get_mut(mfn as usize) {
            Some(f) if f.owner == dom && f.count == 1 && f.type_count == 0 && f.linear_count == 0 && !f.pinned => {
                *f = PageInfo::FREE;
                true
            }
            _ => false,
        }
    }

    /// Take a general reference on a frame `dom` owns.
    pub fn get_page(&mut self, mfn: u64, dom: u16) -> Res {
        match self.frames.get_mut(mfn as usize) {
            Some(f) if f.owner == dom && f.count > 0 => {
                f.count += 1;
                Ok(())
            }
            _ => Err(MmError::Busy),
        }
    }

    /// Drop a general reference. An orphan frame (its domain destroyed)
    /// whose last reference this was becomes free.
    pub fn put_page(&mut self, mfn: u64) {
        let f = self.at(mfn);
        f.count = f.count.saturating_sub(1);
        if f.owner == ORPHAN && f.count == 0 && f.type_count == 0 {
            *f = PageInfo::FREE;
            if self.nr_freed < FREED_BATCH {
                self.freed[self.nr_freed] = mfn;
                self.nr_freed += 1;
            } else {
                // No room to remember it: it stays an orphan with count 0,
                // found again by the next `relinquish` sweep.
                self.at(mfn).owner = ORPHAN;
            }
        }
    }

    /// Hand over the orphan frames that became free since the last call.
    pub fn take_freed(&mut self, mut free: impl FnMut(u64)) {
        for &mfn in &self.freed[..self.nr_freed] {
            free(mfn);
        }
        self.nr_freed = 0;
    }

    /// Domain destruction: unpin every table `dom` pinned, then drop the
    /// allocation reference of every frame it owns. Frames nothing else
    /// references are handed to `free`; the rest become orphans, freed by
    /// the `put_page` that drops their last reference. The caller has
    /// already dropped the references the domain's vCPU held (its CR3,
    /// GDT and LDT frames).
    pub fn relinquish(&mut self, mem: &mut impl PageMem, dom: u16, mut free: impl FnMut(u64)) {
        let n = self.frames.len() as u64;
        for mfn in 0..n {
            let f = self.frames[mfn as usize];
            if f.owner == dom && f.pinned {
                self.at(mfn).pinned = false;
                self.put_page_type(mem, mfn);
                self.put_page(mfn);
            }
        }
        for mfn in 0..n {
            let f = self.frames[mfn as usize];
            let orphan_done = f.owner == ORPHAN && f.count == 0 && f.type_count == 0;
            if f.owner != dom && !orphan_done {
                continue;
            }
            if orphan_done || f.count <= 1 {
                *self.at(mfn) = PageInfo::FREE;
                free(mfn);
            } else {
                let g = self.at(mfn);
                g.count -= 1;
                g.owner = ORPHAN;
            }
        }
    }

    /// Take a type reference, validating the frame if it becomes a table.
    pub fn get_page_type(&mut self, mem: &mut impl PageMem, mfn: u64, ty: PageType, who: Who) -> Res {
        let f = *self.frames.get(mfn as usize).ok_or(MmError::Inval)?;
        if f.validating {
            return Err(MmError::Inval);
        }
        if f.type_count > 0 || (f.linear_count > 0 && f.ty != ty) {
            if f.ty != ty {
                return Err(if ty == PageType::Writable { MmError::Busy } else { MmError::Inval });
            }
            self.at(mfn).type_count += 1;
            return Ok(());
        }
        if ty == PageType::SegDesc {
            Self::validate_segdesc(mem, mfn)?;
        }
        if let Some(level) = ty.level() {
            // The type is visible during validation, so same-level entries
            // pointing back at this table are recognised as linear.
            self.at(mfn).ty = ty;
            self.at(mfn).validating = true;
            let r = self.validate(mem, mfn, level, who);
            self.at(mfn).validating = false;
            if let Err(e) = r {
                self.at(mfn).ty = f.ty;
                return Err(e);
            }
        }
        if ty == PageType::L4 {
            mem.init_xen_l4_slots(mfn);
        }
        let g = self.at(mfn);
        g.ty = ty;
        g.type_count = 1;
        g.validated = ty.level().is_some();
        Ok(())
    }

    /// Drop a type reference; a table whose count reaches 0 is devalidated.
    pub fn put_page_type(&mut self, mem: &mut impl PageMem, mfn: u64) {
        let f = *self.at(mfn);
        if f.type_count == 0 {
            return;
        }
        self.at(mfn).type_count -= 1;
        if f.type_count == 1 {
            if let Some(level) = f.ty.level() {
                self.devalidate(mem, mfn, level);
            }
            let g = self.at(mfn);
            g.validated = false;
            if g.linear_count == 0 {
                g.ty = PageType::None;
            }
        }
    }

    fn allowed(level: u8, who: Who) -> u64 {
        match level {
            1 if who.io => L1_ALLOWED | L1_CACHE_ATTRS,
            1 => L1_ALLOWED,
            _ => BASE_ALLOWED,
        }
    }

    /// Check an entry's flags for a level.
    pub fn check_flags(level: u8, e: u64, who: Who) -> Res {
        if e & pte::P == 0 {
            return Ok(());
        }
        if e & !pte::ADDR & !Self::allowed(level, who) != 0 {
            return Err(MmError::Inval);
        }
        Ok(())
    }

    /// Take the references a present entry of a level-`level` table in
    /// `table` needs.
    pub fn get_entry(&mut self, mem: &mut impl PageMem, table: u64, level: u8, e: u64, who: Who) -> Res {
        if e & pte::P == 0 {
            return Ok(());
        }
        Self::check_flags(level, e, who)?;
        let target = mfn_of(e);
        if level == 1 {
            self.get_page(target, who.pg)?;
            if e & pte::RW != 0
                && let Err(err) = self.get_page_type(mem, target, PageType::Writable, who) {
                    self.put_page(target);
                    return Err(err);
                }
            return Ok(());
        }
        // L2-L4 entries: same owner only; a same-level target is a linear
        // (recursive) mapping, allowed read-only.
        if self.info(target).map(|f| f.owner) != Some(who.dom) {
            return Err(MmError::Inval);
        }
        self.get_page(target, who.dom).map_err(|_| MmError::Inval)?;
        let same_level = target == table || self.info(target).map(|f| f.ty) == Some(PageType::table(level));
        if same_level {
            if e & pte::RW != 0 {
                self.put_page(target);
                return Err(MmError::Inval);
            }
            self.at(target).linear_count += 1;
            return Ok(());
        }
        if let Err(err) = self.get_page_type(mem, target, PageType::table(level - 1), who) {
            self.put_page(target);
            return Err(if err == MmError::Busy { MmError::Inval } else { err });
        }
        Ok(())
    }

    /// Drop what [`get_entry`](Self::get_entry) took for `e`.
    pub fn put_entry(&mut self, mem: &mut impl PageMem, level: u8, e: u64) {
        if e & pte::P == 0 {
            return;
        }
        let target = mfn_of(e);
        if level == 1 {
            if e & pte::RW != 0 {
                self.put_page_type(mem, target);
            }
            self.put_page(target);
            return;
        }
        if self.info(target).map(|f| f.ty) == Some(PageType::table(level)) && self.at(target).linear_count > 0 {
            let t = self.at(target);
            t.linear_count -= 1;
            if t.linear_count == 0 && t.type_count == 0 {
                t.ty = PageType::None;
            }
        } else {
            self.put_page_type(mem, target);
        }
        self.put_page(target);
    }

    /// Check (and fix up) every descriptor of a would-be GDT/LDT page; on
    /// failure nothing is written.
    fn validate_segdesc(mem: &mut impl PageMem, mfn: u64) -> Res {
        let mut fixed = [0u64; 512];
        for (i, f) in fixed.iter_mut().enumerate() {
            *f = super::descriptor::check_descriptor(mem.read(mfn, i)).ok_or(MmError::Inval)?;
        }
        for (i, f) in fixed.iter().enumerate() {
            if mem.read(mfn, i) != *f {
                mem.write(mfn, i, *f);
            }
        }
        Ok(())
    }

    fn is_guest_slot(level: u8, i: usize) -> bool {
        level != 4 || !XEN_SLOTS.contains(&i)
    }

    fn validate(&mut self, mem: &mut impl PageMem, mfn: u64, level: u8, who: Who) -> Res {
        for i in (0..512).filter(|&i| Self::is_guest_slot(level, i)) {
            let e = mem.read(mfn, i);
            let res = if level >= 2 && e & pte::P != 0 && e & pte::PSE != 0 {
                Err(MmError::Inval)
            } else {
                self.get_entry(mem, mfn, level, e, who)
            };
            if let Err(err) = res {
                self.put_entries(mem, mfn, level, i);
                return Err(if level == 1 && err == MmError::Busy { MmError::Inval } else { err });
            }
        }
        Ok(())
    }

    /// Drop the references of entries `0..upto` of a table.
    fn put_entries(&mut self, mem: &mut impl PageMem, mfn: u64, level: u8, upto: usize) {
        for i in (0..upto).filter(|&i| Self::is_guest_slot(level, i)) {
            let e = mem.read(mfn, i);
            self.put_entry(mem, level, e);
        }
    }

    fn devalidate(&mut self, mem: &mut impl PageMem, mfn: u64, level: u8) {
        self.put_entries(mem, mfn, level, 512);
    }

    /// MMUEXT_PIN_Ln_TABLE.
    pub fn pin(&mut self, mem: &mut impl PageMem, mfn: u64, level: u8, who: Who) -> Res {
        let f = *self.frames.get(mfn as usize).ok_or(MmError::Inval)?;
        if f.owner != who.dom {
            return Err(MmError::Inval);
        }
        if f.pinned {
            return Err(MmError::Inval);
        }
        self.get_page(mfn, who.dom).map_err(|_| MmError::Inval)?;
        if let Err(e) = self.get_page_type(mem, mfn, PageType::table(level), who) {
            self.put_page(mfn);
            return Err(if e == MmError::Busy { MmError::Inval } else { e });
        }
        self.at(mfn).pinned = true;
        Ok(())
    }

    /// MMUEXT_UNPIN_TABLE.
    pub fn unpin(&mut self, mem: &mut impl PageMem, mfn: u64, who: Who) -> Res {
        let f = *self.frames.get(mfn as usize).ok_or(MmError::Inval)?;
        if f.owner != who.dom || !f.pinned {
            return Err(MmError::Inval);
        }
        self.at(mfn).pinned = false;
        self.put_page_type(mem, mfn);
        self.put_page(mfn);
        Ok(())
    }

    /// Replace entry `idx` of the validated table in `table` (mmu_update
    /// NORMAL_PT_UPDATE; `preserve_ad` keeps the old A/D bits).
    pub fn update_entry(&mut self, mem: &mut impl PageMem, table: u64, idx: usize, new: u64, preserve_ad: bool, who: Who) -> Res {
        let f = *self.frames.get(table as usize).ok_or(MmError::Inval)?;
        if f.owner != who.dom {
            return Err(MmError::Inval);
        }
        let Some(level) = f.ty.level().filter(|_| f.validated && f.type_count > 0) else {
            // Not a live page table: a plain write to a writable page the
            // domain owns, as Xen allows.
            if f.ty == PageType::SegDesc {
                return Err(MmError::Inval);
            }
            mem.write(table, idx, new);
            return Ok(());
        };
        if level == 4 && XEN_SLOTS.contains(&idx) {
            return Err(MmError::Inval);
        }
        let old = mem.read(table, idx);
        let new = if preserve_ad { new | (old & (pte::A | pte::D)) } else { new };
        if level >= 2 && new & pte::P != 0 && new & pte::PSE != 0 {
            return Err(MmError::Inval);
        }
        self.get_entry(mem, table, level, new, who)?;
        mem.write(table, idx, new);
        self.put_entry(mem, level, old);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    #[derive(Default, Clone)]
    struct Mem(HashMap<u64, [u64; 512]>);

    /// What the model hypervisor keeps in its own L4 slots.
    const XEN_SLOT_VALUE: u64 = 0xfee0_0003;

    impl PageMem for Mem {
        fn read(&self, mfn: u64, idx: usize) -> u64 {
            self.0.get(&mfn).map_or(0, |t| t[idx])
        }
        fn write(&mut self, mfn: u64, idx: usize, val: u64) {
            self.0.entry(mfn).or_insert([0; 512])[idx] = val;
        }
        fn init_xen_l4_slots(&mut self, mfn: u64) {
            for i in XEN_SLOTS {
                self.write(mfn, i, XEN_SLOT_VALUE);
            }
        }
    }

    const D0: Who = Who::own(1, false);
    const OTHER: u16 = 2;
    const RW: u64 = pte::P | pte::RW | 0x4 | pte::A | pte::D;
    const RO: u64 = pte::P | 0x4 | pte::A;

    fn e(mfn: u64, flags: u64) -> u64 {
        (mfn << 12) | flags
    }

    /// 64 frames: 0-47 owned by D0, 48-63 by OTHER.
    fn setup() -> (Vec<PageInfo>, Mem) {
        let mut frames = std::vec![PageInfo::FREE; 64];
        let mut ft = FrameTable::new(&mut frames);
        for mfn in 0..48 {
            ft.assign(mfn, D0.dom).unwrap();
        }
        for mfn in 48..64 {
            ft.assign(mfn, OTHER).unwrap();
        }
        (frames, Mem::default())
    }

    fn snapshot(frames: &[PageInfo], mem: &Mem) -> (Vec<PageInfo>, Vec<(u64, Vec<u64>)>) {
        let mut m: Vec<_> = mem.0.iter().map(|(k, v)| (*k, v.to_vec())).collect();
        m.sort();
        (frames.to_vec(), m)
    }

    #[test]
    fn pin_l1_takes_general_and_writable_refs() {
        let (mut frames, mut mem) = setup();
        mem.write(10, 0, e(20, RW));
        mem.write(10, 1, e(21, RO));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        assert_eq!(ft.info(10).map(|f| (f.ty, f.type_count, f.pinned, f.validated)), Some((PageType::L1, 1, true, true)));
        assert_eq!(ft.info(20).map(|f| (f.ty, f.type_count, f.count)), Some((PageType::Writable, 1, 2)));
        assert_eq!(ft.info(21).map(|f| (f.ty, f.count)), Some((PageType::None, 2)));
        ft.unpin(&mut mem, 10, D0).unwrap();
        assert_eq!(ft.info(20).map(|f| (f.ty, f.type_count, f.count)), Some((PageType::None, 0, 1)));
    }

    #[test]
    fn pin_twice_and_unpin_unpinned_are_einval() {
        // ABI: PIN is not nested (pin twice: -EINVAL; unpin unpinned: -EINVAL).
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        assert_eq!(ft.pin(&mut mem, 10, 1, D0), Err(MmError::Inval));
        ft.unpin(&mut mem, 10, D0).unwrap();
        assert_eq!(ft.unpin(&mut mem, 10, D0), Err(MmError::Inval));
    }

    /// Pin must fail with `err` and leave everything as it was.
    fn pin_fails_unchanged(mut frames: Vec<PageInfo>, mut mem: Mem, mfn: u64, level: u8, who: Who, err: MmError) {
        let before = snapshot(&frames, &mem);
        let mut ft = FrameTable::new(&mut frames);
        assert_eq!(ft.pin(&mut mem, mfn, level, who), Err(err));
        assert!(snapshot(&frames, &mem) == before, "state changed after a rejected pin");
    }

    #[test]
    fn l1_mapping_a_frame_not_owned_is_rejected_unchanged() {
        // ABI: no mapping of frames the domain does not own.
        let (frames, mut mem) = setup();
        mem.write(10, 0, e(20, RW));
        mem.write(10, 5, e(50, RO));
        pin_fails_unchanged(frames, mem, 10, 1, D0, MmError::Inval);
    }

    #[test]
    fn l1_flag_rules() {
        // ABI: allowed bits per level; cache attributes only with I/O access.
        let (frames, mut mem) = setup();
        mem.write(10, 0, e(20, RW | 0x10));
        pin_fails_unchanged(frames.clone(), mem.clone(), 10, 1, D0, MmError::Inval);
        let mut frames = frames;
        let mut ft = FrameTable::new(&mut frames);
        assert_eq!(ft.pin(&mut mem, 10, 1, Who { io: true, ..D0 }), Ok(()));
        assert_eq!(FrameTable::check_flags(1, e(1, RW | 0x100 | (0x7ff << 52) | (1 << 63)), D0), Ok(()));
        assert_eq!(FrameTable::check_flags(2, e(1, RW | 0x100), D0), Err(MmError::Inval), "G only in L1");
    }

    #[test]
    fn pse_in_l2_is_rejected_unchanged() {
        // ABI: no PSE (superpages) in L2.
        let (frames, mut mem) = setup();
        mem.write(11, 3, e(12, RW | pte::PSE));
        pin_fails_unchanged(frames, mem, 11, 2, D0, MmError::Inval);
    }

    #[test]
    fn pinned_l1_cannot_be_mapped_writable() {
        // ABI: no writable mapping of a page-table page (-EBUSY).
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        ft.pin(&mut mem, 11, 1, D0).unwrap();
        let before = snapshot(ft.frames, &mem);
        assert_eq!(ft.update_entry(&mut mem, 11, 0, e(10, RW), false, D0), Err(MmError::Busy));
        assert!(snapshot(ft.frames, &mem) == before);
        assert_eq!(ft.update_entry(&mut mem, 11, 0, e(10, RO), false, D0), Ok(()), "read-only is fine");
    }

    #[test]
    fn frame_with_writable_mapping_cannot_be_pinned() {
        // ABI: a type conflict is -EINVAL; the type changes only at type count 0.
        let (mut frames, mut mem) = setup();
        mem.write(11, 0, e(10, RW));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 11, 1, D0).unwrap();
        let before = snapshot(ft.frames, &mem);
        assert_eq!(ft.pin(&mut mem, 10, 1, D0), Err(MmError::Inval));
        assert!(snapshot(ft.frames, &mem) == before);
        // Drop the writable mapping: now it can be pinned.
        ft.update_entry(&mut mem, 11, 0, 0, false, D0).unwrap();
        assert_eq!(ft.pin(&mut mem, 10, 1, D0), Ok(()));
    }

    #[test]
    fn hypervisor_l4_slots_cannot_be_written() {
        // ABI: guest updates of L4 slots 256-271 fail with -EINVAL.
        let (mut frames, mut mem) = setup();
        mem.write(13, 260, 0xdead_b000_0067); // hypervisor slot contents: ignored
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 13, 4, D0).unwrap();
        for slot in [256, 261, 271] {
            assert_eq!(ft.update_entry(&mut mem, 13, slot, 0, false, D0), Err(MmError::Inval));
        }
        assert_eq!(ft.update_entry(&mut mem, 13, 272, 0, false, D0), Ok(()));
        // Whatever the guest left there, a validated L4 carries the
        // hypervisor's own slots.
        assert!(XEN_SLOTS.clone().all(|i| mem.read(13, i) == XEN_SLOT_VALUE));
    }

    #[test]
    fn self_map_only_read_only() {
        // ABI: the recursive (linear) L4 entry is allowed read-only only.
        let (frames, mut mem) = setup();
        mem.write(13, 0, e(13, RW));
        pin_fails_unchanged(frames.clone(), mem.clone(), 13, 4, D0, MmError::Inval);
        mem.write(13, 0, e(13, RO));
        let mut frames = frames;
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 13, 4, D0).unwrap();
        assert_eq!(ft.info(13).map(|f| (f.linear_count, f.count)), Some((1, 3)));
        // Turning it writable through an update is refused too.
        assert_eq!(ft.update_entry(&mut mem, 13, 0, e(13, RW), false, D0), Err(MmError::Inval));
        ft.unpin(&mut mem, 13, D0).unwrap();
        assert_eq!(ft.info(13).map(|f| (f.ty, f.linear_count, f.count)), Some((PageType::None, 0, 1)));
    }

    #[test]
    fn upper_levels_only_within_one_owner() {
        // ABI: L2-L4 updates need page-table owner == data owner.
        let (frames, mut mem) = setup();
        mem.write(11, 0, e(50, RW));
        pin_fails_unchanged(frames, mem, 11, 2, D0, MmError::Inval);
    }

    #[test]
    fn full_hierarchy_validates_recursively_and_releases() {
        let (mut frames, mut mem) = setup();
        mem.write(13, 0, e(14, RW)); // L4 -> L3
        mem.write(14, 0, e(15, RW)); // L3 -> L2
        mem.write(15, 0, e(16, RW)); // L2 -> L1
        mem.write(16, 0, e(20, RW)); // L1 -> data
        mem.write(16, 1, e(16, RO)); // L1 maps itself read-only
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 13, 4, D0).unwrap();
        let ty = |ft: &FrameTable<'_>, m| ft.info(m).map(|f| (f.ty, f.type_count));
        assert_eq!(ty(&ft, 14), Some((PageType::L3, 1)));
        assert_eq!(ty(&ft, 15), Some((PageType::L2, 1)));
        assert_eq!(ty(&ft, 16), Some((PageType::L1, 1)));
        assert_eq!(ty(&ft, 20), Some((PageType::Writable, 1)));
        // A data frame of the hierarchy cannot become a table, a table
        // cannot be mapped writable.
        assert_eq!(ft.pin(&mut mem, 20, 1, D0), Err(MmError::Inval));
        assert_eq!(ft.update_entry(&mut mem, 16, 2, e(15, RW), false, D0), Err(MmError::Busy));
        ft.unpin(&mut mem, 13, D0).unwrap();
        for m in [13, 14, 15, 16, 20] {
            assert_eq!(ft.info(m).map(|f| (f.ty, f.type_count, f.count)), Some((PageType::None, 0, 1)), "frame {m}");
        }
    }

    #[test]
    fn segdesc_pages_are_checked_and_exclusive() {
        // ABI: descriptor pages are validated; no writable mapping of a descriptor page.
        let (mut frames, mut mem) = setup();
        mem.write(30, 0, 0x00af_9a00_0000_ffff);
        mem.write(31, 0, (1 << 47) | (0x9 << 40)); // a TSS: refused
        let mut ft = FrameTable::new(&mut frames);
        assert_eq!(ft.get_page_type(&mut mem, 30, PageType::SegDesc, D0), Ok(()));
        assert_eq!(mem.read(30, 0), 0x00af_fa00_0000_ffff, "DPL fixed up to 3");
        let before = snapshot(ft.frames, &mem);
        assert_eq!(ft.get_page_type(&mut mem, 31, PageType::SegDesc, D0), Err(MmError::Inval));
        assert!(snapshot(ft.frames, &mem) == before);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(30, RW), false, D0), Err(MmError::Busy));
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(30, RO), false, D0), Ok(()));
    }

    #[test]
    fn release_needs_the_last_reference() {
        let (mut frames, mut mem) = setup();
        mem.write(10, 0, e(20, RO));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        assert!(!ft.release(20, D0.dom), "still mapped");
        assert!(!ft.release(10, D0.dom), "a pinned table");
        assert!(!ft.release(50, D0.dom), "not ours");
        assert!(ft.release(21, D0.dom));
        assert_eq!(ft.info(21), Some(&PageInfo::FREE));
        assert!(!ft.release(21, D0.dom), "already free");
    }

    #[test]
    fn preserve_ad_keeps_old_accessed_dirty() {
        let (mut frames, mut mem) = setup();
        mem.write(10, 0, e(20, RW));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        ft.update_entry(&mut mem, 10, 0, e(21, pte::P | pte::RW | 0x4), true, D0).unwrap();
        assert_eq!(mem.read(10, 0) & (pte::A | pte::D), pte::A | pte::D);
        assert_eq!(ft.info(20).map(|f| f.type_count), Some(0), "old mapping released");
    }

    /// Recount every reference from the live tables and compare.
    fn check_balance(ft: &FrameTable<'_>, mem: &Mem, n: u64) {
        let mut count = std::vec![1u32; n as usize];
        let mut tcount = std::vec![0u32; n as usize];
        let mut linear = std::vec![0u32; n as usize];
        for t in 0..n {
            let f = ft.info(t).copied().unwrap_or(PageInfo::FREE);
            if f.pinned {
                count[t as usize] += 1;
                tcount[t as usize] += 1;
            }
            let Some(level) = f.ty.level().filter(|_| f.validated && f.type_count > 0) else { continue };
            for i in (0..512).filter(|&i| FrameTable::is_guest_slot(level, i)) {
                let en = mem.read(t, i);
                if en & pte::P == 0 {
                    continue;
                }
                let tgt = mfn_of(en) as usize;
                count[tgt] += 1;
                if level == 1 {
                    if en & pte::RW != 0 {
                        tcount[tgt] += 1;
                    }
                } else if ft.info(tgt as u64).map(|g| g.ty) == Some(PageType::table(level)) {
                    linear[tgt] += 1;
                } else {
                    tcount[tgt] += 1;
                }
            }
        }
        for m in 0..n {
            let f = ft.info(m).copied().unwrap_or(PageInfo::FREE);
            if f.owner != D0.dom {
                continue;
            }
            assert_eq!((f.count, f.type_count, f.linear_count), (count[m as usize], tcount[m as usize], linear[m as usize]), "frame {m}: {f:?}");
            assert!(f.type_count > 0 || f.linear_count > 0 || f.ty == PageType::None || !f.validated);
        }
    }

    #[test]
    fn random_pin_unpin_map_unmap_keeps_counts_balanced() {
        for seed in [1u64, 7, 42, 0xdead_beef] {
            let (mut frames, mut mem) = setup();
            let mut ft = FrameTable::new(&mut frames);
            let mut s = seed;
            let mut rnd = |m: u64| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s % m
            };
            for _ in 0..4000 {
                let op = rnd(4);
                let t = rnd(24);
                let level = 1 + rnd(4) as u8;
                match op {
                    0 => {
                        let _ = ft.pin(&mut mem, t, level, D0);
                    }
                    1 => {
                        let _ = ft.unpin(&mut mem, t, D0);
                    }
                    _ => {
                        let idx = rnd(4) as usize;
                        let tgt = rnd(30);
                        let flags = [RW, RO, 0, RW | pte::PSE][rnd(4) as usize];
                        let _ = ft.update_entry(&mut mem, t, idx, e(tgt, flags), false, D0);
                    }
                }
                check_balance(&ft, &mem, 64);
            }
        }
    }

    #[test]
    fn foreign_l1_mapping_needs_the_named_owner() {
        // ABI: mmu_update with foreigndom lets a privileged domain map the
        // foreign domain's frames (and only those) in its own L1.
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        let foreign = Who { pg: OTHER, ..D0 };
        assert_eq!(ft.get_entry(&mut mem, 10, 1, e(50, RW), foreign), Ok(()));
        assert_eq!(ft.info(50).map(|f| (f.ty, f.count)), Some((PageType::Writable, 2)));
        assert_eq!(ft.get_entry(&mut mem, 10, 1, e(20, RW), foreign), Err(MmError::Busy), "own frame is not the foreign domain's");
        ft.put_entry(&mut mem, 1, e(50, RW));
        assert_eq!(ft.info(50).map(|f| (f.ty, f.count)), Some((PageType::None, 1)));
    }

    #[test]
    fn relinquish_frees_pinned_tables_and_keeps_mapped_frames_until_unmapped() {
        // ABI: destroying a domain gives back every frame; a frame another
        // domain still maps stays allocated until that mapping goes.
        let (mut frames, mut mem) = setup();
        mem.write(60, 0, e(61, RW));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 60, 1, Who::own(OTHER, false)).unwrap();
        // D0 maps OTHER's frame 62 writable (foreign mapping).
        ft.get_entry(&mut mem, 10, 1, e(62, RW), Who { pg: OTHER, ..D0 }).unwrap();
        let mut freed = Vec::new();
        ft.relinquish(&mut mem, OTHER, |m| freed.push(m));
        let expect: Vec<u64> = (48..64).filter(|&m| m != 62).collect();
        assert_eq!(freed, expect);
        assert_eq!(ft.info(62).map(|f| f.owner), Some(ORPHAN), "still mapped: not freed");
        ft.put_entry(&mut mem, 1, e(62, RW));
        let mut later = Vec::new();
        ft.take_freed(|m| later.push(m));
        assert_eq!(later, [62]);
        assert_eq!(ft.info(62), Some(&PageInfo::FREE));
        assert!((0..48).all(|m| ft.info(m).is_some_and(|f| f.owner == D0.dom && f.count == 1)), "D0's frames untouched");
    }
}
