//! Memory virtualization: `update_va_mapping`, `mmuext_op`, `mmu_update`,
//! pinning, `MMUEXT_NEW_BASEPTR` and the page-table validation rules
//! (`xen/include/public/xen.h`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    // ---- update_va_mapping
    update_va_mapping_alias_own_frame ("update_va_mapping", "map RW", Accept) {
        let (Some(a), Some(b)) = (spare_page(), spare_page()) else { return error(format_args!("no spare pages")) };
        // SAFETY: both are spare pages of our own initial region.
        unsafe { core::ptr::write_volatile(b as *mut u64, 0x5eed) };
        let r = uvm(a, (mfn_of(b) << 12) | PTE_RW);
        // SAFETY: `a` is mapped (to b's frame if the call worked, its own otherwise).
        let seen = unsafe { core::ptr::read_volatile(a as *const u64) };
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), check(seen == 0x5eed, format_args!("alias read {seen:#x}")), expect(restore, 0)])
    }
    update_va_mapping_unmap_then_fault ("update_va_mapping", "unmap", Accept) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, 0);
        let fault = probe(Probe::Read, a);
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), expect_trap(fault, 14, Some(0), 0), expect(restore, 0)])
    }
    update_va_mapping_l4_read_only_ok ("update_va_mapping", "map page table RO", Accept) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (l4_mfn() << 12) | PTE_RO);
        let readable = probe(Probe::Read, a).is_ok();
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), check(readable, format_args!("RO alias of the L4 unreadable")), expect(restore, 0)])
    }
    update_va_mapping_l4_writable_refused ("update_va_mapping", "map page table RW", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (l4_mfn() << 12) | PTE_RW);
        if r == 0 { uvm(a, (mfn_of(a) << 12) | PTE_RW); }
        expect(r, -EBUSY)
    }
    update_va_mapping_high_avail_bits_ok ("update_va_mapping", "AVAIL_HIGH flags", Accept) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        expect(uvm(a, (mfn_of(a) << 12) | PTE_RW | (0x3ff << 52)), 0)
    }
    update_va_mapping_bit_62_and_cache_attrs_ok_for_dom0 ("update_va_mapping", "bit 62, PWT/PCD/PAT", Accept) {
        // Release builds of Xen leave bit 62 to guests; a domain with I/O
        // access (dom0) may set cache attributes. A different frame, so
        // Xen's same-frame fast path does not apply.
        let (Some(a), Some(b)) = (spare_page(), spare_page()) else { return error(format_args!("no spare pages")) };
        let r = uvm(a, (mfn_of(b) << 12) | PTE_RW | (1 << 62) | 0x98);
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), expect(restore, 0)])
    }
    update_va_mapping_dom0_maps_vga_mmio_ok ("update_va_mapping", "MMIO frame 0xb8 (dom0)", Accept) {
        // A frame that is not RAM (the first MiB is I/O): dom0 has I/O
        // memory permission for it; no reference is taken.
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (0xb8 << 12) | PTE_RO);
        let readable = r != 0 || probe(Probe::Read, a).is_ok();
        let restore = uvm(a, (mfn_of(a) << 12) | PTE_RW);
        all(&[expect(r, 0), check(readable, format_args!("MMIO mapping unreadable")), expect(restore, 0)])
    }
    update_va_mapping_xen_va_einval ("update_va_mapping", "Xen address", Attack) { expect(uvm(XEN_VA, 0), -EINVAL) }
    update_va_mapping_noncanonical_va_einval ("update_va_mapping", "non-canonical", Attack) { expect(uvm(NONCANON, 0), -EINVAL) }
    update_va_mapping_without_l1_einval ("update_va_mapping", "no L1", Reject) { expect(uvm(0x4000_0000, 0), -EINVAL) }
    update_va_mapping_foreign_frame_refused ("update_va_mapping", "frame not owned", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = uvm(a, (0x100 << 12) | PTE_RW);
        if r == 0 { uvm(a, (mfn_of(a) << 12) | PTE_RW); }
        expect(r, -EBUSY)
    }

    // ---- mmuext_op
    mmuext_new_user_baseptr_own_l4 ("mmuext_op", "MMUEXT_NEW_USER_BASEPTR", Accept) {
        let r = mmuext(15, l4_mfn(), 0, 0x7ff0);
        mmuext(15, 0, 0, 0x7ff0);
        expect(r, 0)
    }
    mmuext_new_user_baseptr_zero_clears ("mmuext_op", "MMUEXT_NEW_USER_BASEPTR", Accept) { expect(mmuext(15, 0, 0, 0x7ff0), 0) }
    mmuext_done_count_written ("mmuext_op", "done", Accept) {
        let ops = [MmuextOp { cmd: 15, ..Default::default() }; 2];
        let mut done = 0xffff_ffffu32;
        let r = call(nr::MMUEXT_OP, ptr(&ops), 2, ptr_mut(&mut done), 0x7ff0, 0);
        all(&[expect(r, 0), check(done == 2, format_args!("done {done}"))])
    }
    mmuext_new_user_baseptr_data_frame_refused ("mmuext_op", "MMUEXT_NEW_USER_BASEPTR", Attack) {
        let Some(a) = spare_page() else { return error(format_args!("no spare page")) };
        let r = mmuext(15, mfn_of(a), 0, 0x7ff0);
        mmuext(15, 0, 0, 0x7ff0);
        expect(r, -EINVAL)
    }
    mmuext_unmapped_ops_efault ("mmuext_op", "ops", Reject) { expect(call(nr::MMUEXT_OP, UNMAPPED, 1, 0, 0x7ff0, 0), -EFAULT) }
    mmuext_unknown_cmd_enosys ("mmuext_op", "cmd 99", Reject) { expect(mmuext(99, 0, 0, 0x7ff0), -ENOSYS) }
    mmuext_mark_super_is_gone_eopnotsupp ("mmuext_op", "MMUEXT_MARK_SUPER, MMUEXT_UNMARK_SUPER", Reject) {
        all(&[expect(mmuext(19, 0, 0, 0x7ff0), -EOPNOTSUPP), expect(mmuext(20, 0, 0, 0x7ff0), -EOPNOTSUPP)])
    }
    mmuext_unknown_foreign_domain_esrch ("mmuext_op", "foreigndom", Reject) { expect(mmuext(15, 0, 0, 0x1234), -ESRCH) }

    // ---- Memory virtualization: mmu_update, pinning, validation rules.
    mmu_update_set_entry_of_pinned_l1 ("mmu_update", "MMU_NORMAL_PT_UPDATE", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        let r0 = read_only(t, tm);
        let pinned = pin(tm, 1);
        let (r, done) = mmu1(slot(tm, 0), (dm << 12) | PTE_RW);
        let clear = mmu1(slot(tm, 0), 0).0;
        let cleanup = (unpin(tm), writable(t, tm));
        all(&[expect(r0, 0), expect(pinned, 0), expect(r, 0), check(done == 1, format_args!("done {done}")), expect(clear, 0), expect(cleanup.0, 0), expect(cleanup.1, 0)])
    }
    mmu_update_preserve_ad_ok ("mmu_update", "MMU_PT_UPDATE_PRESERVE_AD", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        read_only(t, tm);
        let pinned = pin(tm, 1);
        let r = mmu1(slot(tm, 0) | 2, (dm << 12) | PTE_RW).0;
        mmu1(slot(tm, 0), 0);
        unpin(tm);
        writable(t, tm);
        all(&[expect(pinned, 0), expect(r, 0)])
    }
    mmu_update_machphys_own_frame_ok ("mmu_update", "MMU_MACHPHYS_UPDATE", Accept) {
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let pfn = (va - crate::notes::VIRT_BASE) / 4096;
        expect(mmu1((m << 12) | 1, pfn).0, 0)
    }
    mmu_update_machphys_foreign_frame_refused ("mmu_update", "MMU_MACHPHYS_UPDATE", Attack) { expect(mmu1((0x100 << 12) | 1, 5).0, -EINVAL) }
    mmu_update_no_translate_is_normal_for_pv ("mmu_update", "MMU_PT_UPDATE_NO_TRANSLATE", Accept) {
        // ptr & 3 == 3 is MMU_PT_UPDATE_NO_TRANSLATE: a write to a writable
        // (non-table) page of the domain's own.
        let Some((va, m)) = page() else { return error(format_args!("no spare page")) };
        let r = mmu1((m << 12) | 3, 0x77).0;
        // SAFETY: our own spare page.
        let v = unsafe { core::ptr::read_volatile(va as *const u64) };
        all(&[expect(r, 0), check(v == 0x77, format_args!("page holds {v:#x}"))])
    }
    mmu_update_unmapped_requests_efault ("mmu_update", "reqs", Reject) { expect(call(nr::MMU_UPDATE, UNMAPPED, 1, 0, 0x7ff0, 0), -EFAULT) }
    mmu_update_unknown_foreign_domain_esrch ("mmu_update", "foreigndom", Reject) {
        let req = MmuUpdate::default();
        expect(call(nr::MMU_UPDATE, ptr(&req), 1, 0, 0x1234, 0), -ESRCH)
    }
    mmu_update_own_domid_as_foreigndom_esrch ("mmu_update", "foreigndom", Reject) {
        // The suite runs in dom0: naming itself by number, not DOMID_SELF.
        let req = MmuUpdate::default();
        let mut done = 0u32;
        expect(call(nr::MMU_UPDATE, ptr(&req), 1, ptr_mut(&mut done), 0, 0), -ESRCH)
    }
    mmu_update_long_batch_preempted_and_resumed ("mmu_update", "2048-entry batch", Accept) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        read_only(t, tm);
        if pin(tm, 1) != 0 { writable(t, tm); return error(format_args!("pin failed")); }
        let mut reqs = [MmuUpdate::default(); 2048];
        for (i, r) in reqs.iter_mut().enumerate() {
            *r = MmuUpdate { ptr: slot(tm, i % 512), val: if i % 2 == 0 { (dm << 12) | PTE_RO } else { 0 } };
        }
        let (rc, done) = crate::mm::mmu_update(&reqs);
        unpin(tm);
        writable(t, tm);
        all(&[expect(rc, 0), check(done == 2048, format_args!("done {done}"))])
    }
    pin_l1_then_unpin_ok ("mmuext_op", "MMUEXT_PIN_L1_TABLE", Accept) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        let p = pin(tm, 1);
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(u, 0)])
    }
    pin_twice_einval ("mmuext_op", "MMUEXT_PIN_L1_TABLE", Reject) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        pin(tm, 1);
        let again = pin(tm, 1);
        unpin(tm);
        writable(t, tm);
        expect(again, -EINVAL)
    }
    unpin_unpinned_einval ("mmuext_op", "MMUEXT_UNPIN_TABLE", Reject) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        let r = unpin(tm);
        writable(t, tm);
        expect(r, -EINVAL)
    }
    pin_frame_with_writable_mapping_refused ("mmuext_op", "MMUEXT_PIN_L1_TABLE", Attack) {
        let Some((_, tm)) = page() else { return error(format_args!("no spare page")) };
        let r = pin(tm, 1);
        if r == 0 { unpin(tm); }
        expect(r, -EINVAL)
    }
    pinned_l1_made_writable_refused ("update_va_mapping", "map pinned L1 RW", Attack) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        pin(tm, 1);
        let r = writable(t, tm);
        unpin(tm);
        writable(t, tm);
        expect(r, -EBUSY)
    }
    pse_in_l2_refused ("mmuext_op", "MMUEXT_PIN_L2_TABLE", Attack) {
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        // SAFETY: a spare, still-writable page of ours.
        unsafe { core::ptr::write_volatile(t as *mut u64, (dm << 12) | PTE_RW | 0x80) };
        read_only(t, tm);
        let r = pin(tm, 2);
        if r == 0 { unpin(tm); }
        writable(t, tm);
        // SAFETY: as above, writable again.
        unsafe { core::ptr::write_volatile(t as *mut u64, 0) };
        expect(r, -EINVAL)
    }
    l1_mapping_foreign_frame_refused ("mmu_update", "MMU_NORMAL_PT_UPDATE", Attack) {
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        pin(tm, 1);
        let r = mmu1(slot(tm, 0), (0x100 << 12) | PTE_RW).0;
        unpin(tm);
        writable(t, tm);
        expect(r, -EBUSY)
    }
    hypervisor_l4_slot_write_refused ("mmu_update", "L4 slot 256-271", Attack) {
        let l4 = l4_mfn();
        all(&[expect(mmu1(slot(l4, 256), 0).0, -EINVAL), expect(mmu1(slot(l4, 262), 0).0, -EINVAL), expect(mmu1(slot(l4, 271), 0).0, -EINVAL)])
    }
    writable_self_map_refused ("mmu_update", "L4 self-map RW", Attack) {
        let l4 = l4_mfn();
        let r = mmu1(slot(l4, 1), (l4 << 12) | PTE_RW).0;
        if r == 0 { mmu1(slot(l4, 1), 0); }
        expect(r, -EINVAL)
    }
    read_only_self_map_ok ("mmu_update", "L4 self-map RO", Accept) {
        let l4 = l4_mfn();
        let r = mmu1(slot(l4, 1), (l4 << 12) | PTE_RO).0;
        let clear = mmu1(slot(l4, 1), 0).0;
        all(&[expect(r, 0), expect(clear, 0)])
    }
    l2_linear_entry_read_only_ok_writable_refused ("mmu_update", "L2 linear entry", Attack) {
        // An L2 entry pointing at an L2 (its own frame): a linear mapping,
        // which Xen allows read-only only.
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        read_only(t, tm);
        let p = pin(tm, 2);
        let rw = mmu1(slot(tm, 5), (tm << 12) | PTE_RW).0;
        let ro = mmu1(slot(tm, 5), (tm << 12) | PTE_RO).0;
        let clear = mmu1(slot(tm, 5), 0).0;
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(rw, -EINVAL), expect(ro, 0), expect(clear, 0), expect(u, 0)])
    }
    l3_entry_to_a_data_frame_refused ("mmu_update", "L3 entry to data", Attack) {
        // Making a writable data page an L2 through an L3 entry would let
        // the guest write page-table entries: refused.
        let (Some((t, tm)), Some((_, dm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        read_only(t, tm);
        let p = pin(tm, 3);
        let r = mmu1(slot(tm, 0), (dm << 12) | PTE_RW).0;
        if r == 0 { mmu1(slot(tm, 0), 0); }
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(r, -EINVAL), expect(u, 0)])
    }
    new_baseptr_to_data_frame_refused ("mmuext_op", "MMUEXT_NEW_BASEPTR", Attack) {
        let Some((_, m)) = page() else { return error(format_args!("no spare page")) };
        expect(mmuext(5, m, 0, 0x7ff0), -EINVAL)
    }
    new_baseptr_current_l4_ok ("mmuext_op", "MMUEXT_NEW_BASEPTR", Accept) { expect(mmuext(5, l4_mfn(), 0, 0x7ff0), 0) }
    new_baseptr_to_a_fresh_l4_and_back ("mmuext_op", "MMUEXT_NEW_BASEPTR", Accept) {
        // A copy of the guest half of the current L4 (the hypervisor fills
        // its own slots when it validates), pinned, switched to, used, and
        // switched away from.
        let Some((t, tm)) = page() else { return error(format_args!("no spare page")) };
        let cur = start_info().pt_base as *const u64;
        for i in (0..512).filter(|i| !(256..272).contains(i)) {
            // SAFETY: the current L4 is mapped read-only in our region and
            // `t` is a spare writable page.
            unsafe { core::ptr::write_volatile((t as *mut u64).add(i), core::ptr::read_volatile(cur.add(i))) };
        }
        read_only(t, tm);
        let p = pin(tm, 4);
        let sw = if p == 0 { mmuext(5, tm, 0, 0x7ff0) } else { -1 };
        let v = call(nr::XEN_VERSION, 0, 0, 0, 0, 0);
        let back = mmuext(5, l4_mfn(), 0, 0x7ff0);
        let u = unpin(tm);
        writable(t, tm);
        all(&[expect(p, 0), expect(sw, 0), expect(v, (4 << 16) | 17), expect(back, 0), expect(u, 0)])
    }
    tlb_flush_and_invlpg_ok ("mmuext_op", "TLB flushes", Accept) {
        all(&[expect(mmuext(6, 0, 0, 0x7ff0), 0), expect(mmuext(10, 0, 0, 0x7ff0), 0), expect(mmuext(7, 0x1000, 0, 0x7ff0), 0), expect(mmuext(7, NONCANON, 0, 0x7ff0), 0)])
    }
    copy_and_clear_page_ok ("mmuext_op", "MMUEXT_COPY_PAGE, CLEAR_PAGE", Accept) {
        let (Some((a, am)), Some((b, bm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
        // SAFETY: spare, writable pages of ours.
        unsafe { core::ptr::write_volatile(a as *mut u64, 0xc0fe) };
        let op = MmuextOp { cmd: 17, _pad0: 0, arg1: bm, arg2: am };
        let c = call(nr::MMUEXT_OP, ptr(&op), 1, 0, 0x7ff0, 0);
        // SAFETY: as above.
        let copied = unsafe { core::ptr::read_volatile(b as *const u64) };
        let z = mmuext(16, bm, 0, 0x7ff0);
        // SAFETY: as above.
        let cleared = unsafe { core::ptr::read_volatile(b as *const u64) };
        all(&[expect(c, 0), check(copied == 0xc0fe, format_args!("copied {copied:#x}")), expect(z, 0), check(cleared == 0, format_args!("not cleared"))])
    }
    clear_page_of_a_page_table_refused ("mmuext_op", "MMUEXT_CLEAR_PAGE", Attack) { expect(mmuext(16, l4_mfn(), 0, 0x7ff0), -EINVAL) }
}
