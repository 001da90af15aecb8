//! Raw Linux x86_64 system calls, with no libc: the `syscall` instruction
//! with the kernel's convention (number in rax; arguments in rdi, rsi, rdx,
//! r10; rcx and r11 clobbered; -4095..=-1 in rax is -errno), the few calls
//! the benchmark makes, and, on the bare-metal target, the process entry
//! `_start`, which reads argv from Linux's initial stack.
//!
//! Every `unsafe` block of the crate is in this module. The invariant each
//! wrapper keeps: it hands the kernel only pointers to live memory of the
//! size the call reads or writes, so the kernel never touches memory Rust
//! does not own for that call.

use core::arch::asm;
use core::ffi::CStr;

/// System call numbers of `arch/x86/entry/syscalls/syscall_64.tbl`.
mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const FORK: usize = 57;
    pub const EXECVE: usize = 59;
    pub const WAIT4: usize = 61;
    pub const GETPPID: usize = 110;
    pub const CLOCK_GETTIME: usize = 228;
    pub const EXIT_GROUP: usize = 231;
    pub const PIPE2: usize = 293;
}

/// `CLOCK_MONOTONIC` of `<linux/time.h>`.
const CLOCK_MONOTONIC: usize = 1;

/// A failed call's errno (positive).
#[derive(Clone, Copy, Debug)]
pub struct Errno(pub i64);

/// The program's arguments, from Linux's initial stack (or the host's).
#[derive(Clone, Copy, Debug)]
pub struct Args {
    /// `argv[0]`, the path this program was started as (none when it was
    /// started with an empty argv).
    pub argv0: Option<&'static CStr>,
    /// `argv[1]`.
    pub arg1: Option<&'static CStr>,
}

/// A system call with up to four arguments; its raw return value.
///
/// # Safety
/// Whatever memory the call `nr` reads or writes through its arguments
/// must be valid for it, and the call must not break Rust's invariants
/// (unmap memory Rust uses, and so on).
unsafe fn syscall4(nr: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the memory the call touches; the
    // instruction itself clobbers only rax (the result), rcx (the return
    // RIP) and r11 (the saved RFLAGS), which are declared, and does not
    // use the stack.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a,
            in("rsi") b,
            in("rdx") c,
            in("r10") d,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// A raw return value as a result.
fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) { Err(Errno(-(ret as i64))) } else { Ok(ret as usize) }
}

/// `getppid()`: enters and leaves the kernel, nothing else.
pub fn getppid() -> usize {
    // SAFETY: getppid takes no argument and touches no memory.
    let r = unsafe { syscall4(nr::GETPPID, 0, 0, 0, 0) };
    r as usize
}

/// `write(fd, bytes)`: how many bytes were written.
pub fn write(fd: i32, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel reads `bytes.len()` bytes from a live slice.
    check(unsafe { syscall4(nr::WRITE, fd as usize, bytes.as_ptr() as usize, bytes.len(), 0) })
}

/// `read(fd, buf)`: how many bytes were read (0 at end of file).
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into a live,
    // exclusively borrowed slice of plain bytes.
    check(unsafe { syscall4(nr::READ, fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0) })
}

/// `close(fd)`.
pub fn close(fd: i32) -> Result<(), Errno> {
    // SAFETY: close touches no memory of ours.
    check(unsafe { syscall4(nr::CLOSE, fd as usize, 0, 0, 0) }).map(drop)
}

/// `pipe2(fds, 0)`: the read end and the write end.
pub fn pipe() -> Result<[i32; 2], Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: the kernel writes two ints into `fds`, which holds two.
    check(unsafe { syscall4(nr::PIPE2, fds.as_mut_ptr() as usize, 0, 0, 0) })?;
    Ok(fds)
}

/// `fork()`: the child's pid in the parent, 0 in the child.
pub fn fork() -> Result<usize, Errno> {
    // SAFETY: fork touches no memory of ours; the child gets a copy of the
    // whole address space (this program has one thread and no locks).
    check(unsafe { syscall4(nr::FORK, 0, 0, 0, 0) })
}

/// `wait4(pid, &status, 0, NULL)`: the child's wait status.
pub fn wait4(pid: usize) -> Result<i32, Errno> {
    let mut status = 0i32;
    // SAFETY: the kernel writes one int into `status`; the rusage pointer
    // is NULL.
    check(unsafe { syscall4(nr::WAIT4, pid, &raw mut status as usize, 0, 0) })?;
    Ok(status)
}

/// `execve(path, argv, {NULL})` with at most three arguments; returns only
/// on failure, with its errno.
pub fn execve(path: &CStr, argv: &[&CStr]) -> Errno {
    let mut ptrs = [core::ptr::null::<core::ffi::c_char>(); 4];
    if argv.len() >= ptrs.len() {
        return Errno(7); // E2BIG
    }
    for (p, a) in ptrs.iter_mut().zip(argv) {
        *p = a.as_ptr();
    }
    let envp = [core::ptr::null::<core::ffi::c_char>()];
    // SAFETY: `path` and every argument are NUL-terminated strings that
    // outlive the call; `ptrs` and `envp` are NULL-terminated arrays of
    // them on this stack frame. The kernel only reads them.
    let r = unsafe { syscall4(nr::EXECVE, path.as_ptr() as usize, ptrs.as_ptr() as usize, envp.as_ptr() as usize, 0) };
    check(r).err().unwrap_or(Errno(0))
}

/// `exit_group(code)`.
pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group touches no memory and does not return.
        unsafe { syscall4(nr::EXIT_GROUP, code as usize, 0, 0, 0) };
    }
}

/// `struct timespec` of the x86_64 ABI.
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds (a system call, not
/// the vDSO: the same path on both hypervisors).
pub fn monotonic_ns() -> Result<u64, Errno> {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: the kernel writes one `struct timespec` into `ts`.
    check(unsafe { syscall4(nr::CLOCK_GETTIME, CLOCK_MONOTONIC, &raw mut ts as usize, 0, 0) })?;
    Ok((ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64))
}

#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".globl _start",
    ".type _start, @function",
    "_start:",
    // The x86_64 psABI's process entry: rsp points at argc, and the
    // outermost frame has rbp 0.
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

/// Called by `_start` with Linux's initial stack pointer.
#[cfg(target_os = "none")]
extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: `sp` is the stack Linux's binfmt_elf built (the psABI's
    // initial process stack): argc, then argc pointers to NUL-terminated
    // strings and a NULL, then the environment. Those strings live as long
    // as the process and are never written by this program.
    let args = unsafe {
        let argc = *sp;
        let argv = sp.add(1).cast::<*const core::ffi::c_char>();
        let arg = |i: usize| (i < argc).then(|| CStr::from_ptr(*argv.add(i)));
        Args { argv0: arg(0), arg1: arg(1) }
    };
    exit(crate::run(args))
}
