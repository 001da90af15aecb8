//! `cargo xtask test`: host unit tests, then QEMU boot tests. Each boot
//! test is judged by QEMU's exit code (`isa-debug-exit`) and by sentinel
//! lines on serial, under a timeout, so a hung guest fails rather than hangs.

use crate::image::{self, IsoSpec, Kernels, Module};
use crate::linux;
use crate::qemu::{self, EXIT_FAILURE, EXIT_SUCCESS};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Pass/fail tally.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name.to_string());
        }
    }
}

/// Which modules a boot test hands GRUB.
#[derive(Clone, Copy, Debug)]
enum Modules {
    /// dom0 and the demo guest.
    Standard,
    /// No module2 line at all.
    None,
    /// dom0 with its ELF magic broken.
    BadMagic,
    /// dom0 cut to 200 bytes: program headers run past the end.
    Truncated,
    /// A valid x86_64 ELF without Xen notes (xen-core itself).
    NotPv,
    /// dom0 with a note size that runs past its segment.
    BadNote,
    /// dom0 running one of its self-tests (`test=NAME`).
    Dom0Test(&'static str),
}

/// One boot test.
#[derive(Clone)]
struct BootTest {
    name: &'static str,
    cmdline: &'static str,
    modules: Modules,
    mem_mib: u32,
    smp: u32,
    /// QEMU CPU model (None: the default, Haswell-noTSX).
    cpu: Option<&'static str>,
    exit: i32,
    expect: &'static [&'static str],
    forbid: &'static [&'static str],
    /// Seconds before a hung boot fails (a hang guard, not a time limit
    /// on the hypervisor: a loaded host slows TCG down several times).
    timeout_s: u64,
}

const fn boot(name: &'static str, cmdline: &'static str, exit: i32, expect: &'static [&'static str]) -> BootTest {
    BootTest { name, cmdline, modules: Modules::Standard, mem_mib: 256, smp: 1, cpu: None, exit, expect, forbid: &[], timeout_s: 60 }
}

const BANNER: &str = "xen-core 0.1.0 (Xen ABI 4.17, x86_64) starting";
const COMPLETE: &str = "boot complete: managing";

/// The multi-domain boot tests that also run with two CPUs, where
/// domains run on both at once: (test, name of its `--smp 2` copy).
const ALSO_ON_TWO_CPUS: &[(&str, &str)] = &[
    ("dom0_starts_three_guests_each_prints_its_id", "dom0_starts_three_guests_each_prints_its_id_smp2"),
    ("ping_pong_domus_leave_no_frame_behind", "ping_pong_domus_leave_no_frame_behind_smp2"),
    ("a_page_mapped_by_dom0_outlives_its_destroyed_domain", "a_page_mapped_by_dom0_outlives_its_destroyed_domain_smp2"),
    ("running_guests_destroyed_100_times_leak_nothing", "running_guests_destroyed_100_times_leak_nothing_smp2"),
    ("hundred_ballooned_domains_at_once_leak_nothing", "hundred_ballooned_domains_at_once_leak_nothing_smp2"),
    ("audit_stays_clean_while_dom0_builds_and_destroys_guests", "audit_stays_clean_while_dom0_builds_and_destroys_guests_smp2"),
];

fn boot_tests() -> Vec<BootTest> {
    let mut tests = single_boot_tests();
    let copies: Vec<BootTest> = ALSO_ON_TWO_CPUS
        .iter()
        .filter_map(|(of, name)| tests.iter().find(|t| t.name == *of).map(|t| BootTest { name, smp: 2, ..t.clone() }))
        .collect();
    tests.extend(copies);
    tests
}

fn single_boot_tests() -> Vec<BootTest> {
    vec![
        BootTest {
            forbid: &["WARNING", "Panic"],
            ..boot("boot_ok", "loglvl=all", EXIT_SUCCESS, &[BANNER, "Physical RAM map:", "Frame allocator:", COMPLETE])
        },
        BootTest { smp: 2, forbid: &["Panic"], ..boot("boot_smp2", "loglvl=all", EXIT_SUCCESS, &[BANNER, "CPU 1 up", "2 CPU(s) online", COMPLETE]) },
        BootTest {
            smp: 4,
            forbid: &["Panic"],
            ..boot("boot_smp4_brings_up_every_cpu", "loglvl=all", EXIT_SUCCESS, &["CPU 1 up", "CPU 2 up", "CPU 3 up", "4 CPU(s) online"])
        },
        BootTest { mem_mib: 2048, ..boot("boot_2g_directmap", "loglvl=all", EXIT_SUCCESS, &["direct map of 2048 MiB", COMPLETE]) },
        BootTest {
            forbid: &["Physical RAM map", "Frame allocator"],
            ..boot("loglvl_warning_hides_info", "loglvl=warning", EXIT_SUCCESS, &[BANNER, COMPLETE])
        },
        boot(
            "unknown_option_is_a_warning",
            "loglvl=all frobnicate=1",
            EXIT_SUCCESS,
            &["WARNING: unknown command-line option 'frobnicate=1' ignored", COMPLETE],
        ),
        boot(
            "bad_option_value_is_a_warning",
            "loglvl=loud",
            EXIT_SUCCESS,
            &["WARNING: bad value in command-line option 'loglvl=loud' ignored", COMPLETE],
        ),
        BootTest {
            modules: Modules::None,
            ..boot("no_modules", "", EXIT_FAILURE, &["Panic on CPU 0: no dom0 kernel: the boot loader passed no modules"])
        },
        BootTest { modules: Modules::BadMagic, ..boot("corrupt_elf_bad_magic", "", EXIT_FAILURE, &["is not a valid ELF image: bad ELF magic"]) },
        BootTest {
            modules: Modules::Truncated,
            ..boot("corrupt_elf_truncated", "", EXIT_FAILURE, &["is not a valid ELF image: program headers out of bounds"])
        },
        BootTest {
            modules: Modules::NotPv,
            ..boot("dom0_without_xen_notes", "", EXIT_FAILURE, &["is not a Xen PV kernel: it has no Xen ELF notes"])
        },
        BootTest { modules: Modules::BadNote, ..boot("dom0_malformed_xen_note", "", EXIT_FAILURE, &["has bad Xen ELF notes: malformed ELF note"]) },
        BootTest {
            modules: Modules::Dom0Test("test=domains"),
            ..boot(
                "destroyed_domains_give_back_every_frame",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &["dom0: domains: 100 create/populate/destroy cycles", "dom0: domains: no frame leaked"],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=guests guests=3"),
            ..boot(
                "dom0_starts_three_guests_each_prints_its_id",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &[
                    "(d1) pv-guest-kernel: I am domain 1",
                    "(d2) pv-guest-kernel: I am domain 2",
                    "(d3) pv-guest-kernel: I am domain 3",
                    "(d2) pv-guest-kernel: domctl from a domU -> -1 (EPERM)",
                    "(d2) pv-guest-kernel: vcpu_stats sysctl from a domU -> -1 (EPERM)",
                    "(d3) pv-guest-kernel: user program made SYSCALL",
                    "dom0: d1 shut down (poweroff); destroyed",
                    "dom0: guests: 3 of 3 guests finished",
                    "dom0: guests: free pages",
                    "no frame leaked",
                ],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=guests guests=3 spin=2"),
            ..boot(
                "spinning_guest_does_not_starve_the_others",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &[
                    "(d2) pv-guest-kernel: spinning forever",
                    "dom0: guests: 2 of 2 guests finished",
                    "dom0: guests: d2 still runs; destroying it",
                    "no frame leaked",
                ],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=guests guests=3 spin=1"),
            smp: 2,
            ..boot(
                "spinning_guest_does_not_starve_the_others_smp2",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &["dom0: guests: 2 of 2 guests finished", "dom0: guests: d1 still runs; destroying it", "no frame leaked"],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=pingpong"),
            ..boot(
                "ping_pong_domus_leave_no_frame_behind",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &["dom0: pingpong: 2 of 2 guests finished", "no frame leaked"],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=mapped"),
            ..boot(
                "a_page_mapped_by_dom0_outlives_its_destroyed_domain",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &["dom0: mapped: the mapped frame outlived its domain", "dom0: mapped: no frame leaked"],
            )
        },
        BootTest {
            // The budget only stops a run that could not finish before the
            // timeout: 100 domains take a few seconds on an idle host; 9
            // got started in 40 s with both host cores busy.
            modules: Modules::Dom0Test("test=density max=100 budget=150"),
            timeout_s: 240,
            ..boot(
                "hundred_ballooned_domains_at_once_leak_nothing",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &["dom0: density: 100 domains started", "100 alive and ballooned", "dom0: density: no frame leaked"],
            )
        },
        BootTest {
            // SMEP and SMAP on a CPU model that has both: guests still run
            // (the hypervisor reaches guest memory only through the direct
            // map), and the three-guest test passes with them on.
            modules: Modules::Dom0Test("test=guests guests=3"),
            cpu: Some("Skylake-Client"),
            ..boot(
                "smep_and_smap_on_a_cpu_that_has_them",
                "loglvl=all",
                EXIT_SUCCESS,
                &["Supervisor protections: SMEP on, SMAP on", "dom0: guests: 3 of 3 guests finished"],
            )
        },
        BootTest {
            // XSA-45's class: the hog's pins and unpins, and the destroy
            // of a hog that holds its whole tree pinned, are preempted: the
            // hypervisor's own count of continuations says so. The timer
            // guest's lateness is printed, not judged: on a loaded 2-core
            // host QEMU's threads are descheduled for tens of ms whatever
            // the hypervisor does (p99 1-5 ms on an idle machine; a
            // destroy in one piece made timers 21-41 ms late).
            modules: Modules::Dom0Test("test=preempt"),
            smp: 2,
            // 7-14 s idle; 46 s seen with both host cores busy.
            timeout_s: 240,
            ..boot(
                "page_table_hog_and_its_destroy_are_preempted",
                "loglvl=warning",
                EXIT_SUCCESS,
                &[
                    "pv-guest-kernel: hog: tree of",
                    "pv-guest-kernel: hog: pin Ok(()) unpin Ok(()) console multicall 0",
                    "pv-guest-kernel: lateness: 200 timers, p50",
                    "dom0: preempt: the timer guest finished next to the hog",
                    "dom0: preempt: the hog's hypercalls were preempted",
                    "pv-guest-kernel: hog: holding the tree pinned: Ok(())",
                    "dom0: preempt: destroying the hog was preempted",
                    "pv-guest-kernel: lateness[destroy]: 200 timers, p50",
                    "dom0: preempt: no frame leaked",
                ],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=churn"),
            ..boot(
                "running_guests_destroyed_100_times_leak_nothing",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &[
                    "dom0: churn: 100 guests built, run (100 had used CPU time) and destroyed while running",
                    "dom0: churn: free pages",
                    "no frame leaked",
                ],
            )
        },
        // Issue 15's leak test: 200 domains created from an xl config, run
        // until they wrote to xenstore, and taken down (half destroyed, half
        // shut down through control/shutdown and reaped).
        BootTest {
            modules: Modules::Dom0Test("test=lifecycle cycles=200"),
            forbid: &["LEAKED", "dom0: lifecycle: cycle"],
            timeout_s: 240,
            ..boot(
                "xl_lifecycle_200_domains_leave_no_frame_node_watch_or_channel",
                "loglvl=warning dom0_mem=64M",
                EXIT_SUCCESS,
                &[
                    "dom0: lifecycle: free pages:",
                    "dom0: lifecycle: xenstore nodes:",
                    "dom0: lifecycle: xenstore watches: 0 before, 0 after",
                    "dom0: lifecycle: xenstore transactions: 0 before, 0 after",
                    "dom0: lifecycle: dom0 event channels:",
                    "dom0: lifecycle: 200 create/destroy cycles left nothing behind",
                ],
            )
        },
        BootTest {
            modules: Modules::Dom0Test("test=audit"),
            forbid: &[" violations on request", " violations after ", "VIOLATIONS", "Panic"],
            ..boot(
                "audit_stays_clean_while_dom0_builds_and_destroys_guests",
                "loglvl=info audit=1 dom0_mem=64M",
                EXIT_SUCCESS,
                &[
                    "(XEN) audit: clean after createdomain",
                    "(XEN) audit: clean after destroydomain",
                    "dom0: audit: three guests ran: clean (",
                    "dom0: audit: destroyed guest's page still mapped by dom0: clean",
                    "dom0: audit: 8 audits, 0 with violations",
                    "dom0: audit: every audit clean",
                ],
            )
        },
        BootTest { mem_mib: 16, ..boot("too_little_memory", "", EXIT_FAILURE, &["Panic on CPU 0: not enough memory:", "needs at least 24 MiB"]) },
        boot(
            "selftest_page_fault",
            "selftest=pf",
            EXIT_FAILURE,
            &["FATAL TRAP: vector 14 (#PF page fault)", "CR2:    00000000deadb000", "RIP:    e008:[<ffff82d0"],
        ),
        boot("selftest_invalid_opcode", "selftest=ud", EXIT_FAILURE, &["FATAL TRAP: vector 6 (#UD invalid opcode)", "rax:"]),
        boot("selftest_general_protection", "selftest=gp", EXIT_FAILURE, &["FATAL TRAP: vector 13 (#GP general protection)"]),
        boot(
            "selftest_double_fault_on_ist",
            "selftest=df",
            EXIT_FAILURE,
            &["FATAL TRAP: vector 8 (#DF double fault)", "Panic on CPU 0: FATAL TRAP: vector 8 (#DF)"],
        ),
    ]
}

fn scratch(name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let p = image::out_dir().join(name);
    std::fs::create_dir_all(image::out_dir()).map_err(|e| e.to_string())?;
    std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(p)
}

/// Break the descsz of the first "Xen" note (GUEST_OS, type 6).
fn break_first_note(mut elf: Vec<u8>) -> Result<Vec<u8>, String> {
    let pat = b"\x06\x00\x00\x00Xen\x00";
    let at = elf.windows(pat.len()).position(|w| w == pat).ok_or("dom0 has no GUEST_OS note")?;
    elf[at - 4..at].copy_from_slice(&0xfff0u32.to_le_bytes());
    Ok(elf)
}

fn modules_for(kind: Modules, k: &Kernels) -> Result<Vec<Module>, String> {
    let dom0 = || std::fs::read(&k.dom0).map_err(|e| format!("{}: {e}", k.dom0.display()));
    let one = |p: PathBuf| Ok(vec![Module::new(&p, "dom0")]);
    match kind {
        Modules::Standard => {
            let dom0 = Module { args: "test=banner".into(), ..Module::new(&k.dom0, "dom0") };
            Ok(vec![dom0, Module::new(&k.dom0_files, "dom0-files.tar")])
        }
        Modules::None => Ok(vec![]),
        Modules::BadMagic => {
            let mut b = dom0()?;
            b[1..4].copy_from_slice(b"XYZ");
            one(scratch("dom0-bad-magic", &b)?)
        }
        Modules::Truncated => one(scratch("dom0-truncated", &dom0()?[..200])?),
        Modules::NotPv => Ok(vec![Module::new(&k.xen_core, "dom0")]),
        Modules::BadNote => one(scratch("dom0-bad-note", &break_first_note(dom0()?)?)?),
        Modules::Dom0Test(args) => {
            Ok(vec![Module { args: args.into(), ..Module::new(&k.dom0, "dom0") }, Module::new(&k.dom0_files, "dom0-files.tar")])
        }
    }
}

/// A dom0 boot self-test, run on xen-core and on Xen 4.17 with the same
/// dom0 image and the same expectations.
struct Dom0Test {
    name: &'static str,
    /// Console input, one line per prompt.
    script: &'static [&'static str],
    /// Boot the demo guest kernel as the first domain instead of dom0.
    demo_guest: bool,
    dom0_args: &'static str,
    crashes: bool,
    expect: &'static [&'static str],
    forbid: &'static [&'static str],
    /// CPUs QEMU gives the machine.
    smp: u32,
    /// Run Xen 4.17 with its credit scheduler (xen-core's) instead of its
    /// default.
    xen_credit: bool,
    /// Lines expected from xen-core only: what xen-core guarantees and
    /// Xen 4.17 under TCG does not (each says why where it is used).
    xen_core_expect: &'static [&'static str],
    /// Prefixes of lines that must appear at least twice, all the same
    /// (a figure that must come back to where it was).
    equal_lines: &'static [&'static str],
    /// Most CPU seconds dom0 may use between its first and last `list`
    /// rows (`Domain-0 ...  Time(s)`): dom0 must sleep when idle.
    dom0_cpu_at_most_s: Option<f64>,
    /// Texts that must appear in this order (each after the one before).
    in_order: &'static [&'static str],
    /// A virtio-blk disk for dom0 (a fresh image file per run).
    disk: Option<TestDisk>,
    /// A virtio-net NIC for dom0 on QEMU's user network.
    net: bool,
    /// With `net`: once a serial line holds this text, the host fetches
    /// `/` from the guest at `qemu::RUN_GUEST_IP`:80 over the forwarded
    /// port (`[host] ...` lines).
    probe_on: Option<&'static str>,
    /// Pairs of texts each naming a line whose `fnv1a=` checksums must be
    /// present and equal (what one guest sent, what another received).
    same_checksums: &'static [(&'static str, &'static str)],
    /// Texts each naming a line that ends `in <N> ms` with N at least this
    /// (a limit that must have held the sender back).
    took_at_least_ms: &'static [(&'static str, u64)],
    /// Seconds the run may take (the hang guard); default 90.
    timeout_s: u64,
    /// Dom0's files also carry Debian's generic kernel (`vmlinuz`), the
    /// busybox initramfs (`initrd.cpio`) and `linux.cfg` (issue 18's domU).
    linux_domu: bool,
    /// QEMU's memory (MiB); default 256.
    mem_mib: u32,
    /// xen-core's command line instead of `loglvl=all dom0_mem=64M`.
    xen_core_cmdline: Option<&'static str>,
    /// Trace buffer pages per CPU: `tbuf_size=N` on both hypervisors'
    /// command lines.
    tbuf_pages: Option<u32>,
    /// A check of the serial output on the host after the run (e.g. of a
    /// dump dom0 printed): why it is wrong.
    output_check: Option<OutputCheck>,
}

/// A check of a run's serial output, knowing the hypervisor: why it is
/// wrong.
type OutputCheck = fn(&str, Hypervisor) -> Option<String>;

/// Issue 19's session: dom0's `xl trace dump` reads back and shows the
/// spinner busy and the blocker blocked; on xen-core, which records event
/// channels, every upcall after its send.
fn trace_session_check(output: &str, hv: Hypervisor) -> Option<String> {
    crate::trace_cmd::check_session(output, hv == Hypervisor::XenCore)
}

/// A check of an image file after the run: why it is wrong.
type ImageCheck = fn(&[u8]) -> Option<String>;

/// What a test disk holds when QEMU starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DiskFill {
    /// Zeros (a sparse file).
    Zeros,
    /// The host's pattern over `vdisk::HOST_BYTES` from `vdisk::TEST_BYTES`.
    HostPattern,
    /// The Linux domU's ext2 root (`linux_disk`).
    LinuxRoot,
}

/// A disk image attached to a dom0 test.
#[derive(Clone, Copy)]
struct TestDisk {
    /// Size of the image, MiB.
    mib: u64,
    /// What it holds before booting.
    fill: DiskFill,
    /// Check the image after QEMU exited (only where the device lines were
    /// expected): why it is wrong.
    check: Option<ImageCheck>,
}

/// `test=disk`'s pattern must be in the image file: dom0's flushed writes
/// reached the host.
fn disk_pattern_in_image(image: &[u8]) -> Option<String> {
    use dom0_tools::vdisk::{DOM0_SEED, TEST_BYTES, pattern_mismatch};
    let Some(written) = image.get(..TEST_BYTES as usize) else {
        return Some(format!("image file: {} bytes, shorter than dom0's pattern", image.len()));
    };
    pattern_mismatch(DOM0_SEED, 0, written).map(|at| format!("image file: dom0's pattern differs at byte {at:#x}"))
}

/// The block test's guest pattern over the image's first 16 MiB: a
/// guest's flushed writes crossed blkfront, blkback and virtio-blk to the
/// host.
fn guest_pattern_in_image(image: &[u8]) -> Option<String> {
    let Some(written) = image.get(..16 << 20) else {
        return Some(format!("image file: {} bytes, shorter than the guest's 16 MiB", image.len()));
    };
    frontend_drivers::blkfront::pattern_mismatch(frontend_drivers::blkfront::GUEST_SEED, 0, written)
        .map(|at| format!("image file: the guest's pattern differs at byte {at:#x}"))
}

const BANNER_LINES: &[&str] = &["dom0: nr_pages: 16384", "dom0: flags: SIF_PRIVILEGED|SIF_INITDOMAIN", "dom0: boot modules: 1 ("];

fn dom0_tests() -> Vec<Dom0Test> {
    let t = |name, dom0_args, crashes, expect| Dom0Test {
        name,
        script: &[],
        demo_guest: false,
        dom0_args,
        crashes,
        expect,
        forbid: &[],
        smp: 1,
        xen_credit: false,
        xen_core_expect: &[],
        equal_lines: &[],
        dom0_cpu_at_most_s: None,
        in_order: &[],
        disk: None,
        net: false,
        probe_on: None,
        same_checksums: &[],
        took_at_least_ms: &[],
        timeout_s: 90,
        linux_domu: false,
        mem_mib: 256,
        xen_core_cmdline: None,
        tbuf_pages: None,
        output_check: None,
    };
    // Issue 18's Linux domUs: the kernel and initramfs in dom0's files,
    // 512 MiB, and the free memory the same before and after. Not
    // loglvl=all on xen-core: Linux's PIT calibration reads port 0x42 up
    // to 100000 times (all ones for a domU), and xen-core would log each
    // emulated access on serial, which takes minutes.
    let linux_t = |name, expect| Dom0Test {
        linux_domu: true,
        mem_mib: 512,
        xen_core_cmdline: Some("loglvl=info dom0_mem=64M"),
        equal_lines: &["free_memory"],
        ..t(name, "", false, expect)
    };
    vec![
        // Issue 18's milestone 3: Linux (Debian's generic 6.1, the dom0
        // milestones' kernel and initramfs) as a domU of our dom0. Its
        // 66 MiB ELF is decompressed into its own memory (dom0's heap is
        // 2 MiB), its console reaches dom0's log, its xenbus writes its
        // control/feature-poweroff through our xenstored, and its
        // `poweroff -f` ends it; `xl list` no longer has it and the free
        // memory is what it was (Xen 4.17 frees the last pages after an
        // RCU grace period: the second of quiet before `info`).
        Dom0Test {
            script: &[
                "info",
                "create linux.cfg",
                "?XTASK-LINUX: type a line",
                // Its hvc0 both ways through `xl console`: the line typed
                // there comes back from Linux's `read`.
                "console linux",
                "@hello-from-xl-console",
                "?XTASK-LINUX: got hello-from-xl-console",
                "@^]",
                "xenstore-ls /local/domain/1/control",
                "?dom0: d1 shut down (poweroff); destroyed",
                "list",
                "@info",
                "poweroff",
            ],
            timeout_s: 180,
            forbid: &["LEAKED", "create failed", "linux                                        1 "],
            in_order: &[
                "xl: created d1",
                // After the printk timestamp: "(d1) [    0.000000] Linux version".
                "] Linux version 6.1",
                "(d1) XTASK-LINUX: init started",
                "\nXTASK-LINUX: got hello-from-xl-console",
                "feature-poweroff = \"1\"",
                "(d1) XTASK-LINUX: init done",
                "dom0: d1 shut down (poweroff); destroyed",
                "Domain-0                                     0",
            ],
            ..linux_t("linux_domu_console_xenbus_and_poweroff_under_our_dom0", &["xl: created d1", "(d1) MemTotal:"])
        },
        // Issue 18's milestone 3 with block and net: the same kernel as a
        // domU whose root filesystem is an ext2 image on dom0's virtio
        // disk, served as its xvda by our blkback (its initramfs loads
        // Debian's xen-blkfront, xen-netfront and ext4 modules and
        // switches root); it reads the host's file, writes one the host
        // finds in the image afterwards, and pings our Rust guest `www`
        // through netback and xenbr0.
        Dom0Test {
            script: &[
                "info",
                "create netserve.cfg",
                "?net: up",
                "create linuxroot.cfg",
                "?dom0: d2 shut down (poweroff); destroyed",
                "destroy www",
                "list",
                "@info",
                "poweroff",
            ],
            timeout_s: 240,
            disk: Some(TestDisk { mib: 32, fill: DiskFill::LinuxRoot, check: Some(crate::linux_disk::guest_mark_in_image) }),
            forbid: &["LEAKED", "create failed", "XTASK-LINUX: insmod", "XTASK-LINUX: mount /dev/xvda failed"],
            in_order: &[
                "xl: created d2",
                "(d2) XTASK-LINUX: root on xvda",
                "(d2) /dev/xvda / ext4 rw",
                "(d2) XTASK-DISK: written on the host by mke2fs -d",
                "(d2) XTASK-LINUX: wrote /var/xtask-written",
                "(d2) 5 packets transmitted, 5 packets received, 0% packet loss",
                "(d2) XTASK-LINUX: init done",
                "dom0: netback: d2 vif 0: disconnected after ",
                "dom0: blkback: d2 vbd 51712: disconnected after ",
                "dom0: d2 shut down (poweroff); destroyed",
            ],
            ..linux_t("linux_domu_root_on_xvda_over_blkback_pings_a_guest_over_netback", &["dom0: disk: virtio-blk at 00:"])
        },
        // dom0's uplink: QEMU's virtio-net-pci through virtio-drivers, and
        // dom0's smoltcp endpoint on it: ARP and ping to slirp's gateway.
        Dom0Test {
            net: true,
            forbid: &["no answer from 10.0.2.2", "dom0: uplink: none ("],
            ..t(
                "dom0_uplink_arps_and_pings_the_qemu_gateway",
                "test=uplink",
                false,
                &[
                    "dom0: uplink: virtio-net 52:54:00:12:34:56 at 00:",
                    "dom0: uplink: 10.0.2.2 is at 52:55:0a:00:02:02",
                    "dom0: uplink: ping 10.0.2.2: reply seq 1",
                    "dom0: uplink test: ok",
                ],
            )
        },
        // dom0 drives QEMU's virtio-blk-pci through virtio-drivers: its
        // flushed writes reach the image file, the host's bytes reach dom0.
        Dom0Test {
            disk: Some(TestDisk { mib: 8, fill: DiskFill::HostPattern, check: Some(disk_pattern_in_image) }),
            forbid: &[
                "differs",
                "dom0: disk test: write failed",
                "read failed",
                "flush failed",
                "MiB failed",
                "-> accepted",
                "disk: none (no virtio-blk",
            ],
            ..t(
                "dom0_disk_pattern_reaches_the_image_file",
                "test=disk",
                false,
                &[
                    "dom0: disk: virtio-blk at 00:",
                    "dom0: disk test: flush offered",
                    "dom0: disk test: the host's pre-filled MiB reads back: ok",
                    "dom0: disk test: read past the end -> OutOfRange",
                    "dom0: disk test: wrote 4 MiB, flushed, read back: ok",
                    "dom0: disk test: 4 KiB random reads: ok",
                    "dom0: disk bench: sequential write",
                    "dom0: disk test: ok",
                ],
            )
        },
        // No disk attached: dom0 says so and its shell runs.
        Dom0Test {
            script: &["poweroff"],
            forbid: &["dom0: disk: virtio-blk"],
            ..t("dom0_without_a_disk_says_none_and_carries_on", "", false, &["dom0: disk: none (", "dom0: xl shell ready"])
        },
        // The shell's boot probe finds an attached disk.
        Dom0Test {
            script: &["poweroff"],
            disk: Some(TestDisk { mib: 16, fill: DiskFill::Zeros, check: None }),
            ..t("dom0_shell_probes_an_attached_disk", "", false, &["dom0: disk: virtio-blk at 00:", "32768 sectors (16 MiB)", "dom0: xl shell ready"])
        },
        // Issue 19: dom0's `xl trace` on three guests (a spinner, a guest
        // sleeping on timers, one pinging dom0 over netback), three seconds
        // of Xen's trace buffers mapped and drained by dom0, dumped framed
        // on serial; the host reads the dump back and judges it.
        Dom0Test {
            script: crate::trace_cmd::DEFAULT_SCRIPT,
            smp: 2,
            tbuf_pages: Some(crate::trace_cmd::TBUF_PAGES),
            output_check: Some(trace_session_check),
            timeout_s: 300,
            forbid: &["xl trace: no trace buffers", "xl trace: mapping", "create failed", "panic"],
            in_order: &[
                "xl trace: enabled: event mask 0x0ffff000",
                "xl trace: waited ",
                "xl trace: disabled",
                "xl trace: kept ",
                "xl-trace-dump: begin",
                "xl-trace-dump: end",
            ],
            ..t("trace_xl_trace_three_guests_dump_reads_back", "", false, &["(d3) net: up"])
        },
        // Issue 19's boundary: while dom0 has the trace buffers live, a
        // domU asks for them the two ways xl trace does (both -EPERM) and
        // then points a PTE of its own at every machine frame: only its
        // own map, the trace pages and every other domain's stay out.
        Dom0Test {
            script: &["trace start -c 0x1", "create frame-scan", "?scan: mapped", "trace stop", "poweroff"],
            tbuf_pages: Some(8),
            timeout_s: 240,
            forbid: &["scan: foreign frames that mapped", ": failed", "panic", "dom0: crash"],
            in_order: &[
                "xl trace: enabled: event mask 0x0ffff000, cpu mask 0x1,",
                "scan: XEN_SYSCTL_tbuf_op get_info from a domU -> -1 (EPERM)",
                "scan: mmu_update with foreigndom DOMID_XEN from a domU -> -1 (EPERM), 0 done",
                "scan: XEN_DOMCTL_settscinfo on dom0 from a domU -> -1 (EPERM)",
                "scan: GNTTABOP_setup_table of 1 frame -> 0, status 0",
                "scan: tried frames 0..=",
                " of its own frames and 0 of others",
                "xl trace: disabled",
            ],
            ..t("trace_pages_and_every_foreign_frame_stay_unmapped_for_a_domu", "", false, &["the page maps its own frame again: Ok(())"])
        },
        t("dom0_banner_and_poweroff", "test=banner", false, BANNER_LINES),
        // Xen raises VIRQ_CONSOLE to dom0 when serial input arrives; dom0
        // blocks with nothing else bound and reads only once woken.
        Dom0Test {
            script: &["hello virq"],
            forbid: &["without VIRQ_CONSOLE", "cannot bind VIRQ_CONSOLE"],
            ..t(
                "console_input_wakes_dom0_blocked_on_virq_console",
                "test=console-virq",
                false,
                &["dom0: console-virq: event callback -> 0", "dom0: console-virq: woke with \"hello virq\""],
            )
        },
        t("dom0_crash_fails", "test=crash", true, &["dom0: crash: asking for SHUTDOWN_crash"]),
        t(
            "invalid_hypercall_is_enosys",
            "test=enosys",
            false,
            &["hypercall 11 -> -38", "hypercall 45 -> -38", "hypercall 63 -> -38", "hypercall 127 -> -38"],
        ),
        t(
            "guest_page_fault_handled_by_guest",
            "test=pagefault",
            false,
            &[
                "dom0: pagefault: set_trap_table -> 0",
                "dom0: pagefault: map shared_info -> 0",
                "dom0: pagefault: handled vector 14 error 0x0 cr2 0xdeadb000",
            ],
        ),
        Dom0Test {
            forbid: &["still running after ud2"],
            ..t("unhandled_fault_crashes_domain", "test=unhandled", true, &["executing ud2 with no handler"])
        },
        t("fault_while_delivering_crashes_domain", "test=badstack", true, &["dom0: badstack: faulting with an unmapped stack"]),
        // XSA-7 / CVE-2012-0217's class: a SYSCALL from 0x7fff_ffff_fffe
        // returns to a non-canonical RIP; only the domain may crash.
        t(
            "syscall_at_the_top_of_the_user_half_crashes_only_the_guest",
            "test=syscall-top",
            true,
            &["dom0: syscall-top: jumping to the last two bytes below the canonical hole"],
        ),
        t(
            "user_tables_syscall_returns_to_kernel_tables",
            "test=usertables-syscall",
            false,
            &["usertables: user L4 pinned and installed", "dom0: syscall: bounced from user mode, rax 0x5ca11, user cs 0xe033"],
        ),
        Dom0Test {
            demo_guest: true,
            ..t(
                "demo_guest_runs_a_user_program",
                "",
                false,
                &[
                    "pv-guest-kernel: hello",
                    "usertables: user L4 pinned and installed",
                    "pv-guest-kernel: user program made SYSCALL 0x5ca11 from cs 0xe033",
                ],
            )
        },
        t(
            "pv_clock_system_time_and_wallclock",
            "test=time",
            false,
            &[
                "dom0: time: map shared_info -> 0",
                "dom0: time: system time advances",
                "dom0: time: a 50 ms sleep lasts at least 50 ms",
                "dom0: time: wall clock year plausible",
            ],
        ),
        Dom0Test {
            script: &["list", "info", "bogus", "poweroff"],
            ..t(
                "xl_shell_on_the_dom0_console",
                "",
                false,
                &[
                    "dom0: heap: 2048 KiB, allocation works",
                    "dom0: xl shell ready",
                    "Name                                        ID   Mem VCPUs\tState\tTime(s)",
                    "Domain-0                                     0    64     1     r-----",
                    "xen_minor              : 17",
                    "xl: unknown command 'bogus'",
                ],
            )
        },
        t(
            "three_domus_built_by_dom0_print_their_ids",
            "test=guests guests=3",
            false,
            &[
                "(d1) pv-guest-kernel: I am domain 1",
                "(d2) pv-guest-kernel: I am domain 2",
                "(d3) pv-guest-kernel: I am domain 3",
                "(d1) pv-guest-kernel: domctl from a domU -> -1 (EPERM)",
                "(d1) pv-guest-kernel: vcpu_stats sysctl from a domU -> -1 (EPERM)",
                "(d2) pv-guest-kernel: user program made SYSCALL",
                "dom0: guests: 3 of 3 guests finished",
            ],
        ),
        t(
            // Hostile guest: release Xen 4.17 gives CONSOLEIO_write only to
            // the console domain (xsm_console_io, XSM_PRIV): -EPERM.
            "attack_consoleio_write_from_a_domu_is_eperm",
            "test=guests guests=1 extra=consoleio",
            false,
            &["(d1) pv-guest-kernel: CONSOLEIO_write from a domU -> -1 (EPERM)", "dom0: guests: 1 of 1 guests finished"],
        ),
        t(
            // XSA-298 class, first thing after boot: until a vCPU's first
            // switch loads its (empty) LDT, the LDTR must already be null.
            "attack_xsa298_ldt_call_gate_right_after_boot",
            "test=conformance filter=attack_xsa298",
            false,
            &["conformance: result attack_xsa298_ldt_call_gate_without_ldt success", "conformance: end"],
        ),
        t(
            "a_spinning_domu_does_not_starve_the_others",
            "test=guests guests=3 spin=2",
            false,
            &["(d2) pv-guest-kernel: spinning forever", "dom0: guests: 2 of 2 guests finished", "dom0: guests: d2 still runs; destroying it"],
        ),
        t(
            "fpu_state_follows_each_domu",
            "test=guests guests=3 extra=fpu",
            false,
            &[
                "(d1) pv-guest-kernel: fpu: xmm0 kept across 200 yields",
                "(d2) pv-guest-kernel: fpu: xmm0 kept across 200 yields",
                "(d3) pv-guest-kernel: fpu: xmm0 kept across 200 yields",
                "dom0: guests: 3 of 3 guests finished",
            ],
        ),
        Dom0Test {
            smp: 2,
            ..t(
                "two_spinning_domus_run_in_parallel_on_two_cpus",
                "test=parallel",
                false,
                // Leaks are checked by the `_smp2` boot tests on xen-core:
                // Xen frees a dead domain's memory asynchronously.
                &["dom0: parallel: domains run in parallel", "dom0: parallel: free pages"],
            )
        },
        Dom0Test {
            xen_credit: true,
            ..t(
                "credit_weight_and_cap_set_by_domctl_shape_cpu_share",
                "test=weights",
                false,
                &[
                    "dom0: weights: d1 weight 256, d2 weight 512 (rc 0)",
                    "dom0: weights: share follows weight",
                    "dom0: weights: d2 weight 256 cap 20 (rc 0)",
                    "dom0: weights: cap holds",
                ],
            )
        },
        t(
            "two_domus_ping_pong_over_a_grant_and_an_event_channel",
            "test=pingpong",
            false,
            &[
                "(d2) pong: answered 100 pings from d1 through its grant 8",
                "(d1) ping: 100 round trips with d2 over grant 8 and port",
                "(d1) ping: grant 8 revoked after the peer unmapped it",
                "dom0: pingpong: 2 of 2 guests finished",
            ],
        ),
        Dom0Test {
            script: &["create spin", "list", "pause 1", "list", "unpause 1", "destroy 1", "destroy 1", "pause", "poweroff"],
            ..t(
                "xl_shell_creates_pauses_and_destroys_a_guest",
                "",
                false,
                &[
                    "xl: created d1",
                    "(d1) pv-guest-kernel: spinning forever",
                    "guest1                                       1     4     1     ",
                    "guest1                                       1     4     1     --p---",
                    // The first destroy is silent, as xl's; the second finds nothing.
                    "xl: d1: -3 (ESRCH)",
                    "'xl pause' requires at least 1 argument.",
                    "Usage: xl [-vtTf] pause <Domain>",
                ],
            )
        },
        Dom0Test {
            // Issue 15's first slice: dom0 is xenstored on both
            // hypervisors; the guest's `xs` mode reads its home, writes
            // data/hello and watches control/shutdown.
            script: &[
                "create xs",
                "xenstore-ls /local/domain/1",
                "xenstore-read /local/domain/1/data/hello",
                "shutdown 1",
                "list",
                "xenstore-ls /local/domain/1",
                "poweroff",
            ],
            forbid: &["guest1                                       1 ", "-> ALLOWED"],
            ..t(
                "xl_xenstore_home_written_read_and_shutdown_through_it",
                "",
                false,
                &[
                    "xl: created d1",
                    "(d1) xenbus: name=guest1 domid=1",
                    "(d1) xenbus: wrote data/hello",
                    // Attack lines: the domU's writes into dom0's and another
                    // domain's home and its read of dom0's node are refused.
                    "(d1) xenbus: attack write /local/domain/0/x -> EACCES",
                    "(d1) xenbus: attack write /local/domain/9/x -> EACCES",
                    "(d1) xenbus: attack read /local/domain/0/name -> EACCES",
                    "name = \"guest1\"",
                    "domid = \"1\"",
                    " target = \"4096\"",
                    " shutdown = \"\"",
                    " hello = \"world\"",
                    "Shutting down domain 1",
                    "(d1) xenbus: shutdown requested: poweroff",
                    "dom0: d1 shut down (poweroff); destroyed",
                    "xenstore-ls: xs_directory (/local/domain/1): No such file or directory",
                ],
            )
        },
        // Issue 16's balloon: a 64 MiB guest (balloon.cfg) follows `xl
        // mem-set` down to 32 MiB and back, in `xl list` (the hypervisor's
        // count) and in its own count; then down to 3 MiB (past the pfns
        // above its initial region: initial-region pages are unmapped and
        // given back too) and back. memory/target says what xl asked;
        // past memory/static-max xl refuses.
        Dom0Test {
            script: &[
                "create balloon.cfg",
                "?balloon: target 65536 KiB: 16384 pages",
                "list balloon",
                "mem-set balloon 32m",
                "?balloon: target 32768 KiB",
                "list balloon",
                "xenstore-ls /local/domain/1/memory",
                "mem-set balloon 64m",
                "?balloon: target 65536 KiB",
                "list balloon",
                "xenstore-ls /local/domain/1/memory",
                "mem-set balloon 3m",
                "?balloon: target 3072 KiB",
                "list balloon",
                "mem-set balloon 64m",
                "?balloon: target 65536 KiB",
                "list balloon",
                "mem-set balloon 65m",
                "destroy balloon",
                "create balloon.cfg 'name=\"big\"' memory=24065",
                "create balloon.cfg 'name=\"big\"' memory=1024",
                "list",
                "poweroff",
            ],
            // A failed build leaves no domain behind (no `big` row).
            forbid: &["KiB: failed at", "balloon: watch broke", "big                    "],
            in_order: &[
                "xl: created d1",
                "(d1) balloon: following memory/target from 16384 pages",
                "(d1) balloon: target 65536 KiB: 16384 pages",
                "balloon                                      1    64     1",
                "(d1) balloon: target 32768 KiB: 8192 pages (gave back 8192)",
                "balloon                                      1    32     1",
                "target = \"32768\"",
                "(d1) balloon: target 65536 KiB: 16384 pages (took back 8192)",
                "balloon                                      1    64     1",
                "target = \"65536\"",
                "(d1) balloon: target 3072 KiB: 768 pages (gave back 15616)",
                "balloon                                      1     3     1",
                "(d1) balloon: target 65536 KiB: 16384 pages (took back 15616)",
                "balloon                                      1    64     1",
                "memory_dynamic_max must be less than or equal to memory_static_max",
                // Past the builder's limit, and past the machine's memory.
                "balloon.cfg: memory: 24065 MiB is more than this dom0's builder can build (24064 MiB)",
                "xl: create failed at find free memory for the domain: -12 (ENOMEM)",
            ],
            ..t("xl_mem_set_balloons_a_64m_guest_to_32m_and_back", "", false, &["static-max = \"65536\""])
        },
        // `xl console` input reaches the guest (issue 16's console): keys
        // typed while attached go to the guest's console ring, whose
        // `echo` mode prints each line back; `quit` powers it off, and the
        // shell leaves the console when the guest goes.
        Dom0Test {
            script: &["create echo", "console 1", "@hello from dom0", "@quit", "list", "poweroff"],
            forbid: &["(d1) echo: hello from dom0"],
            ..t(
                "xl_console_input_reaches_the_guest",
                "",
                false,
                &["xl: created d1", "(d1) echo: type a line", "\necho: hello from dom0", "echo: bye", "dom0: d1 shut down (poweroff); destroyed"],
            )
        },
        // blkif over blkback (issue 16): a guest writes the pattern over
        // its xvda through blkfront, flushes and powers off; a second one
        // attaches the same disk read-only, finds every byte, and its
        // write is refused. Without a virtio disk, /dev/vda is dom0's RAM
        // disk.
        Dom0Test {
            script: &["create blkwrite.cfg", "?blk: closed", "@list", "create blkcheck.cfg", "?blk: closed", "@list", "poweroff"],
            disk: Some(TestDisk { mib: 32, fill: DiskFill::Zeros, check: Some(guest_pattern_in_image) }),
            forbid: &["blk: connect failed", "check failed", "blk: write at byte", "blk: flush failed", "RAM disk"],
            ..t(
                "blk_16m_pattern_reaches_the_host_image_through_blkback_and_virtio",
                "",
                false,
                &[
                    "dom0: disk: virtio-blk at 00:",
                    "(d1) blk: vdev 51712: 65536 sectors (32 MiB), 64 KiB per request (indirect)",
                    "(d1) blk: wrote 16384 KiB of pattern in",
                    "dom0: blkback: d1 vbd 51712: disconnected after 0 reads, 256 writes, 1 flushes, 0 refused; 68 persistent grants",
                    "dom0: d1 shut down (poweroff); destroyed",
                    "(d2) blk: vdev 51712: 65536 sectors (32 MiB), read-only,",
                    "(d2) blk: checked 16384 KiB: pattern intact",
                    "(d2) blk: write of sector 0 -> Status(-1)",
                    "dom0: blkback: d2 vbd 51712: disconnected after 256 reads, 1 writes, 0 flushes, 1 refused; 68 persistent grants",
                ],
            )
        },
        // Without a virtio disk, /dev/vda is dom0's RAM disk.
        Dom0Test {
            script: &["create blkwrite.cfg", "@", "@list", "create blkcheck.cfg", "@", "@list", "poweroff"],
            forbid: &["blk: connect failed", "check failed", "blk: write at byte", "blk: flush failed"],
            ..t(
                "blk_pattern_written_then_checked_read_only_on_the_ram_disk",
                "",
                false,
                &[
                    "dom0: blkback: /dev/vda: a RAM disk of 512 KiB",
                    "(d1) blk: vdev 51712: 1024 sectors (0 MiB), 64 KiB per request (indirect)",
                    "(d1) blk: wrote 512 KiB of pattern in",
                    "(d1) blk: closed",
                    "dom0: d1 shut down (poweroff); destroyed",
                    "(d2) blk: vdev 51712: 1024 sectors (0 MiB), read-only,",
                    "(d2) blk: checked 512 KiB: pattern intact",
                    "(d2) blk: write of sector 0 -> Status(-1)",
                    "dom0: d2 shut down (poweroff); destroyed",
                ],
            )
        },
        // The block script's sharing rule: a disk a guest holds read-write
        // cannot be attached again, writable or not; the refused domain is
        // not created.
        Dom0Test {
            script: &[
                "create blkhold.cfg",
                "@",
                "create blkwrite.cfg",
                "create blkcheck.cfg",
                "@list",
                "destroy holder",
                "create blkcheck.cfg",
                "@",
                "@list",
                "poweroff",
            ],
            ..t(
                "blk_second_attach_of_a_writable_disk_is_refused",
                "",
                false,
                &[
                    "(d1) blk: holding the device",
                    "libxl: error: Device /dev/vda is mounted in a guest domain,\nand so cannot be mounted now.",
                    "libxl: error: Device /dev/vda is mounted read-write in a guest domain,\nand so cannot be mounted read-only now.",
                    "(d4) blk: vdev 51712: 1024 sectors (0 MiB), read-only",
                ],
            )
        },
        // xl block-attach and block-detach while the guest runs, twice,
        // through every XenbusState; block-list shows the connected ring.
        Dom0Test {
            script: &[
                "create blkhot.cfg",
                "@block-attach hot vdev=xvdb, access=ro, target=/dev/vda",
                "@block-list hot",
                "@block-detach hot xvdb",
                "@block-list hot",
                "@block-attach hot phy:/dev/vda xvdc r",
                "@block-detach hot 51744",
                "@xenstore-ls /local/domain/0/backend/vbd",
                "poweroff",
            ],
            forbid: &["did not close", "connect failed"],
            ..t(
                "blk_attach_and_detach_while_the_guest_runs",
                "",
                false,
                &[
                    "(d1) blk: hotplug: waiting for a disk",
                    "(d1) blk: hotplug: vdev 51728 connected, 1024 sectors, sector 0 read -> okay",
                    "51728 0   1      4     ",
                    "(d1) blk: hotplug: vdev 51728 closed by the backend",
                    "(d1) blk: hotplug: vdev 51744 connected",
                    "(d1) blk: hotplug: vdev 51744 closed by the backend",
                    "xenstore-ls: xs_directory (/local/domain/0/backend/vbd): No such file or directory",
                ],
            )
        },
        // A hostile blkfront: each bad request gets its error status, a
        // forged req_prod stops dom0 serving that ring; dom0 carries on
        // and the next guests write and check the disk.
        Dom0Test {
            script: &["create blkevil.cfg", "@", "@destroy evil", "create blkwrite.cfg", "@", "create blkcheck.cfg", "@", "@list", "poweroff"],
            ..t(
                "blk_hostile_frontend_gets_errors_and_dom0_carries_on",
                "",
                false,
                &[
                    "(d1) blk: evil: bad grant ref -> error",
                    "(d1) blk: evil: first_sect > last_sect -> error",
                    "(d1) blk: evil: last_sect past the page -> error",
                    "(d1) blk: evil: sector past the disk -> error",
                    "(d1) blk: evil: sector range wraps -> error",
                    "(d1) blk: evil: 12 segments -> error",
                    "(d1) blk: evil: no segments -> error",
                    "(d1) blk: evil: unknown operation -> eopnotsupp",
                    "(d1) blk: evil: indirect, 0 segments -> error",
                    "(d1) blk: evil: indirect, bad indirect grant -> error",
                    "(d1) blk: evil: discard past the disk -> error",
                    "(d1) blk: evil: read into a read-only grant -> error",
                    "(d1) blk: evil: a good read after them -> okay",
                    "dom0: blkback: d1 vbd 51712: ring corrupt",
                    "(d2) blk: wrote 512 KiB",
                    "(d3) blk: checked 512 KiB: pattern intact",
                ],
            )
        },
        // A guest destroyed in the middle of its I/O: its ring is
        // unmapped, its backend nodes go, and the disk serves the next
        // guest.
        Dom0Test {
            script: &[
                "create blkchurn.cfg",
                "@",
                "@destroy churn",
                "@xenstore-ls /local/domain/0/backend/vbd",
                "create blkwrite.cfg",
                "@",
                "create blkcheck.cfg",
                "@",
                "@list",
                "poweroff",
            ],
            ..t(
                "blk_guest_destroyed_mid_io_leaves_no_backend_behind",
                "",
                false,
                &[
                    "(d1) blk: churning",
                    "xenstore-ls: xs_directory (/local/domain/0/backend/vbd): No such file or directory",
                    "(d2) blk: wrote 512 KiB",
                    "(d3) blk: checked 512 KiB: pattern intact",
                ],
            )
        },
        // Dom0 sleeps at an idle prompt (issue 15: it used to poll every
        // 10 ms): five quiet seconds between two `list`s cost it next to
        // no CPU time.
        Dom0Test {
            script: &["list", "@", "@", "@", "@", "@", "list", "poweroff"],
            dom0_cpu_at_most_s: Some(0.3),
            ..t("xl_idle_dom0_sleeps_at_the_prompt", "", false, &["Domain-0                                     0"])
        },
        // Issue 15's walk-through: three domains from xl configs, their
        // table and xenstore trees, pause, console, shutdown, reboot under
        // on_reboot = "restart" (a new domid), destroy, and free memory
        // back where it started.
        Dom0Test {
            script: &[
                "info",
                "ls",
                "create web.cfg",
                "create db.cfg",
                "create batch.cfg memory=5",
                "list",
                "xenstore-ls /local/domain/1",
                "pause batch",
                "list batch",
                "unpause batch",
                // A second of quiet: the unpaused guest has handled what
                // woke it during the pause and blocks again (on a loaded
                // 2-core CI machine 300 ms was not always enough).
                "@list 3",
                "console web",
                "@^]",
                "shutdown -w web",
                "reboot -w db",
                "list",
                "destroy batch",
                "list",
                "xenstore-ls /local/domain/3",
                "domid batch",
                "domid db",
                "destroy db",
                // A second of quiet first: Xen 4.17 frees a destroyed
                // domain's last pages after an RCU grace period.
                "@info",
                "poweroff",
            ],
            equal_lines: &["free_memory"],
            forbid: &["LEAKED", "create failed", "invalid domain identifier", "ALLOWED"],
            ..t(
                "xl_configs_create_list_console_shutdown_reboot_destroy",
                "",
                false,
                &[
                    "Parsing config from web.cfg",
                    "xl: created d1",
                    "xl: created d2",
                    "xl: created d3",
                    "web                                          1     4     1",
                    "db                                           2     6     1",
                    "batch                                        3     5     1",
                    "name = \"web\"",
                    " target = \"4096\"",
                    " static-max = \"8192\"",
                    "batch                                        3     5     1     --p---",
                    "batch                                        3     5     1     -b----",
                    "vm = \"/vm/",
                    " port = \"",
                    "  availability = \"online\"",
                    // `console web` shows its output without the (d1) prefix.
                    "\nxenbus: name=web domid=1",
                    "Shutting down domain 1",
                    "Waiting for 1 domains",
                    "(d1) xenbus: shutdown requested: poweroff",
                    "dom0: d1 shut down (poweroff); destroyed",
                    "Domain 1 has been shut down, reason code 0",
                    "Rebooting domain 2",
                    "(d2) xenbus: shutdown requested: reboot",
                    "dom0: d2 shut down (reboot); destroyed, restarting in 2 s",
                    "dom0: d2 restarted as d4",
                    "Domain 2 has been shut down, reason code 1",
                    "(d4) xenbus: name=db domid=4",
                    "db                                           4     6     1",
                    "xenstore-ls: xs_directory (/local/domain/3): No such file or directory",
                    "Can't get domid of domain name 'batch', maybe this domain does not exist.",
                    "\n4\n",
                ],
            )
        },
        // Issue 17: two guests on xenbr0 ping each other 1000 times with
        // no loss, a third pings dom0's own address; then the vifs are
        // listed, one is detached and the domains go without a trace.
        Dom0Test {
            script: &[
                "create netserve.cfg\ncreate netping.cfg\ncreate netpingd0.cfg",
                // The 20 pings to dom0 end long before the 1000.
                "?ping 10.0.2.11: 1000 sent",
                "@network-list www pinger",
                "network-detach pingd0 0",
                "network-list pingd0",
                "destroy pinger",
                "destroy www",
                "destroy pingd0",
                "xenstore-ls /local/domain/0/backend/vif",
                "poweroff",
            ],
            forbid: &["panic", "dom0: crash", "fatal tx error", "ring corrupt"],
            timeout_s: 180,
            ..t(
                "net_two_guests_ping_1000_times_without_loss_and_a_guest_pings_dom0",
                "",
                false,
                &[
                    "(d1) net: up mac=00:16:3e:00:00:11 ip=10.0.2.11/24",
                    "(d2) net: up mac=00:16:3e:00:00:12 ip=10.0.2.12/24",
                    "(d2) net: ping 10.0.2.11: 1000 sent, 1000 received, 0 lost",
                    "(d3) net: ping 10.0.2.10: 20 sent, 20 received, 0 lost",
                    "Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref BE-path",
                    "0   0  00:16:3e:00:00:11     0     4 ",
                    "/local/domain/0/backend/vif/1/0",
                    "0   0  00:16:3e:00:00:12     0     4 ",
                    "xl> network-list pingd0\nIdx BE",
                    "dom0: netback: d3 vif 0: disconnected after ",
                    // Every vif's nodes went with it, and the emptied
                    // directories (libxl's path cleanup).
                    "xenstore-ls: xs_directory (/local/domain/0/backend/vif): No such file or directory",
                ],
            )
        },
        // Issue 17: the host machine fetches a guest's HTTP page through
        // dom0's uplink (QEMU's user network forwards a host port to the
        // guest's port 80 across virtio-net, xenbr0 and the guest's vif).
        Dom0Test {
            // The probe's lines join the output apart from the serial
            // stream: the script waits for quiet instead.
            script: &["create netserve.cfg", "?net: up mac", "@", "@", "@list", "poweroff"],
            net: true,
            probe_on: Some("net: up mac=00:16:3e:00:00:11"),
            forbid: &["panic", "dom0: crash", "[host] GET / failed"],
            timeout_s: 120,
            ..t(
                "net_the_host_fetches_a_guests_http_page_through_the_uplink",
                "",
                false,
                &[
                    "dom0: uplink: virtio-net ",
                    "(d1) net: up mac=00:16:3e:00:00:11 ip=10.0.2.11/24",
                    "[host] GET / -> HTTP/1.0 200 OK",
                    "[host] body: domid=1 uptime_ms=",
                ],
            )
        },
        // Issue 17: 64 MiB over TCP from one guest to another arrive
        // intact (the sender's and the receiver's checksums agree).
        Dom0Test {
            script: &["create netserve.cfg\ncreate netsend.cfg", "?net: sink: 67108864 bytes", "@list", "poweroff"],
            forbid: &["panic", "dom0: crash", "fatal tx error", "ring corrupt"],
            same_checksums: &[("(d2) net: sent 67108864 bytes", "(d1) net: sink: 67108864 bytes")],
            timeout_s: 300,
            ..t(
                "net_tcp_64_mib_between_two_guests_arrives_intact",
                "",
                false,
                &["(d2) net: sent 67108864 bytes fnv1a=", "(d1) net: sink: 67108864 bytes fnv1a="],
            )
        },
        // Issue 17: `rate=2Mb/s` on a vif (libxl's 12500 bytes per 50 ms,
        // netback's credit) holds a 1 MiB TCP send to at least ~4.1 s;
        // unlimited, it takes a fraction of that on xen-core. The bytes
        // still arrive intact.
        Dom0Test {
            script: &["create netserve.cfg\ncreate netrate.cfg", "?net: sink: 1048576 bytes", "@network-list ratelim", "poweroff"],
            forbid: &["panic", "dom0: crash", "fatal tx error", "ring corrupt"],
            same_checksums: &[("(d2) net: sent 1048576 bytes", "(d1) net: sink: 1048576 bytes")],
            took_at_least_ms: &[("(d2) net: sent 1048576 bytes", 3800)],
            timeout_s: 120,
            ..t(
                "net_rate_limited_vif_sends_no_faster_than_its_rate",
                "",
                false,
                &["(d2) net: sent 1048576 bytes fnv1a=", "(d1) net: sink: 1048576 bytes fnv1a=", "Idx BE Mac Addr."],
            )
        },
        // Issue 17: a malicious netfront sends every class of bad request
        // while two other guests ping: dom0 survives, the ping loses
        // nothing, the evil vif's damage is dropped and counted; a guest
        // holding half a packet is disconnected, and its destruction leaves
        // nothing behind.
        Dom0Test {
            script: &[
                "create netserve.cfg\ncreate netevil.cfg\ncreate evilpage.cfg\ncreate evilslots.cfg\ncreate evilring.cfg\ncreate netping.cfg",
                // d2 and the pings end in either order.
                "?*(d2) net: evil done",
                "?*ping 10.0.2.11: 1000 sent",
                "@create netevilhold.cfg",
                "?net: evil holding a half packet",
                "destroy hold",
                "list",
                "xenstore-ls /local/domain/0/backend/vif/7",
                "poweroff",
            ],
            forbid: &["panic", "dom0: crash", "xl: error", "(d6) net: vif", "(d1) net: vif", "vif 0: fatal tx error (CrossPage); disconnecting\n(d2"],
            timeout_s: 180,
            ..t(
                "net_malicious_netfront_is_dropped_and_counted_and_the_others_lose_nothing",
                "",
                false,
                &[
                    "(d6) net: ping 10.0.2.11: 1000 sent, 1000 received, 0 lost",
                    // Frames as www's MAC while d6 pings www: dropped (a
                    // bridge learning them would send www's traffic to d2).
                    "(d2) net: evil spoof-mac -> ",
                    // Answered with an error, dropped: the vif stays.
                    "(d2) net: evil bad-gref -> error",
                    "(d2) net: evil over-64k -> error x17",
                    "(d2) net: evil too-many-slots(20) -> error x20",
                    "(d2) net: evil tx-flood-no-rx -> 2000 sent: ",
                    "(d2) net: evil done",
                    // Linux's netback disconnects a vif for these.
                    "dom0: netback: d3 vif 0: fatal tx error (CrossPage); disconnecting",
                    "(d3) net: evil frag-past-page -> ",
                    "dom0: netback: d4 vif 0: fatal tx error (TooManySlots); disconnecting",
                    "(d4) net: evil too-many-slots(22) -> ",
                    "dom0: netback: d5 vif 0: fatal tx error (Ring(",
                    "(d5) net: evil req-prod-far -> ",
                    // Half a packet published (its last slot says
                    // more_data): fatal as Linux's xenvif_count_requests;
                    // the domain destroyed then: nodes gone.
                    "(d7) net: evil holding a half packet",
                    "dom0: netback: d7 vif 0: fatal tx error (MissingSlots); disconnecting",
                    "dom0: netback: d7 vif 0: disconnected after ",
                    "xenstore-ls: xs_directory (/local/domain/0/backend/vif/7): No such file or directory",
                    "xl> list\nName",
                ],
            )
        },
        Dom0Test {
            // Issue 15's hostile client: d2 sends every class of malformed
            // xenstore message and goes past every quota, d3 and d4 make up
            // their ring indices, while d1's round trips carry on (for 8 s:
            // past d2's last blow on both hypervisors). The four creates go
            // in one script line (the guests run together); the guests'
            // heartbeats (a line every 100 ms) hold the next line until
            // they are done.
            script: &[
                "create xs-steady secs=8\ncreate xs-attack\ncreate xs-attack ring-req\ncreate xs-attack ring-rsp",
                "list",
                "xenstore-write /hostile/alive yes",
                "xenstore-read /hostile/alive",
                "xenstore-ls /local/domain",
                "poweroff",
            ],
            forbid: &["ALLOWED", "ignored (still served)", "NOT SERVED", "panic", "cleanup of", "error at", "dom0: crash"],
            ..t(
                "xl_xenstore_hostile_client_is_refused_and_another_domu_carries_on",
                "",
                false,
                &[
                    "xl: created d1",
                    "xl: created d4",
                    // Bad headers and arguments: an error each, the
                    // connection stays.
                    "(d2) xenbus: hostile unknown-type -> ENOSYS",
                    "(d2) xenbus: hostile reply-type-watch-event -> ENOSYS",
                    "(d2) xenbus: hostile reply-type-error -> ENOSYS",
                    "(d2) xenbus: hostile privileged-introduce -> EACCES",
                    "(d2) xenbus: hostile privileged-release -> EACCES",
                    "(d2) xenbus: hostile missing-nul-read -> EINVAL",
                    "(d2) xenbus: hostile missing-nul-write -> EINVAL",
                    "(d2) xenbus: hostile empty-payload-read -> EINVAL",
                    "(d2) xenbus: hostile watch-one-arg -> EINVAL",
                    "(d2) xenbus: hostile set-perms-garbage -> EINVAL",
                    "(d2) xenbus: hostile transaction-end-garbage -> EINVAL",
                    // Paths outside the namespace.
                    "(d2) xenbus: hostile path-dotdot -> EINVAL",
                    "(d2) xenbus: hostile path-double-slash -> EINVAL",
                    "(d2) xenbus: hostile path-trailing-slash -> EINVAL",
                    "(d2) xenbus: hostile path-bad-chars -> EINVAL",
                    "(d2) xenbus: hostile path-not-utf8 -> EINVAL",
                    "(d2) xenbus: hostile path-too-long -> EINVAL",
                    "(d2) xenbus: hostile path-outside-home -> EACCES",
                    "(d2) xenbus: hostile other-domain-control-trace -> EACCES",
                    "(d2) xenbus: hostile other-domain-feature-trace -> EACCES",
                    "(d2) xenbus: hostile path-special-write -> EINVAL",
                    // Transactions it does not own.
                    "(d2) xenbus: hostile tx-not-owned -> ENOENT",
                    "(d2) xenbus: hostile tx-made-up -> ENOENT",
                    "(d2) xenbus: hostile tx-end-not-owned -> ENOENT",
                    // Quotas (quota.rs: Xen 4.17's defaults and errnos;
                    // Xen checks watches and transactions before adding,
                    // so the 130th and the 12th are the first refused).
                    "(d2) xenbus: hostile quota-entry-size -> ENOSPC",
                    "(d2) xenbus: hostile quota-watches -> E2BIG (at 130)",
                    "(d2) xenbus: hostile quota-transactions -> ENOSPC (at 12)",
                    // Our 96 KiB memory quota (Xen: 2.5 MiB) is reached
                    // before the 1000-node one: ENOMEM, not ENOSPC.
                    "(d2) xenbus: hostile quota-nodes -> ENOMEM (at ",
                    "(d2) xenbus: hostile quota-memory -> ENOMEM (at ",
                    "(d2) xenbus: hostile after the quotas: still served",
                    // Framing and ring indices: the connection goes.
                    "(d2) xenbus: hostile bad-length -> dropped",
                    "dom0: xenstored: d2: connection closed: malformed message header",
                    "(d3) xenbus: hostile ring-req-prod-far-past-cons -> dropped",
                    "dom0: xenstored: d3: connection closed: corrupt req ring indices",
                    "(d4) xenbus: hostile ring-rsp-cons-past-prod -> dropped",
                    "dom0: xenstored: d4: connection closed: corrupt rsp ring indices",
                    "(d2) xenbus: hostile done in ",
                    // The other domU's round trips all came back right.
                    "(d1) xenbus: steady: ",
                    "ops, 0 errors",
                    "dom0: d2 shut down (poweroff); destroyed",
                    // dom0's store still answers, and the guests' homes went.
                    "xl> xenstore-read /hostile/alive\nyes",
                    "xl> xenstore-ls /local/domain\nxl> poweroff",
                ],
            )
        },
        Dom0Test {
            script: &[
                "create spin",
                "sched-credit -d 1 -w 512 -c 30",
                "sched-credit",
                "sched-credit -d 1 -w 0",
                "sched-credit -d 9",
                "destroy 1",
                "poweroff",
            ],
            xen_credit: true,
            ..t(
                "xl_sched_credit_sets_and_shows_weight_and_cap",
                "",
                false,
                &[
                    "xl: created d1",
                    "Name                                ID Weight  Cap",
                    "guest1                               1    512   30",
                    "Domain-0                             0    256    0",
                    "usage: sched-credit [-d DOMID [-w WEIGHT] [-c CAP]]",
                    "xl: d9: -3 (ESRCH)",
                ],
            )
        },
        Dom0Test {
            // How late is printed, not judged (a loaded host makes it what
            // it likes: 60 ms seen under Xen 4.17). Early is wrong, and
            // xen-core is held to exactly 0; Xen 4.17 under TCG extrapolates
            // the guest's clock from a calibration the host's load skews,
            // so its timers look early by 0.5 ms idle and 4.7 ms loaded
            // (seen 2026-12-03): there only the timers' firing is checked.
            xen_core_expect: &["dom0: timer: none fired before its deadline"],
            ..t("guest_timer_never_early", "test=timer", false, &["dom0: timer: 20 timers fired"])
        },
        t(
            "user_tables_hide_the_kernel",
            "test=usertables-fault",
            false,
            &["usertables: user L4 pinned and installed", "dom0: usertables: user-mode trap 14 error 0x4 cr2 0xffffffff8"],
        ),
        t(
            "user_syscall_bounced_to_kernel",
            "test=syscall",
            false,
            &["dom0: syscall: bounced from user mode, rax 0x5ca11, user cs 0xe033, rip in user program: true"],
        ),
    ]
}

/// Which hypervisor a dom0 test boots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hypervisor {
    XenCore,
    Xen417,
}

impl Hypervisor {
    fn label(self) -> &'static str {
        match self {
            Hypervisor::XenCore => "xen-core",
            Hypervisor::Xen417 => "xen-4.17",
        }
    }
}

/// Run a dom0 test on one hypervisor; returns (passed, serial output).
fn run_dom0_test(t: &Dom0Test, hv: Hypervisor, k: &Kernels) -> Result<(bool, String), String> {
    let name = format!("test-{}-{}", t.name, hv.label());
    let tbuf = |cmdline: &str| t.tbuf_pages.map_or_else(|| cmdline.to_string(), |p| crate::trace_cmd::with_tbuf(cmdline, p));
    let script = t.script.iter().map(|s| s.to_string()).collect();
    let mut opts = qemu::Options { timeout: Some(Duration::from_secs(t.timeout_s)), script, smp: t.smp, mem_mib: t.mem_mib, ..Default::default() };
    let spec = match hv {
        Hypervisor::XenCore => image::standard_spec(&name, k, &tbuf(t.xen_core_cmdline.unwrap_or("loglvl=all dom0_mem=64M")), t.dom0_args),
        Hypervisor::Xen417 => {
            opts.stop_on = qemu::XEN_STOP_LINES.iter().map(|s| s.to_string()).collect();
            image::xen417_spec_with(
                &name,
                k,
                &tbuf(if t.xen_credit { crate::xen::XEN_CMDLINE_CREDIT } else { crate::xen::XEN_CMDLINE }),
                t.dom0_args,
            )?
        }
    };
    let mut spec = spec;
    if t.demo_guest {
        spec.modules = vec![Module::new(&k.guest, "dom0")];
    }
    if t.linux_domu {
        let kernel = linux::fetch_kernel(linux::GENERIC_META)?;
        let initrd = linux::fetch_initramfs()?;
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let xvda_initrd = crate::linux_disk::initramfs(&linux::fetch_busybox()?, &kernel)?;
        let (kernel, initrd, cfg) = (read(&kernel)?, read(&initrd)?, linux::domu_config());
        let root_cfg = crate::linux_disk::config();
        let files: [(&str, &[u8]); 5] = [
            ("vmlinuz", &kernel),
            ("initrd.cpio", &initrd),
            ("linux.cfg", cfg.as_bytes()),
            (crate::linux_disk::INITRD_NAME, &xvda_initrd),
            (crate::linux_disk::CONFIG_NAME, root_cfg.as_bytes()),
        ];
        let tar = image::dom0_files_with(k, &files, &format!("{name}-files.tar"))?;
        spec.modules.retain(|m| m.name != "dom0-files.tar");
        spec.modules.push(Module::new(&tar, "dom0-files.tar"));
    }
    let disk_path = image::out_dir().join("disks").join(format!("{name}.img"));
    if let Some(d) = &t.disk {
        match d.fill {
            DiskFill::LinuxRoot => crate::linux_disk::make_root_disk(&disk_path, d.mib, &linux::fetch_busybox()?)?,
            fill => qemu::make_disk_image(&disk_path, d.mib, fill == DiskFill::HostPattern)?,
        }
        opts.extra.extend(qemu::disk_args(&disk_path));
    }
    if t.net {
        opts.net = Some(qemu::NetOpts {
            host_port: qemu::free_host_port()?,
            guest_ip: qemu::RUN_GUEST_IP.into(),
            guest_port: 80,
            probe_on: t.probe_on.map(String::from),
            probe_path: "/".into(),
        });
    }
    let iso = image::make_iso(&spec)?;
    let started = Instant::now();
    let r = qemu::boot(&iso, &opts)?;
    let mut problems = Vec::new();
    let end_line = if t.crashes { "Hardware Dom0 crashed" } else { "Hardware Dom0 halted" };
    if !r.output.contains(end_line) {
        problems.push(format!("missing line: {end_line}"));
    }
    match hv {
        Hypervisor::XenCore => {
            let want = if t.crashes { EXIT_FAILURE } else { EXIT_SUCCESS };
            if r.exit != Some(want) {
                problems.push(format!("QEMU exit {:?}, expected {want}", r.exit));
            }
        }
        Hypervisor::Xen417 if r.stopped_on.is_none() => problems.push("Xen never reached a dom0 halt or crash line".into()),
        Hypervisor::Xen417 => {}
    }
    if r.timed_out {
        problems.push("timed out".into());
    }
    let xen_core_only = if hv == Hypervisor::XenCore { t.xen_core_expect } else { &[] };
    problems.extend(t.expect.iter().chain(xen_core_only).filter(|e| !r.output.contains(*e)).map(|e| format!("missing line: {e}")));
    if let Some(check) = t.disk.and_then(|d| d.check) {
        match std::fs::read(&disk_path) {
            Ok(image) => problems.extend(check(&image)),
            Err(e) => problems.push(format!("{}: {e}", disk_path.display())),
        }
    }
    problems.extend(t.output_check.and_then(|check| check(&r.output, hv)).iter().flat_map(|why| why.lines().map(String::from)));
    problems.extend(t.forbid.iter().filter(|f| r.output.contains(*f)).map(|f| format!("unexpected text: {f}")));
    problems.extend(t.equal_lines.iter().filter_map(|prefix| unequal_lines(&r.output, prefix)));
    problems.extend(out_of_order(&r.output, t.in_order));
    problems.extend(t.same_checksums.iter().filter_map(|(a, b)| unequal_checksums(&r.output, a, b)));
    problems.extend(t.took_at_least_ms.iter().filter_map(|(text, min)| too_quick(&r.output, text, *min)));
    problems.extend(t.dom0_cpu_at_most_s.and_then(|max| dom0_cpu_growth(&r.output, max)));
    let label = format!("{} [{}]", t.name, hv.label());
    report(&label, started, &problems, &r.output);
    Ok((problems.is_empty(), r.output))
}

/// Why dom0's CPU time (the last column of `xl list`'s `Domain-0` rows)
/// grew by more than `max` seconds from its first row to its last.
fn dom0_cpu_growth(output: &str, max: f64) -> Option<String> {
    let times: Vec<f64> = output.lines().filter(|l| l.starts_with("Domain-0 ")).filter_map(|l| l.split_whitespace().last()?.parse().ok()).collect();
    match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() >= 2 && b - a <= max => None,
        (Some(a), Some(b)) if times.len() >= 2 => Some(format!("dom0 used {:.1} s of CPU while idle (at most {max} s)", b - a)),
        _ => Some("fewer than two Domain-0 rows from xl list".into()),
    }
}

/// Why `texts` do not all appear in `output` in their order (the first
/// one missing after the one before it).
fn out_of_order(output: &str, texts: &[&str]) -> Option<String> {
    let mut rest = output;
    for (i, text) in texts.iter().enumerate() {
        match rest.find(text) {
            Some(at) => rest = &rest[at + text.len()..],
            None if i == 0 => return Some(format!("missing line: {text}")),
            None => return Some(format!("missing line (in order, after {:?}): {text}", texts[i - 1])),
        }
    }
    None
}

/// Why the `fnv1a=` checksums on the lines holding `a` and `b` are not
/// both there and equal.
fn unequal_checksums(output: &str, a: &str, b: &str) -> Option<String> {
    let sum = |text: &str| output.lines().find(|l| l.contains(text)).and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("fnv1a=")));
    match (sum(a), sum(b)) {
        (Some(x), Some(y)) if x == y => None,
        (x, y) => Some(format!("checksums differ or are missing: {a:?} -> {x:?}, {b:?} -> {y:?}")),
    }
}

/// Why the line holding `text` does not say `in <N> ms` with N >= `min_ms`.
fn too_quick(output: &str, text: &str, min_ms: u64) -> Option<String> {
    let line = output.lines().find(|l| l.contains(text))?;
    let ms = line.split_once(" in ").and_then(|(_, r)| r.strip_suffix(" ms")).and_then(|n| n.trim().parse::<u64>().ok());
    match ms {
        Some(ms) if ms >= min_ms => None,
        Some(ms) => Some(format!("{text:?} took {ms} ms, less than the {min_ms} ms its limit allows")),
        None => Some(format!("no `in <N> ms` in {line:?}")),
    }
}

/// Why the lines starting with `prefix` are not at least two equal ones.
fn unequal_lines(output: &str, prefix: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().filter(|l| l.starts_with(prefix)).map(str::trim_end).collect();
    match lines.as_slice() {
        [first, _, ..] if lines.iter().all(|l| l == first) => None,
        [] | [_] => Some(format!("fewer than two lines starting with {prefix:?}")),
        _ => Some(format!("lines starting with {prefix:?} differ: {lines:?}")),
    }
}

/// The banner fields both hypervisors must agree on (all but the version
/// and feature lines).
fn banner_fields(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.starts_with("dom0: ") && !l.starts_with("dom0: hypervisor:") && !l.starts_with("dom0: features:"))
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// Where each boot test's serial output is kept, pass or fail.
fn log_path(label: &str) -> std::path::PathBuf {
    let name: String = label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    image::out_dir().join("test-logs").join(format!("{name}.log"))
}

fn report(label: &str, started: Instant, problems: &[String], output: &str) {
    let secs = started.elapsed().as_secs_f64();
    let log = log_path(label);
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&log, output);
    let why = log.with_extension("problems");
    if problems.is_empty() {
        let _ = std::fs::remove_file(&why);
        println!("boot test {label:<52} ok ({secs:.1} s)");
        return;
    }
    let _ = std::fs::write(&why, problems.join("\n"));
    println!("boot test {label:<52} FAILED ({secs:.1} s)");
    for p in problems {
        println!("    {p}");
    }
    println!("    --- serial output (last 40 lines; all of it in {}) ---", log.display());
    let lines: Vec<&str> = output.lines().collect();
    for l in &lines[lines.len().saturating_sub(40)..] {
        println!("    | {l}");
    }
}

/// Repeat, at the end of a run, why a boot test failed and how its serial
/// output ended: CI keeps only the tail of a run's output.
fn recall_failure(label: &str) {
    let log = log_path(label);
    let Ok(why) = std::fs::read_to_string(log.with_extension("problems")) else { return };
    println!("why {label} failed:");
    for p in why.lines().take(12) {
        println!("    {p}");
    }
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = output.lines().collect();
    println!("    --- its serial output ended (all of it in {}) ---", log.display());
    for l in &lines[lines.len().saturating_sub(12)..] {
        println!("    | {l}");
    }
}

/// Run the dom0 tests on both hypervisors, plus the banner comparison.
fn run_dom0_tests(filter: &str, k: &Kernels, tally: &mut Tally) {
    for t in dom0_tests().iter().filter(|t| t.name.contains(filter)) {
        let mut outputs = Vec::new();
        for hv in [Hypervisor::XenCore, Hypervisor::Xen417] {
            let label = format!("{} [{}]", t.name, hv.label());
            match run_dom0_test(t, hv, k) {
                Ok((ok, out)) => {
                    tally.record(&label, ok);
                    outputs.push(out);
                }
                Err(e) => {
                    println!("boot test {label:<52} ERROR: {e}");
                    tally.record(&label, false);
                }
            }
        }
        if t.name == "dom0_banner_and_poweroff" && outputs.len() == 2 {
            let (ours, xen) = (banner_fields(&outputs[0]), banner_fields(&outputs[1]));
            let same = !ours.is_empty() && ours == xen;
            println!("boot test {:<52} {}", "dom0_banner_same_on_both", if same { "ok" } else { "FAILED" });
            if !same {
                println!("    xen-core: {ours:?}\n    xen-4.17: {xen:?}");
            }
            tally.record("dom0_banner_same_on_both", same);
        }
    }
}

/// A Linux dom0 boot test: Debian's generic kernel (`CONFIG_XEN_DOM0=y`)
/// as dom0, judged by the milestones of `cargo xtask linux`.
struct LinuxTest {
    name: &'static str,
    /// With the busybox initramfs (milestone 2) or without (milestone 1).
    initrd: bool,
    /// The hypervisors it runs on.
    on: &'static [linux::On],
    /// Text the serial output must hold besides the milestones.
    expect: &'static [&'static str],
    /// Hang guard, as for the other boot tests (measured on 2 shared cores,
    /// idle to loaded: milestone 1 in 14-24 s, milestone 2 in 73-113 s on
    /// Xen 4.17, most of it the 1000 fork/execs).
    timeout_s: u64,
}

/// Both hypervisors run the same kernel and initramfs (issue 18's
/// milestones 1 and 2).
const LINUX_ON: &[linux::On] = &[linux::On::XenCore, linux::On::Xen417];

fn linux_tests() -> Vec<LinuxTest> {
    vec![
        LinuxTest {
            name: "linux_dom0_banner_to_root_mount_panic",
            initrd: false,
            on: LINUX_ON,
            expect: &["printk: console [hvc0] enabled", "Kernel panic - not syncing: VFS: Unable to mount root fs"],
            timeout_s: 180,
        },
        LinuxTest {
            name: "linux_dom0_busybox_script_to_poweroff",
            initrd: true,
            on: LINUX_ON,
            expect: &[
                "printk: console [hvc0] enabled",
                "Run /init as init process",
                "x86_64 GNU/Linux",
                "MemTotal:",
                "processor\t: 0",
                linux::LOOP_LINE,
            ],
            timeout_s: 420,
        },
    ]
}

/// Run the Linux tests that `filter` selects, each on its hypervisors.
fn run_linux_tests(filter: &str, k: &Kernels, tally: &mut Tally) {
    let tests: Vec<LinuxTest> = linux_tests().into_iter().filter(|t| t.name.contains(filter)).collect();
    if tests.is_empty() {
        return;
    }
    let files = linux::fetch_kernel(linux::GENERIC_META).and_then(|k| Ok((k, linux::fetch_initramfs()?)));
    for t in &tests {
        for &on in t.on {
            let label = format!("{} [{}]", t.name, on.label());
            let result = files.clone().and_then(|(kernel, initrd)| {
                let run = linux::Run {
                    on,
                    kernel,
                    initrd: t.initrd.then_some(initrd),
                    timeout: Duration::from_secs(t.timeout_s),
                    echo: false,
                    name: format!("test-{}", t.name),
                    xen_core: Some(k.xen_core.clone()),
                };
                let started = Instant::now();
                let r = linux::boot(&run)?;
                let mut problems: Vec<String> =
                    r.milestones.iter().filter(|(_, at)| at.is_none()).map(|(m, _)| format!("milestone not reached: {}", m.label())).collect();
                if r.timed_out {
                    problems.push("timed out".into());
                }
                problems.extend(t.expect.iter().filter(|e| !r.output.contains(*e)).map(|e| format!("missing line: {e}")));
                if t.initrd && r.fork_exec_s.is_none_or(|s| s <= 0.0) {
                    problems.push("no time for the fork/exec loop (two /proc/uptime values)".into());
                }
                report(&label, started, &problems, &r.output);
                for row in r.table().lines().skip(1) {
                    println!("    {row}");
                }
                Ok(problems.is_empty())
            });
            match result {
                Ok(ok) => tally.record(&label, ok),
                Err(e) => {
                    println!("boot test {label:<52} ERROR: {e}");
                    tally.record(&label, false);
                }
            }
        }
    }
}

/// Run one boot test; returns whether it passed.
fn run_boot_test(t: &BootTest, k: &Kernels) -> Result<bool, String> {
    let spec =
        IsoSpec { name: format!("test-{}", t.name), hypervisor: k.xen_core.clone(), cmdline: t.cmdline.into(), modules: modules_for(t.modules, k)? };
    let iso = image::make_iso(&spec)?;
    let mut opts = qemu::Options { smp: t.smp, mem_mib: t.mem_mib, timeout: Some(Duration::from_secs(t.timeout_s)), ..Default::default() };
    if let Some(cpu) = t.cpu {
        opts.cpu = cpu.to_string();
    }
    let started = Instant::now();
    let r = qemu::boot(&iso, &opts)?;
    let mut problems = Vec::new();
    if r.timed_out {
        problems.push("timed out (hung guest)".to_string());
    } else if r.exit != Some(t.exit) {
        problems.push(format!("QEMU exit {:?}, expected {}", r.exit, t.exit));
    }
    for e in t.expect {
        if !r.output.contains(e) {
            problems.push(format!("missing line: {e}"));
        }
    }
    for f in t.forbid {
        if r.output.contains(f) {
            problems.push(format!("unexpected text: {f}"));
        }
    }
    let panics = r.output.matches("Panic on CPU").count();
    if t.exit == EXIT_FAILURE && panics != 1 {
        problems.push(format!("{panics} panic lines, expected exactly one"));
    }
    report(t.name, started, &problems, &r.output);
    Ok(problems.is_empty())
}

/// The short fuzzing run: two fuzzing domUs and a canary on two CPUs for
/// 100,000 calls, the auditor after every batch; judged by dom0's
/// summary (`dom0: fuzz: PASSED`) and by the hypervisor staying alive.
fn run_fuzz_test(filter: &str, k: &Kernels, tally: &mut Tally) {
    const NAME: &str = "fuzz_100k_calls_keep_audit_and_canary_clean_smp2";
    if !NAME.contains(filter) {
        return;
    }
    // 240 s was not enough with both host cores busy (a hang guard only).
    let a = crate::fuzz::FuzzArgs { seed: 1, calls: 100_000, timeout_s: 480, ..Default::default() };
    let started = Instant::now();
    let (v, output) = match crate::fuzz::boot(&a, k, "test-fuzz") {
        Ok(r) => r,
        Err(e) => {
            println!("boot test {NAME:<52} ERROR: {e}");
            tally.record(NAME, false);
            return;
        }
    };
    let mut problems: Vec<String> = Vec::new();
    if let Some(how) = &v.hypervisor_died {
        problems.push(format!("the hypervisor died: {how}"));
        problems.extend(v.last_positions.iter().map(|l| format!("at {l}")));
    } else if !v.passed {
        problems.push("dom0 did not report PASSED".into());
    }
    problems.extend(v.summary.iter().filter(|l| l.contains("first failure:") && !l.ends_with("none")).cloned());
    report(NAME, started, &problems, &output);
    for l in v.summary.iter().filter(|l| l.contains("calls/s")) {
        println!("    {l}");
    }
    tally.record(NAME, problems.is_empty());
}

/// Parse cargo test's "test result:" lines.
fn count_results(output: &str) -> (usize, usize) {
    let mut passed = 0;
    let mut failed = 0;
    for line in output.lines().filter(|l| l.starts_with("test result:")) {
        let num = |word: &str| {
            line.split(';').find(|p| p.trim_end().ends_with(word)).and_then(|p| p.split_whitespace().rev().nth(1)?.parse::<usize>().ok()).unwrap_or(0)
        };
        passed += num("passed");
        failed += num("failed");
    }
    (passed, failed)
}

fn unit_tests(tally: &mut Tally) -> Result<(), String> {
    println!("== host unit tests (cargo test --workspace)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["test", "--workspace", "--quiet"])
        .output()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (p, f) = count_results(&text);
    tally.passed += p;
    tally.failed += f;
    if !out.status.success() && f == 0 {
        // Did not compile, or crashed: count it as one failure.
        tally.record("cargo test", false);
        println!("{}", String::from_utf8_lossy(&out.stderr));
    }
    if f > 0 {
        println!("{text}");
        tally.failures.push(format!("{f} unit test(s)"));
    }
    println!("host unit tests: {p} passed, {f} failed");
    Ok(())
}

/// `cargo xtask test [FILTER]`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Run only the tests whose name contains FILTER (and skip the host unit
    /// tests).
    #[arg(value_name = "FILTER", default_value = "", hide_default_value = true)]
    pub filter: String,
}

/// `cargo xtask test [FILTER]`.
pub fn run(args: &TestArgs) -> Result<(), String> {
    let filter = args.filter.as_str();
    crate::env::ensure_system_tools()?;
    let mut tally = Tally::default();
    if filter.is_empty() {
        unit_tests(&mut tally)?;
    }
    let kernels = image::build(image::Profile::Release)?;
    println!("== boot tests (QEMU, -cpu Haswell-noTSX, a timeout each: 60 s unless the test says more)");
    for t in boot_tests().iter().filter(|t| t.name.contains(filter)) {
        let ok = run_boot_test(t, &kernels).unwrap_or_else(|e| {
            println!("boot test {:<52} ERROR: {e}", t.name);
            false
        });
        tally.record(t.name, ok);
    }
    println!("== fuzzing run (xen-core, 2 CPUs)");
    run_fuzz_test(filter, &kernels, &mut tally);
    println!("== dom0 boot tests, each on xen-core and on Xen 4.17");
    run_dom0_tests(filter, &kernels, &mut tally);
    println!("== Linux dom0 boot tests (Debian's kernel, each on xen-core and on Xen 4.17)");
    run_linux_tests(filter, &kernels, &mut tally);
    println!("== conformance suite (xen-core and Xen 4.17)");
    match crate::conformance::run(filter, crate::conformance::On::Both, &kernels) {
        Ok((p, f)) => {
            tally.passed += p;
            tally.failed += f;
            if f > 0 {
                tally.failures.push(format!("{f} conformance case(s)"));
            }
        }
        Err(e) => {
            println!("conformance: ERROR: {e}");
            tally.record("conformance suite", false);
        }
    }
    for name in &tally.failures {
        recall_failure(name);
    }
    if !tally.failures.is_empty() {
        println!("failed: {}", tally.failures.join(", "));
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed > 0 { Err("some tests failed".into()) } else { Ok(()) }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn counts_cargo_test_summaries() {
        let out = "running 3 tests\n...\ntest result: ok. 3 passed; 0 failed; 0 ignored\n\
                   test result: FAILED. 5 passed; 2 failed; 1 ignored; 0 measured\n";
        assert_eq!(count_results(out), (8, 2));
    }

    #[test]
    fn banner_comparison_ignores_version_and_features() {
        let a = "dom0: hypervisor: Xen 4.17-xen-core\ndom0: features: 0x20800\ndom0: nr_pages: 16384\n(XEN) x";
        let b = "dom0: hypervisor: Xen 4.17.7\ndom0: features: 0x228f0\ndom0: nr_pages: 16384\r";
        assert_eq!(banner_fields(a), banner_fields(b));
        assert_ne!(banner_fields(a), banner_fields("dom0: nr_pages: 16383"));
    }

    #[test]
    fn disk_check_fails_on_an_image_without_dom0s_pattern() {
        use dom0_tools::vdisk::{DOM0_SEED, TEST_BYTES, fill_pattern};
        let mut image = vec![0u8; 8 << 20];
        assert!(disk_pattern_in_image(&image).is_some(), "a zeroed image");
        fill_pattern(DOM0_SEED, 0, &mut image[..TEST_BYTES as usize]);
        assert_eq!(disk_pattern_in_image(&image), None);
        image[4096] ^= 0x80;
        assert_eq!(disk_pattern_in_image(&image), Some("image file: dom0's pattern differs at byte 0x1000".into()));
        assert!(disk_pattern_in_image(&image[..100]).is_some(), "a truncated image");
    }

    #[test]
    fn qemu_disk_option_doubles_commas_in_the_file_name() {
        let a = crate::qemu::disk_args(std::path::Path::new("/tmp/a,b.img"));
        assert_eq!(a[1], "file=/tmp/a,,b.img,format=raw,if=none,id=disk0,cache=writeback");
        assert_eq!(a[3], "virtio-blk-pci,drive=disk0");
    }

    #[test]
    fn a_rate_limited_send_must_take_at_least_its_bound() {
        let out = "(d2) net: sent 1048576 bytes fnv1a=1234abcd in 4200 ms\n(d3) net: sent 5 bytes fnv1a=1 in 9 ms\n";
        assert_eq!(super::too_quick(out, "(d2) net: sent", 3800), None);
        assert!(super::too_quick(out, "(d3) net: sent", 3800).unwrap().contains("took 9 ms"));
        assert!(super::too_quick("(d2) net: sent 1 bytes\n", "(d2) net: sent", 1).unwrap().contains("no `in <N> ms`"));
        assert_eq!(super::too_quick(out, "(d9)", 1), None, "a missing line is the expectations' to report");
    }

    /// Issue 18's "done when": milestones 1 (no initramfs) and 2 (the
    /// busybox initramfs) each run on xen-core and on Xen 4.17.
    #[test]
    fn linux_tests_cover_milestones_1_and_2_on_both_hypervisors() {
        let tests = linux_tests();
        for initrd in [false, true] {
            let on: Vec<_> = tests.iter().filter(|t| t.initrd == initrd).flat_map(|t| t.on.iter().copied()).collect();
            assert!(on.contains(&linux::On::Xen417) && on.contains(&linux::On::XenCore), "initrd {initrd}: {on:?}");
        }
    }

    #[test]
    fn test_names_are_unique_across_sections() {
        let mut names: Vec<_> = boot_tests().iter().map(|t| t.name).collect();
        names.extend(dom0_tests().iter().map(|t| t.name));
        names.extend(linux_tests().iter().map(|t| t.name));
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all);
    }
}
