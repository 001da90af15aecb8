//! Grant tables: `grant_table_op` (`xen/include/public/grant_table.h`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    gnttab_query_size_ok ("grant_table_op", "GNTTABOP_query_size", Accept) {
        let mut q = GnttabQuerySize { dom: 0x7ff0, ..Default::default() };
        let r = crate::grants::op(core::slice::from_mut(&mut q));
        all(&[expect(r, 0), check(q.status == 0, format_args!("status {}", q.status)), check(q.max_nr_frames >= 1, format_args!("max_nr_frames {}", q.max_nr_frames))])
    }
    gnttab_setup_table_one_frame ("grant_table_op", "GNTTABOP_setup_table", Accept) { check(grant_table().is_some(), format_args!("setup_table or mapping the frame failed")) }
    gnttab_setup_table_too_many_frames ("grant_table_op", "GNTTABOP_setup_table", Reject) {
        // 100000 frames asked for, room for 4: the hypervisor must refuse
        // before writing the list.
        let mut frames = [0u64; 4];
        let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 100_000, frame_list: ptr_mut(&mut frames), ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
        all(&[expect(r, 0), expect(i64::from(s.status), -1)])
    }
    gnttab_transfer_to_self_through_an_accepting_entry ("grant_table_op", "GNTTABOP_transfer", Accept) {
        use crate::grants::{GtfFlags, transfer};
        let (Some(t), Some((va, m))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        // Only the allocation may reference a transferred frame: unmap it.
        let un = uvm(va, 0);
        t.accept_transfer(20, 0, 0x1234);
        let (r, st) = transfer(m, 0, 20);
        let flags = t.entry_flags(20);
        let frame = t.entry_frame(20);
        let remap = uvm(va, (m << 12) | PTE_RW);
        t.end_access(20);
        all(&[
            expect(un, 0),
            expect(r, 0),
            expect(i64::from(st), 0),
            check(GtfFlags::of(flags).contains(GtfFlags::TRANSFER_COMMITTED | GtfFlags::TRANSFER_COMPLETED), format_args!("flags {flags:#x}")),
            check(u64::from(frame) == m, format_args!("entry frame {frame:#x}, want {m:#x}")),
            expect(remap, 0),
        ])
    }
    gnttab_transfer_of_a_mapped_frame_is_bad_page ("grant_table_op", "GNTTABOP_transfer", Reject) {
        let (Some(t), Some((va, m))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        t.accept_transfer(21, 0, 0);
        // Still mapped at `va`: more than the allocation references it.
        let (r, st) = crate::grants::transfer(m, 0, 21);
        let still_ours = uvm(va, (m << 12) | PTE_RW);
        t.end_access(21);
        all(&[expect(r, 0), expect(i64::from(st), -9), expect(still_ours, 0)])
    }
    gnttab_transfer_without_an_accepting_entry_fails ("grant_table_op", "GNTTABOP_transfer", Reject) {
        let (Some(t), Some((va, m))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        let un = uvm(va, 0);
        // Entry 22 permits access instead of accepting a transfer: the
        // frame is given up and lost, as in Xen.
        t.grant(22, 0, m, false);
        let (r, st) = crate::grants::transfer(m, 0, 22);
        let flags = t.entry_flags(22);
        t.end_access(22);
        // Take a frame back so dom0's reservation is whole again.
        let mut fresh = [0u64];
        let got = increase_reservation(0x7ff0, &mut fresh);
        let remap = if got == 1 { uvm(va, (fresh[0] << 12) | PTE_RW) } else { -1 };
        all(&[
            expect(un, 0),
            expect(r, 0),
            expect(i64::from(st), -1),
            check(flags == crate::grants::GtfFlags::empty().with_type(crate::grants::GrantType::PermitAccess), format_args!("flags {flags:#x}")),
            expect(got, 1),
            expect(remap, 0),
        ])
    }
    gnttab_self_grant_maps_reads_and_unmaps ("grant_table_op", "GNTTABOP_map_grant_ref", Accept) {
        let (Some(t), Some((data, dm)), Some((host, hm))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        // SAFETY: a spare writable page of ours.
        unsafe { core::ptr::write_volatile(data as *mut u64, 0x9a17) };
        t.grant(10, 0, dm, true);
        let (st, h) = crate::grants::map(host, 10, 0, true);
        // SAFETY: `host` is mapped to the granted frame if the map worked.
        let seen = if st == 0 { unsafe { core::ptr::read_volatile(host as *const u64) } } else { 0 };
        let busy = t.entry_gtf(10).contains(crate::grants::GtfFlags::READING);
        let revoke_while_mapped = t.end_access(10);
        let u = if st == 0 { crate::grants::unmap(host, h) } else { -1 };
        let released = !t.entry_gtf(10).intersects(crate::grants::GtfFlags::READING | crate::grants::GtfFlags::WRITING);
        let ended = t.end_access(10);
        writable(host, hm);
        all(&[
            expect(i64::from(st), 0),
            check(seen == 0x9a17, format_args!("read {seen:#x} through the grant")),
            check(busy, format_args!("GTF_reading not set while mapped")),
            check(!revoke_while_mapped, format_args!("revoked while mapped")),
            expect(i64::from(u), 0),
            check(released, format_args!("flags not cleared by unmap")),
            check(ended, format_args!("end_access failed after unmap")),
        ])
    }
    gnttab_writable_self_grant_sets_writing ("grant_table_op", "GNTTABOP_map_grant_ref", Accept) {
        let (Some(t), Some((_, dm)), Some((host, hm))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        t.grant(11, 0, dm, false);
        let (st, h) = crate::grants::map(host, 11, 0, false);
        let writing = t.entry_gtf(11).contains(crate::grants::GtfFlags::WRITING);
        let u = if st == 0 { crate::grants::unmap(host, h) } else { -1 };
        t.end_access(11);
        writable(host, hm);
        all(&[expect(i64::from(st), 0), check(writing, format_args!("GTF_writing not set")), expect(i64::from(u), 0)])
    }
    gnttab_map_wrong_domid_fails ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(t), Some((_, dm)), Some((host, _))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        t.grant(12, 5, dm, true);
        let (st, _) = crate::grants::map(host, 12, 0, true);
        t.end_access(12);
        expect(i64::from(st), -1)
    }
    gnttab_map_ref_past_the_table_end ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(_), Some((host, _))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 0x10_0000, 0, true).0), -3)
    }
    gnttab_writable_map_of_readonly_grant_fails ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(t), Some((_, dm)), Some((host, _))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        t.grant(13, 0, dm, true);
        let (st, _) = crate::grants::map(host, 13, 0, false);
        t.end_access(13);
        expect(i64::from(st), -1)
    }
    gnttab_map_unknown_domain ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) {
        let (Some(_), Some((host, _))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 1, 0x1234, true).0), -2)
    }
    gnttab_map_with_domid_self_is_bad_domain ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) {
        // Mapping names the granting domain by its real id.
        let (Some(_), Some((host, _))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 1, 0x7ff0, true).0), -2)
    }
    gnttab_map_without_host_or_device_flag ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) {
        let mut m = GnttabMapGrantRef { host_addr: 0x4000_0000, flags: GNTMAP_APPLICATION_MAP, ref_: 1, dom: 0x7ff0, ..Default::default() };
        let r = crate::grants::op(core::slice::from_mut(&mut m));
        all(&[expect(r, 0), expect(i64::from(m.status), -3)])
    }
    gnttab_unmap_bad_handle ("grant_table_op", "GNTTABOP_unmap_grant_ref", Reject) {
        let _ = grant_table();
        expect(i64::from(crate::grants::unmap(0x4000_0000, 200)), -4)
    }
    gnttab_copy_grant_to_frame ("grant_table_op", "GNTTABOP_copy", Accept) {
        use crate::grants::CopySide;
        let (Some(t), Some((src, sm)), Some((dst, dm))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        // SAFETY: spare writable pages of ours.
        unsafe {
            core::ptr::write_volatile((src + 16) as *mut u64, 0x00c0_ffee);
            core::ptr::write_volatile((dst + 8) as *mut u64, 0);
        }
        t.grant(14, 0, sm, true);
        let st = crate::grants::copy(CopySide::Gref(14, 0x7ff0), 16, CopySide::Frame(dm, 0x7ff0), 8, 8);
        t.end_access(14);
        // SAFETY: as above.
        let v = unsafe { core::ptr::read_volatile((dst + 8) as *const u64) };
        all(&[expect(i64::from(st), 0), check(v == 0x00c0_ffee, format_args!("copied {v:#x}"))])
    }
    gnttab_copy_past_the_page_end ("grant_table_op", "GNTTABOP_copy", Reject) {
        use crate::grants::CopySide;
        let (Some(_), Some((_, a)), Some((_, b))) = (grant_table(), page(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::copy(CopySide::Frame(a, 0x7ff0), 4000, CopySide::Frame(b, 0x7ff0), 0, 200)), -10)
    }
    gnttab_copy_into_a_page_table_refused ("grant_table_op", "GNTTABOP_copy", Attack) {
        use crate::grants::CopySide;
        let (Some(_), Some((_, a))) = (grant_table(), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::copy(CopySide::Frame(a, 0x7ff0), 0, CopySide::Frame(l4_mfn(), 0x7ff0), 0, 8)), -1)
    }
    gnttab_get_version_is_1 ("grant_table_op", "GNTTABOP_get_version", Accept) {
        let mut v = GnttabGetVersion { dom: 0x7ff0, pad: 0, version: 0 };
        let r = crate::grants::op(core::slice::from_mut(&mut v));
        all(&[expect(r, 0), expect(i64::from(v.version), 1)])
    }
    gnttab_set_version_1_ok ("grant_table_op", "GNTTABOP_set_version", Accept) {
        expect(crate::grants::op(&mut [GnttabSetVersion { version: 1 }]), 0)
    }
    gnttab_dump_table_ok ("grant_table_op", "GNTTABOP_dump_table", Accept) {
        let _ = grant_table();
        let mut d = GnttabDumpTable { dom: 0x7ff0, status: -1 };
        let r = crate::grants::op(core::slice::from_mut(&mut d));
        all(&[expect(r, 0), expect(i64::from(d.status), 0)])
    }
    gnttab_unmapped_op_array_efault ("grant_table_op", "GNTTABOP_map_grant_ref", Reject) { expect(call(nr::GRANT_TABLE_OP, 0, UNMAPPED, 1, 0, 0), -EFAULT) }
    gnttab_unknown_cmd_enosys ("grant_table_op", "cmd 99", Reject) { expect(call(nr::GRANT_TABLE_OP, 99, UNMAPPED, 1, 0, 0), -ENOSYS) }
}
