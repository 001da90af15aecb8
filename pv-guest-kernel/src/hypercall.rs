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
