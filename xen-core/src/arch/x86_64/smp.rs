//! Bringing up the application processors: INIT-SIPI-SIPI, a real-mode
//! trampoline at 0x8000 that climbs to long mode on a temporary page table
//! (low 2 MiB identity-mapped plus the hypervisor's own slots), then each AP
//! loads its own GDT, TSS and the shared IDT and idles.
//!
//! Invariant: APs are started one at a time, so the trampoline's stack and
//! argument slots are never shared; an AP that does not answer within
//! 100 ms ends the search.

use super::{apic, cpu, maddr_to_virt};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Where the trampoline is copied (the SIPI vector is its page number).
const TRAMPOLINE: u64 = 0x8000;
/// Most CPUs brought up.
pub const MAX_CPUS: u32 = 8;

/// CPUs running (the boot CPU counts).
pub static CPUS_ONLINE: AtomicU32 = AtomicU32::new(1);
/// The per-CPU tables the next AP loads (set before its SIPI).
static NEXT_TABLES: AtomicU64 = AtomicU64::new(0);
/// The next AP's id.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);
/// The hypervisor's L4, which an AP switches to once in the high half.
static IDLE_CR3: AtomicU64 = AtomicU64::new(0);

core::arch::global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
ap_trampoline_start:
    .code16
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    lgdtl 0x8000 + (ap_gdtr - ap_trampoline_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $0x8000 + (ap_32 - ap_trampoline_start)
    .code32
ap_32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov 0x8000 + (ap_cr3 - ap_trampoline_start), %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x900, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010000, %eax
    mov %eax, %cr0
    ljmp $0x18, $0x8000 + (ap_64 - ap_trampoline_start)
    .code64
ap_64:
    mov 0x8000 + (ap_stack - ap_trampoline_start), %rsp
    mov 0x8000 + (ap_entry - ap_trampoline_start), %rax
    jmp *%rax
    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
ap_gdtr:
    .short 31
    .long 0x8000 + (ap_gdt - ap_trampoline_start)
    .balign 8
    .global ap_cr3
ap_cr3:
    .quad 0
    .global ap_stack
ap_stack:
    .quad 0
    .global ap_entry
ap_entry:
    .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    .text
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_cr3: u8;
    static ap_stack: u8;
    static ap_entry: u8;
}

/// Offset of a trampoline symbol from its start.
fn offset(sym: &u8) -> u64 {
    // SAFETY: only the symbols' addresses are taken.
    sym as *const u8 as u64 - unsafe { &ap_trampoline_start as *const u8 as u64 }
}

/// First Rust code on an AP, on its own stack, still on the trampoline's
/// page table.
extern "C" fn ap_main() -> ! {
    // SAFETY: the idle L4 maps the image, this stack (from the direct map)
    // and the direct map; the low identity map is no longer needed.
    unsafe { cpu::write_cr3(IDLE_CR3.load(Ordering::SeqCst)) };
    let id = NEXT_ID.load(Ordering::SeqCst);
    let tables = NEXT_TABLES.load(Ordering::SeqCst) as *mut u8;
    // SAFETY: the BSP allocated these tables for this AP alone.
    unsafe { super::gdt::init_ap(tables, id as usize) };
    super::traps::load_idt();
    super::entry::init_cpu(id as usize, super::gdt::ring0_stack_top(id as usize));
    // SAFETY: the CR4 the BSP runs with: SSE state (OSFXSR, OSXMMEXCPT),
    // and no global pages, so no guest mapping outlives a CR3 switch.
    unsafe { cpu::write_cr4((cpu::read_cr4() & !(1 << 7)) | (1 << 9) | (1 << 10)) };
    cpu::enable_smep_smap();
    cpu::enable_cpuid_faulting();
    super::apic::init_ap();
    crate::printk!("CPU {id} up");
    CPUS_ONLINE.fetch_add(1, Ordering::SeqCst);
    crate::schedule::ap_main()
}

fn delay_us(us: u64) {
    let t0 = super::clock::system_time();
    while super::clock::system_time() < t0 + us * 1000 {
        core::hint::spin_loop();
    }
}

/// Allocate `bytes` of zeroed, contiguous, never-freed memory.
fn alloc(bytes: usize) -> Option<u64> {
    let pages = bytes.div_ceil(4096) as u64;
    let first = crate::mm::machine::FRAMES.lock().as_mut()?.alloc_contiguous(pages)?;
    let va = maddr_to_virt(first.maddr());
    // SAFETY: freshly allocated frames, in the direct map, ours alone.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, (pages * 4096) as usize) };
    Some(va)
}

/// A page table for the trampoline: the idle L4's hypervisor slots plus
/// the first 2 MiB identity-mapped.
fn trampoline_l4(idle_l4: u64) -> Option<u64> {
    let (l4, l3, l2) = (alloc(4096)?, alloc(4096)?, alloc(4096)?);
    let pa = |va: u64| va - super::DIRECTMAP_VIRT_START;
    // SAFETY: three fresh frames of ours; the idle L4 is read only.
    unsafe {
        core::ptr::copy_nonoverlapping(maddr_to_virt(idle_l4) as *const u64, l4 as *mut u64, 512);
        (l4 as *mut u64).write(pa(l3) | 3);
        (l3 as *mut u64).write(pa(l2) | 3);
        (l2 as *mut u64).write(0x83);
    }
    Some(pa(l4))
}

/// Start every AP that answers; returns how many CPUs are online.
pub fn start_aps(idle_l4: u64, apic_ids: Option<&[u32]>) -> u32 {
    let Some(cr3) = trampoline_l4(idle_l4) else { return 1 };
    IDLE_CR3.store(idle_l4, Ordering::SeqCst);
    // SAFETY: only the trampoline symbols' addresses are taken.
    let (start, end) = unsafe { (&ap_trampoline_start as *const u8, &ap_trampoline_end as *const u8) };
    let len = end as usize - start as usize;
    let dst = maddr_to_virt(TRAMPOLINE) as *mut u8;
    // SAFETY: 0x8000 is low memory the hypervisor keeps out of its
    // allocator (the first MiB is never managed) and nothing else uses.
    // The cr3 and entry slots lie inside the copied blob.
    unsafe {
        core::ptr::copy_nonoverlapping(start, dst, len);
        (dst.add(offset(&ap_cr3) as usize) as *mut u64).write(cr3);
        (dst.add(offset(&ap_entry) as usize) as *mut u64).write(ap_main as *const () as u64);
    }
    // The firmware's list (the boot CPU is APIC id 0 under QEMU, as this
    // code assumes); without one, probe ids 1, 2, ... until one is silent.
    let listed = |id: u32| apic_ids.is_none_or(|ids| ids.contains(&id));
    let probing = apic_ids.is_none();
    for apic_id in (1..MAX_CPUS).filter(|&id| listed(id)) {
        let Some(tables) = alloc(super::gdt::PER_CPU_TABLES_SIZE) else { break };
        let Some(stack) = alloc(64 * 1024) else { break };
        NEXT_TABLES.store(tables, Ordering::SeqCst);
        NEXT_ID.store(apic_id, Ordering::SeqCst);
        // SAFETY: the stack slot lies inside the copied blob.
        unsafe { (dst.add(offset(&ap_stack) as usize) as *mut u64).write(stack + 64 * 1024) };
        let before = CPUS_ONLINE.load(Ordering::SeqCst);
        apic::send_ipi(apic_id, 0x4500); // INIT, assert
        delay_us(10_000);
        for _ in 0..2 {
            apic::send_ipi(apic_id, 0x4600 | (TRAMPOLINE >> 12) as u32); // STARTUP
            delay_us(200);
        }
        // A listed CPU gets a second; a probed one, 100 ms.
        let patience = if probing { 100_000_000 } else { 1_000_000_000 };
        let t0 = super::clock::system_time();
        while CPUS_ONLINE.load(Ordering::SeqCst) == before && super::clock::system_time() < t0 + patience {
            core::hint::spin_loop();
        }
        if CPUS_ONLINE.load(Ordering::SeqCst) == before {
            crate::printk!("CPU with APIC id {apic_id} did not start");
            break;
        }
    }
    CPUS_ONLINE.load(Ordering::SeqCst)
}
