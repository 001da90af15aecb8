//! Grant tables past their first frame: Xen 4.17's default maximum of 64
//! frames (`gnttab_max_frames`), growth on demand by GNTTABOP_setup_table
//! (`gnttab_grow_table`), and setup_table's and query_size's argument
//! checks (`count != 1`, the frame list's address).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    gnttab_query_size_max_is_64_frames ("grant_table_op", "GNTTABOP_query_size", Accept) {
        let mut q = GnttabQuerySize { dom: 0x7ff0, ..Default::default() };
        let r = crate::grants::op(core::slice::from_mut(&mut q));
        all(&[expect(r, 0), expect(i64::from(q.status), 0), expect(i64::from(q.max_nr_frames), 64)])
    }
    gnttab_setup_table_grows_to_64_frames ("grant_table_op", "GNTTABOP_setup_table", Accept) {
        let Some(t0) = super::first_frame() else { return error(format_args!("setup of one frame failed")) };
        let mut frames = [0u64; 64];
        let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 64, frame_list: ptr_mut(&mut frames), status: 77, ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
        let mut q = GnttabQuerySize { dom: 0x7ff0, ..Default::default() };
        let rq = crate::grants::op(core::slice::from_mut(&mut q));
        let mut sorted = frames;
        sorted.sort_unstable();
        let distinct = sorted.windows(2).all(|w| w[0] != w[1]) && sorted[0] != 0;
        all(&[
            expect(r, 0),
            expect(i64::from(s.status), 0),
            check(frames[0] == t0, format_args!("frame 0 moved: {:#x}, was {t0:#x}", frames[0])),
            check(distinct, format_args!("frames not distinct: {:#x} {:#x}", frames[1], frames[63])),
            expect(rq, 0),
            expect(i64::from(q.nr_frames), 64),
        ])
    }
    gnttab_map_a_grant_in_the_64th_frame ("grant_table_op", "GNTTABOP_map_grant_ref", Accept) {
        let (Some(last), Some((tva, _)), Some((data, dm)), Some((host, hm))) = (super::frame_of(63), page(), page(), page()) else {
            return error(format_args!("setup failed"));
        };
        let remap = writable(tva, last);
        if remap != 0 {
            return error(format_args!("mapping grant frame 63 failed: {remap}"));
        }
        let gref = 64 * 512 - 1;
        // SAFETY: spare writable pages of ours; the table frame is mapped
        // at `tva` and entry 511 is its last 8 bytes.
        let flags = unsafe {
            core::ptr::write_volatile(data as *mut u64, 0x6464);
            let e = tva + 511 * 8;
            core::ptr::write_volatile((e + 4) as *mut u32, dm as u32);
            core::ptr::write_volatile((e + 2) as *mut u16, 0);
            let f = &*(e as *const core::sync::atomic::AtomicU16);
            f.store(crate::grants::GrantType::PermitAccess.bits() | crate::grants::GtfFlags::READONLY.bits(), core::sync::atomic::Ordering::SeqCst);
            f
        };
        let (st, h) = crate::grants::map(host, gref, 0, true);
        // SAFETY: `host` maps the granted frame if the map worked.
        let seen = if st == 0 { unsafe { core::ptr::read_volatile(host as *const u64) } } else { 0 };
        let reading = flags.load(core::sync::atomic::Ordering::SeqCst) & crate::grants::GtfFlags::READING.bits() != 0;
        let u = if st == 0 { crate::grants::unmap(host, h) } else { -1 };
        let left = flags.load(core::sync::atomic::Ordering::SeqCst) & (crate::grants::GtfFlags::READING | crate::grants::GtfFlags::WRITING).bits();
        flags.store(0, core::sync::atomic::Ordering::SeqCst);
        writable(host, hm);
        all(&[
            expect(i64::from(st), 0),
            check(seen == 0x6464, format_args!("read {seen:#x} through the grant")),
            check(reading, format_args!("GTF_reading not set in the 64th frame")),
            expect(i64::from(u), 0),
            expect(i64::from(left), 0),
        ])
    }
    gnttab_map_ref_just_past_64_frames ("grant_table_op", "GNTTABOP_map_grant_ref", Attack) {
        let (Some(_), Some((host, _))) = (super::frame_of(63), page()) else { return error(format_args!("setup failed")) };
        expect(i64::from(crate::grants::map(host, 64 * 512, 0, true).0), -3)
    }
    gnttab_setup_table_65_frames_is_general_error ("grant_table_op", "GNTTABOP_setup_table", Reject) {
        let mut frames = [0u64; 65];
        let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 65, frame_list: ptr_mut(&mut frames), ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
        all(&[expect(r, 0), expect(i64::from(s.status), -1), check(frames[0] == 0, format_args!("list written"))])
    }
    gnttab_setup_table_two_structures_einval ("grant_table_op", "GNTTABOP_setup_table", Reject) {
        let mut f = [0u64; 2];
        let s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 1, frame_list: ptr_mut(&mut f), status: 77, ..Default::default() };
        let mut two = [s, s];
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut two), 2, 0, 0);
        all(&[expect(r, -EINVAL), expect(i64::from(two[0].status), 77)])
    }
    gnttab_query_size_zero_structures_einval ("grant_table_op", "GNTTABOP_query_size", Reject) {
        let mut q = GnttabQuerySize { dom: 0x7ff0, status: 77, ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, xen_public::grant_table::GNTTABOP_QUERY_SIZE, ptr_mut(&mut q), 0, 0, 0);
        all(&[expect(r, -EINVAL), expect(i64::from(q.status), 77)])
    }
    gnttab_setup_table_list_unmapped_is_bad_virt_addr ("grant_table_op", "GNTTABOP_setup_table", Reject) {
        let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 1, frame_list: UNMAPPED, ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
        all(&[expect(r, 0), expect(i64::from(s.status), -5)])
    }
    gnttab_setup_table_list_in_xen_space_efault ("grant_table_op", "GNTTABOP_setup_table", Attack) {
        // The hypervisor must not write the frame numbers into its own
        // address range.
        let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: 64, frame_list: XEN_VA, status: 77, ..Default::default() };
        let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
        all(&[expect(r, -EFAULT), expect(i64::from(s.status), 77)])
    }
}

/// Frame `i` of our grant table as setup_table lists it (the table grows
/// to `i + 1` frames if it is smaller).
#[cfg(target_os = "none")]
fn frame_of(i: usize) -> Option<u64> {
    use crate::conformance::ctx::{call, ptr_mut};
    use helpers::{GNTTABOP_SETUP_TABLE, GnttabSetupTable, nr};
    let mut frames = [0u64; 64];
    let mut s = GnttabSetupTable { dom: 0x7ff0, nr_frames: i as u32 + 1, frame_list: ptr_mut(&mut frames), ..Default::default() };
    let r = call(nr::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, ptr_mut(&mut s), 1, 0, 0);
    (r == 0 && s.status == 0).then_some(frames[i])
}

/// Our grant table's first frame, with the table set up.
#[cfg(target_os = "none")]
fn first_frame() -> Option<u64> {
    helpers::grant_table()?;
    frame_of(0)
}
