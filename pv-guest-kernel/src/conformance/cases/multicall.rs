//! `multicall` (`struct multicall_entry` in `xen/include/public/xen.h`). Two
//! lists, because the run order (`cases.rs`) puts other families between them.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

/// Lists of calls: results, unknown ops, a bad list, `iret` in a batch.
pub mod list {
    use super::*;

    cases! {
        multicall_two_calls_results ("multicall", "list", Accept) {
            let mut list = [MulticallEntry { op: nr::XEN_VERSION, ..Default::default() }; 2];
            list[1].args[0] = 7; // XENVER_pagesize
            let r = call(nr::MULTICALL, ptr_mut(&mut list), 2, 0, 0, 0);
            all(&[expect(r, 0), expect(list[0].result as i64, (4 << 16) | 17), expect(list[1].result as i64, 4096)])
        }
        multicall_unknown_op_result_enosys ("multicall", "list", Reject) {
            let mut list = [MulticallEntry { op: 99, ..Default::default() }];
            let r = call(nr::MULTICALL, ptr_mut(&mut list), 1, 0, 0, 0);
            all(&[expect(r, 0), expect(list[0].result as i64, -ENOSYS)])
        }
        multicall_unmapped_list_efault ("multicall", "list", Reject) { expect(call(nr::MULTICALL, UNMAPPED, 1, 0, 0, 0), -EFAULT) }
        multicall_iret_stops_the_batch ("multicall", "iret then xen_version", Attack) {
            let (rax, first, second) = multicall_iret_first();
            all(&[
                check(rax == 0x1234, format_args!("rax after iret {rax:#x}")),
                check(second == 0x7777, format_args!("op after iret ran: result {second:#x}")),
                check(first == 0x1234, format_args!("iret entry result {first:#x}")),
            ])
        }
    }
}

/// A batch of `update_va_mapping` calls, as the runtime issues it.
pub mod batch {
    use super::*;

    cases! {
        multicall_batch_of_update_va_mapping ("multicall", "update_va_mapping batch", Accept) {
            let (Some((a, am)), Some((b, bm))) = (page(), page()) else { return error(format_args!("no spare pages")) };
            let mut batch = crate::mm::Batch::default();
            batch.map(a, bm, true);
            batch.map(b, am, true);
            let (rc, res) = batch.flush();
            batch.map(a, am, true);
            batch.map(b, bm, true);
            let (rc2, _) = batch.flush();
            all(&[expect(rc, 0), expect(res[0], 0), expect(res[1], 0), expect(rc2, 0)])
        }
    }
}
