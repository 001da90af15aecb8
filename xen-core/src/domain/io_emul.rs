//! Emulation of a PV guest's port I/O from the #GP it raises (the guest
//! runs in ring 3 with IOPL 0, so every `in`, `out`, `ins` and `outs`
//! faults): Xen 4.17's `xen/arch/x86/pv/emul-priv-op.c` (`guest_io_okay`,
//! `iopl_ok`, `admin_io_okay`, `pci_cfg_ok`, `guest_io_read/write`,
//! `rep_ins`/`rep_outs`) with `x86_emulate.c`'s operand sizes and rep
//! rules.
//!
//! Owns the decision logic only: which instruction it is (decoded with
//! `yaxpeax-x86`), whether the guest asked for the access (virtual IOPL
//! or its I/O bitmap, else the #GP is delivered as it was), whether the
//! administrator allows it (else reads give all ones and writes are
//! dropped), which real port accesses of which widths happen, and what
//! the registers and guest memory look like afterwards. The real `in` and
//! `out` instructions are behind [`PortIo`] (`arch/x86_64/pio.rs` on the
//! target), guest memory behind [`GuestAccess`] walked with the guest's own
//! permissions. Invariants: a string instruction does at most
//! `max_reps` repetitions per exit and, with more left, leaves RIP on the
//! instruction with RCX, RSI/RDI counted down (Xen restarts it the same
//! way); a guest address outside guest space is #GP(0) and an unmapped or
//! read-only one a #PF, never a hypervisor access.
//!
//! One exception to "the administrator allows it", as in Xen: for the
//! hardware domain, PIT channel 2 and port 0x61's gate and speaker bits
//! pass through `pit_read`/`pit_write` (Xen's `pv_pit_handler`), which
//! Linux uses to calibrate its TSC; a domU reads all ones there.
#![forbid(unsafe_code)]

use super::guest_mem::GuestAccess;
use super::iocap::RangeSet;
use super::vcpu::{CpuUserRegs, PFEC_WRITE, Rflags};
use yaxpeax_arch::LengthedInstruction;
use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand, Segment};

/// The machine's I/O ports.
pub trait PortIo {
    /// `in` of `bytes` (1, 2 or 4) at `port`.
    fn read(&mut self, port: u16, bytes: u8) -> u32;
    /// `out` of the low `bytes` of `val` at `port`.
    fn write(&mut self, port: u16, bytes: u8, val: u32);
}

/// The PCI configuration address port (Xen's special case).
pub const PCI_CF8: u16 = 0xcf8;
/// The PCI configuration data ports: 0xcfc-0xcff.
pub const PCI_CFC: u16 = 0xcfc;
/// The RTC/CMOS index and data ports, which no guest reaches directly.
pub const RTC_PORTS: (u16, u16) = (0x70, 0x71);
/// PIT channel 2, PIT mode, speaker control: Xen's `pv_pit_handler`
/// answers them ([`pit_read`], [`pit_write`]).
pub const PIT_EMULATED: [u16; 3] = [0x42, 0x43, 0x61];
/// PIT channel 2's counter port.
const PIT_CH2: u16 = 0x42;
/// The PIT's mode (control word) port.
const PIT_MODE: u16 = 0x43;
/// The speaker and channel-2 gate port (bit 0 gate, bit 1 speaker, bit 5
/// OUT2 when read).
const PORT_SPEAKER: u16 = 0x61;

/// Xen's `pv_pit_handler` read of one byte at `port` (0x42, 0x43, 0x61).
/// Only the hardware domain has a virtual PIT (`XEN_X86_EMU_PIT`); others
/// read all ones. For it, Xen's `hwdom_pit_access` passes channel 2 and
/// the speaker port through to the hardware, since Xen does not use the
/// PIT (neither does xen-core after calibrating its TSC at boot), and
/// leaves the mode port to the virtual PIT, whose read of A1:A0 = 3
/// returns the data it was given: 0.
pub fn pit_read(port: u16, hardware: bool, hw: &mut impl PortIo) -> u32 {
    if !hardware {
        return !0;
    }
    match port {
        PIT_CH2 | PORT_SPEAKER => hw.read(port, 1) & 0xff,
        _ => 0,
    }
}

/// Xen's `pv_pit_handler` write of the byte `val` at `port` (0x42, 0x43,
/// 0x61), as [`pit_read`]: for the hardware domain, channel 2's counter
/// goes to the hardware, so do control words that select counter 2 and
/// read-backs that name it (with the channel 0/1 bits left for the
/// virtual PIT), and the speaker port takes only the gate and speaker
/// bits; channel 0/1 control words go to the virtual PIT, where a PV
/// domain never sees them again (its counters 0 and 1 are not readable
/// and raise no interrupt). Others' writes are dropped.
pub fn pit_write(port: u16, val: u8, hardware: bool, hw: &mut impl PortIo) {
    if !hardware {
        return;
    }
    match port {
        PIT_CH2 => hw.write(PIT_CH2, 1, u32::from(val)),
        PIT_MODE => match val & 0xc0 {
            // Read-back: the channel-2 part only (bits 3-7 kept).
            0xc0 if val & 0x08 != 0 => hw.write(PIT_MODE, 1, u32::from(val & 0xf8)),
            // A control word for counter 2.
            0x80 => hw.write(PIT_MODE, 1, u32::from(val)),
            _ => {}
        },
        PORT_SPEAKER => {
            let cur = hw.read(PORT_SPEAKER, 1);
            hw.write(PORT_SPEAKER, 1, (cur & !3 & 0xff) | u32::from(val & 3));
        }
        _ => {}
    }
}

/// What the vCPU asked for (Xen's `v->arch.pv.iopl`, `iobmp`,
/// `iobmp_limit`) and the mode it is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuIo {
    /// Virtual IOPL, 0-3 (PHYSDEVOP_set_iopl).
    pub iopl: u8,
    /// Guest address of its I/O bitmap (PHYSDEVOP_set_iobitmap).
    pub iobmp: u64,
    /// Ports the bitmap covers.
    pub iobmp_limit: u32,
}

/// Xen's `iopl_ok`: the guest kernel counts as ring 1 (ring 0 with
/// VMASST_TYPE_architectural_iopl), user mode as ring 3; the access is
/// allowed when that ring is within the virtual IOPL.
pub fn iopl_ok(io: &VcpuIo, kernel_mode: bool, architectural_iopl: bool) -> bool {
    let cpl = if kernel_mode { u8::from(!architectural_iopl) } else { 3 };
    cpl <= io.iopl
}

/// Xen's `guest_io_okay`: the virtual IOPL allows it, or the guest's I/O
/// bitmap (read with its kernel tables; bytes that cannot be read count
/// as 0xff, no access) has the port's bits clear.
pub fn guest_io_okay(port: u16, bytes: u8, iopl_ok: bool, io: &VcpuIo, kernel_mem: &impl GuestAccess) -> bool {
    if iopl_ok {
        return true;
    }
    let (port, bytes) = (u32::from(port), u32::from(bytes));
    if port + bytes > io.iobmp_limit {
        return false;
    }
    let at = io.iobmp.wrapping_add(u64::from(port >> 3));
    let mut x = [0xffu8; 2];
    let mut b = [0u8; 1];
    if kernel_mem.read(at, &mut b).is_ok() {
        x[0] = b[0];
        if kernel_mem.read(at.wrapping_add(1), &mut b).is_ok() {
            x[1] = b[0];
        }
    }
    let mask = u16::from_le_bytes(x);
    (u32::from(mask) & (((1 << bytes) - 1) << (port & 7))) == 0
}

/// What the domain may reach, and its PCI configuration address (Xen's
/// `currd->arch.pci_cf8`).
pub struct DomainIo<'a> {
    /// Ports it may use directly (Xen's `ioports_access_permitted`).
    pub ioports: &'a RangeSet,
    /// Whether it is the hardware domain (dom0): PCI configuration space.
    pub hardware: bool,
    /// Its last 32-bit write to 0xcf8.
    pub pci_cf8: &'a mut u32,
}

impl DomainIo<'_> {
    fn permitted(&self, first: u32, last: u32) -> bool {
        self.ioports.contains_range(u64::from(first), u64::from(last))
    }

    /// Xen's `admin_io_okay`: never a 32-bit access of 0xcf8, never the
    /// RTC/CMOS ports, else the domain's port permissions.
    pub fn admin_io_okay(&self, port: u16, bytes: u8) -> bool {
        let (p, end) = (u32::from(port), u32::from(port) + u32::from(bytes));
        if port == PCI_CF8 && bytes == 4 {
            return false;
        }
        if p <= u32::from(RTC_PORTS.1) && end > u32::from(RTC_PORTS.0) {
            return false;
        }
        self.permitted(p, end - 1)
    }

    /// Xen's `pci_cfg_ok`: only the hardware domain reaches PCI
    /// configuration space (Xen's write intercepts, for MSI of devices it
    /// owns and read-only devices, have nothing to act on here).
    fn pci_cfg_ok(&self) -> bool {
        self.hardware
    }
}

/// Xen's `pci_conf_read`: select the register with the domain's 0xcf8
/// value, read `size` bytes at `0xcfc + off`.
fn pci_conf_read(hw: &mut impl PortIo, cf8: u32, off: u16, size: u8) -> u32 {
    hw.write(PCI_CF8, 4, cf8);
    hw.read(PCI_CFC + off, size)
}

fn pci_conf_write(hw: &mut impl PortIo, cf8: u32, off: u16, size: u8, val: u32) {
    hw.write(PCI_CF8, 4, cf8);
    hw.write(PCI_CFC + off, size, val);
}

/// The size of one piece of a 0xcfc-0xcff access (Xen: up to the end of
/// the dword, 3 becomes 2).
fn cfc_size(port: u16, bytes: u8) -> u8 {
    let size = bytes.min(4 - (port & 3) as u8);
    if size == 3 { 2 } else { size }
}

/// Xen's `guest_io_read`: a permitted access is done as asked; otherwise
/// piece by piece, each piece from 0xcf8/0xcfc emulation, a permitted port
/// or all ones.
pub fn guest_io_read(port: u16, bytes: u8, d: &mut DomainIo<'_>, hw: &mut impl PortIo) -> u32 {
    if d.admin_io_okay(port, bytes) {
        return hw.read(port, bytes);
    }
    let (mut port, mut left) = (port, bytes);
    let (mut data, mut shift) = (0u32, 0u32);
    while left != 0 {
        let mut size = 1u8;
        let mut sub = !0u32;
        if PIT_EMULATED.contains(&port) {
            sub = pit_read(port, d.hardware, hw);
        } else if port == RTC_PORTS.0 || port == RTC_PORTS.1 {
            // Xen emulates these for dom0 (rtc_guest_read); xen-core gives
            // all ones.
        } else if port == PCI_CF8 && left == 4 {
            size = 4;
            sub = *d.pci_cf8;
        } else if port & 0xfffc == PCI_CFC {
            size = cfc_size(port, left);
            if d.pci_cfg_ok() {
                sub = pci_conf_read(hw, *d.pci_cf8, port & 3, size);
            }
        } else if d.permitted(u32::from(port), u32::from(port)) {
            if left > 1 && port & 1 == 0 && d.permitted(u32::from(port), u32::from(port) + 1) {
                sub = hw.read(port, 2);
                size = 2;
            } else {
                sub = hw.read(port, 1);
            }
        }
        if size == 4 {
            return sub;
        }
        data |= (sub & ((1u32 << (u32::from(size) * 8)) - 1)) << shift;
        shift += u32::from(size) * 8;
        port = port.wrapping_add(u16::from(size));
        left -= size;
    }
    data
}

/// Xen's `guest_io_write`: as [`guest_io_read`], writes that are not
/// allowed are dropped.
pub fn guest_io_write(port: u16, bytes: u8, val: u32, d: &mut DomainIo<'_>, hw: &mut impl PortIo) {
    if d.admin_io_okay(port, bytes) {
        hw.write(port, bytes, val);
        return;
    }
    let (mut port, mut left, mut data) = (port, bytes, val);
    while left != 0 {
        let mut size = 1u8;
        if PIT_EMULATED.contains(&port) {
            pit_write(port, data as u8, d.hardware, hw);
        } else if port == RTC_PORTS.0 || port == RTC_PORTS.1 {
            // Dropped (Xen emulates them for dom0).
        } else if port == PCI_CF8 && left == 4 {
            size = 4;
            *d.pci_cf8 = data;
        } else if port & 0xfffc == PCI_CFC {
            size = cfc_size(port, left);
            if d.pci_cfg_ok() {
                pci_conf_write(hw, *d.pci_cf8, port & 3, size, data);
            }
        } else if d.permitted(u32::from(port), u32::from(port)) {
            if left > 1 && port & 1 == 0 && d.permitted(u32::from(port), u32::from(port) + 1) {
                size = 2;
            }
            hw.write(port, size, data);
        }
        if size == 4 {
            return;
        }
        port = port.wrapping_add(u16::from(size));
        left -= size;
        data = data.checked_shr(u32::from(size) * 8).unwrap_or(0);
    }
}

/// A decoded port-I/O instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoInsn {
    /// Its length in bytes.
    pub len: u64,
    /// `in`/`ins` (true) or `out`/`outs`.
    pub read: bool,
    /// `ins`/`outs`.
    pub string: bool,
    /// Bytes per access: 1, 2 or 4.
    pub bytes: u8,
    /// The port: the immediate, or `None` for DX.
    pub imm_port: Option<u8>,
    /// A rep prefix (F3 or F2: both repeat `ins`/`outs`).
    pub rep: bool,
    /// Address size in bytes (8, or 4 with a 0x67 prefix).
    pub ad_bytes: u8,
    /// The source segment of `outs` (DS unless overridden).
    pub seg: Segment,
}

/// Decode `bytes` (the guest's instruction at RIP, as many as could be
/// read, up to 15) as 64-bit code; `None` unless it is `in`, `out`, `ins`
/// or `outs`.
pub fn decode(bytes: &[u8]) -> Option<IoInsn> {
    let inst = InstDecoder::default().decode_slice(bytes).ok()?;
    let (read, string) = match inst.opcode() {
        Opcode::IN => (true, false),
        Opcode::OUT => (false, false),
        Opcode::INS => (true, true),
        Opcode::OUTS => (false, true),
        _ => return None,
    };
    let width = |op: Operand| match op {
        Operand::Register { reg } => Some(reg.width()),
        _ => None,
    };
    let (bytes, imm_port) = if string {
        (inst.mem_size()?.bytes_size()?.min(4), None)
    } else {
        // `in acc, port` or `out port, acc`.
        let (acc, port) = if read { (inst.operand(0), inst.operand(1)) } else { (inst.operand(1), inst.operand(0)) };
        let imm = match port {
            Operand::ImmediateU8 { imm } => Some(imm),
            Operand::ImmediateI8 { imm } => Some(imm as u8),
            _ => None,
        };
        (width(acc)?.min(4), imm)
    };
    if !matches!(bytes, 1 | 2 | 4) {
        return None;
    }
    let p = inst.prefixes;
    Some(IoInsn {
        len: inst.len().to_const(),
        read,
        string,
        bytes,
        imm_port,
        rep: string && p.rep_any(),
        ad_bytes: if p.address_size() { 4 } else { 8 },
        seg: p.segment(),
    })
}

/// How an emulation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulated {
    /// Not a port-I/O instruction, or the guest did not ask for the access
    /// (IOPL or bitmap): the #GP goes to the guest as it was raised.
    NotEmulated,
    /// Done (RIP moved past it, or left on it for a rep to continue).
    Done,
    /// Deliver #GP(0) (a bad guest address; state as the reps done left it).
    GeneralProtection,
    /// Deliver #PF with this address and error code.
    PageFault {
        /// The faulting linear address (the guest's CR2).
        cr2: u64,
        /// PFEC_write_access for `ins`, 0 for `outs` (Xen adds the user
        /// bit from the guest's mode when it injects it).
        error_code: u64,
    },
}

/// Everything the emulation needs besides the registers.
pub struct IoEnv<'a, M: GuestAccess, K: GuestAccess, P: PortIo> {
    /// Guest memory as the current mode sees it (ins/outs data).
    pub mem: &'a M,
    /// Guest memory as the kernel sees it (the I/O bitmap).
    pub kernel_mem: &'a K,
    /// The real ports.
    pub hw: &'a mut P,
    /// The vCPU's I/O state.
    pub vcpu: VcpuIo,
    /// Xen's `iopl_ok` for the current mode.
    pub iopl_ok: bool,
    /// The domain's side.
    pub dom: DomainIo<'a>,
    /// FS base, and GS base of the current mode (`outs` overrides).
    pub fs_gs_base: (u64, u64),
    /// Repetitions one exit may do at most (at least 1).
    pub max_reps: u64,
}

/// Copy `buf` to or from guest `va`, page by page: on failure the address
/// of the first byte that could not be moved.
fn copy_guest(mem: &impl GuestAccess, va: u64, buf: &mut [u8], write: bool) -> Result<(), u64> {
    let first = (0x1000 - (va & 0xfff)) as usize;
    let (a, b) = buf.split_at_mut(first.min(buf.len()));
    let va2 = va.wrapping_add(a.len() as u64);
    let one = |at: u64, part: &mut [u8]| if write { mem.write(at, part) } else { mem.read(at, part) };
    one(va, a).map_err(|_| va)?;
    if !b.is_empty() {
        one(va2, b).map_err(|_| va2)?;
    }
    Ok(())
}

/// Store an `in` result in the accumulator as the CPU does: AL or AX
/// alone, or EAX zero-extended into RAX.
fn set_acc(regs: &mut CpuUserRegs, bytes: u8, val: u32) {
    regs.rax = match bytes {
        1 => (regs.rax & !0xff) | u64::from(val & 0xff),
        2 => (regs.rax & !0xffff) | u64::from(val & 0xffff),
        _ => u64::from(val),
    };
}

/// Emulate the port-I/O instruction `insn` (decoded from the bytes at
/// RIP) for the vCPU whose registers are `regs`.
pub fn emulate<M: GuestAccess, K: GuestAccess, P: PortIo>(insn: &IoInsn, regs: &mut CpuUserRegs, env: &mut IoEnv<'_, M, K, P>) -> Emulated {
    let port = insn.imm_port.map_or(regs.rdx as u16, u16::from);
    if !insn.string {
        if !guest_io_okay(port, insn.bytes, env.iopl_ok, &env.vcpu, env.kernel_mem) {
            return Emulated::NotEmulated;
        }
        if insn.read {
            let v = guest_io_read(port, insn.bytes, &mut env.dom, env.hw);
            set_acc(regs, insn.bytes, v);
        } else {
            guest_io_write(port, insn.bytes, regs.rax as u32, &mut env.dom, env.hw);
        }
        regs.rip = regs.rip.wrapping_add(insn.len);
        return Emulated::Done;
    }
    emulate_string(insn, port, regs, env)
}

/// The count register as the address size sees it.
fn loop_count(regs: &CpuUserRegs, ad_bytes: u8) -> u64 {
    if ad_bytes == 4 { regs.rcx & 0xffff_ffff } else { regs.rcx }
}

/// `reg` advanced by `inc` within the address size (x86_emulate's
/// `_register_address_increment`: the bits above a 32-bit index stay).
fn advance(reg: u64, inc: u64, ad_bytes: u8) -> u64 {
    if ad_bytes == 8 { reg.wrapping_add(inc) } else { (reg & !0xffff_ffff) | (reg.wrapping_add(inc) & 0xffff_ffff) }
}

fn emulate_string<M: GuestAccess, K: GuestAccess, P: PortIo>(
    insn: &IoInsn,
    port: u16,
    regs: &mut CpuUserRegs,
    env: &mut IoEnv<'_, M, K, P>,
) -> Emulated {
    let ad = insn.ad_bytes;
    let mut goal = if insn.rep { loop_count(regs, ad) } else { 1 };
    if goal == 0 {
        // Nothing to do: the instruction completes (32-bit addressing
        // zero-extends the registers it names).
        if ad == 4 {
            regs.rcx = 0;
            if insn.read { regs.rdi &= 0xffff_ffff } else { regs.rsi &= 0xffff_ffff }
        }
        regs.rip = regs.rip.wrapping_add(insn.len);
        return Emulated::Done;
    }
    if !guest_io_okay(port, insn.bytes, env.iopl_ok, &env.vcpu, env.kernel_mem) {
        return Emulated::NotEmulated;
    }
    let rflags = Rflags::from_bits_retain(regs.rflags);
    if goal > 1 && rflags.contains(Rflags::TF) {
        goal = 1;
    }
    let base = match insn.seg {
        Segment::FS if !insn.read => env.fs_gs_base.0,
        Segment::GS if !insn.read => env.fs_gs_base.1,
        _ => 0,
    };
    let step = u64::from(insn.bytes);
    let inc = if rflags.contains(Rflags::DF) { step.wrapping_neg() } else { step };
    let mut index = if insn.read { regs.rdi } else { regs.rsi };
    let limit = goal.min(env.max_reps.max(1));
    let mut done = 0u64;
    let mut outcome = Emulated::Done;
    while done < limit {
        let off = if ad == 4 { index & 0xffff_ffff } else { index };
        let va = base.wrapping_add(off);
        if !crate::mm::guest_walk::guest_va_ok(va) {
            outcome = Emulated::GeneralProtection;
            break;
        }
        let mut buf = [0u8; 4];
        let buf = &mut buf[..usize::from(insn.bytes)];
        if insn.read {
            let v = guest_io_read(port, insn.bytes, &mut env.dom, env.hw);
            buf.copy_from_slice(&v.to_le_bytes()[..usize::from(insn.bytes)]);
            if let Err(cr2) = copy_guest(env.mem, va, buf, true) {
                outcome = Emulated::PageFault { cr2, error_code: PFEC_WRITE };
                break;
            }
        } else {
            if let Err(cr2) = copy_guest(env.mem, va, buf, false) {
                outcome = Emulated::PageFault { cr2, error_code: 0 };
                break;
            }
            let mut w = [0u8; 4];
            w[..buf.len()].copy_from_slice(buf);
            guest_io_write(port, insn.bytes, u32::from_le_bytes(w), &mut env.dom, env.hw);
        }
        done += 1;
        index = advance(index, inc, ad);
    }
    // Registers: the index moved by the reps done; a rep prefix counts
    // RCX down and leaves RIP on the instruction while any are left; an
    // exception without a rep prefix changes nothing.
    if !insn.rep && outcome != Emulated::Done {
        return outcome;
    }
    if insn.read {
        regs.rdi = index;
    } else {
        regs.rsi = index;
    }
    let mut left = 0;
    if insn.rep {
        left = loop_count(regs, ad) - done;
        regs.rcx = left;
    }
    if left == 0 && outcome == Emulated::Done {
        regs.rip = regs.rip.wrapping_add(insn.len);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::super::guest_mem::tests::FakeGuest;
    use super::super::iocap::dom0_ioports;
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// Ports that answer `port as u8` repeated on reads and log every access.
    #[derive(Default)]
    struct Hw {
        log: Vec<(bool, u16, u8, u32)>,
        regs: BTreeMap<u16, u32>,
    }

    impl PortIo for Hw {
        fn read(&mut self, port: u16, bytes: u8) -> u32 {
            self.log.push((true, port, bytes, 0));
            let v = self.regs.get(&port).copied().unwrap_or(u32::from_le_bytes([port as u8; 4]));
            if bytes == 4 { v } else { v & ((1 << (bytes * 8)) - 1) }
        }
        fn write(&mut self, port: u16, bytes: u8, val: u32) {
            self.log.push((false, port, bytes, val));
        }
    }

    fn regs() -> CpuUserRegs {
        CpuUserRegs { rip: 0x1000, rflags: 0x202, ..Default::default() }
    }

    struct Machine {
        mem: FakeGuest,
        hw: Hw,
        ports: RangeSet,
        cf8: u32,
        hardware: bool,
        iopl_ok: bool,
        vcpu: VcpuIo,
        max_reps: u64,
    }

    impl Machine {
        fn dom0() -> Self {
            Machine {
                mem: FakeGuest::default(),
                hw: Hw::default(),
                ports: dom0_ioports(),
                cf8: 0,
                hardware: true,
                iopl_ok: true,
                vcpu: VcpuIo::default(),
                max_reps: 1024,
            }
        }
        fn domu() -> Self {
            Machine { ports: RangeSet::new(), hardware: false, ..Self::dom0() }
        }
        fn run(&mut self, code: &[u8], r: &mut CpuUserRegs) -> Emulated {
            let Some(insn) = decode(code) else { return Emulated::NotEmulated };
            let mut env = IoEnv {
                mem: &self.mem,
                kernel_mem: &self.mem,
                hw: &mut self.hw,
                vcpu: self.vcpu,
                iopl_ok: self.iopl_ok,
                dom: DomainIo { ioports: &self.ports, hardware: self.hardware, pci_cf8: &mut self.cf8 },
                fs_gs_base: (0x7000_0000, 0x7100_0000),
                max_reps: self.max_reps,
            };
            emulate(&insn, r, &mut env)
        }
    }

    #[test]
    fn decode_covers_every_form_and_width() {
        let d = |b: &[u8]| decode(b).map(|i| (i.read, i.string, i.bytes, i.imm_port, i.rep, i.len));
        assert_eq!(d(&[0xe4, 0x60]), Some((true, false, 1, Some(0x60), false, 2)), "in al, imm8");
        assert_eq!(d(&[0x66, 0xe5, 0x60]), Some((true, false, 2, Some(0x60), false, 3)), "in ax, imm8");
        assert_eq!(d(&[0xe5, 0x60]), Some((true, false, 4, Some(0x60), false, 2)), "in eax, imm8");
        assert_eq!(d(&[0xec]), Some((true, false, 1, None, false, 1)), "in al, dx");
        assert_eq!(d(&[0x66, 0xed]), Some((true, false, 2, None, false, 2)), "in ax, dx");
        assert_eq!(d(&[0xed]), Some((true, false, 4, None, false, 1)), "in eax, dx");
        assert_eq!(d(&[0xe6, 0x80]), Some((false, false, 1, Some(0x80), false, 2)), "out imm8, al");
        assert_eq!(d(&[0xef]), Some((false, false, 4, None, false, 1)), "out dx, eax");
        assert_eq!(d(&[0xf3, 0x6c]), Some((true, true, 1, None, true, 2)), "rep insb");
        assert_eq!(d(&[0x66, 0x6d]), Some((true, true, 2, None, false, 2)), "insw");
        assert_eq!(d(&[0xf3, 0x6f]), Some((false, true, 4, None, true, 2)), "rep outsd");
        assert_eq!(d(&[0x0f, 0x01, 0x18]), None, "lidt is not port I/O");
        assert_eq!(d(&[0xcd, 0x80]), None);
        assert_eq!(d(&[]), None);
        assert_eq!(d(&[0x66]), None, "a lone prefix");
        assert_eq!(decode(&[0x64, 0x6e]).map(|i| i.seg), Some(Segment::FS), "outs with an FS override");
        assert_eq!(decode(&[0x67, 0x6c]).map(|i| i.ad_bytes), Some(4));
    }

    #[test]
    fn iopl_ok_counts_kernel_as_ring1_unless_architectural_iopl() {
        let io = |iopl| VcpuIo { iopl, ..Default::default() };
        assert!(!iopl_ok(&io(0), true, false));
        assert!(iopl_ok(&io(1), true, false));
        assert!(iopl_ok(&io(0), true, true), "architectural IOPL: the kernel is ring 0");
        assert!(!iopl_ok(&io(2), false, false), "user mode is ring 3");
        assert!(iopl_ok(&io(3), false, false));
    }

    #[test]
    fn in_without_iopl_or_bitmap_is_not_emulated_so_gp_is_delivered() {
        let mut m = Machine::dom0();
        m.iopl_ok = false;
        let mut r = regs();
        assert_eq!(m.run(&[0xe4, 0x60], &mut r), Emulated::NotEmulated);
        assert_eq!(r, regs(), "registers untouched");
        assert!(m.hw.log.is_empty(), "no port touched");
    }

    #[test]
    fn io_bitmap_clear_bits_allow_the_access_and_unreadable_bitmap_denies() {
        let mut m = Machine::dom0();
        m.iopl_ok = false;
        m.mem.map(0x5000);
        m.mem.write(0x5000, &[0xff; 16]).unwrap();
        // Port 0x60-0x67 are byte 12; clear bit 0 (port 0x60).
        m.mem.write(0x500c, &[0xfe]).unwrap();
        m.vcpu = VcpuIo { iopl: 0, iobmp: 0x5000, iobmp_limit: 0x80 };
        let mut r = regs();
        assert_eq!(m.run(&[0xe4, 0x60], &mut r), Emulated::Done);
        assert_eq!(m.run(&[0x66, 0xe5, 0x60], &mut regs()), Emulated::NotEmulated, "port 0x61's bit is set");
        assert_eq!(m.run(&[0xe4, 0x80], &mut regs()), Emulated::NotEmulated, "past iobmp_limit");
        m.vcpu.iobmp = 0xdead_0000;
        assert_eq!(m.run(&[0xe4, 0x60], &mut regs()), Emulated::NotEmulated, "unreadable bitmap: no access");
    }

    #[test]
    fn in_writes_al_ax_or_zero_extended_eax() {
        let mut m = Machine::dom0();
        for (code, want) in
            [(&[0xe4u8, 0x80][..], 0xffff_ffff_ffff_ff80u64), (&[0x66, 0xe5, 0x80][..], 0xffff_ffff_ffff_8080), (&[0xe5, 0x80][..], 0x8080_8080)]
        {
            let mut r = CpuUserRegs { rax: u64::MAX, ..regs() };
            assert_eq!(m.run(code, &mut r), Emulated::Done);
            assert_eq!(r.rax, want, "{code:x?}");
            assert_eq!(r.rip, 0x1000 + code.len() as u64);
        }
    }

    #[test]
    fn denied_ports_read_all_ones_and_writes_are_dropped() {
        let mut m = Machine::dom0();
        // xen-core's UART, the PIC, the PIT: dom0 may not touch them.
        for port in [0x3f8u16, 0x21, 0x40] {
            let mut r = CpuUserRegs { rdx: u64::from(port), ..regs() };
            assert_eq!(m.run(&[0xec], &mut r), Emulated::Done);
            assert_eq!(r.rax & 0xff, 0xff);
            assert_eq!(m.run(&[0xee], &mut r), Emulated::Done);
        }
        assert!(m.hw.log.is_empty(), "no real access: {:?}", m.hw.log);
    }

    #[test]
    fn domu_in_with_iopl_reads_all_ones_and_touches_nothing() {
        let mut m = Machine::domu();
        let mut r = CpuUserRegs { rdx: 0xcfc, ..regs() };
        assert_eq!(m.run(&[0xed], &mut r), Emulated::Done);
        assert_eq!(r.rax, 0xffff_ffff);
        let mut r = CpuUserRegs { rdx: 0xcf8, rax: 0x8000_0000, ..regs() };
        assert_eq!(m.run(&[0xef], &mut r), Emulated::Done);
        assert_eq!(m.cf8, 0x8000_0000, "Xen keeps a domU's cf8 too");
        assert_eq!(m.run(&[0xed], &mut CpuUserRegs { rdx: 0xcfc, ..regs() }), Emulated::Done);
        assert!(m.hw.log.is_empty(), "a domU never reaches PCI config space: {:?}", m.hw.log);
    }

    #[test]
    fn rtc_ports_are_never_direct_even_for_dom0() {
        let m = Machine::dom0();
        let d = DomainIo { ioports: &m.ports, hardware: true, pci_cf8: &mut 0 };
        assert!(!d.admin_io_okay(0x70, 1) && !d.admin_io_okay(0x71, 1) && !d.admin_io_okay(0x6f, 2));
        assert!(d.admin_io_okay(0x72, 1) && d.admin_io_okay(0x6e, 2));
        assert!(!d.admin_io_okay(0xcf8, 4), "0xcf8 dword is always emulated");
        assert!(d.admin_io_okay(0xcf8, 1), "0xcf8 byte: an ordinary port");
    }

    #[test]
    fn dom0_pci_config_read_goes_through_its_cf8_value() {
        let mut m = Machine::dom0();
        m.hw.regs.insert(0xcfc, 0x1237_8086);
        let mut r = CpuUserRegs { rdx: 0xcf8, rax: 0x8000_0000, ..regs() };
        assert_eq!(m.run(&[0xef], &mut r), Emulated::Done);
        assert!(m.hw.log.is_empty(), "the cf8 write is only remembered");
        let mut r = CpuUserRegs { rdx: 0xcfc, ..regs() };
        assert_eq!(m.run(&[0xed], &mut r), Emulated::Done);
        assert_eq!(r.rax, 0x1237_8086);
        assert_eq!(m.hw.log, [(false, 0xcf8, 4, 0x8000_0000), (true, 0xcfc, 4, 0)]);
        // A 32-bit read of 0xcf8 gives the remembered value.
        let mut r = CpuUserRegs { rdx: 0xcf8, ..regs() };
        m.run(&[0xed], &mut r);
        assert_eq!(r.rax, 0x8000_0000);
        // A word at 0xcfe reads offset 2 of the dword.
        m.hw.log.clear();
        let mut r = CpuUserRegs { rdx: 0xcfe, ..regs() };
        m.run(&[0x66, 0xed], &mut r);
        assert_eq!(m.hw.log, [(false, 0xcf8, 4, 0x8000_0000), (true, 0xcfe, 2, 0)]);
    }

    #[test]
    fn a_word_read_of_0x60_gets_0x61_from_pit_emulation_not_the_port() {
        // 0x60 is dom0's; 0x61 goes through pv_pit_handler (hwdom_pit_access).
        let mut m = Machine::dom0();
        let mut r = regs();
        m.run(&[0x66, 0xe5, 0x60], &mut r);
        assert_eq!(r.rax & 0xffff, 0x6160);
        assert_eq!(m.hw.log, [(true, 0x60, 1, 0), (true, 0x61, 1, 0)]);
        let mut m = Machine::domu();
        let mut r = CpuUserRegs { rax: 0, ..regs() };
        m.vcpu.iopl = 3;
        m.run(&[0x66, 0xe5, 0x60], &mut r);
        assert_eq!(r.rax & 0xffff, 0xffff, "a domU has no vPIT: all ones");
    }

    #[test]
    fn dom0_reaches_pit_channel_2_as_xens_hwdom_pit_access() {
        // Linux's TSC calibration: gate on (0x61 bits 0-1 only), counter 2
        // mode 0 (0xb0), count LSB/MSB, then counter reads and OUT2 (0x61).
        let mut m = Machine::dom0();
        m.hw.regs.insert(0x61, 0x2c);
        let out = |m: &mut Machine, port: u8, val: u64| {
            let mut r = CpuUserRegs { rax: val, ..regs() };
            assert_eq!(m.run(&[0xe6, port], &mut r), Emulated::Done);
        };
        out(&mut m, 0x61, 0xfd);
        out(&mut m, 0x43, 0xb0);
        out(&mut m, 0x42, 0xff);
        out(&mut m, 0x42, 0xff);
        assert_eq!(
            m.hw.log,
            [(true, 0x61, 1, 0), (false, 0x61, 1, 0x2d), (false, 0x43, 1, 0xb0), (false, 0x42, 1, 0xff), (false, 0x42, 1, 0xff)],
            "only the gate and speaker bits of 0x61 change"
        );
        m.hw.log.clear();
        let mut r = regs();
        m.run(&[0xe4, 0x42], &mut r);
        assert_eq!(r.rax & 0xff, 0x42, "the hardware's counter");
        m.run(&[0xe4, 0x61], &mut r);
        assert_eq!(r.rax & 0xff, 0x2c);
        m.run(&[0xe4, 0x43], &mut r);
        assert_eq!(r.rax & 0xff, 0, "the mode port reads 0 (the vPIT's A1:A0=3)");
        assert_eq!(m.hw.log, [(true, 0x42, 1, 0), (true, 0x61, 1, 0)]);
    }

    #[test]
    fn pit_control_words_for_channels_0_and_1_never_reach_the_hardware() {
        // hwdom_pit_access passes counter-2 control words and the counter-2
        // part of a read-back; the rest is the virtual PIT's.
        let mut hw = Hw::default();
        for v in [0x34u8, 0x74, 0xc2, 0xc4, 0xd2] {
            pit_write(0x43, v, true, &mut hw);
        }
        assert!(hw.log.is_empty(), "{:?}", hw.log);
        pit_write(0x43, 0xca, true, &mut hw);
        pit_write(0x43, 0x96, true, &mut hw);
        assert_eq!(hw.log, [(false, 0x43, 1, 0xc8), (false, 0x43, 1, 0x96)], "read-back of 2 with 0/1 filtered; counter 2 word");
        hw.log.clear();
        for port in PIT_EMULATED {
            pit_write(port, 0xff, false, &mut hw);
            assert_eq!(pit_read(port, false, &mut hw), !0);
        }
        assert!(hw.log.is_empty(), "a domain without a vPIT never reaches the ports");
    }

    #[test]
    fn a_read_straddling_a_denied_port_is_split_as_xen_does() {
        let mut m = Machine::dom0();
        // 0x3f6-0x3f9: 0x3f6-0x3f7 permitted (one word), 0x3f8-0x3f9 xen-core's.
        let mut r = CpuUserRegs { rdx: 0x3f6, ..regs() };
        m.run(&[0xed], &mut r);
        assert_eq!(r.rax, 0xffff_f6f6);
        assert_eq!(m.hw.log, [(true, 0x3f6, 2, 0)]);
    }

    #[test]
    fn rep_insb_fills_memory_and_counts_registers_down() {
        let mut m = Machine::dom0();
        m.mem.map(0x4000);
        let mut r = CpuUserRegs { rdx: 0x60, rdi: 0x4000, rcx: 5, ..regs() };
        assert_eq!(m.run(&[0xf3, 0x6c], &mut r), Emulated::Done);
        let mut got = [0u8; 6];
        m.mem.read(0x4000, &mut got).unwrap();
        assert_eq!(got, [0x60, 0x60, 0x60, 0x60, 0x60, 0]);
        assert_eq!((r.rcx, r.rdi, r.rip), (0, 0x4005, 0x1002));
    }

    #[test]
    fn huge_rep_count_is_bounded_per_exit_and_restarts() {
        let mut m = Machine::dom0();
        m.max_reps = 16;
        m.mem.map(0x4000);
        let mut r = CpuUserRegs { rdx: 0x60, rdi: 0x4000, rcx: u64::MAX, ..regs() };
        assert_eq!(m.run(&[0xf3, 0x6c], &mut r), Emulated::Done);
        assert_eq!(m.hw.log.len(), 16, "at most max_reps port reads per exit");
        assert_eq!((r.rcx, r.rdi, r.rip), (u64::MAX - 16, 0x4010, 0x1000), "RIP stays: the instruction restarts");
    }

    #[test]
    fn rep_with_zero_count_does_nothing_even_without_permission() {
        let mut m = Machine::dom0();
        m.iopl_ok = false;
        let mut r = CpuUserRegs { rdx: 0x60, rdi: 0x4000, rcx: 0, ..regs() };
        assert_eq!(m.run(&[0xf3, 0x6c], &mut r), Emulated::Done);
        assert_eq!(r.rip, 0x1002);
        assert!(m.hw.log.is_empty());
    }

    #[test]
    fn ins_into_read_only_or_unmapped_memory_is_a_write_page_fault_after_the_reps_done() {
        let mut m = Machine::dom0();
        m.mem.map(0x4000);
        // 0x5000 is not mapped: the third byte faults.
        let mut r = CpuUserRegs { rdx: 0x60, rdi: 0x4ffe, rcx: 10, ..regs() };
        assert_eq!(m.run(&[0xf3, 0x6c], &mut r), Emulated::PageFault { cr2: 0x5000, error_code: 2 });
        assert_eq!((r.rcx, r.rdi, r.rip), (8, 0x5000, 0x1000), "two done, the rest restarts after the fault");
        // Without rep, a fault leaves the registers alone.
        let mut r = CpuUserRegs { rdx: 0x60, rdi: 0x5000, ..regs() };
        let before = r;
        assert_eq!(m.run(&[0x6c], &mut r), Emulated::PageFault { cr2: 0x5000, error_code: 2 });
        assert_eq!(r, before);
    }

    #[test]
    fn ins_outs_at_hypervisor_or_noncanonical_addresses_are_gp() {
        let mut m = Machine::dom0();
        for va in [0xffff_8300_0000_0000u64, 0xffff_82d0_4000_0000, 0x8000_0000_0000_0000, 0x0000_8000_0000_0000] {
            let mut r = CpuUserRegs { rdx: 0x60, rdi: va, rsi: va, ..regs() };
            assert_eq!(m.run(&[0x6c], &mut r), Emulated::GeneralProtection, "ins to {va:#x}");
            assert_eq!(m.run(&[0x6e], &mut r), Emulated::GeneralProtection, "outs from {va:#x}");
        }
        assert!(m.hw.log.is_empty(), "no port access for a bad address: {:?}", m.hw.log);
    }

    #[test]
    fn outs_reads_through_the_segment_override_and_df_counts_down() {
        let mut m = Machine::dom0();
        m.mem.map(0x7000_0000);
        m.mem.write(0x7000_0010, &[1, 2, 3, 4]).unwrap();
        let mut r = CpuUserRegs { rdx: 0x80, rsi: 0x12, rcx: 3, rflags: 0x602, ..regs() };
        assert_eq!(m.run(&[0xf3, 0x64, 0x6e], &mut r), Emulated::Done, "rep outsb fs:[rsi]");
        assert_eq!(m.hw.log, [(false, 0x80, 1, 3), (false, 0x80, 1, 2), (false, 0x80, 1, 1)]);
        assert_eq!((r.rsi, r.rcx), (0xf, 0));
    }

    #[test]
    fn address_size_prefix_wraps_the_index_within_32_bits() {
        let mut m = Machine::dom0();
        m.mem.map(0xffff_f000);
        m.mem.map(0);
        let mut r = CpuUserRegs { rdx: 0x60, rdi: 0x1234_ffff_ffff, rcx: 0xdead_0000_0000_0002, ..regs() };
        assert_eq!(m.run(&[0x67, 0xf3, 0x6c], &mut r), Emulated::Done);
        assert_eq!(r.rdi, 0x1234_0000_0001, "the upper half of RDI stays (x86_emulate)");
        assert_eq!(r.rcx, 0, "ECX counted down and zero-extended");
    }

    #[test]
    fn hostile_instruction_bytes_never_panic() {
        let mut m = Machine::dom0();
        m.mem.map(0);
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut code = x.to_le_bytes().to_vec();
            code.extend_from_slice(&x.rotate_left(7).to_le_bytes()[..7]);
            code[0] = [0x6c, 0x6d, 0x6e, 0x6f, 0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x66, 0xf3, 0x67, 0x48][(x >> 60) as usize];
            let mut r = CpuUserRegs { rcx: x, rdi: x.rotate_left(3), rsi: x.rotate_left(9), rdx: x, rbx: !x, r8: x ^ 1, ..regs() };
            let before = r;
            m.max_reps = 4;
            let outcome = m.run(&code, &mut r);
            // Only RAX, RCX, RSI, RDI and RIP may change; RIP moves by the
            // decoded length or (a rep still running, a fault) stays.
            let untouched = |r: &CpuUserRegs| (r.rbx, r.rdx, r.rbp, r.rsp, r.r8, r.r15, r.rflags, r.cs, r.ss);
            assert_eq!(untouched(&r), untouched(&before), "{code:02x?}");
            let len = decode(&code).map_or(0, |i| i.len);
            match outcome {
                Emulated::NotEmulated => assert_eq!(r, before, "refused, nothing changed: {code:02x?}"),
                Emulated::Done => assert!(r.rip == before.rip + len || r.rip == before.rip, "{code:02x?}: rip {:#x}", r.rip),
                Emulated::GeneralProtection | Emulated::PageFault { .. } => assert_eq!(r.rip, before.rip, "a fault leaves RIP on it: {code:02x?}"),
            }
        }
    }
}
