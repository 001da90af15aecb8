//! The demo PV guest kernel: greets on its console and powers off.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod guest {
    use pv_guest_kernel::{StartInfo, hypercall, println};
    use xen_public::SHUTDOWN_POWEROFF;

    fn main(si: &'static StartInfo) -> ! {
        println!("pv-guest-kernel: hello, {} pages", si.nr_pages);
        loop {
            hypercall::shutdown(SHUTDOWN_POWEROFF);
        }
    }

    pv_guest_kernel::entry!(main);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("pv-guest-kernel is a PV kernel: build it with `cargo xtask build`");
}
