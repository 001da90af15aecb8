//! The invariant auditor: recomputes, from everything that may hold a
//! reference to a machine frame, what the frame table must say about every
//! frame, and reports each place where it says something else.
//!
//! It owns no state. Its input is the frame table ([`PageInfo`] slice), the
//! page tables ([`PageMem`]) and a [`World`] describing each live domain:
//! its base pointers (kernel and user L4), GDT and LDT frames, special
//! frames (shared_info, grant-table frames) and grant maptrack. From those it
//! recounts, per frame, the general references (`count`), the type
//! references and the type they demand (`type_count`, `ty`) and the linear
//! page-table bookkeeping (`linear_pt`), following the reference rules of
//! `page_type.rs`:
//! - the allocation holds 1 general reference on every frame a domain owns;
//! - a pin holds a general reference and a type reference;
//! - a present L1 entry holds a general reference on its target, and a
//!   `Writable` type reference when it is writable;
//! - a present L2-L4 entry holds a general reference and a type reference of
//!   the next lower level, except a linear (same-level) entry, which holds
//!   what [`linear_entry_refs`] says (and counts +1 in its table's
//!   `linear_pt`, -1 in its target's), and an entry pointing at its own
//!   table, which holds nothing;
//! - a table whose validation or devalidation was interrupted holds what its
//!   entries `[0, partial_at)` hold;
//! - a device mapping of a grant holds a general reference, and a writable
//!   one a `Writable` type reference;
//! - a base pointer holds a general reference and an `L4` type reference;
//!   each GDT/LDT frame a general reference and a `SegDesc` type reference;
//! - a special frame holds what [`special_frame_refs`] says.
//!
//! Besides the counts it checks that no writable L1 entry of a live L1 maps
//! a page table or descriptor page, that every frame a domain's tables map
//! is its own, granted to it, or (for a privileged domain) another live
//! domain's; that L2-L4 entries stay within one owner; that entry flags
//! are allowed at their level; that no frame belongs to a domain that no
//! longer exists; and that each frame's own state is coherent (a validated
//! frame is a live table, a frame with no type reference has no type).
//!
//! Invariant kept: the audit only reads. Memory is bounded by the caller's
//! scratch: frames are recounted in windows of `scratch.len()` frames, one
//! walk of every live table per window; the report keeps the first
//! [`MAX_REPORTED`] violations and counts the rest.
#![forbid(unsafe_code)]

use super::page_type::{FrameTable, NO_OWNER, ORPHAN, PageInfo, PageMem, PageType, Partial, Who, XEN_SHARED, XEN_SLOTS};
use core::fmt;
use xen_public::pte::{PteFlags, pte_maddr};

/// What an entry or holder contributes to its target's counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refs {
    /// General references (`count`).
    pub general: u32,
    /// Whether it holds a type reference (of the type the rule says).
    pub type_ref: bool,
    /// What it adds to the target's `linear_pt`.
    pub linear: i32,
}

/// THE LINEAR RULE. What a present L2-L4 entry holds on another table of
/// its own level (a linear mapping): a general and a type reference of the
/// table's own level (Xen since XSA-240), and one use in `linear_pt`.
pub const fn linear_entry_refs() -> Refs {
    Refs { general: 1, type_ref: true, linear: -1 }
}

/// THE SPECIAL-FRAME RULE. What a special frame (shared_info, a grant-table
/// frame) holds beyond its allocation reference: a permanent `Writable`
/// type reference (Xen's `share_xen_page_with_guest`).
pub const fn special_frame_refs() -> Refs {
    Refs { general: 0, type_ref: true, linear: 0 }
}

/// One grant mapping a domain holds (a maptrack entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantMap {
    /// The granting domain.
    pub granter: u16,
    /// The granted frame.
    pub frame: u64,
    /// Mapped writable.
    pub writable: bool,
    /// A host mapping (a PTE).
    pub host: bool,
    /// A device mapping (references held for a bus address).
    pub device: bool,
    /// Where the host PTE is (table mfn, index), if its address still
    /// resolves to a table slot.
    pub pte: Option<(u64, usize)>,
}

/// A domain's grant mappings.
pub trait GrantMaps {
    /// Call `f` on every mapping.
    fn for_each_map(&self, f: &mut dyn FnMut(GrantMap));
}

impl<const N: usize> GrantMaps for [GrantMap; N] {
    fn for_each_map(&self, f: &mut dyn FnMut(GrantMap)) {
        for m in self {
            f(*m);
        }
    }
}

/// What the auditor needs to know about one live domain.
#[derive(Clone, Copy)]
pub struct DomainView<'a> {
    /// Domain id.
    pub domid: u16,
    /// Privileged (may map other domains' frames, may set cache attributes).
    pub privileged: bool,
    /// Kernel and user base pointers (L4 mfns), 0 for none.
    pub base: [u64; 2],
    /// Frames of the loaded GDT.
    pub gdt: &'a [u64],
    /// Frames of the loaded LDT.
    pub ldt: &'a [u64],
    /// Special frames: shared_info and grant-table frames.
    pub special: &'a [u64],
    /// Grant mappings it holds.
    pub maps: &'a dyn GrantMaps,
    /// Pages it is accounted (special frames excluded), if known.
    pub tot_pages: Option<u64>,
}

/// The live domains, and optional facts from outside the frame table.
pub trait World {
    /// Call `f` once for every live domain.
    fn for_each_domain(&self, f: &mut dyn FnMut(&DomainView<'_>));
    /// Call `f` on live domain `domid`; `false` if there is none.
    fn with_domain(&self, domid: u16, f: &mut dyn FnMut(&DomainView<'_>)) -> bool;
    /// Whether the frame allocator has `mfn` free (`None`: unknown).
    fn allocator_free(&self, _mfn: u64) -> Option<bool> {
        None
    }
    /// What hypervisor L4 slot `idx` (256-271) must hold in every live L4
    /// (`None`: do not check).
    fn xen_l4_slot(&self, _idx: usize) -> Option<u64> {
        None
    }
    /// Whether `mfn`, a frame of the frame table, is not RAM (MMIO: an L1
    /// entry mapping it holds no reference). Frames past the table always
    /// are.
    fn is_io_frame(&self, _mfn: u64) -> bool {
        false
    }
}

/// A [`World`] over a slice of views (host tests, small snapshots).
pub struct Domains<'a>(pub &'a [DomainView<'a>]);

impl World for Domains<'_> {
    fn for_each_domain(&self, f: &mut dyn FnMut(&DomainView<'_>)) {
        for d in self.0 {
            f(d);
        }
    }
    fn with_domain(&self, domid: u16, f: &mut dyn FnMut(&DomainView<'_>)) -> bool {
        match self.0.iter().find(|d| d.domid == domid) {
            Some(d) => {
                f(d);
                true
            }
            None => false,
        }
    }
}

/// Which count of a frame disagrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// `count`: general references.
    General,
    /// `type_count`.
    Type,
    /// `linear_count`.
    Linear,
}

/// One broken invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A count of `mfn` differs from the references found.
    Count {
        /// The frame.
        mfn: u64,
        /// Which count.
        what: Counter,
        /// Recomputed.
        expected: u32,
        /// In the frame table.
        actual: u32,
    },
    /// Type references demand `wanted` but the frame has type `ty`.
    Type {
        /// The frame.
        mfn: u64,
        /// Its type.
        ty: PageType,
        /// The type its references need.
        wanted: PageType,
    },
    /// References demand two different types of one frame.
    TypeConflict {
        /// The frame.
        mfn: u64,
        /// One type wanted.
        a: PageType,
        /// Another.
        b: PageType,
    },
    /// A writable entry of a live L1 maps a page table or descriptor page.
    WritableTable {
        /// The L1.
        l1: u64,
        /// The entry.
        idx: u16,
        /// The mapped frame.
        mfn: u64,
        /// Its type.
        ty: PageType,
    },
    /// An L1 entry of `dom` maps a frame `dom` may not map.
    NotMappable {
        /// The L1.
        l1: u64,
        /// The entry.
        idx: u16,
        /// The mapped frame.
        mfn: u64,
        /// The table's owner.
        dom: u16,
        /// The frame's owner.
        owner: u16,
    },
    /// An L2-L4 entry points at a frame of another owner.
    CrossOwner {
        /// The table.
        table: u64,
        /// The entry.
        idx: u16,
        /// The target.
        mfn: u64,
        /// The table's owner.
        dom: u16,
        /// The target's owner.
        owner: u16,
    },
    /// A linear (same-level) entry is writable.
    WritableLinear {
        /// The table.
        table: u64,
        /// The entry.
        idx: u16,
    },
    /// An entry carries flags its level does not allow.
    BadFlags {
        /// The table.
        table: u64,
        /// Its level.
        level: u8,
        /// The entry index.
        idx: u16,
        /// The entry.
        entry: u64,
    },
    /// An L1 of a domain without I/O memory permission maps a frame that
    /// is not RAM.
    Mmio {
        /// The L1.
        l1: u64,
        /// Entry index.
        idx: u16,
        /// The frame.
        mfn: u64,
        /// The L1's owner.
        dom: u16,
    },
    /// An entry maps a frame past the end of the frame table.
    OutOfRange {
        /// The table.
        table: u64,
        /// The entry.
        idx: u16,
        /// The target.
        mfn: u64,
    },
    /// A hypervisor slot of a live L4 differs from the hypervisor's own.
    XenSlot {
        /// The L4.
        table: u64,
        /// The slot.
        idx: u16,
    },
    /// A frame belongs to a domain that does not exist.
    DeadOwner {
        /// The frame.
        mfn: u64,
        /// Its owner.
        owner: u16,
        /// Its count.
        count: u32,
    },
    /// A frame without owner carries state.
    FreeInUse {
        /// The frame.
        mfn: u64,
    },
    /// A frame in use is free in the allocator.
    AllocatorFree {
        /// The frame.
        mfn: u64,
        /// Its owner.
        owner: u16,
    },
    /// A frame's own state is incoherent.
    State {
        /// The frame.
        mfn: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// A frame a domain maps through a grant belongs to neither the
    /// granter nor (after the granter's death) no one.
    GrantOwner {
        /// The mapping domain.
        dom: u16,
        /// The frame.
        mfn: u64,
        /// Who granted it.
        granter: u16,
        /// Who owns it now.
        owner: u16,
        /// A host (PTE) mapping, else a device mapping.
        host: bool,
    },
    /// A domain's CR3, GDT, LDT or special frame is of the wrong kind.
    Holder {
        /// The domain.
        dom: u16,
        /// The frame.
        mfn: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A domain's page count differs from the frames it owns.
    TotPages {
        /// The domain.
        dom: u16,
        /// Frames owned (special frames excluded).
        owned: u64,
        /// Its `tot_pages`.
        accounted: u64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::Count { mfn, what, expected, actual } => {
                let name = match what {
                    Counter::General => "count",
                    Counter::Type => "type_count",
                    Counter::Linear => "linear_pt",
                };
                write!(f, "mfn {mfn:#x}: {name} {actual}, references found {expected}")
            }
            Violation::Type { mfn, ty, wanted } => write!(f, "mfn {mfn:#x}: type {ty:?} but its type references need {wanted:?}"),
            Violation::TypeConflict { mfn, a, b } => {
                write!(f, "mfn {mfn:#x}: referenced both as {a:?} and as {b:?}")
            }
            Violation::WritableTable { l1, idx, mfn, ty } => {
                write!(f, "L1 {l1:#x}[{idx}] maps mfn {mfn:#x} writable, but it is a {ty:?} page")
            }
            Violation::NotMappable { l1, idx, mfn, dom, owner } => {
                write!(f, "L1 {l1:#x}[{idx}] of d{dom} maps mfn {mfn:#x} of owner {owner:#x}, neither its own nor granted")
            }
            Violation::CrossOwner { table, idx, mfn, dom, owner } => {
                write!(f, "table {table:#x}[{idx}] of d{dom} points at mfn {mfn:#x} of owner {owner:#x}")
            }
            Violation::WritableLinear { table, idx } => {
                write!(f, "table {table:#x}[{idx}]: writable linear entry")
            }
            Violation::BadFlags { table, level, idx, entry } => write!(f, "L{level} {table:#x}[{idx}] = {entry:#x}: flags not allowed"),
            Violation::Mmio { l1, idx, mfn, dom } => write!(f, "L1 {l1:#x}[{idx}] of d{dom} maps MMIO frame {mfn:#x} without I/O memory permission"),
            Violation::OutOfRange { table, idx, mfn } => write!(f, "table {table:#x}[{idx}] maps mfn {mfn:#x} past the frame table"),
            Violation::XenSlot { table, idx } => {
                write!(f, "L4 {table:#x}: hypervisor slot {idx} changed")
            }
            Violation::DeadOwner { mfn, owner, count } => write!(f, "mfn {mfn:#x}: owner d{owner} does not exist (count {count})"),
            Violation::FreeInUse { mfn } => {
                write!(f, "mfn {mfn:#x}: no owner but counts or type set")
            }
            Violation::AllocatorFree { mfn, owner } => write!(f, "mfn {mfn:#x}: owned by {owner:#x} but free in the allocator"),
            Violation::State { mfn, why } => write!(f, "mfn {mfn:#x}: {why}"),
            Violation::Holder { dom, mfn, what } => write!(f, "d{dom}: {what} (mfn {mfn:#x})"),
            Violation::GrantOwner { dom, mfn, granter, owner, host } => {
                let how = if host { "host" } else { "device" };
                write!(f, "d{dom}: {how}-mapped frame {mfn:#x} granted by d{granter} now belongs to d{owner}")
            }
            Violation::TotPages { dom, owned, accounted } => write!(f, "d{dom}: owns {owned} frames but tot_pages is {accounted}"),
        }
    }
}

/// Violations kept in a [`Report`]; more are only counted.
pub const MAX_REPORTED: usize = 32;

/// What an audit found.
#[derive(Clone, Debug)]
pub struct Report {
    items: heapless::Vec<Violation, MAX_REPORTED>,
    /// Violations found (kept or not).
    pub total: usize,
    /// Frames checked.
    pub frames: u64,
    /// Live page tables walked.
    pub tables: u64,
    /// Live domains seen.
    pub domains: usize,
    /// Host grant mappings whose address no longer leads to their PTE (the
    /// guest changed its tables since): not a broken invariant.
    pub stale_grants: usize,
}

impl Default for Report {
    fn default() -> Self {
        Self::new()
    }
}

impl Report {
    /// An empty report.
    pub const fn new() -> Self {
        Report { items: heapless::Vec::new(), total: 0, frames: 0, tables: 0, domains: 0, stale_grants: 0 }
    }

    fn push(&mut self, v: Violation) {
        // Past MAX_REPORTED a violation is only counted.
        let _ = self.items.push(v);
        self.total += 1;
    }

    /// The violations kept, in the order found.
    pub fn violations(&self) -> impl Iterator<Item = &Violation> {
        self.items.iter()
    }

    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }
}

/// The references found for one frame (scratch for one window).
#[derive(Clone, Copy, Debug, Default)]
pub struct Expect {
    count: u32,
    type_count: u32,
    linear: i32,
    ty: Option<PageType>,
    conflict: Option<PageType>,
}

impl Expect {
    /// Nothing found yet.
    pub const ZERO: Expect = Expect { count: 0, type_count: 0, linear: 0, ty: None, conflict: None };

    fn demand(&mut self, ty: PageType) {
        self.type_count = self.type_count.saturating_add(1);
        match self.ty {
            None => self.ty = Some(ty),
            Some(t) if t != ty && self.conflict.is_none() => self.conflict = Some(ty),
            _ => {}
        }
    }

    fn add(&mut self, r: Refs, ty: PageType) {
        self.count = self.count.saturating_add(r.general);
        self.linear = self.linear.saturating_add(r.linear);
        if r.type_ref {
            self.demand(ty);
        }
    }

    fn general(&mut self) {
        self.count = self.count.saturating_add(1);
    }
}

fn mfn_of(e: u64) -> u64 {
    pte_maddr(e) >> 12
}

/// Whether `owner` names a domain (not free, orphaned or the
/// hypervisor's shared pages).
fn is_owner(owner: u16) -> bool {
    owner != NO_OWNER && owner != ORPHAN && owner != XEN_SHARED
}

/// Whether the frame is a live page table: its entries hold references.
fn live_level(f: &PageInfo) -> Option<u8> {
    f.ty.level().filter(|_| f.validated && f.type_count > 0)
}

/// The level of a table whose entries hold references, and how many of its
/// entries do: all of a live table's, `[0, partial_at)` of one whose
/// validation or devalidation was interrupted.
fn holding_level(f: &PageInfo) -> Option<(u8, usize)> {
    match live_level(f) {
        Some(l) => Some((l, 512)),
        None if f.partial != Partial::None => f.ty.level().map(|l| (l, usize::from(f.partial_at))),
        None => None,
    }
}

fn guest_slot(level: u8, i: usize) -> bool {
    level != 4 || !XEN_SLOTS.contains(&i)
}

/// What is known about a frame's owner.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OwnerState {
    Dead,
    Live { privileged: bool },
}

/// A small direct-mapped cache of owner lookups, so the walk asks the
/// world once per owner rather than once per table.
struct Owners<'w, W: World> {
    world: &'w W,
    slots: [(u16, OwnerState); 64],
}

impl<'w, W: World> Owners<'w, W> {
    fn new(world: &'w W) -> Self {
        Owners { world, slots: [(u16::MAX, OwnerState::Dead); 64] }
    }

    fn get(&mut self, domid: u16) -> OwnerState {
        let s = &mut self.slots[usize::from(domid) % 64];
        if s.0 != domid {
            let mut st = OwnerState::Dead;
            self.world.with_domain(domid, &mut |v| st = OwnerState::Live { privileged: v.privileged });
            *s = (domid, st);
        }
        s.1
    }
}

/// Frames owned per domain, for the `tot_pages` check (given up past a
/// few dozen owners).
struct OwnedCount {
    ids: [(u16, u64); 64],
    n: usize,
    overflow: bool,
}

impl OwnedCount {
    fn add(&mut self, owner: u16) {
        if let Some(e) = self.ids[..self.n].iter_mut().find(|e| e.0 == owner) {
            e.1 += 1;
        } else if self.n < self.ids.len() {
            self.ids[self.n] = (owner, 1);
            self.n += 1;
        } else {
            self.overflow = true;
        }
    }

    fn of(&self, owner: u16) -> u64 {
        self.ids[..self.n].iter().find(|e| e.0 == owner).map_or(0, |e| e.1)
    }
}

/// Run the audit: recount every frame from the page tables and the
/// holders `world` describes, compare with `frames`, and add what differs
/// to `report`. `scratch` sets the window size (at least one entry).
pub fn audit(world: &impl World, mem: &impl PageMem, frames: &[PageInfo], scratch: &mut [Expect], report: &mut Report) {
    let n = frames.len() as u64;
    if scratch.is_empty() {
        return;
    }
    let mut owners = Owners::new(world);
    let mut owned = OwnedCount { ids: [(0, 0); 64], n: 0, overflow: false };
    report.frames = n;
    world.for_each_domain(&mut |_| report.domains += 1);
    let mut lo = 0u64;
    let mut first = true;
    while lo < n {
        let hi = n.min(lo + scratch.len() as u64);
        let win = &mut scratch[..(hi - lo) as usize];
        win.fill(Expect::ZERO);
        // The frames' own references: allocation and pin.
        for mfn in lo..hi {
            let f = &frames[mfn as usize];
            let x = &mut win[(mfn - lo) as usize];
            if is_owner(f.owner) {
                x.general();
            }
            // A page the hypervisor shares with privileged domains: its
            // allocation and its permanent writable type, as a domain's
            // special frame.
            if f.owner == XEN_SHARED {
                x.general();
                x.add(special_frame_refs(), PageType::Writable);
            }
            if f.pinned {
                x.general();
                x.demand(f.ty);
            }
        }
        // Every live table's entries.
        for t in 0..n {
            let f = frames[t as usize];
            let Some((level, upto)) = holding_level(&f) else {
                continue;
            };
            if first {
                report.tables += 1;
            }
            let privileged = matches!(owners.get(f.owner), OwnerState::Live { privileged: true });
            for i in 0..upto {
                let e = mem.read(t, i);
                if !guest_slot(level, i) {
                    // The CPU sets Accessed and Dirty as it walks: ignore them.
                    let hw = (PteFlags::ACCESSED | PteFlags::DIRTY).bits();
                    // A table still being validated gets its hypervisor
                    // slots when validation completes.
                    let live = live_level(&f).is_some();
                    if first && live && world.xen_l4_slot(i).is_some_and(|v| (v ^ e) & !hw != 0) {
                        report.push(Violation::XenSlot { table: t, idx: i as u16 });
                    }
                    continue;
                }
                if !PteFlags::of(e).contains(PteFlags::PRESENT) {
                    continue;
                }
                if first {
                    let who = Who { dom: f.owner, io: privileged, pg: f.owner };
                    let pse = level >= 2 && PteFlags::of(e).contains(PteFlags::PSE);
                    if pse || FrameTable::check_flags(level, e, who).is_err() {
                        report.push(Violation::BadFlags { table: t, level, idx: i as u16, entry: e });
                    }
                }
                let target = mfn_of(e);
                if level == 1 && (target >= n || world.is_io_frame(target)) {
                    // THE MMIO RULE: an L1 entry mapping a frame that is
                    // not RAM holds nothing, and only a domain with I/O
                    // memory permission (the privileged one) has one.
                    if first && !privileged {
                        report.push(Violation::Mmio { l1: t, idx: i as u16, mfn: target, dom: f.owner });
                    }
                    continue;
                }
                if target >= n {
                    if first {
                        report.push(Violation::OutOfRange { table: t, idx: i as u16, mfn: target });
                    }
                    continue;
                }
                let g = frames[target as usize];
                let linear = level >= 2 && target != t && g.ty == PageType::table(level);
                if linear && (lo..hi).contains(&t) {
                    win[(t - lo) as usize].linear += 1;
                }
                if !(lo..hi).contains(&target) {
                    continue;
                }
                let x = &mut win[(target - lo) as usize];
                let idx = i as u16;
                if level == 1 {
                    x.general();
                    let rw = PteFlags::of(e).contains(PteFlags::RW);
                    if rw {
                        x.demand(PageType::Writable);
                        if g.ty.level().is_some() || g.ty == PageType::SegDesc {
                            report.push(Violation::WritableTable { l1: t, idx, mfn: target, ty: g.ty });
                        }
                    }
                    if g.owner != f.owner && !may_map_foreign(world, &mut owners, f.owner, privileged, target, g.owner, rw) {
                        report.push(Violation::NotMappable { l1: t, idx, mfn: target, dom: f.owner, owner: g.owner });
                    }
                    continue;
                }
                if g.owner != f.owner {
                    report.push(Violation::CrossOwner { table: t, idx, mfn: target, dom: f.owner, owner: g.owner });
                }
                if target == t || linear {
                    if PteFlags::of(e).contains(PteFlags::RW) {
                        report.push(Violation::WritableLinear { table: t, idx });
                    }
                    if linear {
                        x.add(linear_entry_refs(), PageType::table(level));
                    }
                } else {
                    x.general();
                    x.demand(PageType::table(level - 1));
                }
            }
        }
        // What each domain's vCPU and the hypervisor hold.
        world.for_each_domain(&mut |v| {
            let bases = [(v.base[0], "kernel L4"), (v.base[1], "user L4")];
            for (mfn, what) in bases.into_iter().filter(|b| b.0 != 0) {
                if first {
                    check_holder(report, frames, v.domid, mfn, what, |f| f.ty == PageType::L4 && f.validated);
                }
                if (lo..hi).contains(&mfn) {
                    let x = &mut win[(mfn - lo) as usize];
                    x.general();
                    x.demand(PageType::L4);
                }
            }
            for (&mfn, what) in v.gdt.iter().map(|m| (m, "GDT frame")).chain(v.ldt.iter().map(|m| (m, "LDT frame"))) {
                if first {
                    check_holder(report, frames, v.domid, mfn, what, |f| f.ty == PageType::SegDesc);
                }
                if (lo..hi).contains(&mfn) {
                    let x = &mut win[(mfn - lo) as usize];
                    x.general();
                    x.demand(PageType::SegDesc);
                }
            }
            for &mfn in v.special {
                if first {
                    check_holder(report, frames, v.domid, mfn, "special frame", |_| true);
                }
                if (lo..hi).contains(&mfn) {
                    win[(mfn - lo) as usize].add(special_frame_refs(), PageType::Writable);
                }
            }
            v.maps.for_each_map(&mut |m| {
                if m.device && (lo..hi).contains(&m.frame) {
                    let x = &mut win[(m.frame - lo) as usize];
                    x.general();
                    if m.writable {
                        x.demand(PageType::Writable);
                    }
                }
            });
            if first {
                check_maps(report, mem, frames, v);
            }
        });
        // Compare.
        for mfn in lo..hi {
            let f = frames[mfn as usize];
            let x = win[(mfn - lo) as usize];
            compare(report, world, &mut owners, mfn, &f, &x);
            if is_owner(f.owner) {
                owned.add(f.owner);
            }
        }
        first = false;
        lo = hi;
    }
    if !owned.overflow {
        world.for_each_domain(&mut |v| {
            let Some(accounted) = v.tot_pages else { return };
            let special = v.special.iter().filter(|&&m| frames.get(m as usize).is_some_and(|f| f.owner == v.domid)).count() as u64;
            let mine = owned.of(v.domid).saturating_sub(special);
            if mine != accounted {
                report.push(Violation::TotPages { dom: v.domid, owned: mine, accounted });
            }
        });
    }
}

/// Whether an L1 of `dom` may map frame `mfn` of `owner` (another owner):
/// a privileged domain maps any live domain's (or orphaned) frames; any
/// domain maps what its maptrack says it was granted.
fn may_map_foreign<W: World>(world: &W, owners: &mut Owners<'_, W>, dom: u16, privileged: bool, mfn: u64, owner: u16, rw: bool) -> bool {
    if privileged && (owner == ORPHAN || owner == XEN_SHARED || (is_owner(owner) && owners.get(owner) != OwnerState::Dead)) {
        return true;
    }
    if owner == NO_OWNER {
        return false;
    }
    let mut granted = false;
    world.with_domain(dom, &mut |v| {
        v.maps.for_each_map(&mut |m| granted |= m.frame == mfn && (m.writable || !rw) && m.host);
    });
    granted
}

fn check_holder(report: &mut Report, frames: &[PageInfo], dom: u16, mfn: u64, what: &'static str, ok: impl Fn(&PageInfo) -> bool) {
    match frames.get(mfn as usize) {
        None => report.push(Violation::Holder { dom, mfn, what: holder_problem(what, "past the frame table") }),
        Some(f) if f.owner != dom => report.push(Violation::Holder { dom, mfn, what: holder_problem(what, "not owned by the domain") }),
        Some(f) if !ok(f) => report.push(Violation::Holder { dom, mfn, what: holder_problem(what, "of the wrong type") }),
        Some(_) => {}
    }
}

/// A static description of a holder problem (the report stays `Copy`).
fn holder_problem(what: &'static str, why: &'static str) -> &'static str {
    match (what, why) {
        ("kernel L4", "past the frame table") => "kernel L4 past the frame table",
        ("kernel L4", "not owned by the domain") => "kernel L4 not owned by the domain",
        ("kernel L4", _) => "kernel L4 is not a validated L4",
        ("user L4", "past the frame table") => "user L4 past the frame table",
        ("user L4", "not owned by the domain") => "user L4 not owned by the domain",
        ("user L4", _) => "user L4 is not a validated L4",
        ("GDT frame", "past the frame table") => "GDT frame past the frame table",
        ("GDT frame", "not owned by the domain") => "GDT frame not owned by the domain",
        ("GDT frame", _) => "GDT frame is not a descriptor page",
        ("LDT frame", "past the frame table") => "LDT frame past the frame table",
        ("LDT frame", "not owned by the domain") => "LDT frame not owned by the domain",
        ("LDT frame", _) => "LDT frame is not a descriptor page",
        (_, "past the frame table") => "special frame past the frame table",
        (_, "not owned by the domain") => "special frame not owned by the domain",
        _ => "special frame of the wrong type",
    }
}

/// A domain's maptrack: each granted frame is the granter's (or orphaned
/// by its death) while the mapping holds it: a host mapping whose PTE still
/// maps it, or a device mapping (which, as in Xen, must keep the frame for
/// the device). A host mapping whose PTE is gone is only counted as stale;
/// so is one whose PTE maps a frame the mapper now owns itself (the grant
/// PTE was replaced, the granter gave the frame up, and it came to the
/// mapper, which mapped it at the same place: an ordinary own mapping,
/// counted as such by the table walk). Found by `cargo xtask fuzz --calls
/// 10000000`.
fn check_maps(report: &mut Report, mem: &impl PageMem, frames: &[PageInfo], v: &DomainView<'_>) {
    v.maps.for_each_map(&mut |m| {
        let Some(g) = frames.get(m.frame as usize) else {
            report.push(Violation::Holder { dom: v.domid, mfn: m.frame, what: "grant mapping of a frame past the frame table" });
            return;
        };
        if m.host {
            let live = m.pte.is_some_and(|(l1, idx)| {
                let e = mem.read(l1, idx);
                let live_l1 = frames.get(l1 as usize).is_some_and(|f| f.owner == v.domid && live_level(f) == Some(1));
                live_l1 && PteFlags::of(e).contains(PteFlags::PRESENT) && mfn_of(e) == m.frame
            });
            if !live || g.owner == v.domid {
                report.stale_grants += 1;
                return;
            }
        }
        if g.owner != m.granter && g.owner != ORPHAN {
            report.push(Violation::GrantOwner { dom: v.domid, mfn: m.frame, granter: m.granter, owner: g.owner, host: m.host });
        }
    });
}

fn compare<W: World>(report: &mut Report, world: &W, owners: &mut Owners<'_, W>, mfn: u64, f: &PageInfo, x: &Expect) {
    if f.owner == NO_OWNER {
        if *f != PageInfo::FREE {
            report.push(Violation::FreeInUse { mfn });
        }
    } else if f.owner != ORPHAN && f.owner != XEN_SHARED && owners.get(f.owner) == OwnerState::Dead {
        report.push(Violation::DeadOwner { mfn, owner: f.owner, count: f.count });
    }
    if f.owner != NO_OWNER && world.allocator_free(mfn) == Some(true) {
        report.push(Violation::AllocatorFree { mfn, owner: f.owner });
    }
    for (what, expected, actual) in [(Counter::General, x.count, f.count), (Counter::Type, x.type_count, f.type_count)] {
        if expected != actual {
            report.push(Violation::Count { mfn, what, expected, actual });
        }
    }
    if x.linear != f.linear_pt {
        report.push(Violation::Count { mfn, what: Counter::Linear, expected: x.linear as u32, actual: f.linear_pt as u32 });
    }
    match (x.ty, x.conflict) {
        (Some(a), Some(b)) => report.push(Violation::TypeConflict { mfn, a, b }),
        (Some(wanted), None) if wanted != f.ty => report.push(Violation::Type { mfn, ty: f.ty, wanted }),
        _ => {}
    }
    let why = if f.validating {
        Some("validation in progress outside any operation")
    } else if f.type_count == 0 && f.partial == Partial::None && f.ty != PageType::None {
        Some("a type with no type reference")
    } else if f.validated != (f.ty.level().is_some() && f.type_count > 0) {
        Some("validated flag disagrees with type and type count")
    } else if f.pinned && f.ty.level().is_none() {
        Some("pinned but not a page table")
    } else if f.linear_pt != 0 && f.ty.level().is_none_or(|l| l < 2) {
        Some("linear references on a frame that is not an L2-L4 table")
    } else {
        None
    };
    if let Some(why) = why {
        report.push(Violation::State { mfn, why });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::page_type::MmError;
    use std::vec::Vec;

    /// A model memory of page tables, as in `page_type.rs`'s tests (flat,
    /// so the audit after every step stays fast in a debug build).
    #[derive(Clone)]
    struct Mem(Vec<u64>);

    impl Default for Mem {
        fn default() -> Self {
            Mem(std::vec![0; NR as usize * 512])
        }
    }

    const XEN_SLOT_VALUE: u64 = 0xfee0_0003;

    impl PageMem for Mem {
        fn read(&self, mfn: u64, idx: usize) -> u64 {
            self.0.get(mfn as usize * 512 + idx).copied().unwrap_or(0)
        }
        fn write(&mut self, mfn: u64, idx: usize, val: u64) {
            if let Some(s) = self.0.get_mut(mfn as usize * 512 + idx) {
                *s = val;
            }
        }
        fn init_xen_l4_slots(&mut self, mfn: u64) {
            for i in XEN_SLOTS {
                self.write(mfn, i, XEN_SLOT_VALUE);
            }
        }
    }

    const RW: u64 = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::USER).union(PteFlags::ACCESSED).union(PteFlags::DIRTY).bits();
    const RO: u64 = PteFlags::PRESENT.union(PteFlags::USER).union(PteFlags::ACCESSED).bits();
    const PSE: u64 = PteFlags::PSE.bits();
    const NR: u64 = 128;

    fn e(mfn: u64, flags: u64) -> u64 {
        (mfn << 12) | flags
    }

    impl GrantMaps for Vec<GrantMap> {
        fn for_each_map(&self, f: &mut dyn FnMut(GrantMap)) {
            for m in self {
                f(*m);
            }
        }
    }

    /// Holders a model domain keeps outside the frame table.
    #[derive(Clone, Default)]
    struct Dom {
        domid: u16,
        privileged: bool,
        live: bool,
        base: [u64; 2],
        gdt: Vec<u64>,
        special: Vec<u64>,
        maps: Vec<GrantMap>,
        pages: u64,
    }

    impl Dom {
        fn view(&self) -> DomainView<'_> {
            DomainView {
                domid: self.domid,
                privileged: self.privileged,
                base: self.base,
                gdt: &self.gdt,
                ldt: &[],
                special: &self.special,
                maps: &self.maps,
                tot_pages: Some(self.pages),
            }
        }
        fn who(&self) -> Who {
            Who::own(self.domid, self.privileged)
        }
    }

    struct Model {
        frames: Vec<PageInfo>,
        mem: Mem,
        doms: Vec<Dom>,
    }

    /// Two domains: d1 (privileged) owns 0-47, d2 owns 48-79; 80-127 free.
    /// Each has a special frame (its last).
    fn model() -> Model {
        let mut frames = std::vec![PageInfo::FREE; NR as usize];
        let mut ft = FrameTable::new(&mut frames);
        for mfn in 0..47 {
            ft.assign(mfn, 1).unwrap();
        }
        for mfn in 48..79 {
            ft.assign(mfn, 2).unwrap();
        }
        // shared_info-like frames, shared as the hypervisor shares them.
        ft.share_with_guest(47, 1).unwrap();
        ft.share_with_guest(79, 2).unwrap();
        let d1 = Dom { domid: 1, privileged: true, live: true, special: std::vec![47], pages: 47, ..Default::default() };
        let d2 = Dom { domid: 2, live: true, special: std::vec![79], pages: 31, ..Default::default() };
        Model { frames, mem: Mem::default(), doms: std::vec![d1, d2] }
    }

    fn run(m: &Model, window: usize) -> Report {
        let views: Vec<DomainView<'_>> = m.doms.iter().filter(|d| d.live).map(Dom::view).collect();
        let world = XenSlots(Domains(&views));
        let mut scratch = std::vec![Expect::ZERO; window];
        let mut r = Report::new();
        audit(&world, &m.mem, &m.frames, &mut scratch, &mut r);
        r
    }

    /// The model world, which also checks the hypervisor's L4 slots.
    struct XenSlots<'a>(Domains<'a>);

    impl World for XenSlots<'_> {
        fn for_each_domain(&self, f: &mut dyn FnMut(&DomainView<'_>)) {
            self.0.for_each_domain(f)
        }
        fn with_domain(&self, domid: u16, f: &mut dyn FnMut(&DomainView<'_>)) -> bool {
            self.0.with_domain(domid, f)
        }
        fn xen_l4_slot(&self, _idx: usize) -> Option<u64> {
            Some(XEN_SLOT_VALUE)
        }
    }

    fn assert_clean(m: &Model, what: &str) {
        let r = run(m, NR as usize);
        assert!(r.is_clean(), "{what}: {:?}", r.violations().collect::<Vec<_>>());
        // A small window must find the same (nothing).
        let r = run(m, 7);
        assert!(r.is_clean(), "{what} (window 7): {:?}", r.violations().collect::<Vec<_>>());
    }

    /// Xorshift: reproducible without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, m: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % m
        }
    }

    /// NEW_BASEPTR as `mmu.rs` does it: reference the new L4, drop the old.
    fn switch_base(m: &mut Model, d: usize, which: usize, new: u64) -> Result<(), MmError> {
        let who = m.doms[d].who();
        let mut ft = FrameTable::new(&mut m.frames);
        if new != 0 {
            ft.get_page(new, who.dom)?;
            if let Err(err) = ft.get_page_type(&mut m.mem, new, PageType::L4, who) {
                ft.put_page(new);
                return Err(err);
            }
        }
        let old = m.doms[d].base[which];
        if old != 0 {
            ft.put_page_type(&mut m.mem, old);
            ft.put_page(old);
        }
        m.doms[d].base[which] = new;
        Ok(())
    }

    /// set_gdt with one frame (0: none).
    fn set_gdt(m: &mut Model, d: usize, frame: Option<u64>) -> Result<(), MmError> {
        let who = m.doms[d].who();
        let mut ft = FrameTable::new(&mut m.frames);
        if let Some(f) = frame {
            ft.get_page(f, who.dom)?;
            if let Err(err) = ft.get_page_type(&mut m.mem, f, PageType::SegDesc, who) {
                ft.put_page(f);
                return Err(err);
            }
        }
        for f in core::mem::take(&mut m.doms[d].gdt) {
            ft.put_page_type(&mut m.mem, f);
            ft.put_page(f);
        }
        m.doms[d].gdt = frame.into_iter().collect();
        Ok(())
    }

    /// d2 maps a frame d1 granted into slot `idx` of its L1 `l1`, as
    /// `gnttab_map` does.
    fn grant_map(m: &mut Model, frame: u64, l1: u64, idx: usize, writable: bool) -> Result<(), MmError> {
        let mut ft = FrameTable::new(&mut m.frames);
        if ft.info(l1).map(|f| (f.ty, f.validated)) != Some((PageType::L1, true)) || ft.info(l1).map(|f| f.owner) != Some(2) {
            return Err(MmError::Inval);
        }
        let pte = e(frame, if writable { RW } else { RO });
        let old = m.mem.read(l1, idx);
        ft.get_entry(&mut m.mem, l1, 1, pte, Who { pg: 1, ..Who::own(2, false) })?;
        m.mem.write(l1, idx, pte);
        ft.put_entry(&mut m.mem, l1, 1, old);
        m.doms[1].maps.push(GrantMap { granter: 1, frame, writable, host: true, device: false, pte: Some((l1, idx)) });
        Ok(())
    }

    /// d2 unmaps its newest grant mapping, as `gnttab_unmap` does.
    fn grant_unmap(m: &mut Model) {
        let Some(map) = m.doms[1].maps.pop() else {
            return;
        };
        let Some((l1, idx)) = map.pte else { return };
        let cur = m.mem.read(l1, idx);
        if !PteFlags::of(cur).contains(PteFlags::PRESENT) || mfn_of(cur) != map.frame || live_level(&m.frames[l1 as usize]) != Some(1) {
            return; // replaced or devalidated since: the mapping went with it
        }
        let mut ft = FrameTable::new(&mut m.frames);
        m.mem.write(l1, idx, 0);
        ft.put_entry(&mut m.mem, l1, 1, cur);
    }

    /// Destroy d2 as `destroy_domain` does: vCPU references, then
    /// relinquish; its grant mappings go with its tables.
    fn destroy_d2(m: &mut Model) {
        for which in 0..2 {
            let _ = switch_base(m, 1, which, 0);
        }
        let _ = set_gdt(m, 1, None);
        let mut ft = FrameTable::new(&mut m.frames);
        ft.unshare(&mut m.mem, 79, 2);
        ft.relinquish(&mut m.mem, 2, |_| {}).unwrap();
        ft.take_freed(|_| {});
        m.doms[1] = Dom { domid: 2, special: std::vec![79], ..Default::default() };
    }

    /// Build d2 again from whatever of 48-79 is free.
    fn recreate_d2(m: &mut Model) {
        let mut ft = FrameTable::new(&mut m.frames);
        let mut pages = 0;
        for mfn in 48..79 {
            if ft.assign(mfn, 2).is_ok() {
                pages += 1;
            }
        }
        if ft.share_with_guest(79, 2).is_ok() {
            pages += 1;
        }
        let special = if ft.info(79).is_some_and(|f| f.owner == 2) { std::vec![79] } else { Vec::new() };
        pages -= special.len() as u64;
        m.doms[1] = Dom { domid: 2, live: true, special, pages, ..Default::default() };
    }

    fn random_op(m: &mut Model, rng: &mut Rng) {
        let d = rng.below(2) as usize;
        let who = m.doms[d].who();
        if !m.doms[d].live {
            if rng.below(8) == 0 {
                recreate_d2(m);
            }
            return;
        }
        let (own_lo, own_n) = if d == 0 { (0, 47) } else { (48, 31) };
        // Mostly one of the domain's live tables, so updates validate.
        let live: Vec<u64> = (own_lo..own_lo + own_n).filter(|&f| live_level(&m.frames[f as usize]).is_some()).collect();
        let t = if live.is_empty() || rng.below(2) == 0 { own_lo + rng.below(own_n) } else { live[rng.below(live.len() as u64) as usize] };
        let level = 1 + rng.below(4) as u8;
        match rng.below(16) {
            0 | 1 => {
                let _ = FrameTable::new(&mut m.frames).pin(&mut m.mem, t, level, who);
            }
            2 => {
                let _ = FrameTable::new(&mut m.frames).unpin(&mut m.mem, t, who);
            }
            3..=8 => {
                let idx = [0, 1, 2, 3, 300][rng.below(5) as usize];
                let tgt = rng.below(NR + 2);
                let flags = [RW, RO, RO, 0, RW | PSE, RW | 0x10][rng.below(6) as usize];
                // d1 is privileged: sometimes it maps d2's frames.
                let pg = if d == 0 && rng.below(4) == 0 { 2 } else { who.dom };
                let _ = FrameTable::new(&mut m.frames).update_entry(&mut m.mem, t, idx, e(tgt, flags), false, Who { pg, ..who });
            }
            9 => {
                let new = if rng.below(5) == 0 { 0 } else { t };
                let _ = switch_base(m, d, rng.below(2) as usize, new);
            }
            10 => {
                let _ = set_gdt(m, d, if rng.below(3) == 0 { None } else { Some(t) });
            }
            11 | 12 if d == 1 => {
                // Into one of d2's live L1s, if it has any.
                let l1s: Vec<u64> = (48..80).filter(|&f| live_level(&m.frames[f as usize]) == Some(1)).collect();
                let l1 = if l1s.is_empty() { t } else { l1s[rng.below(l1s.len() as u64) as usize] };
                let frame = rng.below(47);
                let _ = grant_map(m, frame, l1, rng.below(4) as usize, rng.below(2) == 0);
            }
            13 if d == 1 => grant_unmap(m),
            14 if d == 1 && rng.below(4) == 0 => destroy_d2(m),
            _ => {
                // A plain write into a frame (not a live table): the
                // page-table contents a later pin will validate.
                let idx = rng.below(4) as usize;
                let tgt = own_lo + rng.below(own_n);
                let _ = FrameTable::new(&mut m.frames).update_entry(&mut m.mem, t, idx, e(tgt, [RW, RO][rng.below(2) as usize]), false, who);
            }
        }
    }

    #[test]
    fn mmio_l1_entries_hold_nothing_and_only_the_privileged_domain_may_have_them() {
        let mut m = model();
        let dom0 = m.doms[0].who();
        {
            let mut ft = FrameTable::new(&mut m.frames);
            m.mem.write(10, 0, (0xfebf0 << 12) | 0x67);
            ft.pin(&mut m.mem, 10, 1, dom0).unwrap();
        }
        m.doms[0].pages = 47;
        // The pin of frame 10 is a general and a type reference the auditor
        // counts from the pinned flag; the MMIO entry adds nothing.
        assert_clean(&m, "dom0 maps a BAR frame past the frame table");
        // A domU whose L1 maps MMIO (written behind the frame table's
        // back) is reported, not counted, and nothing panics.
        let mut m = model();
        let d2 = m.doms[1].who();
        {
            let mut ft = FrameTable::new(&mut m.frames);
            ft.pin(&mut m.mem, 50, 1, d2).unwrap();
        }
        m.mem.write(50, 3, (0xfee00 << 12) | 0x25);
        let r = run(&m, NR as usize);
        assert!(r.violations().any(|v| matches!(v, Violation::Mmio { mfn: 0xfee00, dom: 2, .. })), "{:?}", r.violations().collect::<Vec<_>>());
    }

    /// A page the hypervisor shares with privileged domains (a trace
    /// buffer) holds its allocation and writable type, dom0 may map it
    /// through DOMID_XEN and the audit stays clean; a domU's L1 mapping it
    /// (written behind the frame table's back) is reported.
    #[test]
    fn xen_shared_pages_mapped_by_dom0_are_clean_and_by_a_domu_reported() {
        let mut m = model();
        let shared = (0..NR).find(|&f| m.frames[f as usize] == PageInfo::FREE).expect("a free frame");
        let dom0 = m.doms[0].who();
        {
            let mut ft = FrameTable::new(&mut m.frames);
            ft.share_with_privileged(shared).unwrap();
            m.mem.write(10, 0, e(shared, RW));
            ft.pin(&mut m.mem, 10, 1, Who { pg: XEN_SHARED, ..dom0 }).unwrap();
        }
        m.doms[0].pages = 47;
        assert_clean(&m, "dom0 maps a trace buffer page");
        let d2 = m.doms[1].who();
        {
            let mut ft = FrameTable::new(&mut m.frames);
            ft.pin(&mut m.mem, 50, 1, d2).unwrap();
        }
        m.mem.write(50, 3, e(shared, RO));
        let r = run(&m, NR as usize);
        assert!(
            r.violations().any(|v| matches!(v, Violation::NotMappable { dom: 2, owner: XEN_SHARED, .. })),
            "{:?}",
            r.violations().collect::<Vec<_>>()
        );
    }

    #[test]
    fn fresh_domains_are_clean() {
        assert_clean(&model(), "fresh");
    }

    #[test]
    fn random_operations_keep_the_audit_clean() {
        for seed in [1u64, 7, 42, 0xdead_beef, 0x1234_5678_9abc] {
            let mut m = model();
            let mut rng = Rng(seed);
            for step in 0..4000 {
                random_op(&mut m, &mut rng);
                let r = run(&m, NR as usize);
                assert!(r.is_clean(), "seed {seed} step {step}: {:?}", r.violations().collect::<Vec<_>>());
            }
            // A small window (many passes) must agree with one pass.
            assert!(run(&m, 5).is_clean());
        }
    }

    #[test]
    fn random_operations_reach_interesting_states() {
        // The random walk above is only worth something if it builds
        // hierarchies, maps grants and destroys domains with live mappings.
        let mut m = model();
        let mut rng = Rng(42);
        let (mut tables, mut grants, mut orphans, mut bases) = (0u64, 0usize, 0usize, 0usize);
        for _ in 0..2000 {
            random_op(&mut m, &mut rng);
            tables = tables.max(run(&m, NR as usize).tables);
            grants = grants.max(m.doms[1].maps.len());
            orphans = orphans.max(m.frames.iter().filter(|f| f.owner == ORPHAN).count());
            bases = bases.max(m.doms.iter().map(|d| d.base.iter().filter(|&&b| b != 0).count()).sum());
        }
        assert!(tables >= 6, "live tables {tables}");
        assert!(grants >= 2, "grant maps {grants}");
        assert!(bases >= 2, "base pointers {bases}");
        assert!(orphans >= 1, "orphaned frames {orphans}");
    }

    /// A model with d1's L4 -> L3 -> L2 -> L1 -> data hierarchy installed
    /// as its base pointer, d2's L1 pinned.
    fn built() -> Model {
        let mut m = model();
        m.mem.write(13, 0, e(14, RW));
        m.mem.write(14, 0, e(15, RW));
        m.mem.write(15, 0, e(16, RW));
        m.mem.write(16, 0, e(20, RW));
        m.mem.write(16, 1, e(16, RO));
        m.mem.write(13, 1, e(13, RO)); // linear
        switch_base(&mut m, 0, 0, 13).unwrap();
        FrameTable::new(&mut m.frames).pin(&mut m.mem, 50, 1, Who::own(2, false)).unwrap();
        assert_clean(&m, "built");
        m
    }

    fn found(r: &Report, pred: impl Fn(&Violation) -> bool) -> bool {
        r.violations().any(pred)
    }

    #[test]
    fn a_corrupted_count_is_reported() {
        let mut m = built();
        m.frames[20].count += 1;
        let r = run(&m, 9);
        assert!(found(&r, |v| *v == Violation::Count { mfn: 20, what: Counter::General, expected: 2, actual: 3 }), "{r:?}");
        m.frames[20].count -= 1;
        m.frames[15].type_count = 2;
        let r = run(&m, 64);
        assert!(found(&r, |v| matches!(v, Violation::Count { mfn: 15, what: Counter::Type, expected: 1, actual: 2 })));
        m.frames[15].type_count = 1;
        // A table pointing at itself takes nothing (Xen): linear_pt 0.
        m.frames[13].linear_pt = 1;
        let r = run(&m, 64);
        assert!(found(&r, |v| matches!(v, Violation::Count { mfn: 13, what: Counter::Linear, expected: 0, actual: 1 })));
    }

    #[test]
    fn a_writable_mapping_of_an_l1_is_reported() {
        let mut m = built();
        // Behind the frame table's back: L1 16 maps itself writable.
        m.mem.write(16, 1, e(16, RW));
        let r = run(&m, 128);
        assert!(found(&r, |v| *v == Violation::WritableTable { l1: 16, idx: 1, mfn: 16, ty: PageType::L1 }), "{r:?}");
        assert!(found(&r, |v| matches!(v, Violation::TypeConflict { mfn: 16, .. })));
    }

    #[test]
    fn a_mapping_of_another_domains_frame_is_reported() {
        let mut m = built();
        // d2's pinned L1 maps d1's frame 21 without a grant.
        m.mem.write(50, 3, e(21, RO));
        m.frames[21].count += 1;
        let r = run(&m, 128);
        assert_eq!(r.violations().copied().collect::<Vec<_>>(), [Violation::NotMappable { l1: 50, idx: 3, mfn: 21, dom: 2, owner: 1 }]);
        // With a grant mapping at that PTE it is fine.
        m.doms[1].maps.push(GrantMap { granter: 1, frame: 21, writable: false, host: true, device: false, pte: Some((50, 3)) });
        assert_clean(&m, "granted");
        // But not writable under a read-only grant.
        m.mem.write(50, 3, e(21, RW));
        m.frames[21].ty = PageType::Writable;
        m.frames[21].type_count = 1;
        let r = run(&m, 128);
        assert!(found(&r, |v| matches!(v, Violation::NotMappable { mfn: 21, .. })), "{r:?}");
    }

    #[test]
    fn an_upper_level_entry_to_another_owner_is_reported() {
        let mut m = built();
        m.mem.write(15, 5, e(50, RO));
        m.frames[50].count += 1;
        m.frames[50].type_count += 1;
        let r = run(&m, 128);
        assert!(found(&r, |v| matches!(v, Violation::CrossOwner { table: 15, idx: 5, mfn: 50, dom: 1, owner: 2 })), "{r:?}");
    }

    #[test]
    fn frames_of_a_dead_domain_and_freed_frames_still_mapped_are_reported() {
        let mut m = built();
        // d2 disappears without giving its frames back.
        m.doms[1].live = false;
        let r = run(&m, 128);
        assert!(found(&r, |v| matches!(v, Violation::DeadOwner { mfn: 48, owner: 2, count: 1 })), "{r:?}");
        // A frame freed while d1's L1 still maps it.
        let mut m = built();
        m.frames[20] = PageInfo::FREE;
        let r = run(&m, 128);
        assert!(found(&r, |v| matches!(v, Violation::NotMappable { mfn: 20, owner: NO_OWNER, .. })), "{r:?}");
        assert!(found(&r, |v| matches!(v, Violation::Count { mfn: 20, what: Counter::General, .. })));
    }

    #[test]
    fn holders_and_hypervisor_slots_are_checked() {
        let mut m = built();
        m.doms[0].base[1] = 20; // a data frame as user L4, without references
        let r = run(&m, 128);
        assert!(found(&r, |v| *v == Violation::Holder { dom: 1, mfn: 20, what: "user L4 is not a validated L4" }), "{r:?}");
        let mut m = built();
        m.mem.write(13, 260, 0);
        let r = run(&m, 128);
        assert_eq!(r.violations().copied().collect::<Vec<_>>(), [Violation::XenSlot { table: 13, idx: 260 }]);
    }

    #[test]
    fn bad_flags_and_state_are_reported() {
        let mut m = built();
        m.mem.write(15, 0, e(16, RW | PSE));
        let r = run(&m, 128);
        assert!(found(&r, |v| matches!(v, Violation::BadFlags { table: 15, level: 2, idx: 0, .. })), "{r:?}");
        let mut m = built();
        m.frames[30].ty = PageType::L2;
        let r = run(&m, 128);
        assert!(found(&r, |v| *v == Violation::State { mfn: 30, why: "a type with no type reference" }), "{r:?}");
    }

    #[test]
    fn tot_pages_is_checked() {
        let mut m = built();
        m.doms[1].pages += 1;
        let r = run(&m, 128);
        assert_eq!(r.violations().copied().collect::<Vec<_>>(), [Violation::TotPages { dom: 2, owned: 31, accounted: 32 }]);
    }

    #[test]
    fn the_report_is_bounded() {
        let mut m = model();
        for f in &mut m.frames[..48] {
            f.count += 1;
        }
        let r = run(&m, 128);
        assert_eq!(r.total, 48);
        assert_eq!(r.violations().count(), MAX_REPORTED);
    }

    #[test]
    fn violations_print_as_one_line() {
        let v = Violation::WritableTable { l1: 0x10, idx: 1, mfn: 0x10, ty: PageType::L1 };
        assert_eq!(std::format!("{v}"), "L1 0x10[1] maps mfn 0x10 writable, but it is a L1 page");
    }
}
