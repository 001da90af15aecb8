//! `XEN_SYSCTL_readconsole` (`struct xen_sysctl_readconsole` in
//! `xen/include/public/sysctl.h`; Xen 4.17's `read_console_ring` in
//! `xen/drivers/char/console.c`): the hypervisor's console history, as
//! `xl dmesg` reads it. Runs last among the families: the clear case
//! empties the history.

#[cfg(target_os = "none")]
mod helpers {
    //! The shared helpers, and reading the history through a small buffer.
    pub use super::super::helpers::*;
    use crate::conformance::ctx::ptr_mut;
    pub use xen_public::sysctl::{XEN_SYSCTL_READCONSOLE, XenSysctlReadconsole};

    /// A line dom0 writes with CONSOLEIO_write; `#` occurs only at its
    /// start, so a byte-at-a-time match cannot miss it.
    pub const MARKER: &[u8] = b"#XCR-7f3a9e! dom0 wrote this with CONSOLEIO_write\n";

    /// XEN_SYSCTL_readconsole: (rc, OUT count, OUT index).
    pub fn readconsole(clear: bool, incremental: bool, index: u32, buffer: u64, count: u32) -> (i64, u32, u32) {
        let mut op = sysctl_op(XEN_SYSCTL_READCONSOLE, 0x15);
        op.set_payload(&XenSysctlReadconsole { clear: clear.into(), incremental: incremental.into(), index, buffer, count, ..Default::default() });
        let r = sysctl(&mut op);
        let out: XenSysctlReadconsole = op.payload();
        (r, out.count, out.index)
    }

    /// What a walk over the whole history found.
    pub struct Scan {
        /// Bytes read.
        pub bytes: u32,
        /// The index after the newest byte.
        pub end: u32,
        /// Whether the pattern occurred.
        pub found: bool,
    }

    /// Read the whole history, 1 KiB at a time (the first read from the
    /// oldest byte, the others incremental), looking for `pat`.
    pub fn scan(pat: &[u8]) -> Result<Scan, i64> {
        let mut buf = [0u8; 1024];
        let (mut s, mut matched, mut index) = (Scan { bytes: 0, end: 0, found: false }, 0usize, 0u32);
        for i in 0..64 {
            let (r, n, next) = readconsole(false, i > 0, index, ptr_mut(&mut buf), buf.len() as u32);
            if r != 0 {
                return Err(r);
            }
            for &b in &buf[..(n as usize).min(buf.len())] {
                matched = if b == pat[matched] { matched + 1 } else { usize::from(b == pat[0]) };
                if matched == pat.len() {
                    s.found = true;
                    matched = 0;
                }
            }
            s.bytes += n;
            index = next;
            if n == 0 {
                break;
            }
        }
        s.end = index;
        Ok(s)
    }
}

use crate::conformance::{CaseInfo, Kind};

cases! {
    sysctl_readconsole_holds_the_hypervisors_lines ("sysctl", "XEN_SYSCTL_readconsole", Accept) {
        match scan(b"(XEN) ") {
            Ok(s) => all(&[check(s.bytes > 0, format_args!("the history is empty")), check(s.found, format_args!("no \"(XEN) \" line in {} bytes", s.bytes))]),
            Err(e) => expect(e, 0),
        }
    }
    sysctl_readconsole_leaves_out_dom0_console_writes ("sysctl", "XEN_SYSCTL_readconsole", Accept) {
        // Xen 4.17 puts dom0's CONSOLEIO_write output in the history only
        // with console_to_ring (off by default).
        let w = call(nr::CONSOLE_IO, 0, MARKER.len() as u64, ptr(&MARKER[0]), 0, 0);
        match scan(MARKER) {
            Ok(s) => all(&[expect(w, 0), check(!s.found, format_args!("dom0's line is in the history"))]),
            Err(e) => expect(e, 0),
        }
    }
    sysctl_readconsole_incremental_read_continues_where_the_last_stopped ("sysctl", "XEN_SYSCTL_readconsole", Accept) {
        let (mut whole, mut first, mut second) = ([0u8; 64], [0u8; 32], [0u8; 32]);
        let (r1, n1, i1) = readconsole(false, false, 0, ptr_mut(&mut whole), 64);
        let (r2, n2, i2) = readconsole(false, false, 0, ptr_mut(&mut first), 32);
        let (r3, n3, i3) = readconsole(false, true, i2, ptr_mut(&mut second), 32);
        all(&[
            expect(r1, 0),
            expect(r2, 0),
            expect(r3, 0),
            check((n1, n2, n3) == (64, 32, 32), format_args!("counts {n1} {n2} {n3}")),
            check(i2 == i1.wrapping_sub(32) && i3 == i1, format_args!("indices {i1:#x} {i2:#x} {i3:#x}")),
            check(whole[..32] == first && whole[32..] == second, format_args!("the two halves differ from one read")),
        ])
    }
    sysctl_readconsole_index_outside_the_ring_reads_from_the_oldest_byte ("sysctl", "XEN_SYSCTL_readconsole", Attack) {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        let (r1, n1, i1) = readconsole(false, false, 0, ptr_mut(&mut a), 16);
        let (r2, n2, i2) = readconsole(false, true, i1.wrapping_add(0x8000_0000), ptr_mut(&mut b), 16);
        all(&[expect(r1, 0), expect(r2, 0), check((n2, i2) == (n1, i1) && a == b, format_args!("({n1}, {i1:#x}) then ({n2}, {i2:#x})"))])
    }
    sysctl_readconsole_huge_count_stops_at_the_newest_byte ("sysctl", "XEN_SYSCTL_readconsole", Attack) {
        let s = match scan(b"(XEN) ") {
            Ok(s) if s.bytes > 10 => s,
            Ok(s) => return error(format_args!("only {} bytes of history", s.bytes)),
            Err(e) => return expect(e, 0),
        };
        // The last 10 bytes, with a count of 4 GiB: 10 bytes are written.
        let mut buf = [0xaau8; 64];
        let (r, n, i) = readconsole(false, true, s.end.wrapping_sub(10), ptr_mut(&mut buf), u32::MAX);
        all(&[expect(r, 0), check((n, i) == (10, s.end), format_args!("({n}, {i:#x}), end {:#x}", s.end)), check(buf[10..].iter().all(|&b| b == 0xaa), format_args!("wrote past the history"))])
    }
    sysctl_readconsole_unmapped_buffer_efault ("sysctl", "XEN_SYSCTL_readconsole", Reject) {
        expect(readconsole(false, false, 0, UNMAPPED, 16).0, -EFAULT)
    }
    sysctl_readconsole_clear_empties_the_history ("sysctl", "XEN_SYSCTL_readconsole", Accept) {
        // A clearing read forgets what it read: read until nothing is left.
        let mut buf = [0u8; 1024];
        let mut cleared = None;
        for _ in 0..64 {
            let (r, n, _) = readconsole(true, false, 0, ptr_mut(&mut buf), buf.len() as u32);
            if r != 0 || n == 0 {
                cleared = Some(r);
                break;
            }
        }
        let (r, n, _) = readconsole(false, false, 0, ptr_mut(&mut buf), buf.len() as u32);
        all(&[expect(cleared.unwrap_or(1), 0), expect(r, 0), check(n == 0, format_args!("{n} bytes after clearing"))])
    }
}
