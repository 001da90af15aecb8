//! Typed hypercall wrappers. Every call goes through the hypercall page the
//! hypervisor filled, with Xen's 64-bit convention: number implied by the
//! stub, arguments in RDI, RSI, RDX, R10, R8, result in RAX.

use xen_public::hypercall as nr;
use xen_public::{CONSOLEIO_WRITE, SCHEDOP_SHUTDOWN};

unsafe extern "C" {
    /// The page of 32-byte stubs (defined in `arch`).
    static hypercall_page: [u8; 4096];
}

/// Issue hypercall `op` with five raw arguments.
///
/// # Safety
/// The arguments must be valid for the hypercall: any pointer must point to
/// memory of the right layout that the hypervisor may read or write.
pub unsafe fn hypercall5(op: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let stub = core::ptr::addr_of!(hypercall_page) as u64 + op * xen_public::hypercall::STUB_SIZE as u64;
    let ret: i64;
    // SAFETY: `stub` is inside the hypercall page, which the hypervisor
    // filled with stubs that preserve every register except RAX and the
    // argument registers; the caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "call {stub}",
            stub = in(reg) stub,
            lateout("rax") ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// `console_io(CONSOLEIO_write)`: emit bytes on the hypervisor console.
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: the buffer is valid for `len` bytes and only read.
    unsafe { hypercall5(nr::CONSOLE_IO, CONSOLEIO_WRITE, bytes.len() as u64, bytes.as_ptr() as u64, 0, 0) }
}

/// `SCHEDOP_shutdown` with a reason (`SHUTDOWN_*`). Returns only on error.
pub fn shutdown(reason: u32) -> i64 {
    let arg = reason;
    // SAFETY: `sched_shutdown` is one u32, read by the hypervisor.
    unsafe { hypercall5(nr::SCHED_OP, SCHEDOP_SHUTDOWN, core::ptr::addr_of!(arg) as u64, 0, 0, 0) }
}

/// A hypercall with no pointer arguments.
pub fn raw(op: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: callers of `raw` pass no pointers the hypervisor could write
    // through, or pointers to memory they own (see each wrapper).
    unsafe { hypercall5(op, a1, a2, a3, 0, 0) }
}

/// `xen_version(XENVER_version)`: `(major << 16) | minor`.
pub fn xen_version() -> i64 {
    raw(nr::XEN_VERSION, xen_public::XENVER_VERSION, 0, 0)
}

/// `xen_version` with a buffer the hypervisor fills.
pub fn xen_version_buf(cmd: u64, buf: &mut [u8]) -> i64 {
    // SAFETY: `buf` is ours and as large as the command's structure
    // (the caller sizes it per `public/version.h`).
    unsafe { hypercall5(nr::XEN_VERSION, cmd, buf.as_mut_ptr() as u64, 0, 0, 0) }
}

/// One `trap_info` entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapInfo {
    /// Vector.
    pub vector: u8,
    /// DPL in bits 0-1; bit 2 masks events on entry.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Handler; 0 ends the table.
    pub address: u64,
}

/// `set_trap_table`: `table` must end with an entry whose address is 0.
pub fn set_trap_table(table: &[TrapInfo]) -> i64 {
    if table.last().is_none_or(|t| t.address != 0) {
        return -xen_public::errno::EINVAL;
    }
    // SAFETY: the table is ours, terminated, and only read.
    unsafe { hypercall5(nr::SET_TRAP_TABLE, table.as_ptr() as u64, 0, 0, 0, 0) }
}

/// `set_trap_table` with a terminated table the caller keeps at `va`.
pub fn set_trap_table_raw(va: u64) -> i64 {
    raw(nr::SET_TRAP_TABLE, va, 0, 0)
}

/// `set_trap_table(NULL)`: clear the whole virtual IDT.
pub fn clear_trap_table() -> i64 {
    raw(nr::SET_TRAP_TABLE, 0, 0, 0)
}

/// `callback_op(CALLBACKOP_register)`.
pub fn register_callback(kind: u16, flags: u16, address: u64) -> i64 {
    #[repr(C)]
    struct CallbackRegister {
        kind: u16,
        flags: u16,
        _pad: u32,
        address: u64,
    }
    let reg = CallbackRegister { kind, flags, _pad: 0, address };
    // SAFETY: the structure is ours and only read.
    unsafe { hypercall5(nr::CALLBACK_OP, 0, core::ptr::addr_of!(reg) as u64, 0, 0, 0) }
}

/// `stack_switch(ss, sp)`: the kernel stack for bounces from user mode.
pub fn stack_switch(ss: u64, sp: u64) -> i64 {
    raw(nr::STACK_SWITCH, ss, sp, 0)
}

/// `update_va_mapping(va, pte, flags)`.
pub fn update_va_mapping(va: u64, pte: u64, flags: u64) -> i64 {
    raw(nr::UPDATE_VA_MAPPING, va, pte, flags)
}

/// `mmuext_op` with one operation `{cmd, arg1, arg2}`.
pub fn mmuext_op(cmd: u32, arg1: u64, arg2: u64) -> i64 {
    let op: [u64; 3] = [u64::from(cmd), arg1, arg2];
    // SAFETY: one 24-byte `mmuext_op` of ours, only read; no done counter.
    unsafe { hypercall5(nr::MMUEXT_OP, op.as_ptr() as u64, 1, 0, u64::from(xen_public::DOMID_SELF), 0) }
}
