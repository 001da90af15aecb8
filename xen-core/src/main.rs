//! The xen-core hypervisor binary. On the bare-metal target the trampoline
//! in `arch::x86_64::boot` is the entry point; on the host this binary only
//! explains how to build it, so `cargo test --workspace` works everywhere.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use xen_core as _;

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    xen_core::setup::panic(info)
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("xen-core is a hypervisor: build it with `cargo xtask build` (target x86_64-unknown-none)");
}
