//! Writable page tables: a PV guest kernel's direct write to one of its own
//! live L1 tables (which it maps read-only) is decoded, checked as
//! `mmu_update` would check the new entry, and applied, as Xen 4.17's
//! `pv/ro-page-fault.c` (`ptwr_do_page_fault`, `ptwr_emulated_update`)
//! does; and dom0's writes to read-only MMIO (`mmio_ro_ranges`) are
//! dropped, as its `mmio_ro_do_page_fault` does. Everything else is a plain
//! #PF for the guest.
//!
//! Instructions: the ones whose memory write a PV kernel aims at a PTE
//! (`mov`, `xchg`, `cmpxchg`, `cmpxchg8b`, `or`/`and`/`xor`/`add`/`sub`,
//! `bts`/`btr`/`btc`, `inc`/`dec`/`not`/`neg`, locked or not), decoded with
//! `yaxpeax-x86`. A write
//! narrower than 8 bytes is merged with the rest of the old entry, as Xen
//! does; a write that is not naturally aligned or leaves the faulting page
//! (one that straddles two entries, `cmpxchg16b`) is not emulated.
//!
//! Invariants: the new entry is validated and referenced by the frame
//! table ([`FrameTable::ptwr_update`]) under its lock before anything of
//! the guest's changes; if it is refused, neither the table, nor the
//! registers, nor RIP change, and the caller delivers the #PF as raised.
//! Only an L1 the faulting domain owns and uses as a live L1 is written;
//! an entry never maps another domain's frame (pg_owner is the caller).
#![forbid(unsafe_code)]

use super::guest_mem::GuestAccess;
use super::host::{CpuTlb, FrameHost};
use super::mmu_ops::l1_slot;
use super::vcpu::{CpuUserRegs, PFEC_PRESENT, PFEC_RESERVED, PFEC_WRITE};
use crate::mm::Mfn;
use crate::mm::guest_walk::guest_va_ok;
use crate::mm::page_type::{FrameTable, PageMem, Who};
use xen_public::pte::{PteFlags, pte_maddr};
use yaxpeax_arch::LengthedInstruction;
use yaxpeax_x86::long_mode::{InstDecoder, Opcode, Operand, RegSpec, Segment, register_class};

/// `VMASST_TYPE_writable_pagetables` as a `vm_assist` bit.
pub const VMASST_WRITABLE_PAGETABLES: u64 = xen_public::xen::vmasst_bit(xen_public::xen::VMASST_TYPE_WRITABLE_PAGETABLES);

const PFEC_INSN_FETCH: u64 = 1 << 4;

/// RFLAGS arithmetic bits.
const CF: u64 = 1 << 0;
const PF: u64 = 1 << 2;
const AF: u64 = 1 << 4;
const ZF: u64 = 1 << 6;
const SF: u64 = 1 << 7;
const OF: u64 = 1 << 11;
const ARITH: u64 = CF | PF | AF | ZF | SF | OF;

/// The faulting domain as the emulation sees it.
#[derive(Clone, Copy, Debug)]
pub struct Faulter {
    /// The domain.
    pub domid: u16,
    /// The hardware domain (dom0): gets ptwr without the assist, and the
    /// read-only MMIO emulation.
    pub privileged: bool,
    /// Its `vm_assist` bits.
    pub vm_assist: u64,
    /// The vCPU was in guest kernel mode.
    pub kernel_mode: bool,
    /// Machine address of the vCPU's kernel L4.
    pub l4_maddr: u64,
    /// FS and GS bases in effect (segment overrides).
    pub fs_gs_base: (u64, u64),
}

/// What an instruction does to its memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `mov` (a plain store).
    Mov,
    /// `xchg` (the register gets the old value).
    Xchg,
    /// `cmpxchg` against the accumulator.
    Cmpxchg,
    /// `cmpxchg8b` against EDX:EAX.
    Cmpxchg8b,
    /// `or`.
    Or,
    /// `and`.
    And,
    /// `xor`.
    Xor,
    /// `add`.
    Add,
    /// `sub`.
    Sub,
    /// `bts` (bit test and set).
    Bts,
    /// `btr` (bit test and reset).
    Btr,
    /// `btc` (bit test and complement).
    Btc,
    /// `inc`.
    Inc,
    /// `dec`.
    Dec,
    /// `not`.
    Not,
    /// `neg`.
    Neg,
}

/// A register operand: its number (Xen's ModRM numbering) and width; `high`
/// for AH, CH, DH, BH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reg {
    num: u8,
    bytes: u8,
    high: bool,
}

/// The source operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A general-purpose register.
    Reg(Reg),
    /// Already sign- or zero-extended as the instruction says.
    Imm(u64),
    /// `cmpxchg8b` (implicit EDX:EAX and ECX:EBX), or none (`inc`, `dec`,
    /// `not`, `neg`).
    Implicit,
}

/// A memory operand's address parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRef {
    base: Option<Reg>,
    index: Option<(Reg, u8)>,
    disp: i64,
    rip_relative: bool,
    addr32: bool,
    seg: Segment,
}

/// A decoded instruction that writes memory in a form emulated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteInsn {
    /// What it does.
    pub op: Op,
    /// Bytes written (the operand size).
    pub bytes: u8,
    /// The memory operand.
    pub mem: MemRef,
    /// The source operand.
    pub src: Src,
    /// Instruction length.
    pub len: u8,
}

fn reg_of(r: RegSpec) -> Option<Reg> {
    let c = r.class();
    let (bytes, high) = if c == register_class::Q {
        (8, false)
    } else if c == register_class::D {
        (4, false)
    } else if c == register_class::W {
        (2, false)
    } else if c == register_class::B {
        (1, r.num() >= 4)
    } else if c == register_class::RB {
        (1, false)
    } else {
        return None;
    };
    let num = if high { r.num() - 4 } else { r.num() };
    Some(Reg { num, bytes, high })
}

fn mem_of(op: Operand, addr32: bool, seg: Segment) -> Option<MemRef> {
    let mut m = MemRef { base: None, index: None, disp: 0, rip_relative: false, addr32, seg };
    let base = |b: RegSpec, m: &mut MemRef| -> Option<()> {
        if b == RegSpec::RIP || b.class() == register_class::RIP || b.class() == register_class::EIP {
            m.rip_relative = true;
        } else {
            m.base = Some(reg_of(b)?);
        }
        Some(())
    };
    match op {
        Operand::AbsoluteU32 { addr } => m.disp = i64::from(addr),
        Operand::AbsoluteU64 { addr } => m.disp = addr as i64,
        Operand::MemDeref { base: b } => base(b, &mut m)?,
        Operand::Disp { base: b, disp } => {
            base(b, &mut m)?;
            m.disp = i64::from(disp);
        }
        Operand::MemIndexScale { index, scale } => m.index = Some((reg_of(index)?, scale)),
        Operand::MemIndexScaleDisp { index, scale, disp } => {
            m.index = Some((reg_of(index)?, scale));
            m.disp = i64::from(disp);
        }
        Operand::MemBaseIndexScale { base: b, index, scale } => {
            base(b, &mut m)?;
            m.index = Some((reg_of(index)?, scale));
        }
        Operand::MemBaseIndexScaleDisp { base: b, index, scale, disp } => {
            base(b, &mut m)?;
            m.index = Some((reg_of(index)?, scale));
            m.disp = i64::from(disp);
        }
        _ => return None,
    }
    Some(m)
}

fn imm_of(op: Operand, bytes: u8) -> Option<u64> {
    let v = match op {
        Operand::ImmediateI8 { imm } => i64::from(imm) as u64,
        Operand::ImmediateU8 { imm } => u64::from(imm),
        Operand::ImmediateI16 { imm } => i64::from(imm) as u64,
        Operand::ImmediateU16 { imm } => u64::from(imm),
        Operand::ImmediateI32 { imm } => i64::from(imm) as u64,
        Operand::ImmediateU32 { imm } => u64::from(imm),
        Operand::ImmediateI64 { imm } => imm as u64,
        Operand::ImmediateU64 { imm } => imm,
        _ => return None,
    };
    Some(v & mask(bytes))
}

const fn mask(bytes: u8) -> u64 {
    if bytes >= 8 { u64::MAX } else { (1u64 << (bytes * 8)) - 1 }
}

/// Decode `bytes` (the guest's instruction at RIP, up to 15) as 64-bit
/// code: `Some` for a memory-writing instruction this module emulates.
pub fn decode(bytes: &[u8]) -> Option<WriteInsn> {
    let inst = InstDecoder::default().decode_slice(bytes).ok()?;
    let op = match inst.opcode() {
        Opcode::MOV => Op::Mov,
        Opcode::XCHG => Op::Xchg,
        Opcode::CMPXCHG => Op::Cmpxchg,
        Opcode::CMPXCHG8B => Op::Cmpxchg8b,
        Opcode::OR => Op::Or,
        Opcode::AND => Op::And,
        Opcode::XOR => Op::Xor,
        Opcode::ADD => Op::Add,
        Opcode::SUB => Op::Sub,
        Opcode::BTS => Op::Bts,
        Opcode::BTR => Op::Btr,
        Opcode::BTC => Op::Btc,
        Opcode::INC => Op::Inc,
        Opcode::DEC => Op::Dec,
        Opcode::NOT => Op::Not,
        Opcode::NEG => Op::Neg,
        _ => return None,
    };
    let p = inst.prefixes;
    let (addr32, seg) = (p.address_size(), p.segment());
    // `xchg reg, mem` may name the memory second.
    let (m, s) = if op == Op::Xchg && !inst.operand(0).is_memory() { (inst.operand(1), inst.operand(0)) } else { (inst.operand(0), inst.operand(1)) };
    if !m.is_memory() {
        return None;
    }
    let mem = mem_of(m, addr32, seg)?;
    let bytes = inst.mem_size()?.bytes_size()?;
    let src = match op {
        Op::Cmpxchg8b | Op::Inc | Op::Dec | Op::Not | Op::Neg => Src::Implicit,
        _ => match s {
            Operand::Register { reg } => Src::Reg(reg_of(reg)?),
            imm => Src::Imm(imm_of(imm, bytes)?),
        },
    };
    if !matches!(bytes, 1 | 2 | 4 | 8) {
        // cmpxchg16b and anything wider than a PTE.
        return None;
    }
    Some(WriteInsn { op, bytes, mem, src, len: inst.len().to_const() as u8 })
}

/// A register operand's value.
fn get(regs: &CpuUserRegs, r: Reg) -> u64 {
    let v = regs.gpr(r.num);
    if r.high { (v >> 8) & 0xff } else { v & mask(r.bytes) }
}

/// Write a register operand as the CPU does: a 32-bit write zero-extends,
/// 8- and 16-bit writes keep the rest.
fn set(regs: &mut CpuUserRegs, r: Reg, val: u64) {
    let g = regs.gpr_mut(r.num);
    *g = match (r.bytes, r.high) {
        (1, true) => (*g & !0xff00) | ((val & 0xff) << 8),
        (8, _) => val,
        (4, _) => val & mask(4),
        (b, _) => (*g & !mask(b)) | (val & mask(b)),
    };
}

/// The operand's effective address (`next_rip`: RIP after the
/// instruction).
pub fn effective_address(m: &MemRef, regs: &CpuUserRegs, next_rip: u64, fs_gs_base: (u64, u64)) -> u64 {
    let mut a = m.disp as u64;
    if m.rip_relative {
        a = a.wrapping_add(next_rip);
    }
    if let Some(b) = m.base {
        a = a.wrapping_add(get(regs, b));
    }
    if let Some((i, scale)) = m.index {
        a = a.wrapping_add(get(regs, i).wrapping_mul(u64::from(scale)));
    }
    if m.addr32 {
        a &= mask(4);
    }
    match m.seg {
        Segment::FS => a.wrapping_add(fs_gs_base.0),
        Segment::GS => a.wrapping_add(fs_gs_base.1),
        _ => a,
    }
}

fn sign_bit(bytes: u8) -> u64 {
    1 << (bytes * 8 - 1)
}

/// SF, ZF and PF of a result.
fn szp(res: u64, bytes: u8) -> u64 {
    let r = res & mask(bytes);
    let mut f = 0;
    if r & sign_bit(bytes) != 0 {
        f |= SF;
    }
    if r == 0 {
        f |= ZF;
    }
    if (r as u8).count_ones().is_multiple_of(2) {
        f |= PF;
    }
    f
}

/// Flags of `a + b` (`sub`: `a - b`) at a width.
fn arith_flags(a: u64, b: u64, sub: bool, bytes: u8) -> (u64, u64) {
    let m = mask(bytes);
    let (a, b) = (a & m, b & m);
    let res = if sub { a.wrapping_sub(b) } else { a.wrapping_add(b) } & m;
    let mut f = szp(res, bytes);
    let carry = if sub { b > a } else { (u128::from(a) + u128::from(b)) > u128::from(m) };
    if carry {
        f |= CF;
    }
    if (a ^ b ^ res) & 0x10 != 0 {
        f |= AF;
    }
    let s = sign_bit(bytes);
    let overflow = if sub { (a ^ b) & (a ^ res) & s != 0 } else { !(a ^ b) & (a ^ res) & s != 0 };
    if overflow {
        f |= OF;
    }
    (res, f)
}

/// What one instruction does, computed from the old memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plan {
    /// The new memory operand (`None`: no write, a failed compare).
    write: Option<u64>,
    /// A register loaded (xchg, failed cmpxchg): (register, value).
    load: Option<(Reg, u64)>,
    /// `cmpxchg8b` failure: EDX:EAX get the old value.
    load_edx_eax: Option<u64>,
    /// Arithmetic flags to set (within `flags_mask`).
    flags: u64,
    flags_mask: u64,
}

/// Compute the instruction's effect on the old operand `old` (its width).
fn plan(insn: &WriteInsn, regs: &CpuUserRegs, old: u64, bit: u64) -> Plan {
    let b = insn.bytes;
    let src = match insn.src {
        Src::Reg(r) => get(regs, r),
        Src::Imm(i) => i,
        Src::Implicit => 0,
    };
    let none = Plan { write: None, load: None, load_edx_eax: None, flags: 0, flags_mask: 0 };
    let logic = |res: u64| Plan { write: Some(res & mask(b)), flags: szp(res, b), flags_mask: ARITH, ..none };
    match insn.op {
        Op::Mov => Plan { write: Some(src), ..none },
        Op::Xchg => Plan { write: Some(src), load: if let Src::Reg(r) = insn.src { Some((r, old)) } else { None }, ..none },
        Op::Cmpxchg => {
            let acc = regs.rax & mask(b);
            let (_, flags) = arith_flags(acc, old, true, b);
            let acc_reg = Reg { num: 0, bytes: b, high: false };
            if acc == old {
                Plan { write: Some(src), flags, flags_mask: ARITH, ..none }
            } else {
                Plan { load: Some((acc_reg, old)), flags, flags_mask: ARITH, ..none }
            }
        }
        Op::Cmpxchg8b => {
            let expected = regs.edx_eax();
            if expected == old {
                Plan { write: Some((regs.rcx << 32) | (regs.rbx & mask(4))), flags: ZF, flags_mask: ZF, ..none }
            } else {
                Plan { load_edx_eax: Some(old), flags: 0, flags_mask: ZF, ..none }
            }
        }
        Op::Or => logic(old | src),
        Op::And => logic(old & src),
        Op::Xor => logic(old ^ src),
        Op::Add | Op::Sub => {
            let (res, flags) = arith_flags(old, src, insn.op == Op::Sub, b);
            Plan { write: Some(res), flags, flags_mask: ARITH, ..none }
        }
        // `inc` and `dec` leave CF alone; `not` changes no flag; `neg` is
        // 0 - x with CF = (x != 0).
        Op::Inc | Op::Dec => {
            let (res, flags) = arith_flags(old, 1, insn.op == Op::Dec, b);
            Plan { write: Some(res), flags, flags_mask: ARITH & !CF, ..none }
        }
        Op::Not => Plan { write: Some(!old & mask(b)), ..none },
        Op::Neg => {
            let (res, flags) = arith_flags(0, old, true, b);
            Plan { write: Some(res), flags, flags_mask: ARITH, ..none }
        }
        Op::Bts | Op::Btr | Op::Btc => {
            let m = 1u64 << bit;
            let res = match insn.op {
                Op::Bts => old | m,
                Op::Btr => old & !m,
                _ => old ^ m,
            };
            Plan { write: Some(res), flags: if old & m != 0 { CF } else { 0 }, flags_mask: CF, ..none }
        }
    }
}

/// Address of the operand actually written and, for `bt*`, the bit in it:
/// a register bit offset reaches past the operand (signed, in units of the
/// operand size), as on the CPU.
fn target(insn: &WriteInsn, regs: &CpuUserRegs, ea: u64) -> (u64, u64) {
    let bits = u64::from(insn.bytes) * 8;
    match (insn.op, insn.src) {
        (Op::Bts | Op::Btr | Op::Btc, Src::Reg(r)) => {
            let off = get(regs, r);
            // Sign-extend the offset from the operand width.
            let shift = 64 - bits as u32;
            let signed = ((off << shift) as i64) >> shift;
            let units = signed.div_euclid(bits as i64);
            (ea.wrapping_add((units * i64::from(insn.bytes)) as u64), signed.rem_euclid(bits as i64) as u64)
        }
        (Op::Bts | Op::Btr | Op::Btc, Src::Imm(i)) => (ea, i & (bits - 1)),
        _ => (ea, 0),
    }
}

/// Whether a #PF is one the hypervisor looks at before the guest (Xen's
/// `fixup_page_fault` gate): a write from guest kernel mode to a present
/// read-only page, not an instruction fetch or a reserved-bit fault, at a
/// guest address, by a domain with writable page tables (the assist) or
/// the hardware domain (which always gets `pv_ro_page_fault`).
pub fn wants_fixup(f: &Faulter, error_code: u64, cr2: u64) -> bool {
    f.kernel_mode
        && guest_va_ok(cr2)
        && error_code & (PFEC_RESERVED | PFEC_INSN_FETCH) == 0
        && error_code & PFEC_WRITE != 0
        && error_code & PFEC_PRESENT != 0
        && (f.vm_assist & VMASST_WRITABLE_PAGETABLES != 0 || f.privileged)
}

/// Apply a plan's register and flag effects, and move past the instruction.
fn retire(regs: &mut CpuUserRegs, insn: &WriteInsn, p: &Plan) {
    if let Some((r, v)) = p.load {
        set(regs, r, v);
    }
    if let Some(v) = p.load_edx_eax {
        regs.set_edx_eax(v);
    }
    regs.rflags = (regs.rflags & !p.flags_mask) | (p.flags & p.flags_mask);
    regs.rip = regs.rip.wrapping_add(u64::from(insn.len));
}

/// A write #PF at `cr2` by a vCPU of `f` (Xen's `pv_ro_page_fault`): true
/// if it was emulated (RIP is past the instruction), false if the guest
/// gets the #PF as raised (nothing changed).
pub fn page_fault<H: FrameHost + CpuTlb>(h: &mut H, mem: &impl GuestAccess, f: &Faulter, regs: &mut CpuUserRegs, cr2: u64) -> bool {
    if !wants_fixup(f, regs.error_code, cr2) {
        return false;
    }
    // The L1 entry mapping cr2 in the kernel's tables: only a read-only
    // mapping of a present page is of interest.
    let pm = h.page_mem();
    let Some((l1, slot)) = l1_slot(&pm, f.l4_maddr, cr2) else { return false };
    let pte = pm.read(l1, slot);
    let flags = PteFlags::of(pte);
    if !flags.contains(PteFlags::PRESENT) || flags.contains(PteFlags::RW) {
        return false;
    }
    let mfn = pte_maddr(pte) >> 12;
    let (bytes, n) = super::guest_mem::fetch_insn(mem, regs.rip);
    let Some(insn) = decode(&bytes[..n]) else { return false };
    let next_rip = regs.rip.wrapping_add(u64::from(insn.len));
    let ea = effective_address(&insn.mem, regs, next_rip, f.fs_gs_base);
    let (addr, bit) = target(&insn, regs, ea);
    let size = u64::from(insn.bytes);
    let mmio_ro = f.privileged && h.with_ft(|ft, _| ft.machine().mmio_ro.contains(mfn)).unwrap_or(false);
    if mmio_ro {
        // Xen's mmio_ro_emulated_write: a plain aligned store at exactly
        // cr2 is dropped; nothing is read.
        if insn.op != Op::Mov || addr != cr2 || !addr.is_multiple_of(size) {
            return false;
        }
        regs.rip = next_rip;
        return true;
    }
    // Naturally aligned, within the faulting page.
    if (addr ^ cr2) & !0xfff != 0 || !addr.is_multiple_of(size) {
        return false;
    }
    let idx = ((addr & 0xfff) / 8) as usize;
    let shift = (addr & 7) * 8;
    let who = Who::own(f.domid, f.privileged);
    let mut pm = h.page_mem();
    let done = h.with_ft(|ft: &mut FrameTable<'_>, h| {
        if !ft.is_live_l1(mfn, f.domid) {
            return false;
        }
        let full = pm.read(mfn, idx);
        let old = (full >> shift) & mask(insn.bytes);
        let p = plan(&insn, regs, old, bit);
        let Some(val) = p.write else {
            // A failed compare: no write, and no check of the new value.
            retire(regs, &insn, &p);
            return true;
        };
        let new = (full & !(mask(insn.bytes) << shift)) | ((val & mask(insn.bytes)) << shift);
        // The user bit (Xen's adjust_guest_l1e) is added by
        // FrameTable::accepted, as for every validated entry.
        let r = ft.ptwr_update(&mut pm, mfn, idx, Some(full), new, who);
        ft.take_freed(|m| h.free_frame(Mfn(m)));
        match r {
            Ok(Ok(())) => {
                retire(regs, &insn, &p);
                true
            }
            // The table is locked: it cannot have changed since the read.
            Ok(Err(_)) | Err(_) => false,
        }
    });
    if done == Some(true) {
        h.flush_tlb();
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::mm::page_type::tests::TestMem;
    use crate::mm::page_type::{PageInfo, PageType};
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;

    /// The faulting domain and another one: frames 0-47 are ME's, 48-63
    /// OTHER's.
    const ME: u16 = 1;
    const OTHER: u16 = 2;
    const THEIRS: u64 = 50;
    /// The kernel's tables: L4, L3, L2 and the L1 `A` mapping the first
    /// 2 MiB; `B` is a pinned L1 the kernel maps read-only at `B_VA`.
    const L4: u64 = 1;
    const L2: u64 = 3;
    const A: u64 = 4;
    const B: u64 = 5;
    /// A frame of ME's without a type (mapped read-only at `PLAIN_VA`), an
    /// L1 that is pinned then unpinned (at `STALE_VA`), data frames.
    const PLAIN: u64 = 6;
    const STALE: u64 = 8;
    const DATA: u64 = 20;
    const DATA2: u64 = 21;
    const B_VA: u64 = B << 12;
    const L2_VA: u64 = L2 << 12;
    const PLAIN_VA: u64 = PLAIN << 12;
    const STALE_VA: u64 = STALE << 12;
    /// The read-only I/O APIC page (Xen's mmio_ro_ranges), mapped at
    /// `MMIO_VA` for dom0.
    const IOAPIC: u64 = 0xfec00;
    const MMIO_VA: u64 = 7 << 12;
    /// Where the faulting instruction is (guest memory of the fake).
    const CODE: u64 = 0x10_0000;

    const P: u64 = PteFlags::PRESENT.bits();
    const RW: u64 = PteFlags::PRESENT.union(PteFlags::RW).union(PteFlags::USER).union(PteFlags::ACCESSED).bits();
    const RO: u64 = PteFlags::PRESENT.union(PteFlags::USER).union(PteFlags::ACCESSED).bits();
    /// A write to a present page from kernel mode (PFEC P|W).
    const EC_WRITE: u64 = PFEC_PRESENT | PFEC_WRITE;

    fn pte(mfn: u64, flags: u64) -> u64 {
        (mfn << 12) | flags
    }

    struct Host {
        ft: Option<FrameTable<'static>>,
        pm: TestMem,
        flushes: usize,
    }

    impl FrameHost for Host {
        type Pm = TestMem;
        fn page_mem(&self) -> TestMem {
            self.pm.clone()
        }
        fn with_ft<R>(&mut self, f: impl FnOnce(&mut FrameTable<'_>, &mut Self) -> R) -> Option<R> {
            let mut ft = self.ft.take()?;
            let r = f(&mut ft, self);
            self.ft = Some(ft);
            Some(r)
        }
        fn alloc_frame(&mut self) -> Option<Mfn> {
            None
        }
        fn free_frame(&mut self, _mfn: Mfn) {}
        fn set_m2p(&mut self, _mfn: Mfn, _gfn: u64) {}
    }

    impl CpuTlb for Host {
        fn flush_tlb(&mut self) {
            self.flushes += 1;
        }
        fn invlpg(&mut self, _va: u64) {}
        fn preempt_due(&mut self) -> bool {
            false
        }
    }

    impl Host {
        fn ft(&mut self) -> &mut FrameTable<'static> {
            self.ft.as_mut().unwrap()
        }
        fn info(&self, mfn: u64) -> PageInfo {
            *self.ft.as_ref().unwrap().info(mfn).unwrap()
        }
        fn entry(&self, mfn: u64, idx: usize) -> u64 {
            self.pm.read(mfn, idx)
        }
        /// Every frame's state and B's entries: what a refused write must
        /// leave as it was.
        fn state(&self) -> (Vec<PageInfo>, Vec<u64>) {
            (self.ft.as_ref().unwrap().frames().to_vec(), (0..512).map(|i| self.entry(B, i)).collect())
        }
    }

    /// ME's kernel tables, validated through a pinned L4, with B pinned as
    /// an L1 whose entry 0 maps DATA writable. `privileged`: ME is dom0
    /// (and maps the I/O APIC read-only).
    fn machine(privileged: bool) -> Host {
        let frames: &'static mut [PageInfo] = Box::leak(vec![PageInfo::FREE; 64].into_boxed_slice());
        let mut ft = FrameTable::new(frames);
        for mfn in 0..64 {
            ft.assign(mfn, if mfn >= 48 { OTHER } else { ME }).unwrap();
        }
        let mut pm = TestMem::default();
        let who = Who::own(ME, privileged);
        pm.write(B, 0, pte(DATA, RW));
        ft.pin(&mut pm, B, 1, who).unwrap();
        ft.pin(&mut pm, STALE, 1, who).unwrap();
        ft.unpin(&mut pm, STALE, who).unwrap();
        pm.write(L4, 0, pte(2, RW));
        pm.write(2, 0, pte(L2, RW));
        pm.write(L2, 0, pte(A, RW));
        for (va, mfn) in [(B_VA, B), (L2_VA, L2), (PLAIN_VA, PLAIN), (STALE_VA, STALE)] {
            pm.write(A, (va >> 12) as usize, pte(mfn, RO));
        }
        if privileged {
            pm.write(A, (MMIO_VA >> 12) as usize, pte(IOAPIC, RO | PteFlags::PCD.bits()));
        }
        ft.pin(&mut pm, L4, 4, who).unwrap();
        assert!(ft.is_live_l1(B, ME) && !ft.is_live_l1(STALE, ME));
        assert_eq!(ft.info(L2).unwrap().ty, PageType::L2);
        Host { ft: Some(ft), pm, flushes: 0 }
    }

    fn faulter(privileged: bool) -> Faulter {
        Faulter { domid: ME, privileged, vm_assist: VMASST_WRITABLE_PAGETABLES, kernel_mode: true, l4_maddr: L4 << 12, fs_gs_base: (0, 0) }
    }

    /// The instruction `code` at CODE faults writing `cr2`; `regs` as set.
    fn fault(h: &mut Host, f: &Faulter, code: &[u8], cr2: u64, regs: CpuUserRegs) -> (bool, CpuUserRegs) {
        let g = FakeGuest::default();
        g.map(CODE);
        g.write(CODE, code).unwrap();
        let mut r = CpuUserRegs { rip: CODE, error_code: EC_WRITE, entry_vector: 14, ..regs };
        let done = page_fault(h, &g, f, &mut r, cr2);
        (done, r)
    }

    /// `mov %rax,(%rdi)`.
    const MOV: &[u8] = &[0x48, 0x89, 0x07];
    /// `xchg %rax,(%rdi)`.
    const XCHG: &[u8] = &[0x48, 0x87, 0x07];
    /// `lock cmpxchg %rcx,(%rdi)`.
    const CMPXCHG: &[u8] = &[0xf0, 0x48, 0x0f, 0xb1, 0x0f];
    /// `lock cmpxchg8b (%rdi)`.
    const CMPXCHG8B: &[u8] = &[0xf0, 0x0f, 0xc7, 0x0f];
    /// `lock cmpxchg16b (%rdi)`.
    const CMPXCHG16B: &[u8] = &[0xf0, 0x48, 0x0f, 0xc7, 0x0f];
    /// `lock btrq $1,(%rdi)` (Linux's test_and_clear_bit on a PTE).
    const BTR1: &[u8] = &[0xf0, 0x48, 0x0f, 0xba, 0x37, 0x01];
    /// `lock bts %rsi,(%rdi)`.
    const BTS_REG: &[u8] = &[0xf0, 0x48, 0x0f, 0xab, 0x37];
    /// `lock andb $0xfd,(%rdi)` (Linux's clear_bit with a constant bit).
    const ANDB: &[u8] = &[0xf0, 0x80, 0x27, 0xfd];
    /// `mov %eax,0x4(%rdi)`.
    const MOV32_HIGH: &[u8] = &[0x89, 0x47, 0x04];
    /// `mov (%rdi),%rax` (a read).
    const LOAD: &[u8] = &[0x48, 0x8b, 0x07];
    /// `lock or %rax,(%rdi)`.
    const LOCK_OR: &[u8] = &[0xf0, 0x48, 0x09, 0x07];

    fn at(idx: u64) -> CpuUserRegs {
        CpuUserRegs { rdi: B_VA + idx * 8, ..Default::default() }
    }

    #[test]
    fn decode_takes_memory_writes_only() {
        assert_eq!(decode(MOV).map(|i| (i.op, i.bytes, i.len)), Some((Op::Mov, 8, 3)));
        assert_eq!(decode(ANDB).map(|i| (i.op, i.bytes, i.src)), Some((Op::And, 1, Src::Imm(0xfd))));
        assert_eq!(decode(CMPXCHG8B).map(|i| (i.op, i.bytes)), Some((Op::Cmpxchg8b, 8)));
        assert_eq!(decode(LOAD), None, "a load writes no memory");
        assert_eq!(decode(CMPXCHG16B), None, "a 16-byte write is wider than a PTE (Xen: bad cmpxchg size)");
        assert_eq!(decode(&[0x48, 0x89, 0xc7]), None, "mov between registers");
        // `movl $0x12345678, %fs:8(%rdi)`: segment base and displacement.
        let i = decode(&[0x64, 0xc7, 0x47, 0x08, 0x78, 0x56, 0x34, 0x12]).unwrap();
        let regs = CpuUserRegs { rdi: 0x1000, ..Default::default() };
        assert_eq!(effective_address(&i.mem, &regs, 0, (0x5000, 0)), 0x6008);
        assert_eq!(i.src, Src::Imm(0x1234_5678));
    }

    #[test]
    fn mov_of_an_entry_mapping_an_own_frame_is_validated_and_applied() {
        // ABI: Xen 4.17 emulates a guest kernel's write to its own live L1
        // (ptwr_emulated_write) with mmu_update's checks and references.
        let mut h = machine(false);
        let before = h.info(DATA2).count;
        let (done, r) = fault(&mut h, &faulter(false), MOV, B_VA + 8, CpuUserRegs { rax: pte(DATA2, P | PteFlags::RW.bits()), ..at(1) });
        assert!(done);
        assert_eq!(r.rip, CODE + 3, "RIP moves past the emulated instruction");
        assert_eq!(h.entry(B, 1), pte(DATA2, P | PteFlags::RW.bits() | PteFlags::USER.bits()), "present entries get the user bit, as via mmu_update");
        assert_eq!(h.info(DATA2).count, before + 1, "the new mapping holds a reference");
        assert_eq!((h.info(DATA2).ty, h.info(DATA2).type_count), (PageType::Writable, 1));
        assert_eq!(h.flushes, 1, "the TLB is flushed as after mmu_update");
        // Overwrite it with 0: the references go.
        let (done, _) = fault(&mut h, &faulter(false), MOV, B_VA + 8, CpuUserRegs { rax: 0, ..at(1) });
        assert!(done);
        assert_eq!((h.entry(B, 1), h.info(DATA2).count, h.info(DATA2).type_count), (0, before, 0));
    }

    #[test]
    fn xchg_returns_the_old_entry() {
        let mut h = machine(false);
        let old = h.entry(B, 0);
        let (done, r) = fault(&mut h, &faulter(false), XCHG, B_VA, CpuUserRegs { rax: 0, ..at(0) });
        assert!(done);
        assert_eq!((r.rax, h.entry(B, 0)), (old, 0), "Linux's ptep_get_and_clear: xchg gets the old PTE");
        assert_eq!(h.info(DATA).type_count, 0, "the old writable mapping's type reference went");
    }

    #[test]
    fn cmpxchg_success_writes_and_failure_loads_the_accumulator() {
        let mut h = machine(false);
        let old = h.entry(B, 0);
        let new = pte(DATA2, RO);
        let (done, r) = fault(&mut h, &faulter(false), CMPXCHG, B_VA, CpuUserRegs { rax: old, rcx: new, rflags: 0x2, ..at(0) });
        assert!(done);
        assert_eq!(h.entry(B, 0), new);
        assert_ne!(r.rflags & ZF, 0, "ZF set on success");
        // A stale expected value: no write, RAX gets the entry, ZF clear.
        let (done, r) = fault(&mut h, &faulter(false), CMPXCHG, B_VA, CpuUserRegs { rax: old, rcx: 0, rflags: 0x2 | ZF, ..at(0) });
        assert!(done);
        assert_eq!((h.entry(B, 0), r.rax, r.rflags & ZF, r.rip), (new, new, 0, CODE + 5));
        // x86_emulate compares before it calls ptwr: a failing compare
        // with an invalid new value is no fault.
        let (done, r) = fault(&mut h, &faulter(false), CMPXCHG, B_VA, CpuUserRegs { rax: 0, rcx: pte(THEIRS, RW), ..at(0) });
        assert!(done);
        assert_eq!((h.entry(B, 0), r.rax), (new, new));
    }

    #[test]
    fn cmpxchg8b_compares_edx_eax() {
        let mut h = machine(false);
        let old = h.entry(B, 0);
        let new = pte(DATA2, RW);
        let regs = CpuUserRegs { rax: old & 0xffff_ffff, rdx: old >> 32, rbx: new & 0xffff_ffff, rcx: new >> 32, ..at(0) };
        let (done, r) = fault(&mut h, &faulter(false), CMPXCHG8B, B_VA, regs);
        assert!(done);
        assert_eq!(h.entry(B, 0), new);
        assert_ne!(r.rflags & ZF, 0);
        let (done, r) = fault(&mut h, &faulter(false), CMPXCHG8B, B_VA, CpuUserRegs { rax: 1, rdx: 0, ..at(0) });
        assert!(done);
        assert_eq!((r.rax, r.rdx, r.rflags & ZF), (new & 0xffff_ffff, new >> 32, 0));
    }

    #[test]
    fn locked_bit_operations_merge_into_the_entry() {
        // Linux: ptep_test_and_clear_young is `lock btr`, and clear_bit with
        // a constant bit number is a locked byte `and`: Xen merges a
        // narrower write with the rest of the old PTE.
        let mut h = machine(false);
        let old = h.entry(B, 0);
        let (done, r) = fault(&mut h, &faulter(false), BTR1, B_VA, CpuUserRegs { rflags: 0x2, ..at(0) });
        assert!(done);
        assert_eq!(h.entry(B, 0), old & !PteFlags::RW.bits());
        assert_eq!(r.rflags & CF, CF, "CF is the old bit");
        assert_eq!(h.info(DATA).type_count, 0, "read-only now: the writable type reference went");
        // Set RW again with a register bit offset of 65: the next entry's
        // bit 1 (the CPU's bit-string addressing).
        h.pm.write(B, 1, pte(DATA2, RO));
        h.ft().get_page(DATA2, ME).unwrap();
        let (done, r) = fault(&mut h, &faulter(false), BTS_REG, B_VA, CpuUserRegs { rsi: 65, rflags: 0x2 | CF, ..at(0) });
        assert!(done);
        assert_eq!((h.entry(B, 1), r.rflags & CF), (pte(DATA2, RO | PteFlags::RW.bits()), 0));
        // `lock andb $0xfd`: a one-byte write merged with the other seven.
        let (done, _) = fault(&mut h, &faulter(false), ANDB, B_VA + 8, at(1));
        assert!(done);
        assert_eq!(h.entry(B, 1), pte(DATA2, RO));
        // `lock or`: flags from the result.
        let (done, r) =
            fault(&mut h, &faulter(false), LOCK_OR, B_VA + 8, CpuUserRegs { rax: PteFlags::DIRTY.bits(), rflags: 0x2 | ZF | CF, ..at(1) });
        assert!(done);
        assert_eq!(h.entry(B, 1), pte(DATA2, RO | PteFlags::DIRTY.bits()));
        assert_eq!(r.rflags & (ZF | CF), 0);
    }

    #[test]
    fn one_operand_forms_compute_as_the_cpu() {
        let mut h = machine(false);
        let count = h.info(0).count;
        // A non-present entry with an available bit.
        h.pm.write(B, 3, 0x200);
        // `lock incq (%rdi)`: 0x201 maps frame 0 read-only (checked, the
        // user bit added).
        let (done, r) = fault(&mut h, &faulter(false), &[0xf0, 0x48, 0xff, 0x07], B_VA + 24, CpuUserRegs { rflags: 0x2 | CF | ZF, ..at(3) });
        assert!(done);
        assert_eq!((h.entry(B, 3), r.rflags & (CF | ZF)), (0x205, CF), "inc keeps CF, clears ZF");
        assert_eq!(h.info(0).count, count + 1);
        // `decq (%rdi)`: not present again, the reference goes.
        let (done, _) = fault(&mut h, &faulter(false), &[0x48, 0xff, 0x0f], B_VA + 24, at(3));
        assert!(done);
        assert_eq!((h.entry(B, 3), h.info(0).count), (0x204, count));
        // `notq (%rdi)` would map frame 2^40-1 with reserved flags: refused.
        refused(&mut h, &faulter(false), &[0x48, 0xf7, 0x17], B_VA + 24, at(3));
        // `negq (%rdi)` of 0 is 0: ZF set, CF clear.
        h.pm.write(B, 3, 0);
        let (done, r) = fault(&mut h, &faulter(false), &[0x48, 0xf7, 0x1f], B_VA + 24, CpuUserRegs { rflags: 0x2 | CF, ..at(3) });
        assert!(done);
        assert_eq!((h.entry(B, 3), r.rflags & (CF | ZF)), (0, ZF));
    }

    #[test]
    fn a_four_byte_write_of_the_high_half_keeps_the_low_half() {
        let mut h = machine(false);
        let old = h.entry(B, 0);
        // Set NX (bit 63) through the high dword.
        let (done, _) = fault(&mut h, &faulter(false), MOV32_HIGH, B_VA + 4, CpuUserRegs { rax: (old >> 32) | 0x8000_0000, ..at(0) });
        assert!(done);
        assert_eq!(h.entry(B, 0), old | PteFlags::NX.bits());
    }

    /// A refused write: no emulation, and nothing of the frame table, B or
    /// the registers changed.
    fn refused(h: &mut Host, f: &Faulter, code: &[u8], cr2: u64, regs: CpuUserRegs) {
        let (before, flushes) = (h.state(), h.flushes);
        let (done, r) = fault(h, f, code, cr2, regs);
        assert!(!done, "the #PF goes to the guest");
        assert_eq!(h.state(), before, "nothing changed");
        assert_eq!(r, CpuUserRegs { rip: CODE, error_code: EC_WRITE, entry_vector: 14, ..regs }, "registers untouched");
        assert_eq!(h.flushes, flushes);
    }

    #[test]
    fn attack_pte_to_a_foreign_frame_is_refused() {
        // ABI: ptwr calls get_page_from_l1e(nl1e, d, d): pg_owner is the
        // guest itself, so another domain's frame is refused (#PF).
        let mut h = machine(false);
        refused(&mut h, &faulter(false), MOV, B_VA, CpuUserRegs { rax: pte(THEIRS, RO), ..at(0) });
        refused(&mut h, &faulter(false), XCHG, B_VA, CpuUserRegs { rax: pte(THEIRS, RW), ..at(0) });
        let old = h.entry(B, 0);
        refused(&mut h, &faulter(true), CMPXCHG, B_VA, CpuUserRegs { rax: old, rcx: pte(THEIRS, RW), ..at(0) });
        // A frame past RAM (MMIO) for a domU: no iomem permission.
        refused(&mut h, &faulter(false), MOV, B_VA, CpuUserRegs { rax: pte(0xfe000, RO), ..at(0) });
    }

    #[test]
    fn attack_writable_pte_to_a_page_table_is_refused() {
        let mut h = machine(false);
        refused(&mut h, &faulter(false), MOV, B_VA, CpuUserRegs { rax: pte(B, RW), ..at(0) });
        refused(&mut h, &faulter(false), MOV, B_VA, CpuUserRegs { rax: pte(L4, RW), ..at(0) });
        refused(&mut h, &faulter(false), MOV, B_VA, CpuUserRegs { rax: pte(A, RW), ..at(0) });
        // Reserved flags (PSE in an L1 is PAT; without I/O access, cache
        // attributes) are refused as by mmu_update.
        refused(&mut h, &faulter(false), MOV, B_VA, CpuUserRegs { rax: pte(DATA2, RO | PteFlags::PCD.bits()), ..at(0) });
    }

    #[test]
    fn a_write_straddling_two_entries_or_leaving_the_page_is_not_emulated() {
        // Xen: only naturally aligned stores within the %cr2 page.
        let mut h = machine(false);
        refused(&mut h, &faulter(false), MOV, B_VA + 4, CpuUserRegs { rax: 0, rdi: B_VA + 4, ..Default::default() });
        refused(&mut h, &faulter(false), MOV, B_VA + 8, CpuUserRegs { rax: 0, rdi: B_VA + 0x1000, ..Default::default() });
        refused(&mut h, &faulter(false), CMPXCHG16B, B_VA, at(0));
        refused(&mut h, &faulter(false), LOAD, B_VA, at(0));
    }

    #[test]
    fn only_live_l1_tables_are_emulated() {
        // ptwr_do_page_fault: page_lock (validated, in use) and
        // PGT_l1_page_table; an L2, a type-less page, a former L1: #PF.
        let mut h = machine(false);
        refused(&mut h, &faulter(false), MOV, L2_VA, CpuUserRegs { rax: 0, rdi: L2_VA, ..Default::default() });
        refused(&mut h, &faulter(false), MOV, PLAIN_VA, CpuUserRegs { rax: 0, rdi: PLAIN_VA, ..Default::default() });
        refused(&mut h, &faulter(false), MOV, STALE_VA, CpuUserRegs { rax: 0, rdi: STALE_VA, ..Default::default() });
        // Not mapped at all through the kernel's tables.
        refused(&mut h, &faulter(false), MOV, 0x4000_0000, CpuUserRegs { rax: 0, rdi: 0x4000_0000, ..Default::default() });
    }

    #[test]
    fn the_fixup_gate_is_xens() {
        // fixup_page_fault: kernel mode, a write to a present page, no
        // RSVD/I-D bit, and the writable_pagetables assist or dom0.
        let f = faulter(false);
        assert!(wants_fixup(&f, EC_WRITE, B_VA));
        assert!(!wants_fixup(&Faulter { kernel_mode: false, ..f }, EC_WRITE, B_VA));
        assert!(!wants_fixup(&Faulter { vm_assist: 0, ..f }, EC_WRITE, B_VA), "a domU without the assist gets the #PF");
        assert!(wants_fixup(&Faulter { vm_assist: 0, privileged: true, ..f }, EC_WRITE, B_VA), "the hardware domain always gets pv_ro_page_fault");
        assert!(!wants_fixup(&f, PFEC_WRITE, B_VA), "not-present");
        assert!(!wants_fixup(&f, PFEC_PRESENT, B_VA), "a read");
        assert!(!wants_fixup(&f, EC_WRITE | PFEC_RESERVED, B_VA));
        assert!(!wants_fixup(&f, EC_WRITE | PFEC_INSN_FETCH, B_VA));
        assert!(!wants_fixup(&f, EC_WRITE, 0xffff_8000_0000_0000), "the hypervisor's range");
        let mut h = machine(false);
        refused(&mut h, &Faulter { vm_assist: 0, ..f }, MOV, B_VA, CpuUserRegs { rax: 0, ..at(0) });
    }

    #[test]
    fn dom0_may_map_mmio_through_a_ptwr_write_uncached() {
        // get_page_from_l1e for a non-RAM frame: dom0 has iomem access;
        // WB becomes UC (PCD|PWT flipped on) as through mmu_update.
        let mut h = machine(true);
        let (done, _) = fault(&mut h, &faulter(true), MOV, B_VA + 16, CpuUserRegs { rax: pte(0xfe000, RO), ..at(2) });
        assert!(done);
        assert_eq!(h.entry(B, 2), pte(0xfe000, RO | PteFlags::PCD.bits() | PteFlags::PWT.bits()));
    }

    #[test]
    fn dom0_writes_to_read_only_mmio_are_dropped() {
        // mmio_ro_do_page_fault: an aligned store at exactly cr2 is
        // discarded and the instruction completes; anything else is #PF.
        let mut h = machine(true);
        let (done, r) = fault(&mut h, &faulter(true), MOV, MMIO_VA + 0x10, CpuUserRegs { rax: 5, rdi: MMIO_VA + 0x10, ..Default::default() });
        assert!(done);
        assert_eq!(r.rip, CODE + 3);
        let (done, _) = fault(&mut h, &faulter(true), XCHG, MMIO_VA + 0x10, CpuUserRegs { rdi: MMIO_VA + 0x10, ..Default::default() });
        assert!(!done, "read-modify-write: mmio_ro has no read");
    }
}
