//! Arch module: running one call on a stack of its own (target only).
//! Dom0 runs on its image's 64 KiB boot stack, of which the shell and the
//! guest manager use about 40 KiB; xz-embedded's decoder state (xz4rust,
//! 32-40 KiB, built on the stack by `XzDecoder::with_fixed_size_dict`)
//! does not fit beside them, and a boot stack that overflows runs into
//! the shared_info page and dom0's statics below it. The domain builder
//! therefore decompresses on a stack taken from dom0's heap.
//!
//! Invariant: the call returns on the stack it was made from, with every
//! callee-saved register as it was (the trampoline is an `extern "C"`
//! function; `r12`, which holds the old stack pointer, is callee-saved),
//! and the borrowed stack is not used after [`run_on`] returns.

/// Stack bytes the builder gives a decompression: twice what xz4rust's
/// decoder and the decoding calls below it use.
pub const DECOMPRESS_STACK: usize = 128 << 10;

/// Run `f` with `stack` as its stack (its top, rounded down to 16 bytes,
/// is the first stack pointer). `stack` must be large enough for `f`: no
/// guard page lies below it.
pub fn run_on(stack: &mut [u8], f: &mut dyn FnMut()) {
    extern "C" fn trampoline(arg: *mut &mut dyn FnMut()) {
        // SAFETY: `arg` points at `run_on`'s `f`, alive and not otherwise
        // borrowed until the asm block below returns.
        unsafe { (*arg)() }
    }
    let mut f = f;
    let arg: *mut &mut dyn FnMut() = &mut f;
    let top = (stack.as_mut_ptr() as u64 + stack.len() as u64) & !15;
    // SAFETY: `top` is the 16-byte-aligned end of memory that this borrow
    // of `stack` gives us alone, so the callee may use it as its stack;
    // r12 (callee-saved, so preserved by `trampoline`) keeps the old stack
    // pointer, which is restored before the block ends. clobber_abi("C")
    // covers every register the call may change.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {tramp}",
            "mov rsp, r12",
            top = in(reg) top,
            tramp = sym trampoline,
            in("rdi") arg,
            out("r12") _,
            clobber_abi("C"),
        );
    }
}
