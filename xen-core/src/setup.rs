//! The boot sequence of the boot CPU, from the trampoline's hand-over to a
//! running hypervisor, and the hypervisor's fatal paths.
//!
//! Order matters and is the invariant kept here: the console comes first
//! (so every later failure can be reported), then the descriptor tables (so
//! every later fault is reported, not a triple fault), then the boot input
//! is checked before any memory is handed out. Every way boot can fail ends
//! in exactly one `Panic:` line and a failing `isa-debug-exit` code.

use crate::arch::x86_64::bootmem;
use crate::arch::x86_64::cpu::{self, ExitCode};
use crate::arch::x86_64::traps::{TrapFrame, vector_name};
use crate::arch::x86_64::{self as arch, BOOT_DIRECTMAP_LIMIT, paging};
use crate::boot::cmdline::{Options, Selftest, Warning};
use crate::boot::multiboot2::{BootInfo, MEMORY_AVAILABLE, Module, total_size};
use crate::boot::timeline::Timeline;
use crate::console;
use crate::domain::build::{Dom0Image, build_dom0};
use crate::guest::Domain;
use crate::mm::frame_alloc::{FrameAllocator, words_for};
use crate::mm::machine::{self, M2p};
use crate::mm::memmap::MemMap;
use crate::mm::{Mfn, PAGE_SIZE};
use crate::printk;
use crate::version::{NAME, VERSION, XEN_MAJOR, XEN_MINOR};
use log::{info, warn};
use xen_libelf::Elf;
use xen_libelf::bzimage::{KernelImage, LoadError};

/// Least free RAM (after the image and modules) xen-core boots with.
pub const MIN_FREE_MEMORY: u64 = 24 << 20;
/// Memory below 1 MiB is left to firmware and never managed.
const LOW_MEMORY_END: u64 = 1 << 20;
const MAX_RANGES: usize = 128;
const MIB: u64 = 1 << 20;

/// Stop the machine after one clear line.
pub fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    console::print_fatal(format_args!("Panic on CPU 0: {args}"));
    cpu::qemu_exit(ExitCode::Failure)
}

/// Entry from the trampoline.
pub fn start_xen(mbi_maddr: u64) -> ! {
    use crate::arch::x86_64::clock::rdtsc;
    let mut tl = Timeline::new(rdtsc());
    console::init();
    printk!("{NAME} {VERSION} (Xen ABI {XEN_MAJOR}.{XEN_MINOR}, x86_64) starting");
    arch::init_bsp();
    crate::guest::install_exit_handlers();

    let mbi = boot_info(mbi_maddr);
    let opts = Options::parse(mbi.cmdline());
    console::set_level(opts.loglvl);
    info!("Bootloader: {}", mbi.bootloader_name());
    info!("Command line: {}", mbi.cmdline());
    report_warnings(&opts);
    crate::hypercall::audit::ON_DOMCTL.store(opts.audit, core::sync::atomic::Ordering::Relaxed);

    tl.mark("console, descriptor tables, command line", rdtsc());
    let mut apic_ids = [0u32; crate::arch::x86_64::smp::MAX_CPUS as usize];
    let nr_cpus = mbi.acpi_rsdp().and_then(|r| crate::boot::acpi::local_apic_ids(&BootPhys, r, &mut apic_ids));
    // CPU numbers are APIC ids here (IPIs are sent to APIC id = CPU
    // number): use the list only when it is 0, 1, 2, ... as QEMU makes it.
    let dense = |n: usize| apic_ids[..n].iter().enumerate().all(|(i, &id)| id == i as u32);
    match nr_cpus {
        Some(n) if dense(n) => info!("ACPI MADT: {n} processor(s), APIC ids {:?}", &apic_ids[..n]),
        Some(n) => info!("ACPI MADT: APIC ids {:?} are not 0..{n}; probing for processors", &apic_ids[..n]),
        None => info!("ACPI MADT: not found; probing for processors"),
    }
    let nr_cpus = nr_cpus.filter(|&n| dense(n));
    let mut free = free_memory(&mbi, mbi_maddr);
    check_memory(&free);
    let dom0 = dom0_module(&mbi);
    let ram_top = ram_top(&mbi);
    let mut frames = frame_allocator(&mut free, ram_top);
    tl.mark("memory map, dom0 ELF, frame allocator", rdtsc());
    let layout = match paging::build(&mut frames, ram_top) {
        Ok(l) => l,
        Err(_) => fatal(format_args!("out of memory while building the hypervisor page tables")),
    };
    // From here on only the image (code, bss stack) and the direct map are
    // used.
    paging::activate(&layout);
    let prot = cpu::enable_smep_smap();
    info!("Supervisor protections: SMEP {}, SMAP {}", on_off(prot.smep), on_off(prot.smap));
    info!("CPUID faulting: {}", on_off(cpu::enable_cpuid_faulting()));
    info!(
        "Page tables: image [{:#x}, {:#x}) at {:#x}, direct map of {} MiB at {:#x}, {} table frames",
        arch::image_phys_range().0,
        arch::image_phys_range().1,
        arch::XEN_VIRT_OFFSET + 0x200000,
        layout.directmap_bytes / MIB,
        arch::DIRECTMAP_VIRT_START,
        layout.table_frames,
    );

    tl.mark("hypervisor page tables", rdtsc());
    init_clock();
    tl.mark("TSC and LAPIC calibration", rdtsc());
    machine::init_m2p(M2p { base: layout.m2p, entries: layout.m2p_entries });
    tl.mark("M2P table", rdtsc());
    machine::IDLE_L4.call_once(|| layout.l4);
    if !crate::guest_access::set_directmap_end(layout.directmap_bytes) {
        fatal(format_args!("direct map end set twice"));
    }
    arch::entry::init_bsp();
    if opts.bench_floor {
        arch::entry::enable_floor();
        info!("bench_floor: SYSCALL {:#x} returns at once", arch::entry::FLOOR_NR);
    }

    if let Some(test) = opts.selftest {
        raise(test);
    }
    printk!(
        "{NAME} {VERSION}: boot complete: managing {} MiB of RAM in {} free frames; dom0 kernel {} KiB",
        frames.free_frames() * PAGE_SIZE / MIB,
        frames.free_frames(),
        dom0.len() / 1024,
    );
    *machine::FRAMES.lock() = Some(frames);
    tl.mark("boot complete", rdtsc());
    let cpus = crate::arch::x86_64::smp::start_aps(layout.l4.maddr(), nr_cpus.map(|n| &apic_ids[..n]));
    info!("{cpus} CPU(s) online");
    tl.mark("application processors", rdtsc());
    info!("{} domain slots of {} bytes each", crate::schedule::MAX_DOMAINS, core::mem::size_of::<crate::schedule::Slot>());
    let free = machine::free_frames();
    let map = machine_map(&mbi);
    crate::mm::machine::MACHINE_E820.call_once(|| crate::domain::memory_ops::E820Map::new(mbi.memory_areas().map(|a| (a.base, a.len, a.kind))));
    crate::guest_access::set_ram(map.ram);
    if machine::init_frame_table(layout.m2p_entries, map).is_none() {
        fatal(format_args!("out of memory for the frame table"));
    }
    tl.mark("frame table", rdtsc());
    // Xen's init_trace_bufs: with tbuf_size=, tracing starts at boot.
    if opts.tbuf_size > 0
        && let Err(e) = crate::trace::alloc(opts.tbuf_size)
    {
        warn!("xentrace: {} pages per CPU: error {e}; tracing disabled", opts.tbuf_size);
    }
    start_dom0(&mbi, &opts, dom0, free, layout.l4, tl)
}

/// Calibrate the TSC against the PIT and read the wall clock.
fn init_clock() {
    use crate::arch::x86_64::clock;
    let hz = clock::calibrate_tsc_hz().filter(|&hz| hz > 1_000_000).unwrap_or_else(|| {
        warn!("TSC calibration failed; assuming 1 GHz");
        1_000_000_000
    });
    let Some(scale) = crate::time::TimeScale::from_hz(hz) else { return };
    let clock = crate::time::Clock { scale, boot_tsc: clock::rdtsc(), boot_wall: clock::rtc_unix_seconds() };
    crate::guest::CLOCK.call_once(|| clock);
    crate::guest::TSC_KHZ.store((hz / 1000) as u32, core::sync::atomic::Ordering::Relaxed);
    info!("TSC: {}.{:03} MHz; wall clock {} s since 1970", hz / 1_000_000, (hz / 1_000) % 1_000, clock.boot_wall);
    let apic_hz = crate::arch::x86_64::apic::init(hz);
    info!("LAPIC timer: {} kHz (one-shot, vector {:#x})", apic_hz / 1000, crate::arch::x86_64::apic::TIMER_VECTOR);
}

/// Dom0's size when `dom0_mem=` is not given: half of free memory, at most
/// 128 MiB, leaving the rest to the hypervisor and later domains.
fn default_dom0_pages(free_frames: u64) -> u64 {
    (free_frames / 2).min((128 * MIB) / PAGE_SIZE)
}

/// Build domain 0 from the first module (the second, if any, is its
/// initrd) and enter it.
fn start_dom0(mbi: &BootInfo<'static>, opts: &Options<'_>, kernel: Module<'static>, free: u64, idle_l4: Mfn, mut tl: Timeline) -> ! {
    let nr_pages = opts.dom0_mem.map_or_else(|| default_dom0_pages(free), |b| b / PAGE_SIZE);
    let initrd = mbi.modules().nth(1).map(|m| module_bytes(&m));
    let img = Dom0Image { kernel: module_bytes(&kernel), initrd, cmdline: kernel.cmdline, nr_pages };
    let built = match build_dom0(&img, idle_l4) {
        Ok(b) => b,
        Err(e) => fatal(format_args!("could not build dom0: {e}")),
    };
    let l = &built.layout;
    info!("*** Building a PV Dom0 ***");
    info!(" Dom0 alloc.:   {:#x} -> {:#x} ({} pages)", built.first_mfn.maddr(), built.first_mfn.maddr() + built.nr_pages * PAGE_SIZE, built.nr_pages);
    info!(" Loaded kernel: {:#x} -> {:#x}", l.kernel.start, l.kernel.end);
    match built.unmapped_initrd {
        Some((pfn, len)) => info!(" Init. ramdisk: pfn {pfn:#x}, {len} bytes, unmapped (SIF_MOD_START_PFN)"),
        None => info!(" Init. ramdisk: {:#x} -> {:#x}", l.initrd.start, l.initrd.end),
    }
    match l.p2m_outside {
        Some(m) => info!(" Phys-Mach map: {:#x} -> {:#x} (INIT_P2M, pfns {:#x} + {})", m.va.start, m.va.end, m.first_pfn, m.frames()),
        None => info!(" Phys-Mach map: {:#x} -> {:#x}", l.p2m.start, l.p2m.end),
    }
    info!(" Start info:    {:#x} -> {:#x}", l.start_info.start, l.start_info.end);
    info!(" Page tables:   {:#x} -> {:#x} ({} frames)", l.page_tables.start, l.page_tables.end, l.nr_pt_frames);
    info!(" Boot stack:    {:#x} -> {:#x}", l.stack.start, l.stack.end);
    info!(" TOTAL:         {:#x} -> {:#x}", l.v_start, l.v_end);
    info!(" ENTRY ADDRESS: {:#x}", built.regs.rip);
    let mut dom = Domain::empty(0, true, built.shared_info);
    dom.nr_pages = built.nr_pages;
    dom.first_mfn = built.first_mfn;
    dom.max_pages = built.nr_pages;
    let mut dom = crate::guest::Guest::new(dom);
    dom.vcpu(0).0.guest_table = built.l4_maddr;
    tl.mark("dom0 built", crate::arch::x86_64::clock::rdtsc());
    let hz = u64::from(crate::guest::TSC_KHZ.load(core::sync::atomic::Ordering::Relaxed)) * 1000;
    for (phase, own, total) in tl.phases(hz) {
        log::debug!("boot timeline: {phase:<42} {own:>7} us  (at {total:>7} us)");
    }
    info!("Free frames are zeroed when handed out; {} frames left. Starting dom0.", machine::free_frames());
    crate::guest::start(dom, built.regs)
}

/// A module's bytes through the boot direct map.
fn module_bytes(m: &Module<'static>) -> &'static [u8] {
    // GRUB loaded the module at [start, end); `free_memory` keeps its
    // frames out of the allocator.
    bootmem::reserved(u64::from(m.start), m.len() as usize).unwrap_or_else(|| fatal(format_args!("boot module at {:#x} is out of reach", m.start)))
}

/// The multiboot2 information block, through the boot direct map.
fn boot_info(maddr: u64) -> BootInfo<'static> {
    if maddr == 0 || maddr + 8 > BOOT_DIRECTMAP_LIMIT {
        fatal(format_args!("multiboot2 information at {maddr:#x} is out of reach"));
    }
    // GRUB left the block at `maddr`; `free_memory` keeps its frames out
    // of the allocator.
    let head = bootmem::reserved(maddr, 8).unwrap_or_default();
    let len = total_size(head).unwrap_or(0) as usize;
    let Some(bytes) = bootmem::reserved(maddr, len) else {
        fatal(format_args!("multiboot2 information of {len} bytes runs past 4 GiB"));
    };
    let info = match arch::mbi::load(bytes) {
        Ok(b) => b,
        Err(e) => fatal(format_args!("bad multiboot2 information: {e:?}")),
    };
    BootInfo::new(BOOT_INFO.call_once(|| info))
}

/// The crate's view of the information block, kept for good: the block's
/// frames never return to the allocator, and what `BootInfo` hands out
/// (module command lines, the RSDP copy) borrows from it for `'static`.
static BOOT_INFO: spin::Once<multiboot2::BootInformation<'static>> = spin::Once::new();

fn report_warnings(opts: &Options<'_>) {
    for w in opts.warnings() {
        match w {
            Warning::Unknown(s) => warn!("unknown command-line option '{s}' ignored"),
            Warning::BadValue(s) => warn!("bad value in command-line option '{s}' ignored"),
        }
    }
    if opts.dropped_warnings > 0 {
        warn!("{} more command-line problems not shown", opts.dropped_warnings);
    }
}

/// Free RAM: the available areas minus low memory, the image, the
/// information block and every module.
fn free_memory(mbi: &BootInfo<'_>, mbi_maddr: u64) -> MemMap<MAX_RANGES> {
    let mut map = MemMap::new();
    info!("Physical RAM map:");
    for a in mbi.memory_areas() {
        let kind = if a.kind == MEMORY_AVAILABLE { "usable" } else { "reserved" };
        info!(" [{:016x}, {:016x}) ({kind})", a.base, a.base.saturating_add(a.len));
        if a.kind == MEMORY_AVAILABLE && map.add(a.base, a.len).is_err() {
            warn!("too many memory areas: [{:#x}, +{:#x}) not used", a.base, a.len);
        }
    }
    let (img_start, img_end) = arch::image_phys_range();
    let mut reserve = |start: u64, end: u64, what: &str| {
        if map.remove(start, end).is_err() {
            fatal(format_args!("cannot reserve {what} [{start:#x}, {end:#x}): memory map full"));
        }
    };
    reserve(0, LOW_MEMORY_END, "low memory");
    reserve(img_start, img_end, "the hypervisor image");
    reserve(mbi_maddr, mbi_maddr + mbi.len() as u64, "the boot information");
    for m in mbi.modules() {
        reserve(u64::from(m.start), u64::from(m.end), "a boot module");
    }
    map
}

fn check_memory(free: &MemMap<MAX_RANGES>) {
    if free.total() < MIN_FREE_MEMORY {
        fatal(format_args!("not enough memory: {} MiB of free RAM, {NAME} needs at least {} MiB", free.total() / MIB, MIN_FREE_MEMORY / MIB));
    }
}

/// Which frames are RAM for MMIO mappings (Xen's `arch_init_memory`: the
/// first MiB and every range the E820 map does not call RAM are I/O), and
/// what dom0 may map of the rest (Xen's `dom0_setup_permissions`, which
/// also denies E820 unusable ranges, multiboot2 type 5).
fn machine_map(mbi: &BootInfo<'_>) -> crate::domain::iocap::MachineMap {
    use crate::domain::iocap::{MachineMap, RangeSet, dom0_iomem, mmio_ro};
    const UNUSABLE: u32 = 5;
    let mut ram = RangeSet::new();
    let mut unusable = [(0u64, 0u64); 32];
    let mut nr_unusable = 0;
    for a in mbi.memory_areas() {
        let (first, end) = (a.base.div_ceil(PAGE_SIZE).max(LOW_MEMORY_END / PAGE_SIZE), a.base.saturating_add(a.len) / PAGE_SIZE);
        if a.kind == MEMORY_AVAILABLE && first < end && ram.add(first, end - 1).is_err() {
            // Fail closed: RAM the map left out would be mappable as I/O.
            fatal(format_args!("too many RAM ranges: [{:#x}, +{:#x}) does not fit the machine map", a.base, a.len));
        }
        if a.kind == UNUSABLE && first < end {
            if nr_unusable == unusable.len() {
                // Fail closed: a range left out would become mappable.
                fatal(format_args!("more than {} unusable memory ranges: cannot keep them from dom0", unusable.len()));
            }
            unusable[nr_unusable] = (first, end - 1);
            nr_unusable += 1;
        }
    }
    let mut map = MachineMap { ram, dom0_iomem: dom0_iomem(&unusable[..nr_unusable]), mmio_ro: mmio_ro() };
    let cpuid = crate::arch::x86_64::cpu::cpuid;
    let bits = crate::domain::iocap::paddr_bits(cpuid(0x8000_0000, 0).0, cpuid(0x8000_0008, 0).0);
    // Removing a range's tail never splits it: the set cannot be full.
    let _ = map.limit_paddr_bits(bits);
    map
}

fn ram_top(mbi: &BootInfo<'_>) -> u64 {
    mbi.memory_areas().filter(|a| a.kind == MEMORY_AVAILABLE).map(|a| a.base.saturating_add(a.len)).max().unwrap_or(0)
}

/// The first module must be a Xen PV kernel: dom0.
fn dom0_module(mbi: &BootInfo<'static>) -> Module<'static> {
    let Some(m) = mbi.modules().next() else {
        fatal(format_args!("no dom0 kernel: the boot loader passed no modules (add a module2 line)"));
    };
    info!("Modules:");
    for (i, m) in mbi.modules().enumerate() {
        info!(" {i}: [{:#010x}, {:#010x}) {}", m.start, m.end, m.cmdline);
    }
    let elf = match xen_libelf::bzimage::inspect(module_bytes(&m), u64::MAX) {
        Ok(KernelImage::Elf(elf)) => elf,
        Ok(KernelImage::Compressed(c)) => {
            // Decompressed (and its Xen notes checked) when dom0 is built,
            // once the frame allocator can hold the image.
            info!("dom0 kernel: bzImage, {} payload of {} KiB for a {} KiB ELF", c.method.name(), c.stream.len() / 1024, c.output_len / 1024);
            return m;
        }
        Err(LoadError::Unsupported(m)) => fatal(format_args!("dom0 kernel (module 0): {} payloads are not supported", m.name())),
        Err(e) => fatal(format_args!("dom0 kernel (module 0) is not a valid bzImage: {} ({e:?})", e.describe())),
    };
    let elf = match Elf::parse(elf) {
        Ok(e) => e,
        Err(e) => fatal(format_args!("dom0 kernel (module 0) is not a valid ELF image: {}", e.describe())),
    };
    match elf.xen_notes() {
        Ok(n) if n.is_pv_kernel() => {
            info!(
                "dom0 kernel: {} for {}, entry {:#x}, loader {}",
                n.guest_os.unwrap_or("?"),
                n.xen_version.unwrap_or("?"),
                n.entry.unwrap_or(elf.entry()),
                n.loader.unwrap_or("?"),
            );
        }
        Ok(_) => fatal(format_args!("dom0 kernel (module 0) is not a Xen PV kernel: it has no Xen ELF notes")),
        Err(e) => fatal(format_args!("dom0 kernel (module 0) has bad Xen ELF notes: {}", e.describe())),
    }
    m
}

/// Carve the allocator's bitmap out of free RAM and hand it the rest.
fn frame_allocator(free: &mut MemMap<MAX_RANGES>, ram_top: u64) -> FrameAllocator<'static> {
    let nr_frames = ram_top / PAGE_SIZE;
    let words = words_for(nr_frames);
    let Some(maddr) = free.carve(words as u64 * 8, BOOT_DIRECTMAP_LIMIT) else {
        fatal(format_args!("no room below 4 GiB for the frame bitmap ({} KiB)", words * 8 / 1024));
    };
    // The range was just removed from free RAM, so it is ours alone.
    let Some(storage) = bootmem::carve(maddr, words) else {
        fatal(format_args!("frame bitmap at {maddr:#x} out of reach"));
    };
    let mut frames = FrameAllocator::new(storage, Mfn(0), nr_frames);
    for r in free.ranges() {
        frames.add_range(*r);
    }
    info!("Frame allocator: {} frames free, bitmap at {maddr:#x}", frames.free_frames());
    frames
}

/// Raise a fault on purpose (`selftest=`): the handlers must report it.
fn raise(test: Selftest) {
    printk!("selftest: raising {test:?}");
    bootmem::raise(match test {
        Selftest::PageFault => bootmem::Fault::Page,
        Selftest::GeneralProtection => bootmem::Fault::GeneralProtection,
        Selftest::InvalidOpcode => bootmem::Fault::InvalidOpcode,
        Selftest::DoubleFault => bootmem::Fault::Double,
    });
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off (not in this CPU)" }
}

/// An exception in the hypervisor itself (or #DF/#MC, from anywhere):
/// print the frame and stop the machine. Registered with the trap layer.
pub fn hypervisor_fault(frame: &TrapFrame) -> ! {
    dump_frame("FATAL TRAP", frame);
    let (short, _) = vector_name(frame.entry_vector);
    let context = if frame.cs & 3 == 0 { "hypervisor" } else { "guest" };
    fatal(format_args!("FATAL TRAP: vector {} ({short}), in {context} context", frame.entry_vector))
}

/// Print a register frame under a title.
pub fn dump_frame(title: &str, f: &TrapFrame) {
    let p = |args: core::fmt::Arguments<'_>| console::print_fatal(args);
    let (short, long) = vector_name(f.entry_vector);
    let cr2 = cpu::read_cr2();
    p(format_args!("----[ {NAME} {VERSION}  x86_64  CPU 0 ]----"));
    p(format_args!("{title}: vector {} ({short} {long}), error code {:#06x}", f.entry_vector, f.error_code));
    p(format_args!("RIP:    {:04x}:[<{:016x}>]", f.cs, f.rip));
    p(format_args!("RFLAGS: {:016x}   CONTEXT: {}", f.rflags, if f.cs & 3 == 0 { "hypervisor" } else { "guest" }));
    p(format_args!("CR2:    {cr2:016x}   CR3: {:016x}", cpu::read_cr3()));
    p(format_args!("rax: {:016x}   rbx: {:016x}   rcx: {:016x}", f.rax, f.rbx, f.rcx));
    p(format_args!("rdx: {:016x}   rsi: {:016x}   rdi: {:016x}", f.rdx, f.rsi, f.rdi));
    p(format_args!("rbp: {:016x}   rsp: {:016x}   r8:  {:016x}", f.rbp, f.rsp, f.r8));
    p(format_args!("r9:  {:016x}   r10: {:016x}   r11: {:016x}", f.r9, f.r10, f.r11));
    p(format_args!("r12: {:016x}   r13: {:016x}   r14: {:016x}", f.r12, f.r13, f.r14));
    p(format_args!("r15: {:016x}   ss:  {:04x}", f.r15, f.ss));
}

/// The Rust panic path.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => fatal(format_args!("{} at {}:{}", info.message(), l.file(), l.line())),
        None => fatal(format_args!("{}", info.message())),
    }
}

/// Physical memory below 4 GiB through the boot-time direct map (before the
/// hypervisor's own tables replace it), for the firmware's ACPI tables.
struct BootPhys;

impl crate::boot::acpi::PhysRead for BootPhys {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        bootmem::read(addr, buf)
    }
}
