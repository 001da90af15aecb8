//! Guest user mode on separate page tables: a user L4 that maps only a user
//! program (at 0x400000) and its stack, built and pinned through the MMU
//! hypercalls. The program runs in user mode on those tables; a SYSCALL or
//! a fault lands back in the kernel on the kernel tables (the kernel's code
//! is not mapped in the user ones at all).

use crate::alloc::EarlyAlloc;
use crate::mm::{PTE_RO, PTE_RW, Table, mfn_of};
use crate::traps::{self, UserProgram};
use crate::{StartInfo, println};

/// Where the user program is mapped in the user tables.
pub const USER_CODE: u64 = 0x40_0000;
/// Its stack page (one page, right above).
pub const USER_STACK: u64 = 0x40_1000;

fn table(si: &StartInfo, pages: &mut EarlyAlloc, level: u8, entries: &[(usize, u64)]) -> Result<u64, &'static str> {
    let va = pages.alloc_page().ok_or("no spare page")?;
    let t = Table::new(va, mfn_of(si, va), level, entries).map_err(|_| "building a table failed")?;
    Ok(t.mfn)
}

/// Build the user tables and install them as the user base pointer.
/// Returns the user L4's frame.
pub fn build(si: &StartInfo, pages: &mut EarlyAlloc, program: UserProgram) -> Result<u64, &'static str> {
    let (code_va, _) = traps::user_program(program);
    let stack_va = pages.alloc_page().ok_or("no spare page")?;
    let code = mfn_of(si, code_va & !0xfff);
    let stack = mfn_of(si, stack_va);
    let l1 = table(
        si,
        pages,
        1,
        &[(((USER_CODE >> 12) & 511) as usize, (code << 12) | PTE_RO), (((USER_STACK >> 12) & 511) as usize, (stack << 12) | PTE_RW)],
    )?;
    let l2 = table(si, pages, 2, &[(((USER_CODE >> 21) & 511) as usize, (l1 << 12) | PTE_RW)])?;
    let l3 = table(si, pages, 3, &[(((USER_CODE >> 30) & 511) as usize, (l2 << 12) | PTE_RW)])?;
    let l4 = table(si, pages, 4, &[(((USER_CODE >> 39) & 511) as usize, (l3 << 12) | PTE_RW)])?;
    const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
    if crate::hypercall::mmuext_one(MMUEXT_NEW_USER_BASEPTR, l4, 0) != 0 {
        return Err("NEW_USER_BASEPTR failed");
    }
    Ok(l4)
}

/// Run `program` in user mode on its own tables; `arg` goes in RDI.
pub fn run(
    si: &StartInfo,
    pages: &mut EarlyAlloc,
    program: UserProgram,
    arg: u64,
    on_syscall: fn(u64, u64, u64) -> !,
    on_trap: fn(u64, u64, u64) -> !,
) -> &'static str {
    let (_, offset) = traps::user_program(program);
    if let Err(e) = build(si, pages, program) {
        return e;
    }
    println!("usertables: user L4 pinned and installed; entering user mode at {:#x}", USER_CODE + offset);
    traps::on_user_trap(on_trap);
    traps::enter_user(USER_CODE + offset, USER_STACK + 0x1000, arg, on_syscall);
    "could not enter user mode"
}
