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
//! - a "linear" entry, pointing at a table of its own level, is allowed
//!   only read-only. Pointing at its own table it holds nothing; pointing at
//!   another validated table of that level it holds a general and a type
//!   reference, and chains stay one level deep: a table either contains
//!   linear entries or is the target of some, never both (Xen since
//!   XSA-240);
//! - reference counts never wrap: an increment that would overflow fails;
//! - a frame that lost an L1 mapping carries the TLB-flush clock of that
//!   moment, and becomes a page table or descriptor page only after every
//!   CPU has flushed its TLB since ([`PageMem::flush_tlbs_since`]);
//! - validation and devalidation are preemptible (XSA-45): a table whose
//!   validation was interrupted is `Partial::Validation` and holds the
//!   references of its entries `[0, partial_at)`; one whose devalidation was
//!   interrupted is `Partial::Devalidation`, holds the same, keeps its type
//!   and sits on the pending list until [`FrameTable::drain_pending`]
//!   finishes it. A partial frame is never retyped, written as plain memory
//!   or freed;
//! - every operation that fails leaves the table and the page tables as
//!   they were, except that undoing a failed validation may itself be left
//!   pending.
//!
//! Pure logic over [`PageMem`], so the host tests drive it with a model.
#![forbid(unsafe_code)]

use crate::domain::iocap::{INVALID_MFN_IN_PTE, MachineMap};
use xen_public::DOMID_IO;
use xen_public::pte::{PteFlags, pte_maddr};

/// Reads and writes page-table entries in machine frames.
pub trait PageMem {
    /// Entry `idx` (0-511) of the table in `mfn`.
    fn read(&self, mfn: u64, idx: usize) -> u64;
    /// Set entry `idx` of the table in `mfn`.
    fn write(&mut self, mfn: u64, idx: usize, val: u64);
    /// An L4 was just validated: install the hypervisor's own slots
    /// (256-271) in it, as Xen's `init_xen_l4_slots` does.
    fn init_xen_l4_slots(&mut self, _mfn: u64) {}
    /// The TLB-flush clock now: a CPU that flushes later holds no
    /// translation removed before this reading.
    fn tlb_clock(&self) -> u64 {
        0
    }
    /// Make sure every CPU has flushed its TLB after clock value `stamp`.
    fn flush_tlbs_since(&mut self, _stamp: u64) {}
    /// Whether the current operation has run long enough to stop and
    /// continue later (checked only after some progress).
    fn preempt_due(&self) -> bool {
        false
    }
}

/// Where an interrupted validation or devalidation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Partial {
    /// Nothing interrupted.
    #[default]
    None = 0,
    /// Validation stopped after entries `[0, partial_at)`.
    Validation = 1,
    /// Devalidation stopped; entries `[0, partial_at)` still hold references.
    Devalidation = 2,
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
    /// Linear page-table bookkeeping (Xen's `linear_pt_count`): above 0,
    /// the number of linear entries this table contains; below 0, the
    /// number of linear entries elsewhere that point at it.
    pub linear_pt: i32,
    /// TLB-flush clock when an L1 mapping of this frame was last removed
    /// (0: never).
    pub tlb_stamp: u64,
    /// TLB-flush clock when this frame stopped being a page table (0:
    /// never, or every CPU flushed since): until every CPU has flushed, a
    /// paging-structure cache may still walk through it, so it does not
    /// become writable before.
    pub devalidated_at: u64,
    /// Pinned by the guest (MMUEXT_PIN_*).
    pub pinned: bool,
    /// Contents validated for the current type.
    pub validated: bool,
    /// Validation of this table is in progress (it cannot be retyped, and
    /// a reference to it from below is a loop).
    pub validating: bool,
    /// An interrupted validation or devalidation.
    pub partial: Partial,
    /// Entries `[0, partial_at)` hold references while `partial` is set.
    pub partial_at: u16,
}

/// Owner of frames no domain owns (free, or the hypervisor's private
/// ones): a reserved domid Xen never names.
pub const NO_OWNER: u16 = 0x7ffd;
const _: () = {
    use xen_public::{DOMID_COW, DOMID_IDLE, DOMID_INVALID, DOMID_IO, DOMID_SELF, DOMID_XEN};
    let named = [DOMID_SELF, DOMID_IO, DOMID_XEN, DOMID_COW, DOMID_INVALID, DOMID_IDLE];
    let mut i = 0;
    while i < named.len() {
        assert!(named[i] != NO_OWNER, "free frames must not look owned by a domid Xen names");
        i += 1;
    }
    assert!(NO_OWNER >= xen_public::DOMID_FIRST_RESERVED, "never a real domain");
};
/// Owner of the hypervisor's pages it shares with privileged domains
/// (the trace buffers, Xen's `share_xen_page_with_privileged_guests`):
/// `DOMID_XEN`, which a privileged `mmu_update` names as `foreigndom` to
/// map them.
pub const XEN_SHARED: u16 = xen_public::DOMID_XEN;

impl PageInfo {
    /// A frame nobody owns.
    pub const FREE: PageInfo = PageInfo {
        owner: NO_OWNER,
        ty: PageType::None,
        type_count: 0,
        count: 0,
        linear_pt: 0,
        tlb_stamp: 0,
        devalidated_at: 0,
        pinned: false,
        validated: false,
        validating: false,
        partial: Partial::None,
        partial_at: 0,
    };
}

/// Why an operation failed; each maps to Xen's errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmError {
    /// Bad flags, type conflict, bad level, PSE, Xen slot, not pinned (-EINVAL).
    Inval,
    /// Frame not owned, or a writable mapping of a page table (-EBUSY).
    Busy,
    /// A frame that is not RAM (MMIO) and the domain has no I/O memory
    /// permission for it (-EPERM, Xen's `get_page_from_l1e`).
    Perm,
    /// Preempted: the operation must be issued again (a continuation;
    /// Xen's internal -ERESTART, never seen by a guest).
    Restart,
}

impl MmError {
    /// The negated errno (-ERESTART is Xen's internal 85).
    pub const fn errno(self) -> i64 {
        match self {
            MmError::Inval => -xen_public::errno::EINVAL,
            MmError::Busy => -xen_public::errno::EBUSY,
            MmError::Perm => -xen_public::errno::EPERM,
            MmError::Restart => -xen_public::errno::ERESTART,
        }
    }
}

// The continuation code is Xen's internal 85, as the dispatcher expects.
const _: () = assert!(MmError::Restart.errno() == -85);

type Res = Result<(), MmError>;

/// Bits a guest may set at every level: P, RW, US, A, D, AVAIL (9-11),
/// AVAIL_HIGH (52-62), NX.
const BASE_ALLOWED: PteFlags = PteFlags::PRESENT
    .union(PteFlags::RW)
    .union(PteFlags::USER)
    .union(PteFlags::ACCESSED)
    .union(PteFlags::DIRTY)
    .union(PteFlags::AVAIL)
    .union(PteFlags::AVAIL_HIGH)
    .union(PteFlags::NX);
/// L1 also allows G.
const L1_ALLOWED: PteFlags = BASE_ALLOWED.union(PteFlags::GLOBAL);
/// Cache attributes (PWT, PCD, PAT) in L1 entries, for domains with I/O access.
const L1_CACHE_ATTRS: PteFlags = PteFlags::PWT.union(PteFlags::PCD).union(PteFlags::PAT);
/// First and one-past-last L4 slot the hypervisor owns.
pub const XEN_SLOTS: core::ops::Range<usize> = 256..272;

fn mfn_of(e: u64) -> u64 {
    pte_maddr(e) >> 12
}

/// The frame table over caller-provided storage, indexed by mfn.
pub struct FrameTable<'a> {
    frames: &'a mut [PageInfo],
    /// Frames of destroyed domains whose last reference went, waiting for
    /// the caller to give them back to the allocator ([`Self::take_freed`]).
    freed: heapless::Vec<u64, FREED_BATCH>,
    /// Frames whose devalidation was interrupted, to finish first.
    pending: heapless::Vec<u64, PENDING_MAX>,
    /// Orphans became free that `freed` had no room for.
    freed_overflow: bool,
    /// Where interrupted domain destructions stopped.
    reaps: [Option<Reap>; REAPS],
    /// The entry of `reaps` to reuse next when all are taken.
    reap_turn: usize,
    /// Which frames are RAM, and which others dom0 may map (MMIO).
    machine: MachineMap,
}

/// Interrupted destructions whose place is remembered.
pub const REAPS: usize = 4;
/// Frames a destruction scans between two looks at the clock.
const REAP_CHECK_EVERY: u64 = 256;

/// A domain destruction's steps, in order (see [`FrameTable::relinquish`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReapStep {
    /// Abandon interrupted validations.
    Partials,
    /// Drop every pin.
    Pins,
    /// Finish the devalidations that the unpins left interrupted.
    Drain,
    /// Drop the allocation references.
    Release,
}

/// Where a domain's destruction stopped: its step and the next frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Reap {
    dom: u16,
    step: ReapStep,
    next: u64,
}

/// Interrupted devalidations remembered at once; past that, devalidation
/// runs to the end without preemption. A domain leaves at most one per
/// table level when a call of its is preempted, and finishes them at its
/// next call: four per possible domain.
const PENDING_MAX: usize = 4 * 1024;

/// Freed orphan frames remembered between two [`FrameTable::take_freed`].
const FREED_BATCH: usize = 64;
/// Owner of a frame whose domain was destroyed while others still
/// referenced the frame: it is freed when its count reaches 0.
pub const ORPHAN: u16 = 0x7ff4; // DOMID_INVALID: never a real domid

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
        let machine = MachineMap::all_ram(frames.len() as u64);
        FrameTable {
            frames,
            freed: heapless::Vec::new(),
            pending: heapless::Vec::new(),
            freed_overflow: false,
            reaps: [None; REAPS],
            reap_turn: 0,
            machine,
        }
    }

    /// Set the machine's RAM map and dom0's MMIO permissions (boot, before
    /// any domain exists; a new table treats all of its frames as RAM).
    pub fn set_machine_map(&mut self, machine: MachineMap) {
        self.machine = machine;
    }

    /// The machine's RAM map and dom0's MMIO permissions.
    pub fn machine(&self) -> &MachineMap {
        &self.machine
    }

    /// Whether `mfn` is not RAM: past the table, or I/O by the machine map
    /// (Xen: `!mfn_valid`, or owned by `dom_io`). L1 entries mapping it
    /// hold no reference.
    pub fn is_mmio(&self, mfn: u64) -> bool {
        mfn >= self.frames.len() as u64 || !self.machine.is_ram(mfn)
    }

    /// Xen's `get_page_from_l1e` for a frame that is not RAM: the domain
    /// whose tables change and the page owner it names (itself, or
    /// DOMID_IO, which reverts to it) need I/O memory permission for it,
    /// else -EPERM. The entry then holds nothing. Returns the flags to
    /// flip: RW off for a read-only MMIO frame (`mmio_ro_ranges`), and the
    /// cache attributes so that MMIO is never mapped cacheable (Xen's
    /// default `mmio-relax=0`: WB becomes UC, WT and WP become UC too).
    fn get_mmio(&self, e: u64, who: Who) -> Result<u64, MmError> {
        let target = mfn_of(e);
        let pg_is_self = who.pg == who.dom || who.pg == DOMID_IO;
        if !pg_is_self || !self.machine.iomem_permitted(who.io, target) {
            // Xen: -EPERM, but -EINVAL for the all-ones frame (INVALID_MFN).
            return Err(if target == INVALID_MFN_IN_PTE { MmError::Inval } else { MmError::Perm });
        }
        let rw = PteFlags::RW.bits();
        let ro_flip = if self.machine.mmio_ro.contains(target) { e & rw } else { 0 };
        let attrs = e & L1_CACHE_ATTRS.bits();
        let (pwt, pcd, pat) = (PteFlags::PWT.bits(), PteFlags::PCD.bits(), PteFlags::PAT.bits());
        Ok(ro_flip
            | match attrs {
                0 => pwt | pcd,
                a if a == pwt || a == pwt | pat => pcd | (attrs & pat),
                _ => 0,
            })
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

    /// Give a free frame to `dom` as a page the hypervisor shares with it
    /// (shared_info, a grant-table frame): typed writable for good, as
    /// Xen's `share_xen_page_with_guest`, so it can never become a page
    /// table or descriptor page while the hypervisor writes into it.
    pub fn share_with_guest(&mut self, mfn: u64, dom: u16) -> Res {
        self.assign(mfn, dom)?;
        let f = self.at(mfn);
        f.ty = PageType::Writable;
        f.type_count = 1;
        Ok(())
    }

    /// Make a free frame a page the hypervisor shares with privileged
    /// domains ([`XEN_SHARED`]): it keeps its allocation reference and a
    /// writable type for good, so a privileged domain may map it (through
    /// `foreigndom` = `DOMID_XEN`) but it never becomes a page table, and
    /// it is never freed.
    pub fn share_with_privileged(&mut self, mfn: u64) -> Res {
        self.assign(mfn, XEN_SHARED)?;
        let f = self.at(mfn);
        f.ty = PageType::Writable;
        f.type_count = 1;
        Ok(())
    }

    /// Drop the permanent type reference of a shared page (its domain is
    /// being destroyed), so it is freed like any other frame.
    pub fn unshare(&mut self, mem: &mut impl PageMem, mfn: u64, dom: u16) {
        if self.info(mfn).is_some_and(|f| f.owner == dom && f.ty == PageType::Writable && f.type_count > 0) {
            self.put_page_type(mem, mfn);
        }
    }

    /// Take a frame back from `dom` (the allocation reference), if nothing
    /// else references it; `true` if it is now free. A frame leaving its
    /// owner (given back, or transferred to another domain) is no longer
    /// reachable through a stale translation of that owner: every CPU that
    /// might still hold one flushes first.
    pub fn release(&mut self, mem: &mut impl PageMem, mfn: u64, dom: u16) -> bool {
        if !self.can_release(mfn, dom) {
            return false;
        }
        match self.frames.get_mut(mfn as usize) {
            Some(f) => {
                let stamp = f.tlb_stamp;
                *f = PageInfo::FREE;
                if stamp != 0 {
                    mem.flush_tlbs_since(stamp);
                }
                true
            }
            _ => false,
        }
    }

    /// Whether [`release`](Self::release) would give `mfn` back: `dom`
    /// owns it, nothing references it but its allocation, and it has no
    /// type, pin or validation in progress.
    pub fn can_release(&self, mfn: u64, dom: u16) -> bool {
        self.frames
            .get(mfn as usize)
            .is_some_and(|f| f.owner == dom && f.count == 1 && f.type_count == 0 && !f.pinned && f.partial == Partial::None && !f.validating)
    }

    /// Take a general reference on a frame `dom` owns.
    pub fn get_page(&mut self, mfn: u64, dom: u16) -> Res {
        match self.frames.get_mut(mfn as usize) {
            Some(f) if f.owner == dom && f.count > 0 => {
                f.count = f.count.checked_add(1).ok_or(MmError::Busy)?;
                Ok(())
            }
            _ => Err(MmError::Busy),
        }
    }

    /// Drop a general reference. An orphan frame (its domain destroyed)
    /// whose last reference this was becomes free.
    pub fn put_page(&mut self, mfn: u64) {
        let Some(f) = self.frames.get_mut(mfn as usize) else { return };
        f.count = f.count.saturating_sub(1);
        self.free_if_orphan_done(mfn);
    }

    /// An orphan frame nothing references any more becomes free.
    fn free_if_orphan_done(&mut self, mfn: u64) {
        let Some(f) = self.frames.get_mut(mfn as usize) else { return };
        if f.owner == ORPHAN && f.count == 0 && f.type_count == 0 && f.partial == Partial::None {
            *f = PageInfo::FREE;
            if self.freed.push(mfn).is_err() {
                // No room to remember it: it stays an orphan with count 0,
                // which the next `take_freed` sweeps for.
                self.at(mfn).owner = ORPHAN;
                self.freed_overflow = true;
            }
        }
    }

    /// Hand over the orphan frames that became free since the last call
    /// (sweeping the whole table for those that did not fit the list).
    pub fn take_freed(&mut self, mut free: impl FnMut(u64)) {
        for &mfn in &self.freed {
            free(mfn);
        }
        self.freed.clear();
        if core::mem::take(&mut self.freed_overflow) {
            for (mfn, f) in self.frames.iter_mut().enumerate() {
                if f.owner == ORPHAN && f.count == 0 && f.type_count == 0 && f.partial == Partial::None {
                    *f = PageInfo::FREE;
                    free(mfn as u64);
                }
            }
        }
    }

    /// Domain destruction: abandon `dom`'s interrupted validations, unpin
    /// every table it pinned, finish their devalidation, then drop the
    /// allocation reference of every frame it owns. Frames nothing else
    /// references are handed to `free`; the rest become orphans, freed by
    /// the `put_page` that drops their last reference. The caller has
    /// already dropped the references the domain's vCPU held (its CR3,
    /// GDT and LDT frames), and no one can give `dom` frames any more.
    ///
    /// Preemptible, as Xen's `domain_relinquish_resources`: when
    /// `mem.preempt_due()` it stops with [`MmError::Restart`] and the next
    /// call for `dom` goes on where it stopped. Every step is also correct
    /// started again from the beginning (a frame already dealt with no
    /// longer qualifies), so a forgotten place (more than [`REAPS`]
    /// destructions interrupted at once) costs time, never correctness.
    pub fn relinquish(&mut self, mem: &mut impl PageMem, dom: u16, mut free: impl FnMut(u64)) -> Res {
        let mut r = self.take_reap(dom);
        let res = self.reap(mem, &mut r, &mut free);
        if res.is_err() {
            self.keep_reap(r);
        }
        res
    }

    /// Where `dom`'s destruction stopped last time, or its beginning.
    fn take_reap(&mut self, dom: u16) -> Reap {
        let found = self.reaps.iter_mut().find(|r| r.is_some_and(|r| r.dom == dom));
        found.and_then(Option::take).unwrap_or(Reap { dom, step: ReapStep::Partials, next: 0 })
    }

    /// Remember where a destruction stopped, in place of the oldest.
    fn keep_reap(&mut self, r: Reap) {
        let slot = self.reaps.iter().position(Option::is_none).unwrap_or(self.reap_turn);
        self.reaps[slot] = Some(r);
        self.reap_turn = (slot + 1) % REAPS;
    }

    /// Run the steps of a destruction from `r` on.
    fn reap(&mut self, mem: &mut impl PageMem, r: &mut Reap, free: &mut impl FnMut(u64)) -> Res {
        let n = self.frames.len() as u64;
        let dom = r.dom;
        loop {
            match r.step {
                ReapStep::Partials | ReapStep::Pins | ReapStep::Release => {
                    let mut done = 0u64;
                    while r.next < n {
                        if done > 0 && done.is_multiple_of(REAP_CHECK_EVERY) && mem.preempt_due() {
                            return Err(MmError::Restart);
                        }
                        let mfn = r.next;
                        r.next += 1;
                        done += 1;
                        if self.reap_frame(mem, r.step, dom, mfn, free) {
                            // An unpin may have torn a whole tree down:
                            // look at the clock before the next frame.
                            done = done.next_multiple_of(REAP_CHECK_EVERY);
                        }
                    }
                    if r.step == ReapStep::Release {
                        return Ok(());
                    }
                    r.step = if r.step == ReapStep::Partials { ReapStep::Pins } else { ReapStep::Drain };
                    r.next = 0;
                }
                ReapStep::Drain => {
                    // A dying domain's tables are all its own (L2-L4 entries
                    // name only their owner's frames; L1 entries hold no
                    // type on foreign ones): finishing its pending list
                    // finishes every devalidation its unpins began.
                    self.drain_pending(mem, dom)?;
                    r.step = ReapStep::Release;
                }
            }
        }
    }

    /// One step of a destruction on one frame; `true` if it did real work
    /// (an abandoned validation or an unpin).
    fn reap_frame(&mut self, mem: &mut impl PageMem, step: ReapStep, dom: u16, mfn: u64, free: &mut impl FnMut(u64)) -> bool {
        let f = self.frames[mfn as usize];
        match step {
            ReapStep::Partials if f.owner == dom && f.partial == Partial::Validation => {
                self.abandon_validation(mem, mfn);
                true
            }
            ReapStep::Pins if f.owner == dom && f.pinned => {
                self.at(mfn).pinned = false;
                self.put_page_type(mem, mfn);
                self.put_page(mfn);
                true
            }
            ReapStep::Release => {
                let orphan_done = f.owner == ORPHAN && f.count == 0 && f.type_count == 0 && f.partial == Partial::None;
                if orphan_done || (f.owner == dom && f.count <= 1) {
                    *self.at(mfn) = PageInfo::FREE;
                    free(mfn);
                } else if f.owner == dom {
                    let g = self.at(mfn);
                    g.count -= 1;
                    g.owner = ORPHAN;
                }
                false
            }
            _ => false,
        }
    }

    /// Take a type reference, validating the frame if it becomes a table.
    /// A table validation may stop with [`MmError::Restart`] and resume
    /// where it stopped when the same type is asked for again.
    pub fn get_page_type(&mut self, mem: &mut impl PageMem, mfn: u64, ty: PageType, who: Who) -> Res {
        let f = *self.frames.get(mfn as usize).ok_or(MmError::Inval)?;
        let conflict = if ty == PageType::Writable { MmError::Busy } else { MmError::Inval };
        if f.validating {
            return Err(MmError::Inval);
        }
        if f.partial == Partial::Devalidation {
            // Still being torn down since its owner dropped its type: whoever
            // needs the frame now finishes that one frame (preemptibly), so
            // no one waits on an owner that stopped making calls, and no one
            // pays for more than the frame it asked for.
            if !self.continue_devalidation(mem, mfn, true) {
                return Err(MmError::Restart);
            }
            return self.get_page_type(mem, mfn, ty, who);
        }
        if f.type_count > 0 || f.partial == Partial::Validation {
            if f.ty != ty {
                return Err(conflict);
            }
            if f.type_count > 0 {
                let g = self.at(mfn);
                g.type_count = g.type_count.checked_add(1).ok_or(MmError::Busy)?;
                return Ok(());
            }
        } else if ty != PageType::Writable && f.tlb_stamp != 0 {
            // A CPU may still hold a translation of an L1 mapping removed
            // since its last flush: no table or descriptor page until none
            // can.
            mem.flush_tlbs_since(f.tlb_stamp);
        } else if ty == PageType::Writable && f.devalidated_at != 0 {
            // A CPU may still cache a walk through this former table.
            mem.flush_tlbs_since(f.devalidated_at);
            self.at(mfn).devalidated_at = 0;
        }
        if ty == PageType::SegDesc {
            Self::validate_segdesc(mem, mfn)?;
        }
        if let Some(level) = ty.level() {
            let start = if f.partial == Partial::Validation { usize::from(f.partial_at) } else { 0 };
            // The type is visible during validation, so same-level entries
            // pointing back at this table are recognised as linear.
            let g = self.at(mfn);
            g.ty = ty;
            g.validating = true;
            g.partial = Partial::None;
            let r = self.validate(mem, mfn, level, who, start);
            self.at(mfn).validating = false;
            match r {
                Ok(()) => {}
                Err(MmError::Restart) => {
                    self.at(mfn).partial = Partial::Validation;
                    return Err(MmError::Restart);
                }
                Err(e) => return Err(e),
            }
        }
        if ty == PageType::L4 {
            mem.init_xen_l4_slots(mfn);
        }
        let g = self.at(mfn);
        g.ty = ty;
        g.type_count = 1;
        g.validated = ty.level().is_some();
        g.partial_at = 0;
        Ok(())
    }

    /// Drop a type reference; a table whose count reaches 0 is devalidated
    /// (preemptibly: the rest may be left on the pending list).
    pub fn put_page_type(&mut self, mem: &mut impl PageMem, mfn: u64) {
        let Some(&f) = self.info(mfn) else { return };
        if f.type_count == 0 {
            return;
        }
        self.at(mfn).type_count -= 1;
        if f.type_count == 1 {
            self.at(mfn).validated = false;
            match f.ty.level() {
                Some(_) => self.start_devalidation(mem, mfn, 512),
                None => self.at(mfn).ty = PageType::None,
            }
        }
    }

    /// Begin dropping the references of entries `[0, upto)` of a table
    /// that lost its type (or failed validation).
    fn start_devalidation(&mut self, mem: &mut impl PageMem, mfn: u64, upto: usize) {
        let g = self.at(mfn);
        g.partial = Partial::Devalidation;
        g.partial_at = upto as u16;
        // Preemptible only while the pending list has room for it.
        let preemptible = self.pending.push(mfn).is_ok();
        self.continue_devalidation(mem, mfn, preemptible);
    }

    /// Go on devalidating `mfn` from the top of its remaining entries;
    /// `true` once it is done (its type gone, off the pending list).
    fn continue_devalidation(&mut self, mem: &mut impl PageMem, mfn: u64, preemptible: bool) -> bool {
        let f = self.frames[mfn as usize];
        let Some(level) = f.ty.level().filter(|_| f.partial == Partial::Devalidation) else { return true };
        let upto = usize::from(f.partial_at);
        for i in (0..upto).rev().filter(|&i| Self::is_guest_slot(level, i)) {
            if preemptible && i + 1 < upto && mem.preempt_due() {
                self.at(mfn).partial_at = (i + 1) as u16;
                return false;
            }
            let e = mem.read(mfn, i);
            self.put_entry(mem, mfn, level, e);
        }
        let stamp = mem.tlb_clock();
        let g = self.at(mfn);
        g.partial = Partial::None;
        g.partial_at = 0;
        g.ty = PageType::None;
        g.devalidated_at = stamp;
        if let Some(k) = self.pending.iter().position(|&p| p == mfn) {
            self.pending.swap_remove(k);
        }
        self.free_if_orphan_done(mfn);
        true
    }

    /// Undo an interrupted validation that will not be resumed.
    fn abandon_validation(&mut self, mem: &mut impl PageMem, mfn: u64) {
        let at = usize::from(self.frames[mfn as usize].partial_at);
        self.start_devalidation(mem, mfn, at);
    }

    /// The latest interrupted devalidation of a frame `owner` owns.
    fn next_pending(&self, owner: u16) -> Option<u64> {
        self.pending.iter().rev().copied().find(|&m| self.frames[m as usize].owner == owner)
    }

    /// Finish `owner`'s interrupted devalidations, latest first;
    /// [`MmError::Restart`] if preempted before the end. As Xen's
    /// `old_guest_table`, a domain's unfinished teardown is its own work,
    /// done at its next MMU or grant call: a domain that unpins a large tree
    /// and stops calling never makes another domain pay for it. A frame
    /// another domain needs meanwhile is finished by that one alone, in
    /// [`Self::get_page_type`]; a destroyed domain's, by
    /// [`Self::relinquish`].
    pub fn drain_pending(&mut self, mem: &mut impl PageMem, owner: u16) -> Res {
        while let Some(mfn) = self.next_pending(owner) {
            if !self.continue_devalidation(mem, mfn, true) {
                return Err(MmError::Restart);
            }
        }
        Ok(())
    }

    /// Whether an interrupted devalidation is waiting.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn allowed(level: u8, who: Who) -> PteFlags {
        match level {
            1 if who.io => L1_ALLOWED.union(L1_CACHE_ATTRS),
            1 => L1_ALLOWED,
            _ => BASE_ALLOWED,
        }
    }

    /// Check an entry's flags for a level.
    pub fn check_flags(level: u8, e: u64, who: Who) -> Res {
        let flags = PteFlags::of(e);
        if !flags.contains(PteFlags::PRESENT) {
            return Ok(());
        }
        if !Self::allowed(level, who).contains(flags) {
            return Err(MmError::Inval);
        }
        Ok(())
    }

    /// Take the references a present entry of a level-`level` table in
    /// `table` needs.
    pub fn get_entry(&mut self, mem: &mut impl PageMem, table: u64, level: u8, e: u64, who: Who) -> Res {
        if !PteFlags::of(e).contains(PteFlags::PRESENT) {
            return Ok(());
        }
        Self::check_flags(level, e, who)?;
        let target = mfn_of(e);
        if level == 1 && self.is_mmio(target) {
            return self.get_mmio(e, who).map(|_| ());
        }
        if level == 1 {
            self.get_page(target, who.pg)?;
            if PteFlags::of(e).contains(PteFlags::RW)
                && let Err(err) = self.get_page_type(mem, target, PageType::Writable, who)
            {
                self.put_page(target);
                return Err(err);
            }
            return Ok(());
        }
        // L2-L4 entries: same owner only (never MMIO); a same-level target
        // is a linear mapping, allowed read-only.
        if self.is_mmio(target) || self.info(target).map(|f| f.owner) != Some(who.dom) {
            return Err(MmError::Inval);
        }
        if target == table {
            // Xen takes nothing for a table mapping itself.
            return if PteFlags::of(e).contains(PteFlags::RW) { Err(MmError::Inval) } else { Ok(()) };
        }
        if self.info(target).map(|f| f.ty) == Some(PageType::table(level)) {
            return if PteFlags::of(e).contains(PteFlags::RW) { Err(MmError::Inval) } else { self.get_linear(table, target, who) };
        }
        self.get_page(target, who.dom).map_err(|_| MmError::Inval)?;
        if let Err(err) = self.get_page_type(mem, target, PageType::table(level - 1), who) {
            self.put_page(target);
            return Err(if err == MmError::Busy { MmError::Inval } else { err });
        }
        Ok(())
    }

    /// A read-only linear entry in `table` to `target`, another validated
    /// table of the same level (Xen's `get_*_linear_pagetable`): a general
    /// and a type reference, and chains one level deep.
    fn get_linear(&mut self, table: u64, target: u64, who: Who) -> Res {
        let (t, g) = match (self.info(table), self.info(target)) {
            (Some(t), Some(g)) => (*t, *g),
            _ => return Err(MmError::Inval),
        };
        if !g.validated || g.validating || g.type_count == 0 || t.linear_pt < 0 || g.linear_pt > 0 {
            return Err(MmError::Inval);
        }
        self.get_page(target, who.dom).map_err(|_| MmError::Inval)?;
        let tc = self.at(target).type_count.checked_add(1);
        let (Some(tc), Some(entries), Some(uses)) = (tc, t.linear_pt.checked_add(1), g.linear_pt.checked_sub(1)) else {
            self.put_page(target);
            return Err(MmError::Inval);
        };
        self.at(target).type_count = tc;
        self.at(target).linear_pt = uses;
        self.at(table).linear_pt = entries;
        Ok(())
    }

    /// The entry as it must be written once [`get_entry`](Self::get_entry)
    /// accepted it. A 64-bit PV kernel runs in ring 3, so every present
    /// entry gets the user bit, and a present L4 entry the accessed bit
    /// too (Xen's `adjust_guest_l{1,2,3,4}e`, applied when a table is
    /// validated as well as on each update: Linux writes its kernel
    /// mappings without the user bit and pins them). A present L1 entry
    /// mapping MMIO also gets its cache attributes made uncacheable (Xen's
    /// `l1e_flip_flags`).
    fn accepted(&self, level: u8, e: u64, who: Who) -> u64 {
        if !PteFlags::of(e).contains(PteFlags::PRESENT) {
            return e;
        }
        let mut e = e | PteFlags::USER.bits();
        if level == 4 {
            e |= PteFlags::ACCESSED.bits();
        }
        if level != 1 || !self.is_mmio(mfn_of(e)) {
            return e;
        }
        e ^ self.get_mmio(e, who).unwrap_or(0)
    }

    /// Drop what [`get_entry`](Self::get_entry) took for `e`, an entry of
    /// the level-`level` table in `table`.
    pub fn put_entry(&mut self, mem: &mut impl PageMem, table: u64, level: u8, e: u64) {
        if !PteFlags::of(e).contains(PteFlags::PRESENT) {
            return;
        }
        let target = mfn_of(e);
        if level == 1 && self.is_mmio(target) {
            // An MMIO mapping took nothing.
            return;
        }
        if level == 1 {
            let stamp = mem.tlb_clock();
            if let Some(f) = self.frames.get_mut(target as usize) {
                f.tlb_stamp = stamp;
            }
            if PteFlags::of(e).contains(PteFlags::RW) {
                self.put_page_type(mem, target);
            }
            self.put_page(target);
            return;
        }
        if target == table {
            return;
        }
        if self.info(target).map(|f| f.ty) == Some(PageType::table(level)) {
            self.at(target).linear_pt += 1;
            self.at(table).linear_pt -= 1;
        }
        self.put_page_type(mem, target);
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

    /// Validate entries `start..512`; on `Restart`, entries
    /// `[0, partial_at)` hold their references; on an error, the ones taken
    /// are being dropped (perhaps left pending) and the type goes with them.
    fn validate(&mut self, mem: &mut impl PageMem, mfn: u64, level: u8, who: Who, start: usize) -> Res {
        for i in (start..512).filter(|&i| Self::is_guest_slot(level, i)) {
            if i > start && mem.preempt_due() {
                self.at(mfn).partial_at = i as u16;
                return Err(MmError::Restart);
            }
            let e = mem.read(mfn, i);
            let res = if level >= 2 && PteFlags::of(e).contains(PteFlags::PRESENT | PteFlags::PSE) {
                Err(MmError::Inval)
            } else {
                self.get_entry(mem, mfn, level, e, who)
            };
            match res {
                Ok(()) => {
                    let fixed = self.accepted(level, e, who);
                    if fixed != e {
                        mem.write(mfn, i, fixed);
                    }
                }
                Err(MmError::Restart) => {
                    self.at(mfn).partial_at = i as u16;
                    return Err(MmError::Restart);
                }
                Err(err) => {
                    self.at(mfn).validating = false;
                    self.start_devalidation(mem, mfn, i);
                    return Err(if level == 1 && err == MmError::Busy { MmError::Inval } else { err });
                }
            }
        }
        Ok(())
    }

    /// MMUEXT_PIN_Ln_TABLE.
    pub fn pin(&mut self, mem: &mut impl PageMem, mfn: u64, level: u8, who: Who) -> Res {
        let f = *self.frames.get(mfn as usize).ok_or(MmError::Inval)?;
        if f.owner != who.dom || self.is_mmio(mfn) {
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

    /// Whether `mfn` is a live L1 table of `dom`: owned, typed L1, validated
    /// and in use (Xen's `page_lock` succeeds on it and its type is
    /// `PGT_l1_page_table`), the only frames writable page tables emulate
    /// writes to.
    pub fn is_live_l1(&self, mfn: u64, dom: u16) -> bool {
        self.info(mfn)
            .is_some_and(|f| f.owner == dom && f.ty == PageType::L1 && f.validated && f.type_count > 0 && !f.validating && f.partial == Partial::None)
    }

    /// Xen's `ptwr_emulated_update` on entry `idx` of the live L1 in
    /// `table`: the new entry is checked and referenced as `get_page_from_l1e`
    /// does (as for `mmu_update`, never a foreign frame: `who.pg` is the
    /// caller), then written, or compare-exchanged when `expected` is given.
    /// `Ok(Err(current))`: the comparison failed and nothing changed.
    pub fn ptwr_update(
        &mut self,
        mem: &mut impl PageMem,
        table: u64,
        idx: usize,
        expected: Option<u64>,
        new: u64,
        who: Who,
    ) -> Result<Result<(), u64>, MmError> {
        if !self.is_live_l1(table, who.dom) || who.pg != who.dom {
            return Err(MmError::Inval);
        }
        self.get_entry(mem, table, 1, new, who)?;
        let old = mem.read(table, idx);
        if expected.is_some_and(|x| x != old) {
            self.put_entry(mem, table, 1, new);
            return Ok(Err(old));
        }
        mem.write(table, idx, self.accepted(1, new, who));
        self.put_entry(mem, table, 1, old);
        Ok(Ok(()))
    }

    /// Replace entry `idx` of the validated table in `table` (mmu_update
    /// NORMAL_PT_UPDATE; `preserve_ad` keeps the old A/D bits).
    pub fn update_entry(&mut self, mem: &mut impl PageMem, table: u64, idx: usize, new: u64, preserve_ad: bool, who: Who) -> Res {
        let f = *self.frames.get(table as usize).ok_or(MmError::Inval)?;
        if f.owner != who.dom {
            return Err(MmError::Inval);
        }
        if f.partial == Partial::Devalidation {
            return Err(MmError::Restart);
        }
        if f.partial == Partial::Validation || f.validating {
            return Err(MmError::Inval);
        }
        let Some(level) = f.ty.level().filter(|_| f.validated && f.type_count > 0) else {
            // Not a live page table: a plain write to a writable page the
            // domain owns, as Xen allows.
            if f.ty == PageType::SegDesc {
                return Err(MmError::Inval);
            }
            if f.devalidated_at != 0 {
                // A former table: no CPU may still walk through it once the
                // guest rewrites it (as for a writable type, invariant 9).
                mem.flush_tlbs_since(f.devalidated_at);
                self.at(table).devalidated_at = 0;
            }
            mem.write(table, idx, new);
            return Ok(());
        };
        if level == 4 && XEN_SLOTS.contains(&idx) {
            return Err(MmError::Inval);
        }
        let old = mem.read(table, idx);
        let new = if preserve_ad { new | (old & (PteFlags::ACCESSED | PteFlags::DIRTY).bits()) } else { new };
        if level >= 2 && PteFlags::of(new).contains(PteFlags::PRESENT | PteFlags::PSE) {
            return Err(MmError::Inval);
        }
        self.get_entry(mem, table, level, new, who)?;
        mem.write(table, idx, self.accepted(level, new, who));
        self.put_entry(mem, table, level, old);
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;
    use std::vec::Vec;

    /// Page-table memory for the host tests of every layer above the frame
    /// table: tables by machine frame (unwritten entries read 0), shared by
    /// its clones, so a test machine can lend one handle to the frame
    /// table while it keeps another to look.
    #[derive(Clone, Default)]
    pub struct TestMem(Rc<RefCell<HashMap<u64, [u64; 512]>>>);

    impl PageMem for TestMem {
        fn read(&self, mfn: u64, idx: usize) -> u64 {
            self.0.borrow().get(&mfn).map_or(0, |t| t[idx])
        }
        fn write(&mut self, mfn: u64, idx: usize, val: u64) {
            self.0.borrow_mut().entry(mfn).or_insert([0; 512])[idx] = val;
        }
    }

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
    const RW: u64 = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::USER).union(PteFlags::ACCESSED).union(PteFlags::DIRTY).bits();
    const RO: u64 = PteFlags::PRESENT.union(PteFlags::USER).union(PteFlags::ACCESSED).bits();
    const PSE: u64 = PteFlags::PSE.bits();

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

    /// A machine map where frames 40-47 of the 64 are an MMIO hole (not
    /// RAM) and everything past the table is MMIO too.
    fn with_hole(ft: &mut FrameTable<'_>) {
        let mut map = MachineMap::all_ram(64);
        map.ram.remove(40, 47).unwrap();
        ft.set_machine_map(map);
    }

    #[test]
    fn l1_validation_accepts_mmio_for_dom0_without_references_and_forces_uc() {
        let (mut frames, mut mem) = setup();
        let dom0 = Who::own(D0.dom, true);
        mem.write(10, 0, e(41, RW));
        mem.write(10, 1, e(0xfebf0, RW | PteFlags::PWT.bits()));
        mem.write(10, 2, e(20, RW));
        let before = frames[41];
        let mut ft = FrameTable::new(&mut frames);
        with_hole(&mut ft);
        ft.pin(&mut mem, 10, 1, dom0).unwrap();
        assert_eq!(ft.info(41), Some(&before), "an MMIO frame inside the table gets no reference");
        let uc = (PteFlags::PCD | PteFlags::PWT).bits();
        assert_eq!(mem.read(10, 0) & uc, uc, "WB MMIO becomes UC");
        assert_eq!(mem.read(10, 1) & uc, uc, "WT MMIO becomes UC");
        assert_eq!(mem.read(10, 2) & uc, 0, "RAM keeps its attributes");
        ft.unpin(&mut mem, 10, dom0).unwrap();
        assert_eq!(ft.info(41), Some(&before), "devalidation puts nothing for MMIO");
        assert_eq!(ft.info(20).map(|f| f.count), Some(1));
    }

    #[test]
    fn mmio_past_paddr_bits_is_eperm_and_invalid_mfn_einval() {
        // ABI: get_page_from_l1e: a non-RAM frame without I/O memory
        // permission is -EPERM, except PADDR_MASK >> PAGE_SHIFT (-EINVAL).
        let (mut frames, mut mem) = setup();
        let dom0 = Who::own(D0.dom, true);
        let mut ft = FrameTable::new(&mut frames);
        let mut map = MachineMap::all_ram(64);
        map.limit_paddr_bits(40).unwrap();
        ft.set_machine_map(map);
        ft.pin(&mut mem, 10, 1, dom0).unwrap();
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(1 << 28, RO), false, dom0), Err(MmError::Perm));
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(INVALID_MFN_IN_PTE, RO), false, dom0), Err(MmError::Inval));
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(INVALID_MFN_IN_PTE, RO), false, D0), Err(MmError::Inval), "a domU too");
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e((1 << 28) - 1, RO), false, dom0), Ok(()), "below 2^40 bytes");
        assert_eq!(ft.update_entry(&mut mem, 10, 0, 0, false, dom0), Ok(()));
    }

    #[test]
    fn dom0_mapping_a_frame_the_hypervisor_keeps_is_ebusy() {
        // ABI: a RAM frame no domain owns (xen-core's own: its image, the
        // frame table, its heap) is refused even to dom0, as Xen's
        // get_page_from_l1e refuses dom_xen's frames (could_not_pin:
        // -EBUSY), read-only or not.
        let (mut frames, mut mem) = setup();
        frames[30] = PageInfo::FREE;
        let dom0 = Who::own(D0.dom, true);
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, dom0).unwrap();
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(30, RO), false, dom0), Err(MmError::Busy));
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(30, RW), false, dom0), Err(MmError::Busy));
        assert_eq!(ft.info(30), Some(&PageInfo::FREE));
        assert_eq!(mem.read(10, 0), 0);
    }

    #[test]
    fn l1_mapping_mmio_by_a_domain_without_iomem_permission_is_eperm_unchanged() {
        let (mut frames, mut mem) = setup();
        mem.write(10, 0, e(0xfee00, RO));
        let snap = snapshot(&frames, &mem);
        let mut ft = FrameTable::new(&mut frames);
        with_hole(&mut ft);
        assert_eq!(ft.pin(&mut mem, 10, 1, D0), Err(MmError::Perm), "a domU pinning an L1 that maps MMIO");
        assert_eq!(ft.pin(&mut mem, 10, 1, Who::own(D0.dom, true)), Err(MmError::Perm), "the LAPIC is denied even to dom0");
        drop(ft);
        assert_eq!(snapshot(&frames, &mem), snap);
        let mut ft = FrameTable::new(&mut frames);
        with_hole(&mut ft);
        mem.write(10, 0, 0);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(42, RO), false, D0), Err(MmError::Perm));
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(0xfebf0, RO), false, D0), Err(MmError::Perm));
        assert_eq!(mem.read(10, 0), 0);
        // A privileged caller naming a domU as page owner: the page owner
        // has no permission either (Xen checks both).
        let foreign = Who { pg: OTHER, ..Who::own(D0.dom, true) };
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(42, RO), false, foreign), Err(MmError::Perm));
    }

    #[test]
    fn mmio_frames_never_become_page_tables() {
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        with_hole(&mut ft);
        let dom0 = Who::own(D0.dom, true);
        // An L2 entry naming an MMIO frame as its L1: refused (not owned).
        mem.write(11, 0, e(41, RW));
        assert_eq!(ft.pin(&mut mem, 11, 2, dom0), Err(MmError::Inval));
        assert_eq!(ft.pin(&mut mem, 0xfebf0, 1, dom0), Err(MmError::Inval), "past the table");
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

    /// Xen's `adjust_guest_l{1,2,4}e` on validation: a 64-bit PV kernel
    /// runs in ring 3, so its present entries get the user bit (and L4
    /// entries the accessed bit) when the table is pinned; Linux writes
    /// its kernel mappings without them.
    #[test]
    fn validation_adds_the_user_bit_xen_adjust_guest_le() {
        let (mut frames, mut mem) = setup();
        let kernel_rw = (PteFlags::PRESENT | PteFlags::RW).bits();
        mem.write(10, 0, e(20, kernel_rw));
        mem.write(10, 1, e(21, 0));
        mem.write(11, 0, e(10, PteFlags::PRESENT.bits()));
        mem.write(12, 0, e(11, PteFlags::PRESENT.bits()));
        mem.write(13, 0, e(12, PteFlags::PRESENT.bits()));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 13, 4, D0).unwrap();
        assert_eq!(mem.read(10, 0), e(20, kernel_rw | PteFlags::USER.bits()), "L1");
        assert_eq!(mem.read(10, 1), e(21, 0), "a non-present entry is left as it is");
        assert_eq!(mem.read(11, 0), e(10, (PteFlags::PRESENT | PteFlags::USER).bits()), "L2");
        assert_eq!(mem.read(12, 0), e(11, (PteFlags::PRESENT | PteFlags::USER).bits()), "L3");
        assert_eq!(mem.read(13, 0), e(12, (PteFlags::PRESENT | PteFlags::USER | PteFlags::ACCESSED).bits()), "L4");
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
        mem.write(11, 3, e(12, RW | PSE));
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
        // ABI (Xen): a table's entry pointing at itself takes no reference.
        assert_eq!(ft.info(13).map(|f| (f.linear_pt, f.count)), Some((0, 2)));
        // Turning it writable through an update is refused too.
        assert_eq!(ft.update_entry(&mut mem, 13, 0, e(13, RW), false, D0), Err(MmError::Inval));
        ft.unpin(&mut mem, 13, D0).unwrap();
        assert_eq!(ft.info(13).map(|f| (f.ty, f.linear_pt, f.count)), Some((PageType::None, 0, 1)));
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
        assert!(!ft.release(&mut mem, 20, D0.dom), "still mapped");
        assert!(!ft.release(&mut mem, 10, D0.dom), "a pinned table");
        assert!(!ft.release(&mut mem, 50, D0.dom), "not ours");
        assert!(ft.release(&mut mem, 21, D0.dom));
        assert_eq!(ft.info(21), Some(&PageInfo::FREE));
        assert!(!ft.release(&mut mem, 21, D0.dom), "already free");
    }

    #[test]
    fn preserve_ad_keeps_old_accessed_dirty() {
        let (mut frames, mut mem) = setup();
        mem.write(10, 0, e(20, RW));
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        ft.update_entry(&mut mem, 10, 0, e(21, (PteFlags::PRESENT | PteFlags::RW | PteFlags::USER).bits()), true, D0).unwrap();
        assert!(PteFlags::of(mem.read(10, 0)).contains(PteFlags::ACCESSED | PteFlags::DIRTY));
        assert_eq!(ft.info(20).map(|f| f.type_count), Some(0), "old mapping released");
    }

    /// Recount every reference from the live tables and compare.
    fn check_balance(ft: &FrameTable<'_>, mem: &impl PageMem, n: u64) {
        let mut count = std::vec![1u32; n as usize];
        let mut tcount = std::vec![0u32; n as usize];
        let mut linear = std::vec![0i32; n as usize];
        for t in 0..n {
            let f = ft.info(t).copied().unwrap_or(PageInfo::FREE);
            if f.pinned {
                count[t as usize] += 1;
                tcount[t as usize] += 1;
            }
            let live = f.validated && f.type_count > 0;
            let Some(level) = f.ty.level().filter(|_| live || f.partial != Partial::None) else { continue };
            let upto = if live { 512 } else { usize::from(f.partial_at) };
            for i in (0..upto).filter(|&i| FrameTable::is_guest_slot(level, i)) {
                let en = mem.read(t, i);
                if !PteFlags::of(en).contains(PteFlags::PRESENT) {
                    continue;
                }
                let tgt = mfn_of(en) as usize;
                if level > 1 && tgt as u64 == t {
                    continue; // a self-reference holds nothing
                }
                count[tgt] += 1;
                if level == 1 {
                    if PteFlags::of(en).contains(PteFlags::RW) {
                        tcount[tgt] += 1;
                    }
                    continue;
                }
                tcount[tgt] += 1;
                if ft.info(tgt as u64).map(|g| g.ty) == Some(PageType::table(level)) {
                    linear[tgt] -= 1;
                    linear[t as usize] += 1;
                }
            }
        }
        for m in 0..n {
            let f = ft.info(m).copied().unwrap_or(PageInfo::FREE);
            if f.owner != D0.dom {
                continue;
            }
            assert_eq!((f.count, f.type_count, f.linear_pt), (count[m as usize], tcount[m as usize], linear[m as usize]), "frame {m}: {f:?}");
            assert!(f.type_count > 0 || f.ty == PageType::None || f.partial != Partial::None, "frame {m}: typed without a reference");
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
                        let flags = [RW, RO, 0, RW | PSE][rnd(4) as usize];
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
        ft.put_entry(&mut mem, 10, 1, e(50, RW));
        assert_eq!(ft.info(50).map(|f| (f.ty, f.count)), Some((PageType::None, 1)));
    }

    /// Xen's `share_xen_page_with_privileged_guests`: a privileged domain
    /// naming DOMID_XEN maps the hypervisor's shared page (read-write, as
    /// xentrace maps trace buffers) and no other frame through it; the
    /// page never becomes a page table, and unmapping leaves it shared.
    #[test]
    fn xen_shared_pages_map_through_domid_xen_only() {
        let mut frames = std::vec![PageInfo::FREE; 64];
        let mut mem = Mem::default();
        let mut ft = FrameTable::new(&mut frames);
        for mfn in 0..48 {
            ft.assign(mfn, D0.dom).unwrap();
        }
        ft.share_with_privileged(60).unwrap();
        assert_eq!(ft.share_with_privileged(60), Err(MmError::Busy), "once");
        assert_eq!(ft.share_with_privileged(5), Err(MmError::Busy), "not a domain's frame");
        let via_xen = Who { pg: XEN_SHARED, ..D0 };
        assert_eq!(ft.get_entry(&mut mem, 10, 1, e(60, RW), via_xen), Ok(()));
        assert_eq!(ft.get_entry(&mut mem, 10, 1, e(61, RW), via_xen), Err(MmError::Busy), "a free frame is nobody's to map");
        assert_eq!(ft.get_entry(&mut mem, 10, 1, e(60, RW), D0), Err(MmError::Busy), "not without naming DOMID_XEN");
        mem.write(11, 0, 0);
        assert!(ft.pin(&mut mem, 60, 1, Who::own(XEN_SHARED, false)).is_err(), "never a page table");
        ft.put_entry(&mut mem, 10, 1, e(60, RW));
        assert_eq!(ft.info(60).map(|f| (f.owner, f.ty, f.count, f.type_count)), Some((XEN_SHARED, PageType::Writable, 1, 1)));
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
        ft.relinquish(&mut mem, OTHER, |m| freed.push(m)).unwrap();
        let expect: Vec<u64> = (48..64).filter(|&m| m != 62).collect();
        assert_eq!(freed, expect);
        assert_eq!(ft.info(62).map(|f| f.owner), Some(ORPHAN), "still mapped: not freed");
        ft.put_entry(&mut mem, 10, 1, e(62, RW));
        let mut later = Vec::new();
        ft.take_freed(|m| later.push(m));
        assert_eq!(later, [62]);
        assert_eq!(ft.info(62), Some(&PageInfo::FREE));
        assert!((0..48).all(|m| ft.info(m).is_some_and(|f| f.owner == D0.dom && f.count == 1)), "D0's frames untouched");
    }

    #[test]
    fn orphans_past_the_freed_list_are_still_freed() {
        // A destroyed domain's frames that another still maps are freed
        // when the last mapping goes, however many go at once.
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        for k in 0..16u64 {
            ft.get_entry(&mut mem, 10, 1, e(48 + k, RO), Who { pg: OTHER, ..D0 }).unwrap();
        }
        ft.relinquish(&mut mem, OTHER, |_| {}).unwrap();
        while ft.freed.len() < FREED_BATCH - 4 {
            ft.freed.push(0).unwrap(); // the list is nearly full already
        }
        for k in 0..16u64 {
            ft.put_entry(&mut mem, 10, 1, e(48 + k, RO));
        }
        let mut later = Vec::new();
        ft.take_freed(|m| later.push(m));
        for k in 0..16u64 {
            assert!(later.contains(&(48 + k)), "orphan {} was not freed", 48 + k);
        }
        assert!((48..64).all(|m| ft.info(m) == Some(&PageInfo::FREE)));
    }

    #[test]
    fn linear_entry_holds_a_type_reference_xsa_240() {
        // ABI (Xen since XSA-240): a read-only L4 entry pointing at another
        // validated L4 takes a type reference, so the target stays a
        // validated table (cannot be unpinned into a writable page) while
        // linked.
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 13, 4, D0).unwrap();
        ft.pin(&mut mem, 12, 4, D0).unwrap();
        ft.update_entry(&mut mem, 12, 0, e(13, RO), false, D0).unwrap();
        assert_eq!(ft.info(13).map(|f| (f.type_count, f.linear_pt)), Some((2, -1)));
        assert_eq!(ft.info(12).map(|f| f.linear_pt), Some(1));
        ft.unpin(&mut mem, 13, D0).unwrap();
        assert_eq!(ft.info(13).map(|f| (f.ty, f.validated)), Some((PageType::L4, true)), "still a table while linked");
        // So it cannot be mapped writable (the attack of finding 6).
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        assert_eq!(ft.update_entry(&mut mem, 10, 0, e(13, RW), false, D0), Err(MmError::Busy));
        // Unlinking drops the last type reference.
        ft.update_entry(&mut mem, 12, 0, 0, false, D0).unwrap();
        assert_eq!(ft.info(13).map(|f| (f.ty, f.type_count, f.linear_pt, f.count)), Some((PageType::None, 0, 0, 1)));
        check_balance(&ft, &mem, 64);
    }

    #[test]
    fn linear_chains_stay_one_level_deep() {
        // ABI (XSA-240): a table that is the target of linear entries may
        // not contain any, and the other way round.
        let (mut frames, mut mem) = setup();
        let mut ft = FrameTable::new(&mut frames);
        for t in [11, 12, 13] {
            ft.pin(&mut mem, t, 4, D0).unwrap();
        }
        ft.update_entry(&mut mem, 12, 0, e(13, RO), false, D0).unwrap();
        assert_eq!(ft.update_entry(&mut mem, 13, 1, e(11, RO), false, D0), Err(MmError::Inval), "target may not link");
        assert_eq!(ft.update_entry(&mut mem, 11, 1, e(12, RO), false, D0), Err(MmError::Inval), "linker may not be a target");
        assert_eq!(ft.update_entry(&mut mem, 12, 1, e(13, RW), false, D0), Err(MmError::Inval), "read-only only");
        check_balance(&ft, &mem, 64);
    }

    #[test]
    fn shared_pages_can_never_become_tables() {
        // ABI: shared_info and grant frames are PGT_writable_page for good.
        let mut frames = std::vec![PageInfo::FREE; 8];
        let mut mem = Mem::default();
        let mut ft = FrameTable::new(&mut frames);
        ft.share_with_guest(3, 1).unwrap();
        for level in 1..=4 {
            assert_eq!(ft.pin(&mut mem, 3, level, Who::own(1, false)), Err(MmError::Inval));
        }
        assert_eq!(ft.get_page_type(&mut mem, 3, PageType::SegDesc, Who::own(1, false)), Err(MmError::Inval));
        assert!(!ft.release(&mut mem, 3, 1), "not given back while shared");
        ft.unshare(&mut mem, 3, 1);
        assert!(ft.release(&mut mem, 3, 1));
    }

    #[test]
    fn counts_never_wrap() {
        let mut frames = std::vec![PageInfo::FREE; 4];
        let mut ft = FrameTable::new(&mut frames);
        ft.assign(1, 1).unwrap();
        ft.frames[1].count = u32::MAX;
        assert_eq!(ft.get_page(1, 1), Err(MmError::Busy));
        assert_eq!(ft.info(1).map(|f| f.count), Some(u32::MAX));
    }

    #[derive(Default)]
    struct ClockMem {
        mem: Mem,
        clock: u64,
        flushed_since: Vec<u64>,
    }

    impl PageMem for ClockMem {
        fn read(&self, mfn: u64, idx: usize) -> u64 {
            self.mem.read(mfn, idx)
        }
        fn write(&mut self, mfn: u64, idx: usize, val: u64) {
            self.mem.write(mfn, idx, val)
        }
        fn tlb_clock(&self) -> u64 {
            self.clock
        }
        fn flush_tlbs_since(&mut self, stamp: u64) {
            self.flushed_since.push(stamp);
        }
    }

    #[test]
    fn retyping_a_frame_that_lost_a_mapping_flushes_tlbs_first() {
        // Finding 5: update_va_mapping(va, 0, no flush) then pin the frame:
        // the stale writable translation must be gone before it is a table.
        let (mut frames, _) = setup();
        let mut mem = ClockMem { clock: 7, ..ClockMem::default() };
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        ft.update_entry(&mut mem, 10, 0, e(20, RW), false, D0).unwrap();
        ft.update_entry(&mut mem, 10, 0, 0, false, D0).unwrap();
        assert_eq!(ft.info(20).map(|f| f.tlb_stamp), Some(7));
        assert!(mem.flushed_since.is_empty());
        ft.pin(&mut mem, 20, 1, D0).unwrap();
        assert_eq!(mem.flushed_since, [7]);
    }

    /// A model that asks for preemption every `every`-th check.
    struct PreemptMem {
        mem: Mem,
        every: u32,
        calls: core::cell::Cell<u32>,
    }

    impl PageMem for PreemptMem {
        fn read(&self, mfn: u64, idx: usize) -> u64 {
            self.mem.read(mfn, idx)
        }
        fn write(&mut self, mfn: u64, idx: usize, val: u64) {
            self.mem.write(mfn, idx, val)
        }
        fn preempt_due(&self) -> bool {
            self.calls.set(self.calls.get() + 1);
            self.calls.get().is_multiple_of(self.every)
        }
    }

    /// An L4 (13) over L3 14, L2s 15-16, L1s 17-20 mapping frames 21-40.
    fn big_tree(mem: &mut impl PageMem) {
        mem.write(13, 0, e(14, RW));
        mem.write(14, 0, e(15, RW));
        mem.write(14, 1, e(16, RW));
        for (l2, l1s) in [(15, [17, 18]), (16, [19, 20])] {
            for (k, l1) in l1s.into_iter().enumerate() {
                mem.write(l2, k, e(l1, RW));
                for j in 0..5 {
                    mem.write(l1, j, e(21 + (l1 - 17) * 5 + j as u64, if j % 2 == 0 { RW } else { RO }));
                }
            }
        }
    }

    #[test]
    fn pin_and_unpin_of_a_tree_are_preemptible_xsa_45() {
        // XSA-45: validating or devalidating a large tree never runs
        // unbounded: it stops, keeps exact counts, and resumes.
        for every in [1, 2, 3, 7] {
            let (mut frames, _) = setup();
            let mut mem = PreemptMem { mem: Mem::default(), every, calls: 0.into() };
            big_tree(&mut mem);
            let mut ft = FrameTable::new(&mut frames);
            let mut restarts = 0;
            loop {
                match ft.pin(&mut mem, 13, 4, D0) {
                    Ok(()) => break,
                    Err(MmError::Restart) => restarts += 1,
                    Err(e) => panic!("pin failed: {e:?}"),
                }
                check_balance(&ft, &mem, 64);
                // Nobody can use a half-validated table meanwhile.
                if ft.info(14).is_some_and(|f| f.partial == Partial::Validation) {
                    assert_eq!(ft.update_entry(&mut mem, 14, 2, 0, false, D0), Err(MmError::Inval));
                }
                assert!(restarts < 10_000);
            }
            assert!(restarts > 0, "every={every}: never preempted");
            check_balance(&ft, &mem, 64);
            assert_eq!(ft.info(17).map(|f| (f.ty, f.type_count)), Some((PageType::L1, 1)));
            ft.unpin(&mut mem, 13, D0).unwrap();
            let (mut drains, mut repinned) = (0, false);
            while ft.drain_pending(&mut mem, D0.dom) == Err(MmError::Restart) {
                check_balance(&ft, &mem, 64);
                // A frame being torn down is a table again only once its
                // teardown is done: whoever asks finishes it (preemptibly).
                if !repinned && ft.info(17).is_some_and(|f| f.partial == Partial::Devalidation) {
                    repinned = true;
                    // As a guest's continuation would, go on until it holds.
                    let mut tries = 0;
                    while ft.pin(&mut mem, 17, 1, D0) == Err(MmError::Restart) {
                        assert_eq!(ft.info(17).map(|f| f.pinned), Some(false));
                        tries += 1;
                        assert!(tries < 10_000);
                    }
                    check_balance(&ft, &mem, 64);
                    assert_eq!(ft.info(17).map(|f| (f.ty, f.pinned)), Some((PageType::L1, true)));
                    ft.unpin(&mut mem, 17, D0).unwrap();
                }
                drains += 1;
                assert!(drains < 10_000);
            }
            check_balance(&ft, &mem, 64);
            for m in 13..41 {
                assert_eq!(ft.info(m).map(|f| (f.ty, f.type_count, f.count)), Some((PageType::None, 0, 1)), "every={every} frame {m}");
            }
        }
    }

    #[test]
    fn random_operations_with_preemption_keep_counts_balanced() {
        for seed in [3u64, 11, 99] {
            let (mut frames, _) = setup();
            let mut mem = PreemptMem { mem: Mem::default(), every: 5, calls: 0.into() };
            let mut ft = FrameTable::new(&mut frames);
            let mut s = seed;
            let mut rnd = |m: u64| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s % m
            };
            for _ in 0..3000 {
                let t = rnd(24);
                match rnd(5) {
                    0 => {
                        let _ = ft.pin(&mut mem, t, 1 + rnd(4) as u8, D0);
                    }
                    1 => {
                        let _ = ft.unpin(&mut mem, t, D0);
                    }
                    2 => {
                        let _ = ft.drain_pending(&mut mem, D0.dom);
                    }
                    _ => {
                        let flags = [RW, RO, 0, RW | PSE][rnd(4) as usize];
                        let _ = ft.update_entry(&mut mem, t, rnd(4) as usize, e(rnd(30), flags), false, D0);
                    }
                }
                check_balance(&ft, &mem, 64);
            }
            while ft.drain_pending(&mut mem, D0.dom).is_err() {}
            check_balance(&ft, &mem, 64);
        }
    }

    #[test]
    fn destroying_a_domain_mid_validation_frees_everything() {
        // A guest abandons a preempted pin, or leaves a devalidation
        // pending, and is destroyed: every frame comes back.
        let (mut frames, _) = setup();
        let mut mem = PreemptMem { mem: Mem::default(), every: 2, calls: 0.into() };
        big_tree(&mut mem);
        let mut ft = FrameTable::new(&mut frames);
        assert_eq!(ft.pin(&mut mem, 13, 4, D0), Err(MmError::Restart));
        let mut quiet = Mem(mem.mem.0.clone());
        ft.pin(&mut quiet, 10, 1, D0).unwrap();
        let mut freed = Vec::new();
        ft.relinquish(&mut quiet, D0.dom, |m| freed.push(m)).unwrap();
        assert_eq!(freed, (0..48).collect::<Vec<u64>>());
        assert!(!ft.has_pending());
    }

    /// Destroy `dom` with a clock that is always due, as a guest whose
    /// destroydomain is continued again and again would; every call but
    /// the last must stop early. Returns the frames freed and the calls.
    fn relinquish_preempted(ft: &mut FrameTable<'_>, mem: &mut PreemptMem, dom: u16, forget: bool) -> (Vec<u64>, usize) {
        let mut freed = Vec::new();
        for calls in 1..100_000 {
            if forget {
                // Other destructions interrupted meanwhile push this
                // one's place out.
                for other in 0..REAPS as u16 {
                    ft.keep_reap(Reap { dom: 0x100 + other, step: ReapStep::Pins, next: 0 });
                }
            }
            match ft.relinquish(mem, dom, |m| freed.push(m)) {
                Ok(()) => return (freed, calls),
                Err(e) => assert_eq!(e, MmError::Restart),
            }
        }
        panic!("relinquish never finished");
    }

    #[test]
    fn domain_destruction_is_preemptible_and_frees_everything() {
        // Xen: domain_relinquish_resources is preemptible (-ERESTART and a
        // continuation); destroying a domain with a large tree must not
        // hold the hypervisor for the whole teardown.
        for forget in [false, true] {
            let (mut frames, _) = setup();
            let mut mem = PreemptMem { mem: Mem::default(), every: 1_000_000, calls: 0.into() };
            big_tree(&mut mem);
            let mut ft = FrameTable::new(&mut frames);
            ft.pin(&mut mem, 13, 4, D0).unwrap();
            mem.every = 3;
            let (mut freed, calls) = relinquish_preempted(&mut ft, &mut mem, D0.dom, forget);
            freed.sort_unstable();
            assert_eq!(freed, (0..48).collect::<Vec<u64>>(), "forget {forget}");
            assert!(calls > 1, "a due clock must stop the teardown early");
            assert!(!ft.has_pending());
            assert!(ft.frames().iter().all(|f| *f == PageInfo::FREE || f.owner != D0.dom));
        }
    }

    #[test]
    fn a_former_table_becomes_writable_only_after_a_flush() {
        // Finding 5 (reviewer's variant): an unlinked L1 may still be
        // walked from a paging-structure cache until every CPU flushed.
        let (mut frames, _) = setup();
        let mut mem = ClockMem { clock: 9, ..ClockMem::default() };
        let mut ft = FrameTable::new(&mut frames);
        ft.pin(&mut mem, 10, 1, D0).unwrap();
        ft.unpin(&mut mem, 10, D0).unwrap();
        assert_eq!(ft.info(10).map(|f| f.devalidated_at), Some(9));
        ft.pin(&mut mem, 11, 1, D0).unwrap();
        ft.update_entry(&mut mem, 11, 0, e(10, RW), false, D0).unwrap();
        assert_eq!(mem.flushed_since, [9]);
        ft.update_entry(&mut mem, 11, 1, e(10, RW), false, D0).unwrap();
        assert_eq!(mem.flushed_since, [9], "once is enough");
    }
}
