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
use super::guest_mem::GuestAccess;
use super::vcpu::{CpuUserRegs, Vcpu};
use super::vcpu_ops::continue_later;
use xen_public::errno::{E2BIG, EFAULT, ENOSYS, EPERM};
use xen_public::{CONSOLEIO_READ, CONSOLEIO_WRITE, SCHEDOP_BLOCK, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD};

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// What `sched_op` needs from the live machine.
pub trait SchedHost {
    /// Another vCPU may run: let the scheduler look.
    fn kick(&mut self);
    /// Clear `v`'s `evtchn_upcall_mask` in `d`'s shared_info.
    fn clear_upcall_mask(&mut self, d: &Domain, v: &Vcpu);
    /// Block `v` until an upcall is deliverable.
    fn block(&mut self, v: &mut Vcpu);
    /// `SCHEDOP_poll` with its argument at `arg` (decoded by
    /// `evtchn_ops::decode_poll`).
    fn poll(&mut self, v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret;
    /// The domain shuts down with `reason` (dom0's takes the machine).
    fn shutdown(&mut self, v: &mut Vcpu, d: &mut Domain, regs: &CpuUserRegs, reason: u32);
}

/// `sched_op(cmd, arg)` from `v` of `d`, whose memory is `mem`.
pub fn sched_op<H: SchedHost>(h: &mut H, v: &mut Vcpu, d: &mut Domain, mem: &impl GuestAccess, regs: &CpuUserRegs, cmd: u32, arg: u64) -> Ret {
    match u64::from(cmd) {
        SCHEDOP_YIELD => {
            h.kick();
            0
        }
        SCHEDOP_BLOCK => {
            // As Xen: blocking re-enables event delivery, then sleeps until
            // an upcall is deliverable (the scheduler ends the block at once
            // if one already is).
            v.upcall_mask = false;
            h.clear_upcall_mask(d, v);
            h.block(v);
            0
        }
        SCHEDOP_POLL => h.poll(v, d, arg),
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
