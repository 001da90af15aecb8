//! The x86_64 unsafe core: boot trampoline and boot memory, CPU
//! instructions, serial port, descriptor tables, trap entry, the
//! hypervisor's own page tables and its frame-backed storage.
//!
//! With `guest_access` (machine memory a guest can reach), the only place
//! in xen-core where `unsafe` is allowed; the crate root denies it
//! everywhere else.

pub mod apic;
pub mod boot;
pub mod bootmem;
pub mod clock;
pub mod cpu;
pub mod debugreg;
pub mod entry;
pub mod frame_box;
pub mod gdt;
pub mod mbi;
pub mod paging;
pub mod pio;
pub mod remote_flush;
pub mod serial;
pub mod smp;
pub mod tlb_clock;
pub mod traps;

/// Virtual address of the machine's direct map (Xen's DIRECTMAP_VIRT_START):
/// machine address `ma` is visible at `DIRECTMAP_VIRT_START + ma`.
pub const DIRECTMAP_VIRT_START: u64 = 0xffff_8300_0000_0000;
/// End of the direct-map window (5 TiB, up to the end of Xen's range).
pub const DIRECTMAP_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// Offset between the image's virtual and physical addresses.
pub const XEN_VIRT_OFFSET: u64 = 0xffff_82d0_4000_0000;
/// The part of the direct map the boot trampoline sets up: the first 4 GiB.
pub const BOOT_DIRECTMAP_LIMIT: u64 = 4 << 30;

/// Direct-map virtual address of a machine address.
pub const fn maddr_to_virt(maddr: u64) -> u64 {
    DIRECTMAP_VIRT_START + maddr
}

/// Physical extent `[start, end)` of the loaded hypervisor image, from the
/// linker script, including bss.
pub fn image_phys_range() -> (u64, u64) {
    let start = core::ptr::addr_of!(boot::__image_phys_start) as u64;
    let end = core::ptr::addr_of!(boot::__image_end) as u64 - XEN_VIRT_OFFSET;
    (start, end)
}

/// Bring up the boot CPU's descriptor tables and exception handlers.
pub fn init_bsp() {
    gdt::init_bsp();
    traps::init_idt();
    traps::load_idt();
    entry::quiesce_pic();
}
