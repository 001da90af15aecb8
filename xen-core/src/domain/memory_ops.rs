//! `memory_op`: a domain's reservation (XENMEM_increase_reservation,
//! decrease_reservation, populate_physmap) and the size queries
//! (maximum_ram_page, current_reservation, maximum_reservation), for the
//! caller itself or, for the privileged domain (a domain builder), another
//! domain. Generic over the caller's memory ([`GuestAccess`]) and over the
//! machine ([`MemoryHost`]: other domains, and through [`FrameHost`] the
//! frame allocator, the frame table and the M2P), so decoding, errno and
//! the frame accounting are tested on the host.
//!
//! Invariants: a domain never has more than `max_pages` frames
//! (`nr_pages` counts every frame it was given, even one whose number the
//! extent list could not take); a frame is given back only by its owner,
//! only when nothing else references it (the frame table's `release`), and
//! never when it is one of the hypervisor's special frames (shared_info,
//! grant-table frames). An unprivileged domain names no other domain.
#![forbid(unsafe_code)]

use super::Domain;
use super::guest_mem::GuestAccess;
use super::host::{Domains, FrameHost};
use crate::mm::Mfn;
use xen_public::errno::{EFAULT, EINVAL, ENOSYS, EPERM, ESRCH};
use xen_public::memory::{
    XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_INCREASE_RESERVATION, XENMEM_MAXIMUM_RAM_PAGE, XENMEM_MAXIMUM_RESERVATION,
    XENMEM_POPULATE_PHYSMAP, XenMemoryDomain, XenMemoryReservation,
};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// The command bits of `memory_op`'s `cmd` (the rest, `MEMOP_EXTENT_SHIFT`
/// and up, is a continuation's start extent, which Xen keeps there).
const MEMOP_CMD_MASK: u64 = 0x3f;

/// Extents done per call at most (no continuation: the caller sees how
/// many were done and asks again for the rest).
pub const EXTENTS_PER_CALL: u64 = 512;

/// What `memory_op` needs from the machine beyond the caller's domain
/// and the frames ([`FrameHost`]).
pub trait MemoryHost: FrameHost + Domains {
    /// Frames the allocator has free.
    fn free_frames(&self) -> u64;
    /// Entries of the M2P: one past the highest machine frame.
    fn m2p_entries(&self) -> u64;
    /// Run `f` on the domain `domid`, never the caller's own (`None` if it
    /// does not exist), with the host itself for what `f` needs of it.
    fn with_domain<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self) -> R) -> Option<R>;
}

/// Whether `dom` names the caller `d` (DOMID_SELF or its own id).
fn is_self(d: &Domain, dom: u16) -> bool {
    dom == xen_public::DOMID_SELF || dom == d.domid
}

/// `memory_op(cmd, arg)` from `d`, whose memory is `mem`: reservations and
/// the physmap, in extents of order 0 (larger orders are -EINVAL here,
/// where Xen would allocate them). A frame given back must have no other
/// reference (Xen would free it when its last mapping goes).
pub fn memory_op<H: MemoryHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, cmd: u64, arg: u64) -> Ret {
    match cmd & MEMOP_CMD_MASK {
        XENMEM_MAXIMUM_RAM_PAGE => h.m2p_entries().saturating_sub(1) as i64,
        op @ (XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION) => {
            let Ok(XenMemoryDomain { domid: dom }) = mem.copy_from::<XenMemoryDomain>(arg) else { return -EFAULT };
            let pick = |o: &Domain| (if op == XENMEM_CURRENT_RESERVATION { o.nr_pages } else { o.max_pages }) as i64;
            if is_self(d, dom) {
                return pick(d);
            }
            if !d.privileged {
                return -EPERM;
            }
            h.with_domain(dom, |o, _| pick(o)).unwrap_or(-ESRCH)
        }
        op @ (XENMEM_INCREASE_RESERVATION | XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP) => {
            let Ok(r) = mem.copy_from::<XenMemoryReservation>(arg) else { return -EFAULT };
            let (list, nr, order, dom) = (r.extent_start, r.nr_extents, r.extent_order, r.domid);
            if order != 0 {
                return -EINVAL;
            }
            if is_self(d, dom) {
                return reservation(h, d, op, list, nr, mem);
            }
            // Another domain: only the privileged domain (a domain builder).
            if !d.privileged {
                return -EPERM;
            }
            h.with_domain(dom, |o, h| reservation(h, o, op, list, nr, mem)).unwrap_or(-ESRCH)
        }
        _ => -ENOSYS,
    }
}

/// Do up to `nr` extents (at most [`EXTENTS_PER_CALL`]) of a reservation
/// change `op` for `d`, with the extent list at `list` in the caller's
/// memory `mem`; returns how many were done. It stops at the first extent
/// that cannot be done.
fn reservation<H: MemoryHost>(h: &mut H, d: &mut Domain, op: u64, list: u64, nr: u64, mem: &impl GuestAccess) -> Ret {
    let mut done = 0u64;
    while done < nr && done < EXTENTS_PER_CALL {
        // A list wrapping past the top of memory faults at the wrap (as
        // the release build's arithmetic always did).
        let slot = list.wrapping_add(done * 8);
        let ok = if op == XENMEM_DECREASE_RESERVATION { give_back(h, d, mem, slot) } else { take_one(h, d, op, mem, slot) };
        if !ok {
            break;
        }
        done += 1;
    }
    done as i64
}

/// One extent of XENMEM_decrease_reservation: the frame whose number is at
/// `slot` goes back to the allocator if `d` owns it and nothing else
/// references it; `false` (stop) otherwise.
fn give_back<H: MemoryHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, slot: u64) -> bool {
    let Ok(mfn) = mem.copy_from::<u64>(slot) else { return false };
    // shared_info and grant frames are the hypervisor's to write.
    let mut pm = h.page_mem();
    let released = !d.is_special_frame(mfn) && h.with_ft(|ft, _| ft.release(&mut pm, mfn, d.domid)).unwrap_or(false);
    if !released {
        return false;
    }
    h.free_frame(Mfn(mfn));
    d.nr_pages -= 1;
    true
}

/// One extent of XENMEM_increase_reservation or populate_physmap: a new
/// frame for `d` (within `max_pages`), its number written to `slot`; for
/// populate_physmap the gfn read from `slot` goes to the M2P first.
/// `false` (stop) when it cannot be done.
fn take_one<H: MemoryHost>(h: &mut H, d: &mut Domain, op: u64, mem: &impl GuestAccess, slot: u64) -> bool {
    if d.nr_pages >= d.max_pages {
        return false;
    }
    let gpfn = if op == XENMEM_POPULATE_PHYSMAP { mem.copy_from::<u64>(slot).ok() } else { None };
    if op == XENMEM_POPULATE_PHYSMAP && gpfn.is_none() {
        return false;
    }
    let Some(mfn) = h.alloc_frame() else { return false };
    if h.with_ft(|ft, _| ft.assign(mfn.0, d.domid).is_err()).unwrap_or(true) {
        h.free_frame(mfn);
        return false;
    }
    if let Some(g) = gpfn {
        h.set_m2p(mfn, g);
    }
    // The frame is the domain's now: count it even if the list cannot
    // take its number (as Xen, which then stops, not counting the extent
    // as done), so max_mem always holds.
    d.nr_pages += 1;
    mem.write(slot, &mfn.0.to_le_bytes()).is_ok()
}

#[cfg(test)]
pub mod tests {
    //! A fake machine for `memory_op` (and, through [`FakeMachine`], for
    //! the control operations' tests): a frame table over 64 frames, a
    //! pool of free frames, an M2P and other domains by id.
    use super::*;
    use crate::domain::Guest;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::mm::page_type::tests::TestMem;
    use crate::mm::page_type::{FrameTable, PageInfo};
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    /// A frame allocator over a set of free frames, lowest first.
    #[derive(Default)]
    pub struct Pool {
        /// Free frames.
        pub free: BTreeSet<u64>,
        /// Frames given back, in order.
        pub freed: Vec<u64>,
    }

    impl Pool {
        /// The lowest free frame.
        pub fn alloc(&mut self) -> Option<Mfn> {
            self.free.pop_first().map(Mfn)
        }
        /// Give a frame back (once).
        pub fn free(&mut self, mfn: Mfn) {
            assert!(self.free.insert(mfn.0), "frame {:#x} freed twice", mfn.0);
            self.freed.push(mfn.0);
        }
        /// Frames free.
        pub fn free_count(&self) -> u64 {
            self.free.len() as u64
        }
    }

    /// Frames of the fake machine.
    pub const FRAMES: u64 = 64;

    /// The machine around the calling domain: frames, M2P, other domains.
    pub struct FakeMachine {
        /// The frame table (over leaked storage, as the live one).
        pub ft: FrameTable<'static>,
        /// Whether the frame table is locked (a second lock would deadlock
        /// on the machine).
        pub locked: bool,
        /// Page-table memory (the frame table's handles share it).
        pub mem: TestMem,
        /// The allocator.
        pub pool: Pool,
        /// M2P entries set.
        pub m2p: BTreeMap<u64, u64>,
        /// Other domains, by id.
        pub others: BTreeMap<u16, Box<Guest>>,
        /// What only the control operations' tests look at.
        pub ctl: crate::domain::control_ops::tests::Ctl,
    }

    impl Default for FakeMachine {
        fn default() -> Self {
            let frames: &'static mut [PageInfo] = Vec::leak(std::vec![PageInfo::FREE; FRAMES as usize]);
            // Frames 0-15 are the hypervisor's; the rest start free.
            let pool = Pool { free: (16..FRAMES).collect(), freed: Vec::new() };
            FakeMachine {
                ft: FrameTable::new(frames),
                locked: false,
                mem: TestMem::default(),
                pool,
                m2p: BTreeMap::new(),
                others: BTreeMap::new(),
                ctl: Default::default(),
            }
        }
    }

    impl FakeMachine {
        /// Give `n` frames from the pool to `d` (as its builder would).
        pub fn give(&mut self, d: &mut Domain, n: u64) -> Vec<u64> {
            (0..n)
                .map(|_| {
                    let mfn = self.pool.alloc().unwrap().0;
                    self.ft.assign(mfn, d.domid).unwrap();
                    d.nr_pages += 1;
                    mfn
                })
                .collect()
        }
        /// The owner of `mfn` in the frame table.
        pub fn owner(&self, mfn: u64) -> u16 {
            self.ft.info(mfn).unwrap().owner
        }
        /// Add another domain.
        pub fn add(&mut self, domid: u16, max_pages: u64) {
            let mut o = Domain::empty(domid, false, Mfn(0));
            o.max_pages = max_pages;
            self.others.insert(domid, Box::new(Guest::new(o)));
        }
        /// Another domain's state.
        pub fn other(&self, domid: u16) -> &Domain {
            &self.others[&domid].domain
        }
        /// [`MemoryHost::with_domain`] with the vCPUs: the guest is taken
        /// out of the map while `f` runs (so a nested lookup of it fails,
        /// as a held slot lock does on the live machine).
        pub fn take_guest<R>(&mut self, domid: u16, f: impl FnOnce(&mut Guest, &mut Self) -> R) -> Option<R> {
            let mut g = self.others.remove(&domid)?;
            let r = f(&mut g, self);
            self.others.insert(domid, g);
            Some(r)
        }
    }

    impl FrameHost for FakeMachine {
        type Pm = TestMem;
        fn page_mem(&self) -> TestMem {
            self.mem.clone()
        }
        fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
            assert!(!self.locked, "frame table locked twice");
            let mut ft = core::mem::replace(&mut self.ft, FrameTable::new(&mut []));
            self.locked = true;
            let r = f(&mut ft, self);
            self.locked = false;
            self.ft = ft;
            Some(r)
        }
        fn alloc_frame(&mut self) -> Option<Mfn> {
            self.pool.alloc()
        }
        fn free_frame(&mut self, mfn: Mfn) {
            self.pool.free(mfn);
        }
        fn set_m2p(&mut self, mfn: Mfn, gfn: u64) {
            self.m2p.insert(mfn.0, gfn);
        }
    }

    impl Domains for FakeMachine {
        fn exists(&self, domid: u16) -> bool {
            self.ctl.caller == Some(domid) || self.others.contains_key(&domid)
        }
        fn next_domid_from(&self, from: u16) -> Option<u16> {
            self.others.keys().copied().chain(self.ctl.caller).filter(|&id| id >= from).min()
        }
    }

    impl MemoryHost for FakeMachine {
        fn free_frames(&self) -> u64 {
            self.pool.free_count()
        }
        fn m2p_entries(&self) -> u64 {
            FRAMES
        }
        fn with_domain<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self) -> R) -> Option<R> {
            self.take_guest(domid, |g, h| f(&mut g.domain, h))
        }
    }

    const ARG: u64 = 0x1000;
    const LIST: u64 = 0x2000;
    const ME: u16 = 1;

    fn guest() -> FakeGuest {
        let g = FakeGuest::default();
        g.map(ARG);
        g.map(LIST);
        g
    }

    fn dom(privileged: bool, max_pages: u64) -> Domain {
        let mut d = Domain::empty(ME, privileged, Mfn(1));
        d.max_pages = max_pages;
        d
    }

    fn reservation_arg(g: &FakeGuest, nr: u64, order: u32, domid: u16) {
        let r = XenMemoryReservation { extent_start: LIST, nr_extents: nr, extent_order: order, mem_flags: 0, domid, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
    }

    fn list(g: &FakeGuest, n: usize) -> Vec<u64> {
        (0..n).map(|i| g.copy_from::<u64>(LIST + 8 * i as u64).unwrap()).collect()
    }

    #[test]
    fn increase_reservation_gives_frames_up_to_max_pages_and_returns_extents_done() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 3);
        reservation_arg(&g, 5, 0, xen_public::DOMID_SELF);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 3, "stops at max_pages");
        assert_eq!(d.nr_pages, 3);
        for mfn in list(&g, 3) {
            assert_eq!(h.owner(mfn), ME, "frame {mfn:#x} is the caller's");
        }
        assert!(h.m2p.is_empty(), "increase_reservation sets no M2P entry");
    }

    #[test]
    fn populate_physmap_reads_gfns_writes_mfns_and_sets_m2p() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        reservation_arg(&g, 2, 0, ME);
        g.copy_to(LIST, &[0x100u64, 0x101]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_POPULATE_PHYSMAP, ARG), 2);
        let mfns = list(&g, 2);
        assert_eq!(h.m2p.get(&mfns[0]), Some(&0x100));
        assert_eq!(h.m2p.get(&mfns[1]), Some(&0x101));
    }

    #[test]
    fn populate_physmap_with_an_unmapped_list_does_nothing() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let r = XenMemoryReservation { extent_start: 0x9000, nr_extents: 4, domid: ME, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
        let free = h.pool.free_count();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_POPULATE_PHYSMAP, ARG), 0);
        assert_eq!((d.nr_pages, h.pool.free_count()), (0, free), "no frame taken");
    }

    #[test]
    fn increase_reservation_counts_a_frame_whose_number_cannot_be_written() {
        // The list ends at an unmapped page: the second frame is the
        // domain's (counted) but not reported as done.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let r = XenMemoryReservation { extent_start: LIST + 4096 - 8, nr_extents: 4, domid: ME, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 1);
        assert_eq!(d.nr_pages, 2);
    }

    #[test]
    fn populate_physmap_with_a_list_wrapping_past_the_top_stops_at_the_wrap() {
        // Attack: an extent list whose later slots wrap to low memory the
        // guest has mapped.
        let (mut h, g) = (FakeMachine::default(), guest());
        g.map(!0xfff);
        g.map(0);
        let mut d = dom(false, 8);
        let r = XenMemoryReservation { extent_start: u64::MAX - 15, nr_extents: 3, domid: ME, ..Default::default() };
        g.copy_to(ARG, &r).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_POPULATE_PHYSMAP, ARG), 1, "the first slot only");
        assert_eq!(d.nr_pages, 1);
        assert_eq!(h.m2p.len(), 1);
    }

    #[test]
    fn extent_order_above_zero_is_einval_and_takes_nothing() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(true, 8);
        for op in [XENMEM_INCREASE_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP] {
            reservation_arg(&g, 1, 9, ME);
            assert_eq!(memory_op(&mut h, &mut d, &g, op, ARG), -EINVAL, "op {op}");
        }
        assert_eq!(d.nr_pages, 0);
    }

    #[test]
    fn huge_nr_extents_stops_after_512_per_call() {
        let (mut h, g) = (FakeMachine::default(), guest());
        // More frames than the machine has: the pool runs dry first.
        let mut d = dom(false, u64::MAX);
        reservation_arg(&g, u64::MAX, 0, ME);
        let got = memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG);
        assert_eq!(got, (FRAMES - 16) as i64, "as many as the pool had");
        assert_eq!(d.nr_pages, FRAMES - 16);
        // Decrease with a huge count: at most 512 per call, here all given.
        reservation_arg(&g, u64::MAX, 0, ME);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), (FRAMES - 16) as i64);
        assert_eq!(d.nr_pages, 0);
        assert_eq!(EXTENTS_PER_CALL, 512);
    }

    #[test]
    fn increase_reservation_of_more_than_512_extents_does_512() {
        let (mut h, g) = (FakeMachine::default(), guest());
        // A pool as large as needed, over a frame table that large.
        let frames: &'static mut [PageInfo] = Vec::leak(std::vec![PageInfo::FREE; 1024]);
        h.ft = FrameTable::new(frames);
        h.pool.free = (16..1024).collect();
        let mut d = dom(false, u64::MAX);
        for p in 0..2 {
            g.map(LIST + 4096 * p);
        }
        reservation_arg(&g, 600, 0, ME);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 512);
        assert_eq!(d.nr_pages, 512);
    }

    #[test]
    fn decrease_reservation_frees_own_unreferenced_frames() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 2);
        reservation_arg(&g, 2, 0, ME);
        g.copy_to(LIST, &[mine[0], mine[1]]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), 2);
        assert_eq!(d.nr_pages, 0);
        assert_eq!(h.pool.freed, mine);
        assert_eq!(h.owner(mine[0]), PageInfo::FREE.owner);
    }

    #[test]
    fn decrease_reservation_of_another_domains_frame_stops_and_frees_nothing() {
        // Attack: a domain lists a frame of another domain.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 1);
        h.add(2, 8);
        let mut victim = h.others.remove(&2).unwrap();
        let theirs = h.give(&mut victim.domain, 1);
        h.others.insert(2, victim);
        reservation_arg(&g, 2, 0, ME);
        g.copy_to(LIST, &[theirs[0], mine[0]]).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), 0);
        assert_eq!(h.owner(theirs[0]), 2, "the victim keeps its frame");
        assert_eq!((h.other(2).nr_pages, d.nr_pages), (1, 1));
        assert!(h.pool.freed.is_empty());
    }

    #[test]
    fn decrease_reservation_refuses_shared_info_a_referenced_frame_and_a_bad_mfn() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        let mine = h.give(&mut d, 2);
        d.shared_info = Mfn(mine[0]);
        h.ft.get_page(mine[1], ME).unwrap();
        for mfn in [mine[0], mine[1], u64::MAX, FRAMES] {
            reservation_arg(&g, 1, 0, ME);
            g.copy_to(LIST, &mfn).unwrap();
            assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_DECREASE_RESERVATION, ARG), 0, "mfn {mfn:#x}");
        }
        assert_eq!(d.nr_pages, 2);
        assert!(h.pool.freed.is_empty());
    }

    #[test]
    fn reservation_of_another_domain_from_an_unprivileged_domain_is_eperm() {
        // Attack: a domU grows or shrinks another domain.
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        h.add(2, 8);
        for op in [XENMEM_INCREASE_RESERVATION, XENMEM_DECREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP] {
            reservation_arg(&g, 1, 0, 2);
            assert_eq!(memory_op(&mut h, &mut d, &g, op, ARG), -EPERM, "op {op}");
            // An unknown domain is -EPERM too: privilege is checked first.
            reservation_arg(&g, 1, 0, 9);
            assert_eq!(memory_op(&mut h, &mut d, &g, op, ARG), -EPERM, "op {op}, unknown domain");
        }
        assert_eq!(h.other(2).nr_pages, 0);
    }

    #[test]
    fn privileged_reservation_of_another_domain_charges_it_and_unknown_is_esrch() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(true, 8);
        h.add(2, 2);
        reservation_arg(&g, 3, 0, 2);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), 2, "the target's max_pages");
        assert_eq!((h.other(2).nr_pages, d.nr_pages), (2, 0));
        assert_eq!(h.owner(list(&g, 1)[0]), 2);
        reservation_arg(&g, 1, 0, 9);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, ARG), -ESRCH);
    }

    #[test]
    fn current_and_maximum_reservation_of_self_others_and_unknown() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 7);
        h.give(&mut d, 3);
        h.add(2, 9);
        g.copy_to(ARG, &XenMemoryDomain { domid: xen_public::DOMID_SELF }).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_CURRENT_RESERVATION, ARG), 3);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RESERVATION, ARG), 7);
        g.copy_to(ARG, &XenMemoryDomain { domid: 2 }).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RESERVATION, ARG), -EPERM, "a domU asks about another");
        d.privileged = true;
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RESERVATION, ARG), 9);
        g.copy_to(ARG, &XenMemoryDomain { domid: 9 }).unwrap();
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_CURRENT_RESERVATION, ARG), -ESRCH);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_CURRENT_RESERVATION, 0x8000), -EFAULT);
    }

    #[test]
    fn maximum_ram_page_is_the_last_m2p_entry_and_ignores_its_argument() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 0);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_MAXIMUM_RAM_PAGE, 0xdead_0000), (FRAMES - 1) as i64);
    }

    #[test]
    fn unknown_memory_op_is_enosys_and_high_cmd_bits_are_ignored() {
        let (mut h, g) = (FakeMachine::default(), guest());
        let mut d = dom(false, 8);
        assert_eq!(memory_op(&mut h, &mut d, &g, 5, ARG), -ENOSYS, "XENMEM_machphys_mfn_list");
        assert_eq!(memory_op(&mut h, &mut d, &g, 0x3f, ARG), -ENOSYS);
        // A continuation's start extent in bits 6 and up: the same command.
        reservation_arg(&g, 1, 0, ME);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION | (7 << 6), ARG), 1);
        assert_eq!(memory_op(&mut h, &mut d, &g, XENMEM_INCREASE_RESERVATION, 0x8000), -EFAULT, "unmapped argument");
    }
}
