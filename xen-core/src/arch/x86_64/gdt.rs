//! Per-CPU GDT and TSS, laid out as Xen lays them out.
//!
//! Entries below `FIRST_RESERVED_GDT_ENTRY` (14 pages' worth) belong to the
//! running guest (`set_gdt`); the hypervisor's own descriptors sit above, at
//! the selectors guests know: 0xe008/0xe010 for ring 0, 0xe02b/0xe033 for
//! guest kernel and user (ring 3), 0xe040 for the TSS. The TSS carries the
//! ring-0 stack for entries from ring 3 and the IST stacks for #DF, NMI and
//! #MC, so those run on a known-good stack whatever state the CPU was in.
//!
//! Invariant: a CPU's tables are written once, by that CPU, before it loads
//! them, and never moved afterwards.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// First GDT entry reserved for the hypervisor (Xen: 14 pages of 512).
pub const FIRST_RESERVED_GDT_ENTRY: usize = 14 * 512;
/// Hypervisor 64-bit code selector.
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Hypervisor data selector.
pub const HYPERVISOR_DS: u16 = 0xe010;
/// Guest flat data selector, ring 3 (FLAT_RING3_DS64).
pub const FLAT_RING3_DS: u16 = 0xe02b;
/// Guest flat 64-bit code selector, ring 3 (FLAT_RING3_CS64).
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// TSS selector.
pub const TSS_SELECTOR: u16 = 0xe040;
/// LDT selector (the guest's LDT, installed by `MMUEXT_SET_LDT`).
pub const LDT_SELECTOR: u16 = 0xe050;
/// Most LDT entries a guest may have.
pub const LDT_ENTRIES: usize = 8192;
/// Entries in the per-CPU GDT.
pub const GDT_ENTRIES: usize = FIRST_RESERVED_GDT_ENTRY + 16;

/// IST slot (1-based, as the IDT encodes it) for #DF.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST slot for NMI.
pub const IST_NMI: u8 = 2;
/// IST slot for #MC.
pub const IST_MACHINE_CHECK: u8 = 3;
/// IST slot for #DB: a guest's data breakpoint delayed by `mov %ss` fires
/// on the first instruction of the SYSCALL entry, still on the guest's
/// stack (CVE-2018-8897), so #DB never trusts the interrupted RSP.
pub const IST_DEBUG: u8 = 4;
/// IST stacks in use.
const NR_IST: usize = 4;

const IST_STACK_SIZE: usize = 16 * 1024;
const RING0_STACK_SIZE: usize = 256 * 1024;

/// The 64-bit task-state segment.
#[repr(C, packed(4))]
pub struct Tss {
    _reserved0: u32,
    /// Stack for entries from ring 3 (guests) into ring 0.
    pub rsp0: u64,
    rsp1: u64,
    rsp2: u64,
    _reserved1: u64,
    /// Interrupt stacks 1-7.
    pub ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    /// Offset of the I/O bitmap; beyond the limit means "no bitmap", so
    /// every port access from ring 3 faults.
    pub iomap_base: u16,
}

const TSS_SIZE: usize = core::mem::size_of::<Tss>();
const _: () = assert!(TSS_SIZE == 104);

/// One CPU's descriptor tables and trap stacks.
#[repr(C, align(4096))]
pub struct PerCpuTables {
    gdt: [u64; GDT_ENTRIES],
    ldt: [u64; LDT_ENTRIES],
    tss: Tss,
    ist_stacks: [[u8; IST_STACK_SIZE]; NR_IST],
    ring0_stack: [u8; RING0_STACK_SIZE],
}

/// The boot CPU's tables. Only CPU 0 touches them, once, in [`init_bsp`].
struct BspTables(UnsafeCell<PerCpuTables>);

// SAFETY: the cell is written only by `init_bsp`, which runs once on CPU 0
// (enforced by `BSP_INITIALISED`) before any other CPU exists; afterwards
// only the CPU itself reads the tables through GDTR/TR.
unsafe impl Sync for BspTables {}

static BSP_TABLES: BspTables = BspTables(UnsafeCell::new(PerCpuTables {
    gdt: [0; GDT_ENTRIES],
    ldt: [0; LDT_ENTRIES],
    tss: Tss { _reserved0: 0, rsp0: 0, rsp1: 0, rsp2: 0, _reserved1: 0, ist: [0; 7], _reserved2: 0, _reserved3: 0, iomap_base: 0 },
    ist_stacks: [[0; IST_STACK_SIZE]; NR_IST],
    ring0_stack: [0; RING0_STACK_SIZE],
}));
static BSP_INITIALISED: AtomicBool = AtomicBool::new(false);

/// Each CPU's tables, by CPU number (set once when the CPU comes up).
static TABLES: [AtomicPtr<PerCpuTables>; super::smp::MAX_CPUS as usize] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; super::smp::MAX_CPUS as usize];

/// This CPU's tables.
///
/// Invariant: a CPU only ever touches its own tables, and only from the
/// hypervisor (interrupts off), so the `&mut` is never aliased.
fn this_cpu_tables() -> &'static mut PerCpuTables {
    let t = TABLES[super::entry::this_cpu()].load(Ordering::Acquire);
    // SAFETY: set by `init_bsp`/`init_ap` for this CPU before it runs any
    // guest; the tables live forever; see the invariant above.
    unsafe { &mut *t }
}

fn index(selector: u16) -> usize {
    usize::from(selector >> 3)
}

fn stack_top(stack: &[u8]) -> u64 {
    // The CPU pushes 16-byte-aligned frames; the arrays are page-aligned in
    // a page-aligned struct, so the end is aligned too.
    stack.as_ptr_range().end as u64
}

/// Fill the hypervisor's descriptors and the TSS.
fn fill(t: &mut PerCpuTables) {
    let base = FIRST_RESERVED_GDT_ENTRY;
    t.gdt[index(HYPERVISOR_CS)] = 0x00af_9b00_0000_ffff; // long mode, DPL 0
    t.gdt[index(HYPERVISOR_DS)] = 0x00cf_9300_0000_ffff; // data, DPL 0
    t.gdt[base + 3] = 0x00cf_bb00_0000_ffff; // 0xe019: 32-bit code, DPL 1 (compat guests)
    t.gdt[base + 4] = 0x00cf_b300_0000_ffff; // 0xe021: data, DPL 1
    t.gdt[index(FLAT_RING3_DS)] = 0x00cf_f300_0000_ffff; // data, DPL 3
    t.gdt[index(FLAT_RING3_CS64)] = 0x00af_fb00_0000_ffff; // long mode, DPL 3
    let mut ist = [0u64; 7];
    for (slot, stack) in ist.iter_mut().zip(t.ist_stacks.iter()) {
        *slot = stack_top(stack);
    }
    t.tss.ist = ist;
    t.tss.rsp0 = stack_top(&t.ring0_stack);
    t.tss.iomap_base = TSS_SIZE as u16;
    let tss = core::ptr::addr_of!(t.tss) as u64;
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | ((tss & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit available TSS
        | (((limit >> 16) & 0xf) << 48)
        | (((tss >> 24) & 0xff) << 56);
    t.gdt[index(TSS_SELECTOR)] = low;
    t.gdt[index(TSS_SELECTOR) + 1] = tss >> 32;
}

/// Load a GDT and TSS, and reload every segment register.
///
/// # Safety
/// `t` must stay alive and in place for as long as the CPU runs with it.
unsafe fn load(t: &PerCpuTables) {
    #[repr(C, packed)]
    struct Gdtr {
        limit: u16,
        base: u64,
    }
    let gdtr = Gdtr { limit: (GDT_ENTRIES * 8 - 1) as u16, base: t.gdt.as_ptr() as u64 };
    // SAFETY: the GDT holds valid descriptors at the selectors loaded here,
    // and the caller keeps it alive; the far return reloads CS in place.
    unsafe {
        core::arch::asm!(
            "lgdt [{gdtr}]",
            "push {cs}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ss, {ds:e}",
            "mov ds, {ds:e}",
            "mov es, {ds:e}",
            "xor {tmp:e}, {tmp:e}",
            "mov fs, {tmp:e}",
            "mov gs, {tmp:e}",
            "ltr {tr:x}",
            // LDTR keeps its power-on state (base 0, limit 0xffff, usable)
            // until an LLDT: a guest that never set an LDT could then use
            // descriptors it wrote at linear 0 (XSA-298's class). Null it.
            "lldt {tmp:x}",
            gdtr = in(reg) &gdtr,
            cs = in(reg) u64::from(HYPERVISOR_CS),
            ds = in(reg) u32::from(HYPERVISOR_DS),
            tr = in(reg) TSS_SELECTOR,
            tmp = out(reg) _,
        );
    }
}

/// Set up and load the boot CPU's GDT and TSS. Idempotent: later calls do
/// nothing.
pub fn init_bsp() {
    if BSP_INITIALISED.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: the swap above makes this the only reference ever created to
    // the BSP tables, and they are a static, so they never move.
    let tables = unsafe { &mut *BSP_TABLES.0.get() };
    fill(tables);
    // SAFETY: `tables` is a static and lives forever.
    unsafe { load(tables) };
    TABLES[0].store(tables, Ordering::Release);
}

/// The ring-0 stack top (TSS.RSP0) of CPU `cpu`, once it is up.
pub fn ring0_stack_top(cpu: usize) -> u64 {
    let t = TABLES.get(cpu).map_or(core::ptr::null_mut(), |t| t.load(Ordering::Acquire));
    if t.is_null() {
        return 0;
    }
    // SAFETY: reading one field that `fill` wrote before the pointer was
    // published; the tables live forever.
    unsafe { core::ptr::addr_of!((*t).tss.rsp0).read_unaligned() }
}

/// Install a guest's descriptors in this CPU's GDT: `descs[i]` becomes
/// entry `i`; entries from `descs.len()` up to the reserved area are
/// cleared. The caller has checked every descriptor (`check_descriptor`).
pub fn load_guest_descriptors(descs: impl Iterator<Item = u64>) {
    // Only entries below FIRST_RESERVED_GDT_ENTRY change, which the
    // hypervisor itself never uses.
    let gdt = &mut this_cpu_tables().gdt;
    let mut n = 0;
    for (slot, d) in gdt[..FIRST_RESERVED_GDT_ENTRY].iter_mut().zip(descs) {
        *slot = d;
        n += 1;
    }
    gdt[n..FIRST_RESERVED_GDT_ENTRY].fill(0);
}

/// Update one guest entry of this CPU's GDT.
pub fn set_guest_descriptor(index: usize, d: u64) {
    if index < FIRST_RESERVED_GDT_ENTRY {
        this_cpu_tables().gdt[index] = d;
    }
}

/// Install a guest LDT of `ents` checked descriptors on this CPU, or
/// none when `ents` is 0.
pub fn load_ldt(descs: impl Iterator<Item = u64>, ents: usize) {
    let ents = ents.min(LDT_ENTRIES);
    // The LDT array and the LDT descriptor slots are used by nothing but
    // this function and `set_ldt_entry`.
    let t = this_cpu_tables();
    for (slot, d) in t.ldt[..ents].iter_mut().zip(descs) {
        *slot = d;
    }
    let selector = if ents == 0 {
        0
    } else {
        let base = t.ldt.as_ptr() as u64;
        let limit = (ents * 8 - 1) as u64;
        let low = (limit & 0xffff) | ((base & 0xff_ffff) << 16) | (0x82 << 40) | (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
        t.gdt[index(LDT_SELECTOR)] = low;
        t.gdt[index(LDT_SELECTOR) + 1] = base >> 32;
        LDT_SELECTOR
    };
    // SAFETY: the selector names the LDT descriptor just written (or is
    // NUL, which disables the LDT).
    unsafe { core::arch::asm!("lldt {:x}", in(reg) selector, options(nostack, preserves_flags)) };
}

/// Update one entry of the loaded guest LDT.
pub fn set_ldt_entry(index: usize, d: u64) {
    if index < LDT_ENTRIES {
        this_cpu_tables().ldt[index] = d;
    }
}

/// Bytes of one CPU's tables and trap stacks.
pub const PER_CPU_TABLES_SIZE: usize = core::mem::size_of::<PerCpuTables>();

/// Set up and load the GDT and TSS of application processor `cpu` in `mem`, which
/// the caller allocated for it (zeroed, page-aligned, at least
/// [`PER_CPU_TABLES_SIZE`] bytes) and never frees.
///
/// # Safety
/// `mem` must satisfy the above and be used by this CPU alone.
pub unsafe fn init_ap(mem: *mut u8, cpu: usize) {
    // SAFETY: per the contract, `mem` is zeroed (a valid PerCpuTables: all
    // fields are integers), aligned, large enough, and ours forever.
    let t = unsafe { &mut *(mem as *mut PerCpuTables) };
    fill(t);
    // SAFETY: `t` lives forever (the caller never frees it).
    unsafe { load(t) };
    if let Some(slot) = TABLES.get(cpu) {
        slot.store(t, Ordering::Release);
    }
}
