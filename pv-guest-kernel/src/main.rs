//! The demo PV guest kernel: greets on its console, runs a user-mode
//! program on its own user page tables, and powers off when the program's
//! SYSCALL comes back to the kernel. As a domU it also names itself (from
//! `domid=` on its command line, which dom0's builder sets), checks that a
//! domctl is refused, and with `spin` on its command line spins forever
//! instead (a CPU hog for the scheduler tests); `exit` powers off at once,
//! `compute` runs a fixed computation, `antisocial` spins on hypercalls
//! (for `cargo xtask bench`); `hog` pins and unpins the largest page-table
//! tree it can build, forever, and `lateness` measures its timers (the
//! preemption test); `consoleio` tries CONSOLEIO_write (Xen refuses it to
//! a domU) and powers off; `fuzz` runs the hypercall fuzzer (`fuzzer.rs`)
//! and `canary` watches its memory for changes it did not make
//! (`canary.rs`); `xs` talks to xenstore (`xs.rs`), `xs-attack` is a
//! hostile xenstore client (`xs_attack.rs`), `frame-scan` tries to map
//! every machine frame (`framescan.rs`), `xs-steady` a well-behaved
//! one (`xs_steady.rs`) and `xs-bench` times xenstore (`xs_bench.rs`);
//! `blk=...` drives a virtual block device through blkfront (`blkdemo.rs`);
//! `net` and `net=...` bring up vif 0 through netfront and smoltcp and
//! serve, ping, send or attack (`netdemo.rs`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod blkdemo;
#[cfg(target_os = "none")]
mod canary;
#[cfg(target_os = "none")]
mod framescan;
#[cfg(target_os = "none")]
mod fuzzer;
#[cfg(target_os = "none")]
mod hog;
#[cfg(target_os = "none")]
mod memtarget;
#[cfg(target_os = "none")]
mod netdemo;
#[cfg(target_os = "none")]
mod pingpong;
#[cfg(target_os = "none")]
mod xs;
#[cfg(target_os = "none")]
mod xs_attack;
#[cfg(target_os = "none")]
mod xs_bench;
#[cfg(target_os = "none")]
mod xs_steady;

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

    /// The command line, up to its NUL.
    fn cmdline(si: &StartInfo) -> &str {
        let end = si.cmd_line.iter().position(|&b| b == 0).unwrap_or(si.cmd_line.len());
        core::str::from_utf8(&si.cmd_line[..end]).unwrap_or("")
    }

    /// Put a value only this domain uses in XMM0, yield to the others 200
    /// times, and check it is still there (the hypervisor must switch FPU
    /// state with the domain).
    fn check_fpu_kept(line: &str) {
        let id: u64 = line.split_ascii_whitespace().find_map(|w| w.strip_prefix("domid=")?.parse().ok()).unwrap_or(0);
        let mine = 0x1111_1111_1111_1111u64.wrapping_mul(id + 1);
        // SAFETY: SSE is enabled for guests (CR4.OSFXSR); XMM0 is not used
        // by this soft-float kernel's code.
        unsafe { core::arch::asm!("movq xmm0, {}", in(reg) mine, options(nomem, nostack)) };
        let mut kept = true;
        for _ in 0..200 {
            hypercall::sched_yield();
            let now: u64;
            // SAFETY: reads XMM0 into a general register.
            unsafe { core::arch::asm!("movq {}, xmm0", out(reg) now, options(nomem, nostack)) };
            kept &= now == mine;
        }
        println!("pv-guest-kernel: fpu: xmm0 {} across 200 yields", if kept { "kept" } else { "CHANGED" });
    }

    /// The `echo` mode: print each line typed at its console (`xl console`)
    /// as `echo: LINE`; `quit` powers off. Waits on the console channel.
    fn echo_input() -> ! {
        let port = pv_guest_kernel::console::ring_port();
        println!("echo: type a line; 'quit' powers off");
        let mut line = [0u8; 128];
        let mut len = 0;
        loop {
            let mut buf = [0u8; 64];
            let n = pv_guest_kernel::console::read_input(&mut buf);
            for &b in &buf[..n] {
                if b == b'\r' || b == b'\n' {
                    let text = core::str::from_utf8(&line[..len]).unwrap_or("?");
                    if text == "quit" {
                        println!("echo: bye");
                        poweroff();
                    }
                    if len > 0 {
                        println!("echo: {text}");
                    }
                    len = 0;
                } else if len < line.len() {
                    line[len] = b;
                    len += 1;
                }
            }
            if n == 0 {
                pv_guest_kernel::events::poll(&[port], 0);
                pv_guest_kernel::events::clear_pending(port);
            }
        }
    }

    /// What an unprivileged domain checks and does before the common path.
    fn as_domu(si: &StartInfo) {
        let line = cmdline(si);
        let has = |w: &str| line.split_ascii_whitespace().any(|x| x == w);
        let quiet = has("quiet");
        if !quiet {
            let id = line.split_ascii_whitespace().find_map(|w| w.strip_prefix("domid=")).unwrap_or("?");
            println!("pv-guest-kernel: I am domain {id}");
            // XEN_DOMCTL_getdomaininfo of dom0, interface version 0x15.
            let rc = hypercall::domctl_getdomaininfo(0).err().unwrap_or(0);
            println!("pv-guest-kernel: domctl from a domU -> {rc} ({})", xen_public::errno::name(rc));
            // The private vCPU-stats sysctl on dom0: dom0 only.
            let rc = hypercall::xencore_vcpu_stats(0).err().unwrap_or(0);
            println!("pv-guest-kernel: vcpu_stats sysctl from a domU -> {rc} ({})", xen_public::errno::name(rc));
        }
        let num = |key: &str| line.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse::<u32>().ok());
        if let (Some(peer), Some(port), Some(gref)) = (num("peer"), num("port"), num("gref")) {
            let a = crate::pingpong::Args { peer: peer as u16, port, gref };
            let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
            let r = if has("ping") { crate::pingpong::ping(si, &mut pages, &a) } else { crate::pingpong::pong(&mut pages, &a) };
            if let Err(why) = r {
                println!("pv-guest-kernel: exchange failed: {why}");
            }
            poweroff();
        }
        if has("xs") {
            crate::xs::run(si);
        }
        if has("xs-attack") {
            crate::xs_attack::run(si);
        }
        if has("frame-scan") {
            crate::framescan::run(si);
        }
        if has("xs-steady") {
            crate::xs_steady::run(si);
        }
        if has("xs-bench") {
            crate::xs_bench::run(si);
        }
        if has("echo") {
            echo_input();
        }
        if line.split_ascii_whitespace().any(|w| w.starts_with("blk=")) {
            crate::blkdemo::run(si);
        }
        if line.split_ascii_whitespace().any(|w| w == "net" || w.starts_with("net=")) {
            crate::netdemo::run(si);
        }
        if has("memtarget") {
            crate::memtarget::run(si);
        }
        if has("consoleio") {
            // Hostile-guest check: release Xen 4.17 refuses CONSOLEIO_write
            // to a domain that is not the console domain (XSM_PRIV: -EPERM).
            let rc = hypercall::console_write(b"(domU wrote on the hypervisor console)\n");
            println!("pv-guest-kernel: CONSOLEIO_write from a domU -> {rc} ({})", xen_public::errno::name(rc));
            poweroff();
        }
        if has("fuzz") {
            let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
            crate::fuzzer::run(si, &mut pages, &crate::fuzzer::Args::parse(line));
        }
        if has("canary") {
            let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
            crate::canary::run(si, &mut pages, line);
        }
        if has("fpu") {
            check_fpu_kept(line);
        }
        if has("balloon") {
            // A minimal domain: give back the memory it does not use, then
            // sleep until dom0 destroys it.
            let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
            match pv_guest_kernel::balloon::release_unused(si, &mut pages, VIRT_BASE) {
                Ok(n) if !quiet => println!("pv-guest-kernel: balloon: gave back {n} pages"),
                Ok(_) => {}
                Err(e) => println!("pv-guest-kernel: balloon: failed: {}", e.0),
            }
            loop {
                hypercall::sched_block();
            }
        }
        if has("exit") {
            poweroff();
        }
        if has("hog") {
            let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
            crate::hog::hog(si, &mut pages, has("hold"));
        }
        if has("lateness") {
            // `during-destroy`: dom0 destroys the hog meanwhile.
            crate::hog::lateness(if has("during-destroy") { "lateness[destroy]" } else { "lateness" });
            poweroff();
        }
        if has("compute") {
            // A fixed amount of pure computation, then power off; dom0
            // reads the CPU time it took.
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            for i in 0..100_000_000u64 {
                x = x.rotate_left(7) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d);
            }
            println!("pv-guest-kernel: computed {:#x}", core::hint::black_box(x) & 0xff);
            poweroff();
        }
        if has("antisocial") {
            // Spin on hypercalls forever.
            loop {
                hypercall::xen_version();
            }
        }
        if has("spin") {
            if !quiet {
                println!("pv-guest-kernel: spinning forever");
            }
            loop {
                core::hint::spin_loop();
            }
        }
    }

    fn main(si: &'static StartInfo) -> ! {
        println!("pv-guest-kernel: hello, {} pages", si.nr_pages);
        if !si.sif_flags().contains(xen_public::SifFlags::PRIVILEGED) {
            as_domu(si);
        }
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
