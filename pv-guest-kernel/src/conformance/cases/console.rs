//! `console_io` (`CONSOLEIO_*` in `xen/include/public/xen.h`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    console_write_ok ("console_io", "CONSOLEIO_write", Accept) {
        let msg = b"(conformance console_io check)\n";
        expect(call(nr::CONSOLE_IO, 0, msg.len() as u64, ptr(msg), 0, 0), 0)
    }
    console_write_zero_length_ok ("console_io", "CONSOLEIO_write", Accept) { expect(call(nr::CONSOLE_IO, 0, 0, UNMAPPED, 0, 0), 0) }
    console_write_unmapped_efault ("console_io", "CONSOLEIO_write", Reject) { expect(call(nr::CONSOLE_IO, 0, 8, UNMAPPED, 0, 0), -EFAULT) }
    console_write_noncanonical_efault ("console_io", "CONSOLEIO_write", Attack) { expect(call(nr::CONSOLE_IO, 0, 8, NONCANON, 0, 0), -EFAULT) }
    console_read_returns_count ("console_io", "CONSOLEIO_read", Accept) {
        let mut b = [0u8; 16];
        let r = call(nr::CONSOLE_IO, 1, 16, ptr_mut(&mut b), 0, 0);
        check((0..=16).contains(&r), format_args!("read returned {r}"))
    }
    console_read_count_over_int_max_e2big ("console_io", "CONSOLEIO_read", Reject) {
        let mut b = [0u8; 16];
        expect(call(nr::CONSOLE_IO, 1, 0x8000_0000, ptr_mut(&mut b), 0, 0), -E2BIG)
    }
    console_unknown_cmd_enosys ("console_io", "cmd 9", Reject) { expect(call(nr::CONSOLE_IO, 9, 0, 0, 0, 0), -ENOSYS) }
}
