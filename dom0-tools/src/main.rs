//! Domain 0: the privileged control domain. It runs on the shared PV guest
//! runtime, reports what the hypervisor handed it, and shuts down.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod dom0 {
    use pv_guest_kernel::{StartInfo, hypercall, println};
    use xen_public::SHUTDOWN_POWEROFF;

    fn main(si: &'static StartInfo) -> ! {
        println!("dom0: started with {} pages, flags {:#x}", si.nr_pages, si.flags);
        loop {
            hypercall::shutdown(SHUTDOWN_POWEROFF);
        }
    }

    pv_guest_kernel::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("dom0 is a PV kernel: build it with `cargo xtask build`");
}
