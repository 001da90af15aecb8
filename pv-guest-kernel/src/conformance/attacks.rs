//! Hostile-guest cases: each tries one escape from a security review of
//! xen-core (or an XSA class) and succeeds only when the hypervisor refuses
//! it the way Xen 4.17 does (Xen's errno or GNTST status, state unchanged).
//! Every case first checks that its own setup worked (the frame it aims at
//! really is another domain's, a legitimate control operation succeeds),
//! so it cannot pass by testing nothing, and it puts everything back so it
//! is safe on a fixed hypervisor and on real Xen 4.17.

use super::cases::cases;
use super::{CaseInfo, Kind};

#[cfg(target_os = "none")]
#[allow(clippy::unreadable_literal)]
mod helpers {
    use super::super::Outcome;
    pub use super::super::cases::helpers::*;
    use super::super::ctx::{all, call, check, error, expect, expect_trap, l4_mfn, mfn_of, ptr, ptr_mut, start_info};
    use crate::grants::{CopySide, GrantType, GtfFlags};
    pub use crate::traps::{Probe, probe};
    use xen_public::pte::{PteFlags, pte_maddr};

    /// A granted entry's flags word, nobody using it: read-only or not.
    const GRANTED_RO: u16 = GtfFlags::READONLY.with_type(GrantType::PermitAccess);
    const GRANTED_RW: u16 = GtfFlags::empty().with_type(GrantType::PermitAccess);

    /// DOMID_SELF.
    pub const SELF: u16 = 0x7ff0;
    /// GNTST_general_error.
    pub const GNTST_GENERAL_ERROR: i64 = -1;
    /// GNTST_bad_page.
    pub const GNTST_BAD_PAGE: i64 = -9;
    /// The hypervisor's code slot of every L4 (0xffff82d0_40000000).
    const XEN_TEXT_SLOT: usize = 261;

    pub fn read(va: u64) -> u64 {
        // SAFETY: callers pass mapped, 8-aligned addresses of ours.
        unsafe { core::ptr::read_volatile(va as *const u64) }
    }

    fn write(va: u64, v: u64) {
        // SAFETY: callers pass mapped, writable, 8-aligned addresses of ours.
        unsafe { core::ptr::write_volatile(va as *mut u64, v) }
    }

    fn fill(va: u64, v: u64) {
        for i in 0..512 {
            write(va + i * 8, v);
        }
    }

    /// The current L4's entry `i` (it is mapped read-only at pt_base).
    fn l4_entry(i: usize) -> u64 {
        read(start_info().pt_base + i as u64 * 8)
    }

    /// Copy the guest half of the running L4 into the writable page `va`
    /// (the hypervisor fills its own slots when it validates the copy).
    fn copy_guest_l4(va: u64) {
        for i in 0..512 {
            write(va + i as u64 * 8, if (256..272).contains(&i) { 0 } else { l4_entry(i) });
        }
    }

    /// Machine address of the L1 entry mapping `va`, walking the initial
    /// tables through their read-only mappings (found through the M2P).
    pub fn l1e_maddr(va: u64) -> Option<u64> {
        let mut table_va = start_info().pt_base;
        let mut mfn = 0;
        for level in (2..=4u32).rev() {
            let e = read(table_va + ((va >> (12 + 9 * (level - 1))) & 511) * 8);
            let flags = PteFlags::of(e);
            if !flags.contains(PteFlags::PRESENT) || flags.contains(PteFlags::PSE) {
                return None;
            }
            mfn = pte_maddr(e) >> 12;
            table_va = crate::notes::VIRT_BASE + crate::console::mfn_to_pfn(mfn) * 4096;
        }
        Some((mfn << 12) + ((va >> 12) & 511) * 8)
    }

    /// The L1 entry currently mapping `va` (initial region only).
    fn pte_of(va: u64) -> Option<u64> {
        let m = l1e_maddr(va)?;
        Some(read(crate::notes::VIRT_BASE + crate::console::mfn_to_pfn(m >> 12) * 4096 + (m & 0xfff)))
    }

    /// One `mmuext_op` `{cmd, arg1, arg2}`.
    fn ext(cmd: u32, arg1: u64, arg2: u64) -> MmuextOp {
        MmuextOp { cmd, _pad0: 0, arg1, arg2 }
    }

    /// `mmuext_op` INVLPG_LOCAL.
    fn invlpg(va: u64) {
        mmuext(7, va, 0, u64::from(SELF));
    }

    /// `mmuext_op` NEW_BASEPTR.
    fn new_baseptr(mfn: u64) -> i64 {
        mmuext(5, mfn, 0, u64::from(SELF))
    }

    /// A freshly created domain with one populated page: the frame the
    /// gnttab cases aim at. Dom0 maps it through `mmu_update(foreigndom)`.
    pub struct Victim {
        dom: u16,
        mfn: u64,
    }

    /// What every victim page holds.
    const VICTIM_MARK: u64 = 0x7669_6374_696d_2121;

    impl Victim {
        /// Create it, populate one page and write [`VICTIM_MARK`] into it
        /// through a foreign mapping at `window` (a spare page of ours,
        /// given back before returning); an error if any step fails.
        pub fn new(window: (u64, u64)) -> Result<Victim, Outcome> {
            let dom = create_domain(0).map_err(|e| error(format_args!("createdomain failed: {e}")))?;
            let v = Victim { dom, mfn: 0 };
            let mut extent = [0u64];
            let mm = max_mem(dom, 64);
            let pop = crate::hypercall::populate_physmap(dom, &mut extent);
            let v = Victim { mfn: extent[0], ..v };
            if mm != 0 || pop != 1 || v.mfn == 0 {
                v.destroy();
                return Err(error(format_args!("populating the victim failed: max_mem {mm}, populate {pop}")));
            }
            let seen = v.with_mapped(window, |va| {
                write(va, VICTIM_MARK);
                write(va + 8, VICTIM_MARK);
                read(va)
            });
            if seen != Some(VICTIM_MARK) {
                v.destroy();
                return Err(error(format_args!("the victim's frame could not be mapped and written: {seen:?}")));
            }
            Ok(v)
        }

        /// The victim's frame.
        pub fn mfn(&self) -> u64 {
            self.mfn
        }

        /// Run `f` with the victim's frame mapped writable at `window`,
        /// then put the window's own frame back.
        fn with_mapped<R>(&self, window: (u64, u64), f: impl FnOnce(u64) -> R) -> Option<R> {
            let (va, own) = window;
            let pte = l1e_maddr(va)?;
            let req = MmuUpdate { ptr: pte, val: (self.mfn << 12) | PTE_RW };
            let (r, _) = crate::hypercall::mmu_update(&[req], self.dom);
            invlpg(va);
            let out = (r == 0).then(|| f(va));
            writable(va, own);
            out
        }

        /// Whether the victim's page still holds [`VICTIM_MARK`] twice.
        pub fn intact(&self, window: (u64, u64)) -> bool {
            self.with_mapped(window, |va| read(va) == VICTIM_MARK && read(va + 8) == VICTIM_MARK) == Some(true)
        }

        /// Destroy the domain.
        pub fn destroy(self) {
            domctl_simple(2, self.dom);
        }
    }

    /// GNTTABOP_copy through our own grant entry that names a frame we do
    /// not own. Rule (Xen's `acquire_grant_for_copy` / `get_paged_frame`):
    /// the granting domain must own the granted frame, else GNTST_bad_page,
    /// nothing copied, and the entry is not left pinned.
    pub fn copy_through_own_gref_of_victim(into_victim: bool) -> Outcome {
        let (Some(t), Some(window), Some((own, own_m))) = (grant_table(), page(), page()) else {
            return error(format_args!("no grant table or spare pages"));
        };
        let v = match Victim::new(window) {
            Ok(v) => v,
            Err(o) => return o,
        };
        const OWN_MARK: u64 = 0x6f77_6e5f_7061_6765;
        write(own, OWN_MARK);
        let gref = if into_victim { 31 } else { 30 };
        t.grant(gref, 0, v.mfn(), !into_victim);
        let st = if into_victim {
            crate::grants::copy(CopySide::Frame(own_m, SELF), 0, CopySide::Gref(gref, SELF), 0, 8)
        } else {
            crate::grants::copy(CopySide::Gref(gref, SELF), 0, CopySide::Frame(own_m, SELF), 0, 8)
        };
        let flags = t.entry_flags(gref);
        let ended = t.end_access(gref);
        let own_after = read(own);
        let intact = v.intact(window);
        v.destroy();
        let want_flags = if into_victim { GRANTED_RW } else { GRANTED_RO };
        all(&[
            check(own_after == OWN_MARK, format_args!("read another domain's frame: got {own_after:#x}")),
            check(intact, format_args!("wrote into another domain's frame")),
            check(flags == want_flags && ended, format_args!("entry left as {flags:#x}")),
            expect(i64::from(st), GNTST_BAD_PAGE),
        ])
    }

    /// GNTTABOP_copy from our own grant entry naming a hypervisor frame:
    /// the page table behind L4 slot 256 (the read-only M2P), which every
    /// PV L4 points at. Rule as above: GNTST_bad_page, nothing copied.
    pub fn copy_through_own_gref_of_hypervisor_frame() -> Outcome {
        let (Some(t), Some((own, own_m))) = (grant_table(), page()) else {
            return error(format_args!("no grant table or spare page"));
        };
        let e = l4_entry(256);
        let xen = pte_maddr(e) >> 12;
        // Setup: present, and not one of our frames (M2P -> P2M round trip).
        let pfn = crate::console::mfn_to_pfn(xen);
        let ours = crate::mm::p2m(start_info(), pfn) == xen;
        if !PteFlags::of(e).contains(PteFlags::PRESENT) || xen == 0 || ours || xen > u64::from(u32::MAX) {
            return error(format_args!("L4 slot 256 is {e:#x} (ours: {ours})"));
        }
        const OWN_MARK: u64 = 0x6f77_6e5f_7061_6767;
        for i in 0..512 {
            write(own + i * 8, OWN_MARK);
        }
        t.grant(35, 0, xen, true);
        let st = crate::grants::copy(CopySide::Gref(35, SELF), 0, CopySide::Frame(own_m, SELF), 0, 4096);
        let flags = t.entry_flags(35);
        let ended = t.end_access(35);
        let leaked = (0..512).filter(|i| read(own + i * 8) != OWN_MARK).count();
        all(&[
            check(leaked == 0, format_args!("{leaked} words of hypervisor frame {xen:#x} copied out")),
            check(flags == GRANTED_RO && ended, format_args!("entry left as {flags:#x}")),
            expect(i64::from(st), GNTST_BAD_PAGE),
        ])
    }

    /// GNTTABOP_copy from our own grant entry naming a frame past the end
    /// of RAM: GNTST_bad_page (no page behind it to reference).
    pub fn copy_through_own_gref_past_ram() -> Outcome {
        let (Some(t), Some((own, own_m))) = (grant_table(), page()) else {
            return error(format_args!("no spare page"));
        };
        // XENMEM_maximum_ram_page: the highest RAM frame.
        let max = call(nr::MEMORY_OP, 2, 0, 0, 0, 0);
        if !(0x1000..0x100_0000).contains(&max) {
            return error(format_args!("maximum_ram_page {max}"));
        }
        let past = max as u64 + 0x10_0000;
        const OWN_MARK: u64 = 0x6f77_6e5f_7061_6766;
        write(own, OWN_MARK);
        t.grant(32, 0, past, true);
        let st = crate::grants::copy(CopySide::Gref(32, SELF), 0, CopySide::Frame(own_m, SELF), 0, 64);
        let flags = t.entry_flags(32);
        let ended = t.end_access(32);
        let own_after = read(own);
        all(&[
            check(own_after == OWN_MARK, format_args!("copied from frame {past:#x} past RAM: {own_after:#x}")),
            check(flags == GRANTED_RO && ended, format_args!("entry left as {flags:#x}")),
            expect(i64::from(st), GNTST_BAD_PAGE),
        ])
    }

    /// GNTTABOP_copy into our own grant of our own frame that is a pinned
    /// L1. Rule (`gnttab_copy_claim_buf`): the destination needs a writable
    /// type reference, which a page table cannot take: GNTST_general_error.
    pub fn copy_through_own_gref_into_pinned_l1() -> Outcome {
        let (Some(t), Some((l1, l1m)), Some((src, src_m))) = (grant_table(), page(), page()) else {
            return error(format_args!("no grant table or spare pages"));
        };
        fill(l1, 0);
        // A not-present but non-zero "entry": any change is visible, and
        // clearing it again needs no references.
        const FORGED: u64 = 0xdead_0000;
        write(src, FORGED);
        let ro = read_only(l1, l1m);
        let pinned = pin(l1m, 1);
        if ro != 0 || pinned != 0 {
            writable(l1, l1m);
            return error(format_args!("making the L1 failed: {ro} {pinned}"));
        }
        t.grant(33, 0, l1m, false);
        let st = crate::grants::copy(CopySide::Frame(src_m, SELF), 0, CopySide::Gref(33, SELF), 0, 8);
        let flags = t.entry_flags(33);
        let ended = t.end_access(33);
        let entry = read(l1);
        if entry != 0 {
            mmu1(slot(l1m, 0), 0);
        }
        let cleanup = (unpin(l1m), writable(l1, l1m));
        all(&[
            check(entry == 0, format_args!("pinned L1 entry 0 became {entry:#x}")),
            check(flags == GRANTED_RW && ended, format_args!("entry left as {flags:#x}")),
            expect(cleanup.0, 0),
            expect(cleanup.1, 0),
            expect(i64::from(st), GNTST_GENERAL_ERROR),
        ])
    }

    /// GNTTABOP_map_grant_ref with GNTMAP_device_map only, of our own grant
    /// entry naming another domain's frame: GNTST_bad_page, and the frame's
    /// bus address is not handed out.
    pub fn device_map_of_victim() -> Outcome {
        let (Some(t), Some(window)) = (grant_table(), page()) else {
            return error(format_args!("no grant table or spare page"));
        };
        let v = match Victim::new(window) {
            Ok(v) => v,
            Err(o) => return o,
        };
        t.grant(34, 0, v.mfn(), false);
        let mut m = GnttabMapGrantRef { flags: GNTMAP_DEVICE_MAP, ref_: 34, dom: 0, ..Default::default() };
        let r = crate::grants::op(core::slice::from_mut(&mut m));
        let st = m.status;
        let bus = m.dev_bus_addr;
        if r == 0 && st == 0 {
            // Undo what a vulnerable hypervisor granted.
            let mut u = GnttabUnmapGrantRef { host_addr: 0, dev_bus_addr: bus, handle: m.handle, ..Default::default() };
            crate::grants::op(core::slice::from_mut(&mut u));
        }
        let flags = t.entry_flags(34);
        let ended = t.end_access(34);
        let leaked = bus == v.mfn() << 12;
        let intact = v.intact(window);
        v.destroy();
        all(&[
            expect(r, 0),
            check(!leaked && bus == 0, format_args!("status {st}, dev_bus_addr {bus:#x} handed out")),
            check(flags == GRANTED_RW && ended, format_args!("entry left as {flags:#x}")),
            check(intact, format_args!("victim page changed")),
            expect(i64::from(st), GNTST_BAD_PAGE),
        ])
    }

    /// Two copies of the running L4: `a0` pinned, `a1` only loaded as the
    /// base pointer (unpinned, so the base pointer holds its only type
    /// reference). Runs `f(a0, a1)` on `a1`, then goes back to the boot L4.
    fn on_unpinned_l4(f: impl FnOnce((u64, u64), (u64, u64)) -> Outcome) -> Outcome {
        let (Some((a0, a0m)), Some((a1, a1m))) = (page(), page()) else {
            return error(format_args!("no spare pages"));
        };
        copy_guest_l4(a0);
        copy_guest_l4(a1);
        read_only(a0, a0m);
        read_only(a1, a1m);
        let p = pin(a0m, 4);
        let on_a1 = if p == 0 { new_baseptr(a1m) } else { -1 };
        if p != 0 || on_a1 != 0 {
            new_baseptr(l4_mfn());
            if p == 0 {
                unpin(a0m);
            }
            writable(a0, a0m);
            writable(a1, a1m);
            return error(format_args!("setup failed: pin {p}, NEW_BASEPTR {on_a1}"));
        }
        let out = f((a0, a0m), (a1, a1m));
        let back = new_baseptr(l4_mfn());
        let cleanup = [unpin(a0m), writable(a0, a0m), writable(a1, a1m)];
        all(&[out, expect(back, 0), expect(cleanup[0], 0), expect(cleanup[1], 0), expect(cleanup[2], 0)])
    }

    /// `[NEW_BASEPTR(A0), CLEAR_PAGE(A1), TLB_FLUSH_LOCAL]` while running on
    /// the unpinned L4 A1. Rule: the switch to A0 takes effect at once (Xen
    /// loads CR3 in `new_guest_cr3`), so A1 is an ordinary page by the time
    /// it is cleared: the batch succeeds and the guest runs on A0. A
    /// hypervisor that keeps running on A1 while dropping its type clears
    /// the live L4 under itself.
    pub fn clear_old_l4_in_batch() -> Outcome {
        on_unpinned_l4(|(_, a0m), (a1, a1m)| {
            let ops = [ext(5, a0m, 0), ext(16, a1m, 0), ext(6, 0, 0)];
            let mut done = 0u32;
            let r = call(nr::MMUEXT_OP, ptr(&ops), 3, ptr_mut(&mut done), u64::from(SELF), 0);
            let alive = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
            let cleared = (0..512).all(|i| read(a1 + i * 8) == 0);
            all(&[
                expect(r, 0),
                check(done == 3, format_args!("done {done}")),
                expect(alive, (4 << 16) | 17),
                check(cleared, format_args!("A1 not cleared")),
            ])
        })
    }

    /// `[NEW_BASEPTR(A0), COPY_PAGE(A1 <- S), TLB_FLUSH_LOCAL,
    /// NEW_BASEPTR(A1)]`, S being a data page with A1's guest half and no
    /// hypervisor slots. Rule: as above, A1 is no longer in use when it is
    /// overwritten, and loading it again revalidates it and refills the
    /// hypervisor slots: the guest ends on A1 with Xen's slots intact.
    pub fn copy_over_old_l4_in_batch() -> Outcome {
        let Some((s, sm)) = page() else {
            return error(format_args!("no spare page"));
        };
        copy_guest_l4(s);
        on_unpinned_l4(|(_, a0m), (a1, a1m)| {
            let ops = [ext(5, a0m, 0), ext(17, a1m, sm), ext(6, 0, 0), ext(5, a1m, 0)];
            let mut done = 0u32;
            let r = call(nr::MMUEXT_OP, ptr(&ops), 4, ptr_mut(&mut done), u64::from(SELF), 0);
            let alive = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
            // The hypervisor's text slot is the same in every L4 (others,
            // such as Xen's linear slot, are per table).
            let text = read(a1 + XEN_TEXT_SLOT as u64 * 8);
            let guest_half = (0..256).all(|i| read(a1 + i * 8) == read(s + i * 8));
            all(&[
                expect(r, 0),
                check(done == 4, format_args!("done {done}")),
                expect(alive, (4 << 16) | 17),
                check(text == l4_entry(XEN_TEXT_SLOT), format_args!("A1[261] is {text:#x}")),
                check(guest_half, format_args!("A1's guest half is not S's")),
            ])
        })
    }

    /// Multicall `[mmuext NEW_BASEPTR(A0), mmu_update A1[261] = 0,
    /// mmuext {TLB_FLUSH_LOCAL, NEW_BASEPTR(A1)}]` on the unpinned L4 A1.
    /// Rule: after the switch A1 is an ordinary page, so the update is a
    /// plain write (Xen: `get_page_type(PGT_writable_page)`), and loading
    /// A1 again revalidates it and puts the hypervisor's slot back.
    pub fn mmu_update_old_l4_xen_slot_in_multicall() -> Outcome {
        on_unpinned_l4(|(_, a0m), (a1, a1m)| {
            let to_a0 = ext(5, a0m, 0);
            let req = MmuUpdate { ptr: slot(a1m, XEN_TEXT_SLOT), val: 0 };
            let back = [ext(6, 0, 0), ext(5, a1m, 0)];
            // Results preset to -1, so an entry that never ran shows.
            let entry = |op: u64, list: u64, count: u64| MulticallEntry { op, result: u64::MAX, args: [list, count, 0, u64::from(SELF), 0, 0] };
            let mut list = [entry(nr::MMUEXT_OP, ptr(&to_a0), 1), entry(nr::MMU_UPDATE, ptr(&req), 1), entry(nr::MMUEXT_OP, ptr(&back), 2)];
            let r = call(nr::MULTICALL, ptr_mut(&mut list), 3, 0, 0, 0);
            let alive = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
            let res = list.map(|e| e.result as i64);
            let slot_back = read(a1 + XEN_TEXT_SLOT as u64 * 8);
            all(&[
                expect(r, 0),
                check(res == [0, 0, 0], format_args!("results {res:?}")),
                expect(alive, (4 << 16) | 17),
                check(slot_back == l4_entry(XEN_TEXT_SLOT), format_args!("A1[261] is {slot_back:#x}")),
            ])
        })
    }

    /// MMUEXT_NEW_BASEPTR with frame 0. Rule (`new_guest_cr3`): the frame
    /// must be an L4 of the caller's: -EINVAL (only NEW_USER_BASEPTR
    /// accepts 0).
    pub fn new_baseptr_zero() -> Outcome {
        let control = new_baseptr(l4_mfn());
        if control != 0 {
            return error(format_args!("NEW_BASEPTR of the running L4 failed: {control}"));
        }
        let r = new_baseptr(0);
        let alive = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        all(&[expect(r, -EINVAL), expect(alive, (4 << 16) | 17)])
    }

    /// A zeroed spare page pins as an L1 (the control for the retype cases).
    fn pin_control() -> Result<(), Outcome> {
        let Some((c, cm)) = page() else {
            return Err(error(format_args!("no spare page")));
        };
        fill(c, 0);
        read_only(c, cm);
        let p = pin(cm, 1);
        let u = unpin(cm);
        writable(c, cm);
        if p != 0 || u != 0 {
            return Err(error(format_args!("control: pinning a zeroed page failed: {p} {u}")));
        }
        Ok(())
    }

    /// Try to make `mfn` an L1 and a GDT frame. Rule: a frame the
    /// hypervisor shares with the domain writable (shared_info, grant
    /// frames) is permanently PGT_writable_page: both -EINVAL.
    fn retype(mfn: u64) -> (i64, i64) {
        let p = pin(mfn, 1);
        if p == 0 {
            unpin(mfn);
        }
        let frames = [mfn];
        let g = call(nr::SET_GDT, ptr(&frames), 512, 0, 0, 0);
        if g == 0 {
            call(nr::SET_GDT, ptr(&frames), 0, 0, 0, 0);
        }
        (p, g)
    }

    unsafe extern "C" {
        /// The image page the runtime maps shared_info over at boot.
        static shared_info_page: [u8; 4096];
    }

    /// PIN_L1_TABLE and set_gdt on the shared_info frame, with every
    /// writable mapping of it gone and its contents zeroed (so that only
    /// its type can refuse the retype).
    pub fn retype_shared_info() -> Outcome {
        if let Err(o) = pin_control() {
            return o;
        }
        let (Some((save, _)), Some((spare, spare_m))) = (page(), page()) else {
            return error(format_args!("no spare pages"));
        };
        let si = start_info().shared_info & !0xfff;
        let cur = crate::shared::base();
        if cur == 0 {
            return error(format_args!("shared_info not mapped"));
        }
        let boot = core::ptr::addr_of!(shared_info_page) as u64;
        let vas = [cur, boot];
        let maps = vas.map(|va| pte_of(va).is_some_and(|e| PteFlags::of(e).contains(PteFlags::PRESENT) && pte_maddr(e) == si));
        if !maps[0] {
            return error(format_args!("{cur:#x} does not map shared_info"));
        }
        // Our own writable mappings hold writable type references too, so
        // they go for the attempt and come back after it. A read-only
        // mapping (a page reference, no type reference) stays meanwhile:
        // on Xen 4.17, once an earlier case gave shared_info back
        // (`memory_op_decrease_of_shared_info_does_nothing`), the last
        // mapping's reference is all that keeps it mappable.
        let keep = uvm(spare, si | PTE_RO);
        if keep != 0 {
            writable(spare, spare_m);
            return error(format_args!("read-only mapping of shared_info: {keep}"));
        }
        for i in 0..512 {
            write(save + i * 8, read(cur + i * 8));
        }
        // Zeroed (but for vcpu_info[0].evtchn_upcall_mask), the page is a
        // valid L1 and a valid GDT: only its type can refuse the retype.
        fill(cur, 0);
        let upcall_mask = cur + (core::mem::offset_of!(SharedInfo, vcpu_info) + core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask)) as u64;
        // SAFETY: vcpu_info[0].evtchn_upcall_mask, a byte of the mapped
        // shared_info page.
        unsafe { (upcall_mask as *mut u8).write_volatile(1) };
        let mut unmapped = [0i64; 2];
        for (k, &va) in vas.iter().enumerate() {
            if maps[k] {
                unmapped[k] = uvm(va, 0);
            }
        }
        let (p, g) = retype(si >> 12);
        let mut remapped = [0i64; 2];
        for (k, &va) in vas.iter().enumerate() {
            if maps[k] {
                remapped[k] = uvm(va, si | PTE_RW);
            }
        }
        if remapped[0] == 0 {
            for i in 0..512 {
                write(cur + i * 8, read(save + i * 8));
            }
        }
        writable(spare, spare_m);
        all(&[
            check(unmapped == [0, 0], format_args!("unmapping shared_info: {unmapped:?}")),
            check(p == -EINVAL && g == -EINVAL, format_args!("PIN_L1_TABLE {p}, set_gdt {g}; want -22 for both")),
            check(remapped == [0, 0], format_args!("remapping shared_info: {remapped:?}")),
        ])
    }

    /// PIN_L1_TABLE and set_gdt on a grant-table frame (the second frame of
    /// GNTTABOP_setup_table, never mapped by us and all zero).
    pub fn retype_grant_frame() -> Outcome {
        if let Err(o) = pin_control() {
            return o;
        }
        if grant_table().is_none() {
            return error(format_args!("no grant table"));
        }
        let mut frames = [0u64; 2];
        let (r, st) = crate::hypercall::gnttab_setup_table(SELF, &mut frames);
        if r != 0 || st != 0 || frames[1] == 0 || frames[1] == frames[0] {
            return error(format_args!("setup_table of 2 frames: rc {r} status {st} frames {frames:x?}"));
        }
        let (p, g) = retype(frames[1]);
        check(p == -EINVAL && g == -EINVAL, format_args!("PIN_L1_TABLE {p}, set_gdt {g}; want -22 for both"))
    }

    /// Unmap a writable alias of page P without a TLB flush
    /// (`update_va_mapping(va, 0, UVMF_NONE)`), pin P as an L1, then write
    /// through the alias. Rule: changing a frame's type flushes the TLBs
    /// that may still map it writable (`_get_page_type`'s tlbflush filter):
    /// the write faults (#PF, not present) and the L1 is unchanged.
    pub fn stale_tlb_write_after_pin() -> Outcome {
        let (Some((p, pm)), Some((a, am)), Some((_, dm))) = (page(), page(), page()) else {
            return error(format_args!("no spare pages"));
        };
        let entry = (dm << 12) | PTE_RO;
        fill(p, 0);
        write(p, entry);
        let ro = read_only(p, pm);
        let alias = uvm(a, (pm << 12) | PTE_RW);
        if ro != 0 || alias != 0 {
            uvm(a, (am << 12) | PTE_RW);
            writable(p, pm);
            return error(format_args!("setup failed: {ro} {alias}"));
        }
        // Load a writable, dirty TLB entry for the alias.
        write(a + 8, 0);
        let seen = read(a);
        let un = call(nr::UPDATE_VA_MAPPING, a, 0, 0, 0, 0);
        let pinned = pin(pm, 1);
        let w = probe(Probe::Write, a);
        let after = read(p);
        if pinned == 0 {
            if after & !0x100 != entry {
                mmu1(slot(pm, 0), entry);
            }
            unpin(pm);
        }
        let cleanup = (uvm(a, (am << 12) | PTE_RW), writable(p, pm));
        all(&[
            check(seen == entry, format_args!("alias read {seen:#x}")),
            expect(un, 0),
            expect(pinned, 0),
            // Validation may add the global bit (Xen's adjust_guest_l1e).
            check(after & !0x100 == entry, format_args!("write through the stale TLB entry landed: L1[0] = {after:#x}")),
            expect_trap(w, 14, Some(2), 0),
            expect(cleanup.0, 0),
            expect(cleanup.1, 0),
        ])
    }

    /// Unmap our only mapping of page P without a TLB flush, give P back
    /// (XENMEM_decrease_reservation), then write through the old address.
    /// Rule: a frame that has left the domain must not stay writable
    /// through it; the write faults (#PF, not present). Xen 4.17 gets there
    /// through the CR3 reload on every return to a PV guest under XPTI
    /// (on by default on Intel, as under QEMU's Haswell model) and the
    /// filtered flush before a freed frame is reused; without XPTI (AMD)
    /// Xen itself may let this write reach the free frame before its reuse.
    pub fn stale_tlb_write_after_decrease_reservation() -> Outcome {
        let Some((a, am)) = page() else {
            return error(format_args!("no spare page"));
        };
        let before = current_reservation(SELF);
        write(a, 0x5ca1_ab1e);
        let seen = read(a);
        let un = call(nr::UPDATE_VA_MAPPING, a, 0, 0, 0, 0);
        let dec = decrease_reservation(SELF, &[am]);
        let w = probe(Probe::Write, a);
        // Take a frame back and map it where P was.
        let mut fresh = [0u64];
        let inc = increase_reservation(SELF, &mut fresh);
        let pfn = (a - crate::notes::VIRT_BASE) / 4096;
        let remap = if inc == 1 {
            crate::mm::set_p2m(start_info(), pfn, fresh[0]);
            mmu1((fresh[0] << 12) | 1, pfn);
            uvm(a, (fresh[0] << 12) | PTE_RW)
        } else {
            uvm(a, (am << 12) | PTE_RW)
        };
        let after = current_reservation(SELF);
        all(&[
            check(seen == 0x5ca1_ab1e, format_args!("setup read {seen:#x}")),
            expect(un, 0),
            expect(dec, 1),
            check(w.is_err(), format_args!("wrote frame {am:#x} through a stale TLB entry after giving it back")),
            expect_trap(w, 14, Some(2), 0),
            expect(inc, 1),
            expect(remap, 0),
            expect(after, before),
        ])
    }

    /// An L4 entry of the running L4 that points read-only at another,
    /// pinned L4 B (a linear page-table entry; B's entry 0 holds an L3 C),
    /// then UNPIN(B) and map B, and C, writable. Rule
    /// (`get_l4_linear_pagetable`): the linear entry holds a type reference
    /// on B, so unpinning only drops the pin: B stays a validated L4 and C
    /// an L3 while B is reachable, and both writable mappings are refused
    /// (-EBUSY) until the linear entry goes.
    pub fn linear_l4_entry_keeps_type() -> Outcome {
        let (Some((b, bm)), Some((c, cm))) = (page(), page()) else {
            return error(format_args!("no spare pages"));
        };
        const SLOT: usize = 1;
        if l4_entry(SLOT) != 0 {
            return error(format_args!("L4 slot {SLOT} in use"));
        }
        fill(c, 0);
        fill(b, 0);
        write(b, (cm << 12) | PTE_RW);
        read_only(c, cm);
        read_only(b, bm);
        let pinned = pin(bm, 4);
        let c_typed = writable(c, cm);
        if pinned != 0 || c_typed != -EBUSY {
            if pinned == 0 {
                unpin(bm);
            }
            writable(b, bm);
            writable(c, cm);
            return error(format_args!("setup: pin B {pinned}, C writable while B pinned {c_typed}"));
        }
        let l4 = l4_mfn();
        let link = mmu1(slot(l4, SLOT), (bm << 12) | PTE_RO).0;
        let un = unpin(bm);
        let rw_b = writable(b, bm);
        let rw_c = writable(c, cm);
        if rw_b == 0 {
            read_only(b, bm);
        }
        if rw_c == 0 {
            read_only(c, cm);
        }
        let unlink = mmu1(slot(l4, SLOT), 0).0;
        if un != 0 {
            unpin(bm);
        }
        let after = (writable(b, bm), writable(c, cm));
        all(&[
            expect(link, 0),
            expect(un, 0),
            check(rw_b != 0, format_args!("linked L4 B mapped writable after UNPIN")),
            check(rw_c != 0, format_args!("L3 under the linked L4 mapped writable after UNPIN (B devalidated)")),
            expect(rw_b, -EBUSY),
            expect(rw_c, -EBUSY),
            expect(unlink, 0),
            expect(after.0, 0),
            expect(after.1, 0),
        ])
    }

    /// A self-grant of a fresh page holding `mark`, mapped at a spare page:
    /// `(table, gref, host, host's own frame, handle)`.
    struct Mapped {
        t: crate::grants::Table,
        gref: u32,
        data: u64,
        host: (u64, u64),
        handle: u32,
    }

    const GRANT_MARK: u64 = 0x6772_616e_7465_6421;

    fn map_self_grant(gref: u32, readonly: bool) -> Result<Mapped, Outcome> {
        let (Some(t), Some((data, dm)), Some(host)) = (grant_table(), page(), page()) else {
            return Err(error(format_args!("no grant table or spare pages")));
        };
        write(data, GRANT_MARK);
        t.grant(gref, 0, dm, readonly);
        let (st, handle) = crate::grants::map(host.0, gref, 0, readonly);
        let seen = if st == 0 { read(host.0) } else { 0 };
        let busy = t.entry_gtf(gref).contains(if readonly { GtfFlags::READING } else { GtfFlags::WRITING });
        if st != 0 || seen != GRANT_MARK || !busy {
            t.end_access(gref);
            writable(host.0, host.1);
            return Err(error(format_args!("mapping the self-grant: status {st}, read {seen:#x}, busy {busy}")));
        }
        Ok(Mapped { t, gref, data, host, handle })
    }

    /// Whether `va` still shows the granted page.
    fn shows_grant(va: u64) -> bool {
        probe(Probe::Read, va).is_ok() && read(va) == GRANT_MARK
    }

    /// GNTTABOP_unmap_grant_ref of a host mapping with `host_addr` = `addr`
    /// (0, or an address that does not hold the mapping). Rule
    /// (`unmap_common`): with host_addr 0 nothing is unmapped and the call
    /// answers GNTST_okay; with an address whose PTE does not map the frame,
    /// `replace_grant_pv_mapping` answers GNTST_general_error. Either way the
    /// mapping and the pin (GTF_reading) stay, and the right unmap works.
    pub fn unmap_at_wrong_address(zero: bool) -> Outcome {
        let m = match map_self_grant(if zero { 40 } else { 41 }, true) {
            Ok(m) => m,
            Err(o) => return o,
        };
        let Some((other, other_m)) = page() else {
            return error(format_args!("no spare page"));
        };
        let st = crate::grants::unmap(if zero { 0 } else { other }, m.handle);
        let still = shows_grant(m.host.0);
        let flags = m.t.entry_flags(m.gref);
        let other_ok = read(other) != GRANT_MARK;
        let real = crate::grants::unmap(m.host.0, m.handle);
        let released = !m.t.entry_gtf(m.gref).intersects(GtfFlags::READING | GtfFlags::WRITING);
        let ended = m.t.end_access(m.gref);
        let cleanup = (writable(m.host.0, m.host.1), writable(other, other_m));
        all(&[
            expect(i64::from(st), if zero { 0 } else { GNTST_GENERAL_ERROR }),
            check(still, format_args!("the mapping went away")),
            check(!still || GtfFlags::of(flags).contains(GtfFlags::READING), format_args!("pin dropped while still mapped (flags {flags:#x})")),
            check(other_ok, format_args!("the other address shows the grant")),
            expect(i64::from(real), 0),
            check(released && ended, format_args!("grant not released by the real unmap")),
            expect(cleanup.0, 0),
            expect(cleanup.1, 0),
        ])
    }

    /// Overwrite the PTE of a writable grant mapping with `update_va_mapping`
    /// (an implicit unmap). Xen 4.17 (release build) allows it: the mapper
    /// loses the page, the grant stays pinned (GTF_writing), and the handle
    /// can no longer be unmapped at that address (GNTST_general_error). The
    /// case asserts that the granter's flags never say "free" while the
    /// mapper can still reach the frame.
    pub fn implicit_unmap_by_pte_overwrite() -> Outcome {
        let m = match map_self_grant(42, false) {
            Ok(m) => m,
            Err(o) => return o,
        };
        let ov = uvm(m.host.0, (m.host.1 << 12) | PTE_RW);
        const AFTER: u64 = 0x6166_7465_7221_2121;
        write(m.host.0, AFTER);
        let reached = read(m.data) == AFTER;
        let flags = m.t.entry_flags(m.gref);
        let st = crate::grants::unmap(m.host.0, m.handle);
        let flags_after = m.t.entry_flags(m.gref);
        let revoked = m.t.end_access(m.gref);
        all(&[
            expect(ov, 0),
            check(!reached, format_args!("the mapper still writes the granted frame")),
            check(GtfFlags::of(flags).contains(GtfFlags::WRITING), format_args!("flags {flags:#x} after the overwrite")),
            expect(i64::from(st), GNTST_GENERAL_ERROR),
            check(GtfFlags::of(flags_after).contains(GtfFlags::WRITING) && !revoked, format_args!("flags {flags_after:#x}, revoked {revoked}")),
        ])
    }

    /// EVTCHNOP_reset of a (paused) domain with an interdomain channel to
    /// dom0. Rule (`evtchn_reset` -> `evtchn_close`): closing one end of an
    /// interdomain channel makes the peer port unbound, open to the same
    /// domain.
    pub fn evtchn_reset_closes_peers() -> Outcome {
        use crate::events as ev;
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return error(format_args!("createdomain: {e}")),
        };
        let paused = domctl_simple(3, id);
        let mut a = EvtchnAllocUnbound { dom: id, remote_dom: 0, port: 0 };
        let r = ev::op(&mut a);
        let remote = a.port;
        let local = if r == 0 { ev::bind_interdomain(id, remote) } else { Err(r) };
        let Ok(local) = local else {
            domctl_simple(2, id);
            return error(format_args!("setup: pause {paused}, alloc_unbound {r}, bind {local:?}"));
        };
        // (result, status, the remote domain of an unbound or interdomain port)
        let status = |port: u32| {
            let mut st = EvtchnStatus { dom: SELF, port, ..Default::default() };
            let r = ev::op(&mut st);
            let dom = if st.status == EVTCHNSTAT_INTERDOMAIN { st.interdomain().dom } else { st.unbound().dom };
            (r, st.status, dom)
        };
        let before = status(local);
        let rr = ev::op(&mut EvtchnReset { dom: id });
        let after = status(local);
        domctl_simple(2, id);
        ev::close(local);
        all(&[
            check(before == (0, EVTCHNSTAT_INTERDOMAIN, id), format_args!("before: {before:?}")),
            expect(rr, 0),
            check(after == (0, EVTCHNSTAT_UNBOUND, id), format_args!("peer after reset (rc, status, dom) {after:?}, want unbound")),
        ])
    }

    /// MMUEXT_SET_LDT at the top of the address space with 8192 entries.
    /// Xen 4.17 only checks alignment, `__addr_ok(base)` (above the
    /// hypervisor's range is fine) and `ents <= 8192`: it answers 0 (the
    /// LDT is mapped lazily, so nothing is touched). The hypervisor must not
    /// overflow computing the end.
    pub fn set_ldt_at_the_top() -> Outcome {
        let op = ext(13, 0xffff_ffff_ffff_f000, 8192);
        let r = call(nr::MMUEXT_OP, ptr(&op), 1, 0, u64::from(SELF), 0);
        let clear = mmuext(13, 0, 0, u64::from(SELF));
        let alive = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        all(&[expect(r, 0), expect(clear, 0), expect(alive, (4 << 16) | 17)])
    }

    // ---- XSA-298: a call gate in a guest-controlled "LDT" with no LDT set.

    core::arch::global_asm!(
        r#"
        .pushsection .bss.attack_user, "aw", @nobits
        .balign 8
    attack_saved_rsp:
        .quad 0
        .popsection

        .text
        /* u64 attack_user_call(rip, rsp, arg): run user code; returns what
           attack_user_resume is given, or the error of entering. */
        .global attack_user_call
    attack_user_call:
        push %rbx
        push %rbp
        push %r12
        push %r13
        push %r14
        push %r15
        sub $8, %rsp
        mov %rsp, attack_saved_rsp(%rip)
        call {enter}
        jmp 1f
        .global attack_user_resume
    attack_user_resume:
        mov attack_saved_rsp(%rip), %rsp
        mov %rdi, %rax
    1:
        add $8, %rsp
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbp
        pop %rbx
        ret

        /* User code, position independent and within one 64-byte block:
           far call through the selector at (%rdi) (m16:32); the gate
           target reports %cs with SYSCALL instead of returning (QEMU TCG
           pushes a 32-bit frame for 64-bit gates, so no far return). */
        .balign 64
        .global attack_xsa298_user
    attack_xsa298_user:
        xor %eax, %eax
        lcall *(%rdi)
        syscall
        ud2
        .global attack_xsa298_gate_target
    attack_xsa298_gate_target:
        mov %cs, %eax
        syscall
        ud2
        "#,
        enter = sym attack_enter_user,
        options(att_syntax)
    );

    unsafe extern "C" {
        fn attack_user_call(rip: u64, rsp: u64, arg: u64) -> u64;
        fn attack_user_resume(value: u64) -> !;
        fn attack_xsa298_user();
        fn attack_xsa298_gate_target();
        fn guest_user_program();
    }

    /// Set on a trap from user mode: the value returned is this bit with
    /// the vector at 32 and the error code below.
    const TRAPPED: u64 = 1 << 63;

    fn on_user_syscall(rax: u64, _rip: u64, _cs: u64) -> ! {
        // SAFETY: back in the kernel on its bounce stack; resume the case's
        // own stack saved by `attack_user_call`.
        unsafe { attack_user_resume(rax) }
    }

    /// %cr2 of the last trap from user mode.
    static USER_CR2: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    fn on_user_trap(vector: u64, error_code: u64, cr2: u64) -> ! {
        USER_CR2.store(cr2, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: as in `on_user_syscall`.
        unsafe { attack_user_resume(TRAPPED | (vector << 32) | (error_code & 0xffff_ffff)) }
    }

    extern "C" fn attack_enter_user(rip: u64, rsp: u64, arg: u64) -> u64 {
        crate::traps::on_user_trap(on_user_trap);
        crate::traps::enter_user(rip, rsp, arg, on_user_syscall) as u64
    }

    /// Run `rip` in guest user mode (on the running L4, installed as the
    /// user base pointer) with stack `rsp` and RDI = `arg`, until it makes
    /// a SYSCALL (its RAX) or traps ([`TRAPPED`] | vector << 32 | error).
    fn run_user(rip: u64, rsp: u64, arg: u64) -> Result<u64, i64> {
        let r = mmuext(15, l4_mfn(), 0, u64::from(SELF));
        if r != 0 {
            return Err(r);
        }
        // The iret into user mode sets IF, which unmasks upcalls: mask every
        // port and clear evtchn_upcall_pending, so an event left pending by
        // an earlier case is not delivered while user code runs (the runner
        // unmasks the ports again before the next case).
        let shared = crate::shared::base();
        if shared != 0 {
            let mask = shared + core::mem::offset_of!(SharedInfo, evtchn_mask) as u64;
            for w in 0..64 {
                write(mask + w * 8, !0);
            }
            let pending = shared + (core::mem::offset_of!(SharedInfo, vcpu_info) + core::mem::offset_of!(VcpuInfo, evtchn_upcall_pending)) as u64;
            // SAFETY: vcpu_info[0].evtchn_upcall_pending, a byte of the
            // mapped shared_info page.
            unsafe { (pending as *mut u8).write_volatile(0) };
        }
        // SAFETY: the user code and stack are mapped with the user bit in
        // the running L4; every way out of user mode resumes here.
        let v = unsafe { attack_user_call(rip, rsp, arg) };
        mmuext(15, 0, 0, u64::from(SELF));
        Ok(v)
    }

    /// A 64-bit call gate to `sel:offset`, DPL 3, present: the two words.
    fn call_gate(sel: u16, offset: u64) -> [u64; 2] {
        let lo = (offset & 0xffff) | (u64::from(sel) << 16) | (0xec << 40) | (((offset >> 16) & 0xffff) << 48);
        [lo, offset >> 32]
    }

    /// XSA-298 class. With no LDT set (MMUEXT_SET_LDT never issued),
    /// guest user code far-calls through LDT selector 0x1007 while linear
    /// 0x1000 (LDT index 0x200, were the LDT at base 0) holds a read-only
    /// 64-bit call gate (DPL 3) to the flat code segment 0xe033. Rule: with
    /// no LDT the hypervisor runs the guest with a null LDTR, so the call
    /// raises #GP(0x1004), delivered to the guest kernel; reaching the gate
    /// target (which reports %cs = 0xe033) means user mode installed its own
    /// descriptors. The user code, its stack and the gate all sit below
    /// 4 GiB (0x1000 gate, 0x2000 stack, 0x3000 code) on tables of ours.
    pub fn xsa298_ldt_call_gate_without_ldt() -> Outcome {
        let (Some((g, gm)), Some((stack, stack_m)), Some((ctl_stack, _)), Some((l1, l1m)), Some((l2, l2m)), Some((l3, l3m))) =
            (page(), page(), page(), page(), page(), page())
        else {
            return error(format_args!("no spare pages"));
        };
        // Control: user mode runs and its SYSCALL comes back.
        match run_user(guest_user_program as *const () as u64, ctl_stack + 4096, 0) {
            Ok(v) if v == crate::traps::USER_SYSCALL_MAGIC => {}
            other => return error(format_args!("control user program: {other:x?}")),
        }
        if l4_entry(0) != 0 {
            return error(format_args!("L4 slot 0 in use"));
        }
        const GATE: u64 = 0x1000;
        const STACK: u64 = 0x2000;
        const CODE: u64 = 0x3000;
        let user = attack_xsa298_user as *const () as u64;
        let target = attack_xsa298_gate_target as *const () as u64;
        let code_m = mfn_of(user & !0xfff);
        fill(g, 0);
        let gate = call_gate(0xe033, CODE + (target & 0xfff));
        write(g, gate[0]);
        write(g + 8, gate[1]);
        // The m16:32 far pointer at the bottom of the user stack page:
        // offset (ignored for a gate), selector 0x1007.
        write(stack, 0x1007 << 32);
        let tables = [
            crate::mm::Table::new(l1, l1m, 1, &[(1, (gm << 12) | PTE_RO), (2, (stack_m << 12) | PTE_RW), (3, (code_m << 12) | PTE_RO)]),
            crate::mm::Table::new(l2, l2m, 2, &[(0, (l1m << 12) | PTE_RW)]),
            crate::mm::Table::new(l3, l3m, 3, &[(0, (l2m << 12) | PTE_RW)]),
        ];
        let built = tables.iter().all(Result::is_ok);
        let ro = read_only(g, gm);
        let linked = if built { mmu1(slot(l4_mfn(), 0), (l3m << 12) | PTE_RW).0 } else { -1 };
        for va in [GATE, STACK, CODE] {
            invlpg(va);
        }
        let visible = linked == 0 && probe(Probe::Read, GATE).is_ok() && read(GATE) == gate[0] && read(CODE + (user & 0xfff)) == read(user);
        let outcome = if !visible {
            error(format_args!("mapping the gate page failed: tables {built}, link {linked}, ro {ro}"))
        } else {
            match run_user(CODE + (user & 0xfff), STACK + 0x1000, STACK) {
                Ok(v) if v == TRAPPED | (13 << 32) | 0x1004 => Outcome::Success,
                Ok(0xe033) => Outcome::Failure(super::super::Message::new(format_args!("the guest's own call gate was used: %cs = 0xe033"))),
                Ok(v) if v & TRAPPED != 0 => Outcome::Failure(super::super::Message::new(format_args!(
                    "vector {} error {:#x} (cr2 {:#x}), want #GP 0x1004",
                    (v >> 32) & 0xff,
                    v & 0xffff_ffff,
                    USER_CR2.load(core::sync::atomic::Ordering::Relaxed)
                ))),
                other => Outcome::Failure(super::super::Message::new(format_args!("user code returned {other:x?}"))),
            }
        };
        if linked == 0 {
            mmu1(slot(l4_mfn(), 0), 0);
        }
        for va in [GATE, STACK, CODE] {
            invlpg(va);
        }
        for t in tables.into_iter().rev().flatten() {
            let _ = t.release();
        }
        writable(g, gm);
        outcome
    }

    // ---- Privileged instructions from guest user mode.

    core::arch::global_asm!(
        r#"
        .text
        /* User code: each reports with SYSCALL (RAX) unless it traps. */
        .balign 64
        .global attack_user_rdmsr
    attack_user_rdmsr:
        mov $0xc0000100, %ecx
        rdmsr
        mov $1, %eax
        syscall
        ud2
        .balign 64
        .global attack_user_wrmsr
    attack_user_wrmsr:
        mov $0xc0000100, %ecx
        mov %edi, %eax
        xor %edx, %edx
        wrmsr
        mov $1, %eax
        syscall
        ud2
        .balign 64
        .global attack_user_rdtsc
    attack_user_rdtsc:
        rdtsc
        mov $2, %eax
        syscall
        ud2
        .balign 64
        .global attack_user_forced_cpuid
    attack_user_forced_cpuid:
        mov $0x40000000, %eax
        xor %ecx, %ecx
        ud2
        .ascii "xen"
        cpuid
        mov %ebx, %eax
        syscall
        ud2
        "#,
        options(att_syntax)
    );

    unsafe extern "C" {
        fn attack_user_rdmsr();
        fn attack_user_wrmsr();
        fn attack_user_forced_cpuid();
        fn attack_user_rdtsc();
    }

    /// Which user program [`user_privileged`] runs.
    #[derive(Clone, Copy)]
    pub enum UserPriv {
        /// `rdmsr` of MSR_FS_BASE.
        Rdmsr,
        /// `wrmsr` of MSR_FS_BASE = 0x1000.
        Wrmsr,
        /// The forced-emulation CPUID of leaf 0x40000000 (reports EBX).
        ForcedCpuid,
        /// `rdtsc` (reports 2 when it did not trap).
        Rdtsc,
    }

    /// Run `which` in guest user mode: what it reported (RAX at its
    /// SYSCALL) or [`TRAPPED`] | vector << 32 | error code.
    pub fn user_privileged(which: UserPriv) -> Result<u64, i64> {
        let Some((stack, _)) = page() else { return Err(-1) };
        let rip = match which {
            UserPriv::Rdmsr => attack_user_rdmsr as *const () as u64,
            UserPriv::Wrmsr => attack_user_wrmsr as *const () as u64,
            UserPriv::ForcedCpuid => attack_user_forced_cpuid as *const () as u64,
            UserPriv::Rdtsc => attack_user_rdtsc as *const () as u64,
        };
        run_user(rip, stack + 4096, 0x1000)
    }

    /// CR4.TSD set by the guest kernel (`mov %cr4`, emulated) reaches the
    /// hardware, as Xen's `pv_make_cr4`: its user mode's `rdtsc` is #GP(0)
    /// (Linux's PR_SET_TSC relies on it), its kernel's is still emulated,
    /// and with TSD clear again user mode reads the TSC.
    pub fn rdtsc_from_user_under_cr4_tsd() -> Outcome {
        const GP0: u64 = TRAPPED | (13 << 32);
        const TSD: u64 = 1 << 2;
        let Ok(cr4) = crate::traps::probe(Probe::ReadCr4, 0).map(|()| crate::traps::probe_value()) else {
            return error(format_args!("mov %cr4 failed"));
        };
        let set = crate::traps::probe(Probe::WriteCr4, cr4 | TSD);
        let user = user_privileged(UserPriv::Rdtsc);
        // SAFETY: rdtsc has no side effects; under TSD it traps and the
        // hypervisor emulates it for the guest kernel.
        let (k0, k1) = unsafe { (core::arch::x86_64::_rdtsc(), core::arch::x86_64::_rdtsc()) };
        let clear = crate::traps::probe(Probe::WriteCr4, cr4 & !TSD);
        let after = user_privileged(UserPriv::Rdtsc);
        all(&[
            check(set.is_ok() && clear.is_ok(), format_args!("mov to %cr4: {set:?} {clear:?}")),
            check(user == Ok(GP0), format_args!("user rdtsc under TSD got {user:x?}, want #GP(0)")),
            check(k1 > k0 && k0 != 0, format_args!("kernel rdtsc under TSD: {k0} then {k1}")),
            check(after == Ok(2), format_args!("user rdtsc without TSD got {after:x?}")),
        ])
    }

    /// `rdmsr`/`wrmsr` from guest user mode: x86_emulate's mode_ring0()
    /// check, #GP(0) delivered to the kernel, and (for the write) the FS
    /// base unchanged.
    pub fn msr_from_user(which: UserPriv) -> Outcome {
        const GP0: u64 = TRAPPED | (13 << 32);
        let fs = crate::traps::probe(Probe::Rdmsr, 0xc000_0100).map(|()| crate::traps::probe_value());
        let r = user_privileged(which);
        let after = crate::traps::probe(Probe::Rdmsr, 0xc000_0100).map(|()| crate::traps::probe_value());
        all(&[
            check(r == Ok(GP0), format_args!("user mode got {r:x?}, want #GP(0)")),
            check(fs.is_ok() && after == fs, format_args!("FS base {fs:x?} became {after:x?}")),
        ])
    }
}

cases! {
    // First: on xen-core 46ae0ea the LDTR keeps its power-on state only
    // until the first switch back to dom0 reloads it.
    attack_xsa298_ldt_call_gate_without_ldt ("trap", "far call through LDT gate, no LDT", Attack) { xsa298_ldt_call_gate_without_ldt() }
    attack_gnttab_copy_of_unowned_frame ("grant_table_op", "GNTTABOP_copy", Attack) { copy_through_own_gref_of_victim(false) }
    attack_gnttab_copy_into_unowned_frame ("grant_table_op", "GNTTABOP_copy", Attack) { copy_through_own_gref_of_victim(true) }
    attack_gnttab_copy_of_hypervisor_frame ("grant_table_op", "GNTTABOP_copy", Attack) { copy_through_own_gref_of_hypervisor_frame() }
    attack_gnttab_copy_of_frame_past_ram ("grant_table_op", "GNTTABOP_copy", Attack) { copy_through_own_gref_past_ram() }
    attack_gnttab_copy_into_own_pinned_l1 ("grant_table_op", "GNTTABOP_copy", Attack) { copy_through_own_gref_into_pinned_l1() }
    attack_gnttab_device_map_of_unowned_frame ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) { device_map_of_victim() }
    attack_gnttab_unmap_with_host_addr_0_keeps_the_pin ("grant_table_op", "GNTTABOP_unmap_grant_ref", Attack) { unmap_at_wrong_address(true) }
    attack_gnttab_unmap_at_another_address_keeps_the_pin ("grant_table_op", "GNTTABOP_unmap_grant_ref", Attack) { unmap_at_wrong_address(false) }
    attack_gnttab_implicit_unmap_by_pte_overwrite ("grant_table_op", "GNTTABOP_unmap_grant_ref", Attack) { implicit_unmap_by_pte_overwrite() }
    attack_new_baseptr_in_batch_then_clear_old_l4 ("mmuext_op", "MMUEXT_NEW_BASEPTR, CLEAR_PAGE", Attack) { clear_old_l4_in_batch() }
    attack_new_baseptr_in_batch_then_copy_over_old_l4 ("mmuext_op", "MMUEXT_NEW_BASEPTR, COPY_PAGE", Attack) { copy_over_old_l4_in_batch() }
    attack_new_baseptr_in_multicall_then_mmu_update_old_l4_xen_slot ("multicall", "mmuext_op, mmu_update", Attack) { mmu_update_old_l4_xen_slot_in_multicall() }
    attack_new_baseptr_mfn_0 ("mmuext_op", "MMUEXT_NEW_BASEPTR", Attack) { new_baseptr_zero() }
    attack_shared_info_retyped_as_l1_or_gdt ("mmuext_op", "MMUEXT_PIN_L1_TABLE, set_gdt", Attack) { retype_shared_info() }
    attack_grant_frame_retyped_as_l1_or_gdt ("mmuext_op", "MMUEXT_PIN_L1_TABLE, set_gdt", Attack) { retype_grant_frame() }
    attack_stale_tlb_write_after_pin_l1 ("update_va_mapping", "UVMF_NONE, then PIN_L1_TABLE", Attack) { stale_tlb_write_after_pin() }
    attack_stale_tlb_write_after_decrease_reservation ("update_va_mapping", "UVMF_NONE, then decrease_reservation", Attack) { stale_tlb_write_after_decrease_reservation() }
    attack_linear_l4_entry_keeps_its_table_typed ("mmu_update", "L4 linear entry", Attack) { linear_l4_entry_keeps_type() }
    attack_evtchn_reset_closes_remote_peers ("event_channel_op", "EVTCHNOP_reset", Attack) { evtchn_reset_closes_peers() }
    attack_set_ldt_at_the_top_of_the_address_space ("mmuext_op", "MMUEXT_SET_LDT", Attack) { set_ldt_at_the_top() }
    // Port I/O emulation (emul-priv-op.c): each case raises the virtual
    // IOPL to 1 first and puts it back to 0.
    attack_rep_ins_into_read_only_page_is_write_pf ("trap", "rep insb to a read-only page, RCX 2^32", Attack) {
        let dst = start_info().pt_base;
        let before = read(dst);
        let r = set_iopl(1);
        let t = probe(Probe::RepInsbHuge, dst);
        set_iopl(0);
        let cr2 = t.err().map_or(0, |c| c.cr2);
        all(&[
            expect(r, 0),
            expect_trap(t, 14, Some(2), 15),
            check(cr2 == dst, format_args!("cr2 {cr2:#x}, want {dst:#x}")),
            check(read(dst) == before, format_args!("the read-only L4 changed")),
        ])
    }
    attack_rep_ins_to_hypervisor_address_is_gp ("trap", "rep insb to the direct map", Attack) {
        let r = set_iopl(1);
        let t = probe(Probe::RepInsbOne, XEN_VA);
        set_iopl(0);
        all(&[expect(r, 0), expect_trap(t, 13, Some(0), 10)])
    }
    attack_outs_from_noncanonical_address_is_gp ("trap", "outsb from a non-canonical address", Attack) {
        let r = set_iopl(1);
        let t = probe(Probe::OutsbOne, NONCANON);
        set_iopl(0);
        all(&[expect(r, 0), expect_trap(t, 13, Some(0), 8)])
    }
    attack_huge_rep_outs_completes_across_exits ("trap", "rep outsb of 64 KiB", Attack) {
        let src = crate::notes::VIRT_BASE;
        let r = set_iopl(1);
        let t = probe(Probe::RepOutsb64k, src);
        set_iopl(0);
        let rsi = probe_value();
        all(&[expect(r, 0), check(t.is_ok(), format_args!("trapped: {t:?}")), check(rsi == src + 0x10000, format_args!("rsi {rsi:#x}"))])
    }
    attack_port_io_on_the_hypervisors_uart_reads_all_ones ("trap", "in 0x3fd (COM1 LSR)", Attack) {
        let r = set_iopl(1);
        let t = probe(Probe::InbDx, 0x3fd);
        set_iopl(0);
        let v = probe_value();
        all(&[expect(r, 0), check(t.is_ok(), format_args!("trapped: {t:?}")), check(v == 0xff, format_args!("read {v:#x}, want 0xff"))])
    }
    attack_dom0_maps_the_local_apic_eperm ("update_va_mapping", "LAPIC frame 0xfee00", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (0xfee00 << 12) | PTE_RW);
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, -EPERM), expect(restore, 0)])
    }
    attack_rdmsr_from_guest_user_mode_is_gp ("trap", "rdmsr from user mode", Attack) { msr_from_user(UserPriv::Rdmsr) }
    attack_rdtsc_from_user_mode_under_cr4_tsd_is_gp ("trap", "CR4.TSD, rdtsc from user mode", Attack) { rdtsc_from_user_under_cr4_tsd() }
    attack_wrmsr_fs_base_from_guest_user_mode_is_gp ("trap", "wrmsr MSR_FS_BASE from user mode", Attack) { msr_from_user(UserPriv::Wrmsr) }
    attack_forced_cpuid_from_guest_user_mode_is_emulated ("cpuid", "ud2 xen cpuid from user mode", Attack) {
        // Xen's emulate_forced_invalid_op does not look at the mode (only
        // at the guest's own CPUID faulting, off here): user mode gets the
        // hypervisor leaf too.
        let r = user_privileged(UserPriv::ForcedCpuid);
        check(r == Ok(0x566e_6558), format_args!("user mode got {r:x?}, want EBX \"XenV\""))
    }
    attack_dom0_maps_the_io_apic_writable_gets_read_only ("update_va_mapping", "IOAPIC frame 0xfec00 RW", Attack) {
        // Xen 4.17 keeps the I/O APIC in mmio_ro_ranges: dom0 may map it,
        // but only ever read-only (the RW bit is dropped, the call succeeds).
        // The entry is read back through the read-only mapping of the L1
        // (no write to the I/O APIC is tried: Xen 4.17 would emulate and
        // drop it, xen-core delivers the #PF).
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (0xfec00 << 12) | PTE_RW);
        let pte = l1e_maddr(a).map_or(0, |m| read(crate::notes::VIRT_BASE + crate::console::mfn_to_pfn(m >> 12) * 4096 + (m & 0xfff)));
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[
            expect(r, 0),
            check(pte >> 12 & 0xff_ffff_ffff == 0xfec00 && pte & 2 == 0, format_args!("entry {pte:#x}: want mfn 0xfec00 without RW")),
            expect(restore, 0),
        ])
    }
}
