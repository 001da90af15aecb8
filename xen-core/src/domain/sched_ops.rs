//! `sched_op` (yield, block, shutdown, poll) and `console_io` (the
//! hypervisor console, for the hardware domain): their decoding, errno and
//! the continuation of long console writes. Generic over the caller's
//! memory ([`GuestAccess`]) and over the machine ([`SchedHost`]: the
//! scheduler, shared_info, shutdown; [`ConsoleHost`]: the serial console),
//! so they are tested on the host.
//!
//! Invariants: only the privileged domain reaches the console (a domU gets
//! -EPERM for every command, as Xen 4.17's default XSM policy); a console
//! write moves at most [`CONSOLE_PER_CALL`] bytes per call and continues
//! itself with the registers pointing past what it wrote, so every call
//! makes progress and none holds the CPU for long.
#![forbid(unsafe_code)]

use super::Domain;
use super::evtchn_ops::decode_poll;
use super::guest_mem::GuestAccess;
use super::host::Kick;
use super::vcpu::{CpuUserRegs, Poll, Vcpu};
use super::vcpu_ops::continue_later;
use xen_public::errno::{E2BIG, EFAULT, ENOSYS, EPERM};
use xen_public::{CONSOLEIO_READ, CONSOLEIO_WRITE, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// What `sched_op` needs from the live machine.
pub trait SchedHost: Kick {
    /// Clear `v`'s `evtchn_upcall_mask` in `d`'s shared_info.
    fn clear_upcall_mask(&mut self, d: &Domain, v: &Vcpu);
    /// Block `v` until an upcall is deliverable or, for a poll, one of its
    /// ports is pending or its timeout passes (the scheduler ends it at
    /// once if that is so already).
    fn block(&mut self, v: &mut Vcpu, poll: Option<Poll>);
    /// The domain shuts down with `reason` (dom0's takes the machine).
    fn shutdown(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &CpuUserRegs, reason: u32);
}

/// `sched_op(cmd, arg)` from `v` of `d`, whose memory is `mem`.
pub fn sched_op<H: SchedHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, mem: &impl GuestAccess, regs: &CpuUserRegs, cmd: u32, arg: u64) -> Ret {
    match u64::from(cmd) {
        SCHEDOP_YIELD => {
            v.yielded = true;
            h.kick();
            0
        }
        SCHEDOP_BLOCK => {
            // As Xen: blocking re-enables event delivery, then sleeps until
            // an upcall is deliverable (the scheduler ends the block at once
            // if one already is).
            v.upcall_mask = false;
            h.clear_upcall_mask(d, v);
            h.block(v, None);
            0
        }
        // Bad ports are -EINVAL, more than 128 -EINVAL, an unreadable
        // argument -EFAULT; otherwise the vCPU blocks and the result is 0,
        // as in Xen.
        SCHEDOP_POLL => match decode_poll(d, mem, arg) {
            Ok(p) => {
                h.block(v, Some(p));
                0
            }
            Err(e) => e,
        },
        SCHEDOP_SHUTDOWN => {
            let Ok(xen_public::sched::SchedShutdown { reason }) = mem.copy_from(arg) else { return -EFAULT };
            h.shutdown(v, d, regs, reason);
            0
        }
        _ => -ENOSYS,
    }
}

/// The machine's console.
pub trait ConsoleHost {
    /// Write a guest's console output.
    fn console_write(&mut self, bytes: &[u8]);
    /// One byte of console input, if any is waiting.
    fn console_read_byte(&mut self) -> Option<u8>;
}

/// Bytes copied per step of `console_io` writes.
pub const CONSOLE_CHUNK: usize = 256;
/// Bytes written per call before a continuation.
pub const CONSOLE_PER_CALL: u64 = 16 * 1024;

/// `console_io(cmd, count, buf)` from `d` (arguments in RDI, RSI, RDX of
/// `regs`), whose memory is `mem`. A long write continues itself: after
/// [`CONSOLE_PER_CALL`] bytes, or sooner when `preempt_due` says so (after
/// some progress), RSI and RDX are advanced and the call re-issued.
pub fn console_io<H: ConsoleHost>(h: &mut H, d: &Domain, mem: &impl GuestAccess, regs: &mut CpuUserRegs, preempt_due: impl FnMut() -> bool) -> Ret {
    let (cmd, count, buf) = (regs.rdi as u32, regs.rsi, regs.rdx);
    // Release Xen 4.17 (XSM dummy policy) serves the console to the
    // hardware domain only: a domU gets -EPERM for every command, so it
    // cannot write unprefixed lines to the serial port (nor forge
    // "(XEN)" ones); domUs use their console ring.
    if !d.privileged {
        return -EPERM;
    }
    match u64::from(cmd) {
        CONSOLEIO_WRITE => console_write(h, mem, regs, count as u32 as u64, buf, preempt_due),
        CONSOLEIO_READ if count as u32 > i32::MAX as u32 => -E2BIG,
        CONSOLEIO_READ => console_read(h, mem, count as u32 as usize, buf),
        _ => -ENOSYS,
    }
}

/// CONSOLEIO_write of `count` bytes at `buf`, in chunks; -EFAULT at the
/// first chunk that cannot be read (what came before it is written).
fn console_write<H: ConsoleHost>(
    h: &mut H,
    mem: &impl GuestAccess,
    regs: &mut CpuUserRegs,
    count: u64,
    buf: u64,
    mut preempt_due: impl FnMut() -> bool,
) -> Ret {
    let mut done = 0u64;
    while done < count {
        if done == CONSOLE_PER_CALL || (done > 0 && preempt_due()) {
            // Long writes continue in a re-issued call, as in Xen.
            regs.rsi = count - done;
            regs.rdx = buf.wrapping_add(done);
            return continue_later(regs, xen_public::hypercall::CONSOLE_IO) as i64;
        }
        let n = (count - done).min(CONSOLE_CHUNK as u64) as usize;
        let mut chunk = [0u8; CONSOLE_CHUNK];
        if mem.read(buf.wrapping_add(done), &mut chunk[..n]).is_err() {
            return -EFAULT;
        }
        h.console_write(&chunk[..n]);
        done += n as u64;
    }
    0
}

/// CONSOLEIO_read: up to `count` bytes of waiting input to `buf`; how many.
fn console_read<H: ConsoleHost>(h: &mut H, mem: &impl GuestAccess, count: usize, buf: u64) -> Ret {
    let mut got = 0usize;
    while got < count {
        let Some(b) = h.console_read_byte() else { break };
        if mem.write(buf.wrapping_add(got as u64), &[b]).is_err() {
            return -EFAULT;
        }
        got += 1;
    }
    got as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::mm::Mfn;
    use std::collections::VecDeque;
    use std::vec::Vec;
    use xen_public::errno::EINVAL;

    /// The scheduler and console as a record of what they were asked.
    #[derive(Default)]
    struct Machine {
        kicks: usize,
        masks_cleared: usize,
        blocks: usize,
        /// Polls blocked on: ports and deadline.
        polls: Vec<(Vec<u32>, u64)>,
        shutdowns: Vec<u32>,
        out: Vec<u8>,
        input: VecDeque<u8>,
    }

    impl Kick for Machine {
        fn kick(&mut self) {
            self.kicks += 1;
        }
    }

    impl SchedHost for Machine {
        fn clear_upcall_mask(&mut self, _d: &Domain, _v: &Vcpu) {
            self.masks_cleared += 1;
        }
        fn block(&mut self, v: &mut Vcpu, poll: Option<Poll>) {
            v.blocked = true;
            match poll {
                Some(p) => self.polls.push((p.ports[..p.nr].to_vec(), p.deadline)),
                None => self.blocks += 1,
            }
        }
        fn shutdown(&mut self, _v: &mut Vcpu, d: &mut Domain, _regs: &CpuUserRegs, reason: u32) {
            d.shutdown = Some(reason);
            self.shutdowns.push(reason);
        }
    }

    impl ConsoleHost for Machine {
        fn console_write(&mut self, bytes: &[u8]) {
            self.out.extend_from_slice(bytes);
        }
        fn console_read_byte(&mut self) -> Option<u8> {
            self.input.pop_front()
        }
    }

    const ARG: u64 = 0x1000;
    const BUF: u64 = 0x10000;

    fn setup(privileged: bool) -> (Machine, FakeGuest, Vcpu, Domain) {
        let g = FakeGuest::default();
        g.map(ARG);
        (Machine::default(), g, Vcpu::default(), Domain::empty(if privileged { 0 } else { 3 }, privileged, Mfn(1)))
    }

    fn sched(m: &mut Machine, g: &FakeGuest, v: &mut Vcpu, d: &mut Domain, cmd: u32, arg: u64) -> Ret {
        sched_op(m, v, d, g, &CpuUserRegs::default(), cmd, arg)
    }

    #[test]
    fn sched_op_yield_kicks_and_block_unmasks_events_then_blocks() {
        let (mut m, g, mut v, mut d) = setup(false);
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_YIELD as u32, 0), 0);
        assert_eq!((m.kicks, m.blocks), (1, 0));
        assert!(v.yielded, "the switch it causes is a yield");
        v.upcall_mask = true;
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_BLOCK as u32, 0xdead_0000), 0, "block ignores its argument");
        assert!(!v.upcall_mask && v.blocked);
        assert_eq!((m.masks_cleared, m.blocks), (1, 1));
    }

    #[test]
    fn sched_op_shutdown_reads_the_reason_and_an_unmapped_argument_is_efault() {
        let (mut m, g, mut v, mut d) = setup(false);
        g.copy_to(ARG, &xen_public::sched::SchedShutdown { reason: xen_public::SHUTDOWN_CRASH }).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_SHUTDOWN as u32, ARG), 0);
        assert_eq!(d.shutdown, Some(xen_public::SHUTDOWN_CRASH));
        // Any reason is passed on as given (the live machine decides).
        g.copy_to(ARG, &xen_public::sched::SchedShutdown { reason: 0xdead }).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_SHUTDOWN as u32, ARG), 0);
        assert_eq!(m.shutdowns, [xen_public::SHUTDOWN_CRASH, 0xdead]);
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_SHUTDOWN as u32, 0xdead_0000), -EFAULT);
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_SHUTDOWN as u32, ARG + 4094), -EFAULT, "a reason across into an unmapped page");
        assert_eq!(m.shutdowns.len(), 2, "no shutdown on a fault");
    }

    #[test]
    fn sched_op_poll_blocks_on_the_decoded_ports_and_other_commands_are_enosys() {
        // decode_poll's own errors are tested in evtchn_ops.
        let (mut m, g, mut v, mut d) = setup(false);
        let port = d.ports.alloc_unbound(0).unwrap();
        g.map(BUF);
        g.copy_to(BUF, &port).unwrap();
        let poll = |nr_ports| xen_public::sched::SchedPoll { ports: BUF, nr_ports, timeout: 777, ..Default::default() };
        g.copy_to(ARG, &poll(1)).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, ARG), 0);
        assert_eq!(m.polls, [(std::vec![port], 777)]);
        assert!(v.blocked);
        m.polls.clear();
        assert_eq!(m.blocks, 0, "a poll is not a plain block");
        for cmd in [xen_public::sched::SCHEDOP_REMOTE_SHUTDOWN, xen_public::sched::SCHEDOP_SHUTDOWN_CODE, xen_public::sched::SCHEDOP_WATCHDOG, 99] {
            assert_eq!(sched(&mut m, &g, &mut v, &mut d, cmd as u32, ARG), -ENOSYS, "cmd {cmd}");
        }
        assert_eq!((m.kicks, m.blocks, m.shutdowns.len()), (0, 0, 0));
    }

    #[test]
    fn sched_op_poll_errors_come_before_any_block_in_xens_order() {
        // Attack: a hostile argument (too many ports, ports it does not
        // have, unmapped lists) never blocks the vCPU.
        let (mut m, g, mut v, mut d) = setup(false);
        let port = d.ports.alloc_unbound(0).unwrap();
        g.map(BUF);
        g.copy_to(BUF, &[port, u32::MAX]).unwrap();
        let poll = |ports, nr_ports| xen_public::sched::SchedPoll { ports, nr_ports, ..Default::default() };
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, 0xdead_0000), -EFAULT, "unmapped argument");
        // The count is checked before the list is read.
        g.copy_to(ARG, &poll(0xdead_0000, 129)).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, ARG), -EINVAL, "129 ports");
        g.copy_to(ARG, &poll(BUF, 2)).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, ARG), -EINVAL, "a port past its table");
        g.copy_to(ARG, &poll(0xdead_0000, 1)).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, ARG), -EFAULT, "unmapped port list");
        g.copy_to(BUF + 4092, &port).unwrap();
        g.copy_to(ARG, &poll(BUF + 4092, 2)).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, ARG), -EFAULT, "a list running into an unmapped page");
        assert!(m.polls.is_empty() && !v.blocked, "never blocked");
        g.copy_to(ARG, &poll(BUF, 0)).unwrap();
        assert_eq!(sched(&mut m, &g, &mut v, &mut d, SCHEDOP_POLL as u32, ARG), 0, "no ports: a block until the timeout");
        assert_eq!(m.polls, [(Vec::new(), 0)]);
    }

    fn console(m: &mut Machine, g: &FakeGuest, d: &Domain, cmd: u64, count: u64, buf: u64, preempt: bool) -> (Ret, CpuUserRegs) {
        let mut regs = CpuUserRegs { rdi: cmd, rsi: count, rdx: buf, rip: 0x5000, ..Default::default() };
        let rc = console_io(m, d, g, &mut regs, || preempt);
        (rc, regs)
    }

    #[test]
    fn console_io_from_an_unprivileged_domain_is_eperm_for_every_command() {
        // Attack: a domU writes forged "(XEN)" lines or reads dom0's input.
        let (mut m, g, _v, d) = setup(false);
        g.map(BUF);
        g.write(BUF, b"(XEN) forged\n").unwrap();
        m.input.push_back(b'x');
        for cmd in [CONSOLEIO_WRITE, CONSOLEIO_READ, 7] {
            assert_eq!(console(&mut m, &g, &d, cmd, 13, BUF, false).0, -EPERM, "cmd {cmd}");
        }
        assert!(m.out.is_empty());
        assert_eq!(m.input.len(), 1, "the input is still there");
    }

    #[test]
    fn console_io_write_past_the_mapped_memory_is_efault_after_the_readable_chunks() {
        let (mut m, g, _v, d) = setup(true);
        g.map(BUF);
        g.write(BUF, &[b'a'; 4096]).unwrap();
        // 4096 mapped bytes, then a hole: the 16 whole chunks are written.
        let (rc, _) = console(&mut m, &g, &d, CONSOLEIO_WRITE, 5000, BUF, false);
        assert_eq!(rc, -EFAULT);
        assert_eq!(m.out.len(), 4096);
        let (rc, _) = console(&mut m, &g, &d, CONSOLEIO_WRITE, 16, u64::MAX - 7, false);
        assert_eq!(rc, -EFAULT, "a buffer wrapping the top");
        assert_eq!(m.out.len(), 4096);
    }

    #[test]
    fn console_io_write_continues_after_16k_with_count_and_buffer_advanced() {
        let (mut m, g, _v, d) = setup(true);
        for p in 0..6 {
            g.map(BUF + 4096 * p);
        }
        // The count is 32 bits: the high half is ignored.
        let (rc, regs) = console(&mut m, &g, &d, CONSOLEIO_WRITE, (1 << 32) | 20000, BUF, false);
        assert_eq!(rc, xen_public::hypercall::CONSOLE_IO as i64, "RAX holds the hypercall again");
        assert_eq!((regs.rsi, regs.rdx, regs.rip), (20000 - CONSOLE_PER_CALL, BUF + CONSOLE_PER_CALL, 0x5000 - 2));
        assert_eq!(m.out.len() as u64, CONSOLE_PER_CALL);
        // The re-issued call finishes.
        let (rc, _) = console(&mut m, &g, &d, CONSOLEIO_WRITE, regs.rsi, regs.rdx, false);
        assert_eq!((rc, m.out.len()), (0, 20000));
    }

    #[test]
    fn console_io_write_preempted_after_one_chunk_continues_and_never_before_progress() {
        let (mut m, g, _v, d) = setup(true);
        g.map(BUF);
        let (rc, regs) = console(&mut m, &g, &d, CONSOLEIO_WRITE, 1000, BUF, true);
        assert_eq!(rc, xen_public::hypercall::CONSOLE_IO as i64);
        assert_eq!((regs.rsi, regs.rdx), (1000 - CONSOLE_CHUNK as u64, BUF + CONSOLE_CHUNK as u64));
        assert_eq!(m.out.len(), CONSOLE_CHUNK, "one chunk before the first preemption check");
        let (rc, _) = console(&mut m, &g, &d, CONSOLEIO_WRITE, 0, 0xdead_0000, true);
        assert_eq!(rc, 0, "an empty write touches nothing");
    }

    #[test]
    fn console_io_read_returns_waiting_bytes_and_refuses_counts_above_i32_max() {
        let (mut m, g, _v, d) = setup(true);
        g.map(BUF);
        m.input.extend(b"hi!");
        assert_eq!(console(&mut m, &g, &d, CONSOLEIO_READ, 0x8000_0000, BUF, false).0, -E2BIG);
        assert_eq!(m.input.len(), 3, "nothing consumed");
        assert_eq!(console(&mut m, &g, &d, CONSOLEIO_READ, 2, BUF, false).0, 2);
        assert_eq!(console(&mut m, &g, &d, CONSOLEIO_READ, (1 << 32) | 10, BUF + 2, false).0, 1, "what is waiting");
        let mut got = [0u8; 3];
        g.read(BUF, &mut got).unwrap();
        assert_eq!(&got, b"hi!");
        m.input.extend(b"z");
        assert_eq!(console(&mut m, &g, &d, CONSOLEIO_READ, 1, 0xdead_0000, false).0, -EFAULT);
        assert_eq!(console(&mut m, &g, &d, 2, 1, BUF, false).0, -ENOSYS, "an unknown command");
    }
}
