//! The demo PV guest kernel: greets on its console, runs a user-mode
//! program on its own user page tables, and powers off when the program's
//! SYSCALL comes back to the kernel.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use pv_guest_kernel::alloc::EarlyAlloc;
    use pv_guest_kernel::notes::VIRT_BASE;
    use pv_guest_kernel::traps::{self, UserProgram};
    use pv_guest_kernel::{StartInfo, hypercall, println, user};
    use xen_public::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};

    fn poweroff() -> ! {
        loop {
            hypercall::shutdown(SHUTDOWN_POWEROFF);
        }
    }

    fn on_syscall(rax: u64, _rip: u64, cs: u64) -> ! {
        println!("pv-guest-kernel: user program made SYSCALL {rax:#x} from cs {cs:#x}; back in the kernel");
        poweroff()
    }

    fn on_trap(vector: u64, error_code: u64, cr2: u64) -> ! {
        println!("pv-guest-kernel: user program trapped: vector {vector} error {error_code:#x} cr2 {cr2:#x}");
        loop {
            hypercall::shutdown(SHUTDOWN_CRASH);
        }
    }

    fn main(si: &'static StartInfo) -> ! {
        println!("pv-guest-kernel: hello, {} pages", si.nr_pages);
        if traps::install() != 0 {
            println!("pv-guest-kernel: set_trap_table failed");
        }
        let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
        let why = user::run(si, &mut pages, UserProgram::Syscall, 0, on_syscall, on_trap);
        println!("pv-guest-kernel: {why}");
        loop {
            hypercall::shutdown(SHUTDOWN_CRASH);
        }
    }

    pv_guest_kernel::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-guest-kernel is a PV kernel: build it with `cargo xtask build`");
}
