//! Dom0's command line: which boot self-test to run, and start_info flag
//! names for the banner.
#![forbid(unsafe_code)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use xen_public::SifFlags;

/// A boot self-test dom0 runs after its banner (`test=` on its command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// The interactive `xl` shell (the default).
    Shell,
    /// Banner, then poweroff.
    Banner,
    /// `SCHEDOP_shutdown(crash)`.
    Crash,
    /// Unused hypercall numbers must return -ENOSYS.
    Enosys,
    /// A page fault handled by dom0's own handler, with CR2 from vcpu_info.
    PageFault,
    /// `ud2` with no handler: the hypervisor crashes the domain.
    Unhandled,
    /// SYSCALL from user mode bounced to dom0's syscall callback.
    Syscall,
    /// A fault while the stack is unusable: delivery itself faults and the
    /// hypervisor crashes the domain.
    BadStack,
    /// SYSCALL from the last two bytes below the canonical hole.
    SyscallTop,
    /// The hypercall conformance suite (`from=N`, `filter=TEXT`).
    Conformance,
    /// Micro-benchmarks: null hypercall and mmu_update batch cost.
    Bench,
    /// The virtio-blk disk: pattern written, flushed, read back, timed.
    Disk,
    /// The virtio-net uplink: dom0's IP endpoint pings QEMU's gateway.
    Uplink,
    /// SYSCALL from a user program on separate user page tables.
    UserTablesSyscall,
    /// A user program on separate tables reads a kernel address: #PF.
    UserTablesFault,
    /// The PV clock: system time advances, a sleep lasts, the wall clock.
    Time,
    /// Single-shot timers through VIRQ_TIMER: never early, bounded lateness.
    Timer,
    /// Create, populate and destroy domains 100 times; no frame may leak.
    Domains,
    /// Build and run domUs from the boot module (`guests=N`, `spin=K`:
    /// guest K spins forever), relay their consoles, destroy them all.
    Guests,
    /// Build, run and destroy a running domU 100 times; no frame may leak.
    Churn,
    /// Two domUs exchange messages over a grant and an event channel.
    PingPong,
    /// Destroy a domU while dom0 maps one of its pages.
    Mapped,
    /// Two spinning guests with weights 256 and 512, then one capped.
    Weights,
    /// Two spinning guests on a two-CPU machine must run at once.
    Parallel,
    /// How many minimal domains fit at once.
    Density,
    /// A page-table hog next to a guest measuring its timers.
    Preempt,
    /// Guests built, run, connected and destroyed, with the hypervisor's
    /// invariant auditor asked after each step (xen-core only).
    Audit,
    /// Domains created from a config and taken down `cycles=N` times
    /// (default 200); nothing may be left behind.
    Lifecycle,
    /// Two hypercall-fuzzing domUs and a canary, audited after every
    /// batch (`seed=S calls=N`, xen-core only).
    Fuzz,
    /// Bind VIRQ_CONSOLE, block, and wake on a typed line.
    ConsoleVirq,
}

/// The value of `key=` on the command line.
pub fn value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// The command line bytes up to the first NUL.
pub fn as_str(raw: &[u8]) -> &str {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    core::str::from_utf8(&raw[..end]).unwrap_or("")
}

/// The test named by `test=`; `Err(name)` for an unknown one.
pub fn test(cmdline: &str) -> Result<Test, &str> {
    let Some(name) = cmdline.split_ascii_whitespace().find_map(|w| w.strip_prefix("test=")) else {
        return Ok(Test::Shell);
    };
    Ok(match name {
        "banner" => Test::Banner,
        "shell" => Test::Shell,
        "crash" => Test::Crash,
        "enosys" => Test::Enosys,
        "pagefault" => Test::PageFault,
        "unhandled" => Test::Unhandled,
        "syscall" => Test::Syscall,
        "badstack" => Test::BadStack,
        "syscall-top" => Test::SyscallTop,
        "conformance" => Test::Conformance,
        "bench" => Test::Bench,
        "disk" => Test::Disk,
        "uplink" => Test::Uplink,
        "usertables-syscall" => Test::UserTablesSyscall,
        "usertables-fault" => Test::UserTablesFault,
        "time" => Test::Time,
        "timer" => Test::Timer,
        "domains" => Test::Domains,
        "guests" => Test::Guests,
        "churn" => Test::Churn,
        "pingpong" => Test::PingPong,
        "mapped" => Test::Mapped,
        "weights" => Test::Weights,
        "parallel" => Test::Parallel,
        "preempt" => Test::Preempt,
        "density" => Test::Density,
        "audit" => Test::Audit,
        "fuzz" => Test::Fuzz,
        "lifecycle" => Test::Lifecycle,
        "console-virq" => Test::ConsoleVirq,
        other => return Err(other),
    })
}

/// The named SIF flags, `|`-separated (only these two are spelled out: Xen
/// may add others, such as `SIF_MOD_START_PFN` or its power-management
/// byte, and the banner stays the same on both hypervisors).
pub fn flag_names(flags: SifFlags) -> &'static str {
    match (flags.contains(SifFlags::PRIVILEGED), flags.contains(SifFlags::INITDOMAIN)) {
        (true, true) => "SIF_PRIVILEGED|SIF_INITDOMAIN",
        (true, false) => "SIF_PRIVILEGED",
        (false, true) => "SIF_INITDOMAIN",
        (false, false) => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_parse() {
        assert_eq!(test(""), Ok(Test::Shell));
        assert_eq!(test("test=banner"), Ok(Test::Banner));
        assert_eq!(test("quiet test=syscall"), Ok(Test::Syscall));
        assert_eq!(test("test=pagefault"), Ok(Test::PageFault));
        assert_eq!(test("test=console-virq"), Ok(Test::ConsoleVirq));
        assert_eq!(test("test=bogus"), Err("bogus"));
    }

    #[test]
    fn key_values() {
        assert_eq!(value("test=conformance from=12 filter=nr_", "from"), Some("12"));
        assert_eq!(value("test=conformance", "filter"), None);
        assert_eq!(value("fromage=1", "from"), None);
    }

    #[test]
    fn flags_are_spelled_out() {
        // ABI: SIF_PRIVILEGED = 1, SIF_INITDOMAIN = 2; other bits (Xen's PM bits) are ignored.
        assert_eq!(flag_names(SifFlags::from_bits_retain(0x303)), "SIF_PRIVILEGED|SIF_INITDOMAIN");
        assert_eq!(flag_names(SifFlags::from_bits_retain(0x30b)), "SIF_PRIVILEGED|SIF_INITDOMAIN", "SIF_MOD_START_PFN not spelled out");
        assert_eq!(flag_names(SifFlags::from_bits_retain(1)), "SIF_PRIVILEGED");
        assert_eq!(flag_names(SifFlags::from_bits_retain(2)), "SIF_INITDOMAIN");
        assert_eq!(flag_names(SifFlags::empty()), "none");
    }

    #[test]
    fn cmdline_stops_at_nul() {
        assert_eq!(as_str(b"test=crash\0garbage"), "test=crash");
    }
}
