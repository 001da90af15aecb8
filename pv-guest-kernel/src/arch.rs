//! The guest's unsafe core: entry point, stack, ELF notes and the hypercall
//! page, in assembly.

use crate::notes;
use xen_public::elfnote;

/// Bytes of the guest's boot stack.
pub const STACK_SIZE: usize = 64 * 1024;

core::arch::global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    cld
    lea guest_stack_top(%rip), %rsp
    mov %rsi, %rdi                  /* start_info */
    call pv_guest_main
    ud2

    .section .text.hypercall_page, "ax"
    .balign 4096
    .global hypercall_page
hypercall_page:
    .fill 4096, 1, 0xcc             /* int3 until the hypervisor fills it */

    .section .bss.shared_info_page, "aw", @nobits
    .balign 4096
    .global shared_info_page
shared_info_page:
    .skip 4096                      /* remapped to shared_info at boot */

    .section .bss.guest_stack, "aw", @nobits
    .balign 4096
guest_stack:
    .skip {stack_size}
guest_stack_top:

    .macro xen_note_head type
    .balign 4
    .long 4                         /* namesz: "Xen\0" */
    .long 2f - 1f                   /* descsz */
    .long \type
    .asciz "Xen"
    .balign 4
1:
    .endm
    .macro xen_note_str type, value
    xen_note_head \type
    .asciz "\value"
2:
    .endm
    .macro xen_note_quad type, value
    xen_note_head \type
    .quad \value
2:
    .endm

    .section .note.Xen, "a", @note
    "#,
    concat!("xen_note_str {n_guest_os}, \"", crate::note_str!(guest_os), "\""),
    concat!("xen_note_str {n_xen_version}, \"", crate::note_str!(xen_version), "\""),
    concat!("xen_note_str {n_loader}, \"", crate::note_str!(loader), "\""),
    concat!("xen_note_str {n_features}, \"", crate::note_str!(features), "\""),
    concat!("xen_note_str {n_pae}, \"", crate::note_str!(pae_mode), "\""),
    r#"
    xen_note_quad {n_virt_base}, {virt_base}
    xen_note_quad {n_paddr_offset}, {paddr_offset}
    xen_note_quad {n_entry}, _start
    xen_note_quad {n_hypercall_page}, hypercall_page
    .balign 4
    .text
    "#,
    stack_size = const STACK_SIZE,
    n_guest_os = const elfnote::GUEST_OS,
    n_xen_version = const elfnote::XEN_VERSION,
    n_loader = const elfnote::LOADER,
    n_features = const elfnote::FEATURES,
    n_pae = const elfnote::PAE_MODE,
    n_virt_base = const elfnote::VIRT_BASE,
    n_paddr_offset = const elfnote::PADDR_OFFSET,
    n_entry = const elfnote::ENTRY,
    n_hypercall_page = const elfnote::HYPERCALL_PAGE,
    virt_base = const notes::VIRT_BASE,
    paddr_offset = const notes::PADDR_OFFSET,
    options(att_syntax)
);
