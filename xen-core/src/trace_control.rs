//! `XEN_SYSCTL_tbuf_op` (Xen 4.17's `tb_control` in `common/trace.c`):
//! which command does what to the machine-wide trace settings, and which
//! errno it returns. The settings and the buffers themselves are behind
//! [`TraceCtl`] (the live ones are `trace.rs`'s statics), so every decision
//! is host-tested.
//!
//! Invariants, as Xen's: the buffer size is set once (boot option
//! `tbuf_size=` or `set_size`, never both, never changed); tracing is only
//! enabled once buffers exist; an unknown command changes nothing.
#![forbid(unsafe_code)]

use xen_public::errno::{EBUSY, EFAULT, EINVAL};
use xen_public::sysctl::{
    XEN_SYSCTL_TBUFOP_DISABLE as DISABLE, XEN_SYSCTL_TBUFOP_ENABLE as ENABLE, XEN_SYSCTL_TBUFOP_GET_INFO as GET_INFO,
    XEN_SYSCTL_TBUFOP_SET_CPU_MASK as SET_CPU_MASK, XEN_SYSCTL_TBUFOP_SET_EVT_MASK as SET_EVT_MASK, XEN_SYSCTL_TBUFOP_SET_SIZE as SET_SIZE,
    XenSysctlTbufOp,
};

/// The machine-wide trace state `tb_control` reads and changes.
pub trait TraceCtl {
    /// `tb_event_mask`.
    fn evt_mask(&self) -> u32;
    /// Set `tb_event_mask`.
    fn set_evt_mask(&mut self, mask: u32);
    /// Set `tb_cpu_mask` (bit `n`: CPU `n`).
    fn set_cpu_mask(&mut self, mask: u64);
    /// `nr_cpu_ids`: CPU numbers a CPU bitmap covers.
    fn nr_cpu_ids(&self) -> u32;
    /// `opt_tbuf_size`: pages per CPU once buffers exist, 0 before.
    fn pages(&self) -> u32;
    /// The first frame of `t_info` and its pages, `(0, 0)` before buffers
    /// exist.
    fn t_info(&self) -> (u64, u32);
    /// Allocate and share `pages` (above 0) per CPU, and start tracing
    /// (`alloc_trace_bufs` past its checks): `Err(-errno)` when memory
    /// runs out.
    fn alloc(&mut self, pages: u32) -> Result<(), i64>;
    /// Set `tb_init_done`: records are written.
    fn set_on(&mut self, on: bool);
    /// Forget every CPU's lost-record count (no phantom loss next time).
    fn clear_lost(&mut self);
}

/// `tb_control`: run `op` against `ctl`; `read_bitmap(handle, buf)` copies
/// `buf.len()` bytes of a CPU bitmap from the caller (false: a fault). 0
/// or `-errno`; `GET_INFO` fills `op`.
pub fn tb_control(ctl: &mut impl TraceCtl, op: &mut XenSysctlTbufOp, read_bitmap: impl Fn(u64, &mut [u8]) -> bool) -> i64 {
    match op.cmd {
        GET_INFO => {
            let (mfn, pages) = ctl.t_info();
            op.evt_mask = ctl.evt_mask();
            op.buffer_mfn = mfn;
            op.size = pages * 4096;
            0
        }
        SET_CPU_MASK => match cpu_mask_from_bitmap(op.cpu_mask.nr_bits, ctl.nr_cpu_ids(), |buf| read_bitmap(op.cpu_mask.bitmap, buf)) {
            Ok(mask) => {
                ctl.set_cpu_mask(mask);
                0
            }
            Err(e) => e,
        },
        SET_EVT_MASK => {
            ctl.set_evt_mask(op.evt_mask);
            0
        }
        SET_SIZE => set_size(ctl, op.size),
        // "Check buffers are already allocated."
        ENABLE if ctl.pages() == 0 => -EINVAL,
        ENABLE => {
            ctl.set_on(true);
            0
        }
        // Stops new records only; the buffers stay.
        DISABLE => {
            ctl.set_on(false);
            ctl.clear_lost();
            0
        }
        _ => -EINVAL,
    }
}

/// `tb_set_size`, then `alloc_trace_bufs`'s checks: a one-shot operation,
/// so a different size once buffers exist is -EINVAL and the same one
/// -EBUSY (`t_info` exists); 0 pages is -EINVAL.
fn set_size(ctl: &mut impl TraceCtl, pages: u32) -> i64 {
    let have = ctl.pages();
    if have != 0 && pages != have {
        return -EINVAL;
    }
    if ctl.t_info().0 != 0 {
        return -EBUSY;
    }
    if pages == 0 {
        return -EINVAL;
    }
    ctl.alloc(pages).err().unwrap_or(0)
}

/// `xenctl_bitmap_to_cpumask`: the CPU mask of a guest bitmap of `nr_bits`
/// bits. Xen copies `min(guest bytes, bytes of nr_cpu_ids bits)` (a
/// fault is -EFAULT), clears the bits past `nr_bits` in the guest's last
/// byte when it copied that byte, and keeps `nr_cpu_ids` bits.
fn cpu_mask_from_bitmap(nr_bits: u32, nr_cpu_ids: u32, read: impl FnOnce(&mut [u8]) -> bool) -> Result<u64, i64> {
    let nr_cpu_ids = nr_cpu_ids.min(64);
    let mut bytes = [0u8; 8];
    let guest_bytes = nr_bits.div_ceil(8) as usize;
    let copy = guest_bytes.min(nr_cpu_ids.div_ceil(8) as usize);
    if copy > 0 {
        if !read(&mut bytes[..copy]) {
            return Err(-EFAULT);
        }
        if nr_bits & 7 != 0 && guest_bytes == copy {
            bytes[guest_bytes - 1] &= !(0xffu32 << (nr_bits & 7)) as u8;
        }
    }
    let mask = u64::from_le_bytes(bytes);
    Ok(if nr_cpu_ids < 64 { mask & ((1 << nr_cpu_ids) - 1) } else { mask })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_public::xen::XenctlBitmap;

    /// A machine's trace state, as `trace.rs` keeps it.
    struct Fake {
        evt_mask: u32,
        cpu_mask: u64,
        pages: u32,
        t_info: (u64, u32),
        on: bool,
        lost_cleared: u32,
        allocs: Vec<u32>,
        out_of_memory: bool,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                evt_mask: xen_public::trace::TRC_ALL,
                cpu_mask: !0,
                pages: 0,
                t_info: (0, 0),
                on: false,
                lost_cleared: 0,
                allocs: Vec::new(),
                out_of_memory: false,
            }
        }
    }

    impl TraceCtl for Fake {
        fn evt_mask(&self) -> u32 {
            self.evt_mask
        }
        fn set_evt_mask(&mut self, mask: u32) {
            self.evt_mask = mask;
        }
        fn set_cpu_mask(&mut self, mask: u64) {
            self.cpu_mask = mask;
        }
        fn nr_cpu_ids(&self) -> u32 {
            2
        }
        fn pages(&self) -> u32 {
            self.pages
        }
        fn t_info(&self) -> (u64, u32) {
            self.t_info
        }
        fn alloc(&mut self, pages: u32) -> Result<(), i64> {
            self.allocs.push(pages);
            if self.out_of_memory {
                return Err(-xen_public::errno::ENOMEM);
            }
            self.pages = pages;
            self.t_info = (0x1234, 1);
            self.on = true;
            Ok(())
        }
        fn set_on(&mut self, on: bool) {
            self.on = on;
        }
        fn clear_lost(&mut self) {
            self.lost_cleared += 1;
        }
    }

    fn op(cmd: u32) -> XenSysctlTbufOp {
        XenSysctlTbufOp { cmd, ..Default::default() }
    }

    fn run(f: &mut Fake, o: &mut XenSysctlTbufOp) -> i64 {
        tb_control(f, o, |_, _| panic!("no bitmap read expected"))
    }

    /// `get_info` before any buffer: the event mask, `buffer_mfn` 0 and
    /// size 0 (`t_info ? virt_to_mfn(t_info) : 0`, `t_info_pages * PAGE_SIZE`).
    #[test]
    fn get_info_before_buffers_is_the_mask_and_no_frames() {
        let mut f = Fake::new();
        let mut o = XenSysctlTbufOp { buffer_mfn: 99, size: 7, ..op(GET_INFO) };
        assert_eq!(run(&mut f, &mut o), 0);
        assert_eq!((o.evt_mask, o.buffer_mfn, o.size), (xen_public::trace::TRC_ALL, 0, 0));
        let mut o = op(SET_SIZE);
        o.size = 4;
        assert_eq!(run(&mut f, &mut o), 0);
        let mut o = op(GET_INFO);
        assert_eq!(run(&mut f, &mut o), 0);
        assert_eq!((o.buffer_mfn, o.size), (0x1234, 4096), "t_info's frame and bytes once allocated");
    }

    /// `tb_set_size` is one-shot: a different size once buffers exist is
    /// -EINVAL, the same one reaches `alloc_trace_bufs`, which says -EBUSY
    /// (`t_info` exists); neither allocates.
    #[test]
    fn set_size_is_one_shot_einval_for_another_size_ebusy_for_the_same() {
        let mut f = Fake::new();
        let mut o = XenSysctlTbufOp { size: 8, ..op(SET_SIZE) };
        assert_eq!(run(&mut f, &mut o), 0);
        assert!(f.on, "alloc_trace_bufs leaves tracing on");
        let mut o = XenSysctlTbufOp { size: 16, ..op(SET_SIZE) };
        assert_eq!(run(&mut f, &mut o), -EINVAL);
        let mut o = XenSysctlTbufOp { size: 8, ..op(SET_SIZE) };
        assert_eq!(run(&mut f, &mut o), -EBUSY);
        let mut o = XenSysctlTbufOp { size: 0, ..op(SET_SIZE) };
        assert_eq!(run(&mut f, &mut o), -EINVAL, "0 is another size");
        assert_eq!(f.allocs, [8]);
    }

    /// `alloc_trace_bufs` refuses 0 pages with -EINVAL before allocating,
    /// and an allocation failure is its errno, leaving no size set.
    #[test]
    fn set_size_zero_is_einval_and_a_failed_allocation_sets_nothing() {
        let mut f = Fake::new();
        let mut o = XenSysctlTbufOp { size: 0, ..op(SET_SIZE) };
        assert_eq!(run(&mut f, &mut o), -EINVAL);
        assert!(f.allocs.is_empty());
        f.out_of_memory = true;
        let mut o = XenSysctlTbufOp { size: 4, ..op(SET_SIZE) };
        assert_eq!(run(&mut f, &mut o), -xen_public::errno::ENOMEM);
        assert_eq!(f.pages, 0);
        let mut o = op(ENABLE);
        assert_eq!(run(&mut f, &mut o), -EINVAL, "still no buffers");
    }

    /// `enable` checks "buffers are already allocated" (`opt_tbuf_size`):
    /// -EINVAL without; `disable` stops records, keeps the buffers and
    /// clears the lost-record counts; `enable` then turns tracing back on.
    #[test]
    fn enable_needs_buffers_and_disable_clears_lost_counts() {
        let mut f = Fake::new();
        assert_eq!(run(&mut f, &mut op(ENABLE)), -EINVAL);
        assert!(!f.on);
        assert_eq!(run(&mut f, &mut XenSysctlTbufOp { size: 2, ..op(SET_SIZE) }), 0);
        assert_eq!(run(&mut f, &mut op(DISABLE)), 0);
        assert!(!f.on);
        assert_eq!((f.lost_cleared, f.pages), (1, 2));
        assert_eq!(run(&mut f, &mut op(ENABLE)), 0);
        assert!(f.on);
        // Disable without buffers is fine (Xen has no check).
        let mut g = Fake::new();
        assert_eq!(run(&mut g, &mut op(DISABLE)), 0);
    }

    /// `set_evt_mask` takes the mask as given; `set_cpu_mask` converts the
    /// guest's bitmap as `xenctl_bitmap_to_cpumask`: bytes for at most
    /// `nr_cpu_ids` bits are read (a fault is -EFAULT and keeps the old
    /// mask), bits past `nr_bits` in the last byte are dropped.
    #[test]
    fn set_evt_mask_and_set_cpu_mask_follow_xen() {
        let mut f = Fake::new();
        let mut o = XenSysctlTbufOp { evt_mask: 0x0002_f000, ..op(SET_EVT_MASK) };
        assert_eq!(run(&mut f, &mut o), 0);
        assert_eq!(f.evt_mask, 0x0002_f000);
        let with_bitmap = |f: &mut Fake, nr_bits: u32, bytes: &'static [u8]| {
            let mut o = XenSysctlTbufOp { cpu_mask: XenctlBitmap { bitmap: 0x5000, nr_bits, ..Default::default() }, ..op(SET_CPU_MASK) };
            tb_control(f, &mut o, |handle, buf| {
                assert_eq!(handle, 0x5000);
                if buf.len() > bytes.len() {
                    return false;
                }
                buf.copy_from_slice(&bytes[..buf.len()]);
                true
            })
        };
        // CPU 1 only.
        assert_eq!(with_bitmap(&mut f, 8, &[0b10]), 0);
        assert_eq!(f.cpu_mask, 0b10);
        // nr_bits 1: bit 1 is past it, dropped.
        assert_eq!(with_bitmap(&mut f, 1, &[0b11]), 0);
        assert_eq!(f.cpu_mask, 0b01);
        // 64 bits from the guest, only the first byte read (2 CPUs): the
        // unreadable rest does not fault.
        assert_eq!(with_bitmap(&mut f, 64, &[0xff]), 0);
        assert_eq!(f.cpu_mask, 0b11);
        // No bits: an empty mask, nothing read.
        assert_eq!(with_bitmap(&mut f, 0, &[]), 0);
        assert_eq!(f.cpu_mask, 0);
        // Unreadable: -EFAULT, mask unchanged.
        f.cpu_mask = 0b10;
        assert_eq!(with_bitmap(&mut f, 8, &[]), -EFAULT);
        assert_eq!(f.cpu_mask, 0b10);
    }

    /// Any other command is -EINVAL and changes nothing.
    #[test]
    fn an_unknown_command_is_einval() {
        let mut f = Fake::new();
        for cmd in [6, 7, 0xffff_ffff] {
            let mut o = XenSysctlTbufOp { size: 4, evt_mask: 1, ..op(cmd) };
            assert_eq!(run(&mut f, &mut o), -EINVAL, "cmd {cmd}");
        }
        assert!(f.allocs.is_empty() && !f.on && f.evt_mask == xen_public::trace::TRC_ALL);
    }
}
