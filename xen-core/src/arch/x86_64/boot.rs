//! The multiboot2 header and the 32-bit trampoline.
//!
//! GRUB enters `_start32` in 32-bit protected mode with paging off, EAX =
//! multiboot2 magic and EBX = the information block. The trampoline checks
//! both and the CPU's long-mode and NX support, builds boot page tables (an
//! identity map of the first 4 GiB, the same 4 GiB at the direct-map address
//! and the image at its link address, all 2 MiB pages), enables long mode
//! and jumps to the higher half, where [`crate::setup::start_xen`] runs on
//! the boot stack. A check that fails prints one line on COM1 and leaves
//! QEMU through `isa-debug-exit` with a failure code.

use super::cpu::{DEBUG_EXIT_FAILURE, DEBUG_EXIT_PORT};
use crate::boot::multiboot2::{BOOTLOADER_MAGIC, HEADER_MAGIC};

/// Size of the multiboot2 header: fixed part, module-align tag, end tag.
const MB2_HEADER_LEN: u32 = 16 + 8 + 8;
const MB2_CHECKSUM: u32 = 0u32.wrapping_sub(HEADER_MAGIC.wrapping_add(MB2_HEADER_LEN));

/// Size of the boot stack the hypervisor starts on.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;

unsafe extern "C" {
    /// First byte of the loaded image (physical; linker script).
    pub static __image_phys_start: u8;
    /// One past the last byte of the image, bss included (virtual).
    pub static __image_end: u8;
    /// Start of the text segment (virtual).
    pub static __text_start: u8;
    /// End of the text segment (virtual).
    pub static __text_end: u8;
    /// Start of the read-only data segment (virtual).
    pub static __rodata_start: u8;
    /// End of the read-only data segment (virtual).
    pub static __rodata_end: u8;
    /// Start of the data and bss segment (virtual).
    pub static __data_start: u8;
}

core::arch::global_asm!(
    r#"
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long {hdr_magic}
    .long 0                         /* architecture: i386 protected mode */
    .long {hdr_len}
    .long {hdr_csum}
    .short 6, 0                     /* module alignment: page-align modules */
    .long 8
    .short 0, 0                     /* end tag */
    .long 8

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
boot_gdt_end:
boot_gdtr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt
msg_magic:
    .asciz "xen-core: panic: not started by a multiboot2 loader (bad magic in EAX)\n"
msg_lm:
    .asciz "xen-core: panic: this CPU has no long mode or no NX; xen-core needs x86_64 with NX\n"

    .section .boot.bss, "aw"
    .balign 4096
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_img:  .skip 4096
boot_pd:        .skip 4 * 4096      /* 2048 x 2 MiB = the first 4 GiB */
boot_stack32:   .skip 1024
boot_stack32_top:

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    mov $boot_stack32_top, %esp
    mov %ebx, %ebp                  /* keep the information block in EBP */
    cmp ${mb_magic}, %eax
    jne .Lbad_magic

    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb .Lno_lm
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx                    /* long mode */
    jnc .Lno_lm
    bt $20, %edx                    /* NX */
    jnc .Lno_lm

    /* boot_pd[i] = i * 2 MiB | PS | RW | P, for i in 0..2048 */
    mov $boot_pd, %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, (%edi, %ecx, 8)
    mov %ecx, %eax
    shr $11, %eax
    mov %eax, 4(%edi, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b

    mov $boot_pd + 3, %eax
    mov %eax, boot_pdpt_low
    add $4096, %eax
    mov %eax, boot_pdpt_low + 8
    add $4096, %eax
    mov %eax, boot_pdpt_low + 16
    add $4096, %eax
    mov %eax, boot_pdpt_low + 24
    mov $boot_pd + 3, %eax
    mov %eax, boot_pdpt_img + {img_l3} * 8

    mov $boot_pdpt_low + 3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + {dmap_l4} * 8
    mov $boot_pdpt_img + 3, %eax
    mov %eax, boot_pml4 + {img_l4} * 8

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx           /* EFER */
    rdmsr
    or $0x900, %eax                 /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax            /* PG | WP | PE */
    mov %eax, %cr0
    lgdt boot_gdtr
    ljmp $0x08, $start64_low

.Lbad_magic:
    mov $msg_magic, %esi
    jmp .Lfail32
.Lno_lm:
    mov $msg_lm, %esi
.Lfail32:
    mov $0x3f8, %dx
2:  movb (%esi), %al
    test %al, %al
    jz 3f
    outb %al, %dx
    inc %esi
    jmp 2b
3:  mov ${exit_port}, %dx
    mov ${exit_fail}, %eax
    outl %eax, %dx
4:  hlt
    jmp 4b

    .code64
start64_low:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    movabs $start64_high, %rax
    jmp *%rax

    .section .text.entry, "ax"
start64_high:
    movabs $boot_stack_top, %rsp
    mov %ebp, %edi                  /* zero-extends: information block address */
    xor %ebp, %ebp
    call {entry}
    ud2

    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
    .global boot_stack_bottom
boot_stack_bottom:
    .skip {stack_size}
boot_stack_top:
    "#,
    hdr_magic = const HEADER_MAGIC,
    hdr_len = const MB2_HEADER_LEN,
    hdr_csum = const MB2_CHECKSUM,
    mb_magic = const BOOTLOADER_MAGIC,
    img_l3 = const (super::XEN_VIRT_OFFSET >> 30) & 511,
    img_l4 = const (super::XEN_VIRT_OFFSET >> 39) & 511,
    dmap_l4 = const (super::DIRECTMAP_VIRT_START >> 39) & 511,
    exit_port = const DEBUG_EXIT_PORT,
    exit_fail = const DEBUG_EXIT_FAILURE,
    stack_size = const BOOT_STACK_SIZE,
    entry = sym boot_entry,
    options(att_syntax)
);

/// First Rust code: called on the boot stack, in the higher half, with the
/// multiboot2 information block's physical address.
extern "C" fn boot_entry(mbi_maddr: u64) -> ! {
    crate::setup::start_xen(mbi_maddr)
}
