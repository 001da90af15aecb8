//! How a guest receives control: exception delivery and `iret`,
//! `set_trap_table`, `callback_op`, `set_callbacks`, `stack_switch`,
//! `fpu_taskswitch`, and the settings `vm_assist` and `set_segment_base`
//! (`xen/include/public/callback.h`, `xen/include/public/xen.h`,
//! `xen/include/public/arch-x86/xen.h`,
//! `xen/include/public/arch-x86/xen-x86_64.h`). Two lists, because the run
//! order (`cases.rs`) puts other families between them.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

/// Exception delivery through the trap table (returns with iret), and
/// the entry points a guest registers: `set_trap_table`, `callback_op`,
/// `set_callbacks`, `stack_switch`, `fpu_taskswitch`.
pub mod delivery {
    use super::*;

    cases! {
        // ---- Exception delivery through the trap table (returns with iret).
        trap_int3_delivers_bp_after_insn ("trap", "#BP", Trap) { expect_trap(probe(Probe::Int3, 0), 3, None, 1) }
        trap_ud2_delivers_ud_at_insn ("trap", "#UD", Trap) { expect_trap(probe(Probe::Ud2, 0), 6, None, 0) }
        trap_divide_by_zero_delivers_de ("trap", "#DE", Trap) { expect_trap(probe(Probe::Div, 0), 0, None, 0) }
        trap_pf_read_has_cr2_and_error_0 ("trap", "#PF read", Trap) {
            match probe(Probe::Read, 0xdead_b000) {
                Err(c) => all(&[expect_trap(Err(c), 14, Some(0), 0), check(c.cr2 == 0xdead_b000, format_args!("cr2 {:#x}", c.cr2))]),
                Ok(()) => check(false, format_args!("no fault")),
            }
        }
        trap_pf_write_error_code_2 ("trap", "#PF write", Trap) { expect_trap(probe(Probe::Write, 0xdead_c000), 14, Some(2), 0) }
        trap_write_to_own_l4_faults ("trap", "#PF on page-table write", Attack) {
            expect_trap(probe(Probe::Write, start_info().pt_base + 8), 14, Some(3), 0)
        }
        trap_lidt_in_guest_kernel_is_gp ("trap", "#GP privileged insn", Trap) {
            let desc = [0u64; 2];
            expect_trap(probe(Probe::Lidt, ptr(&desc)), 13, Some(0), 0)
        }
        trap_int80_dpl3_delivered ("trap", "int $0x80 DPL 3", Trap) {
            if set_entry(0x80, 3) != 0 { return error(format_args!("set_trap_table failed")); }
            expect_trap(probe(Probe::Int128, 0), 0x80, None, 2)
        }
        trap_int80_dpl0_still_delivered ("trap", "int $0x80 DPL 0", Trap) {
            // Xen's int $0x80 fast path ignores the entry's DPL.
            if set_entry(0x80, 0) != 0 { return error(format_args!("set_trap_table failed")); }
            expect_trap(probe(Probe::Int128, 0), 0x80, None, 2)
        }
        trap_int80_without_entry_is_gp_with_idt_bit ("trap", "int $0x80, no entry", Attack) {
            expect_trap(probe(Probe::Int128, 0), 13, Some((0x80 << 3) | 2), 0)
        }
        trap_int20_without_entry_is_gp ("trap", "int $0x20, no entry", Attack) {
            expect_trap(probe(Probe::Int32, 0), 13, Some((0x20 << 3) | 2), 0)
        }
        trap_int20_dpl1_allowed_in_kernel ("trap", "int $0x20 DPL 1", Trap) {
            if set_entry(0x20, 1) != 0 { return error(format_args!("set_trap_table failed")); }
            expect_trap(probe(Probe::Int32, 0), 0x20, None, 2)
        }
        iret_returns_to_the_interrupted_context ("iret", "kernel to kernel", Accept) {
            // Every trap case returns through iret; twice in a row must work.
            all(&[expect_trap(probe(Probe::Int3, 0), 3, None, 1), expect_trap(probe(Probe::Int3, 0), 3, None, 1)])
        }

        // ---- set_trap_table
        set_trap_table_valid_table_accepted ("set_trap_table", "table", Accept) { expect(crate::traps::install(), 0) }
        set_trap_table_null_clears ("set_trap_table", "NULL", Accept) { expect(call(nr::SET_TRAP_TABLE, 0, 0, 0, 0, 0), 0) }
        set_trap_table_long_table_continues ("set_trap_table", "long table", Accept) {
            let mut table = [TrapInfo::default(); 201];
            for e in table.iter_mut().take(200) { *e = handler_entry(3, 3).unwrap_or_default(); }
            all(&[expect(crate::hypercall::set_trap_table(&table), 0), expect_trap(probe(Probe::Int3, 0), 3, None, 1)])
        }
        set_trap_table_noncanonical_handler_einval ("set_trap_table", "table", Reject) {
            let table = [TrapInfo { vector: 3, flags: 0, cs: 0xe033, _pad0: 0, address: NONCANON }, TrapInfo::default()];
            expect(crate::hypercall::set_trap_table(&table), -EINVAL)
        }
        set_trap_table_unmapped_pointer_efault ("set_trap_table", "table", Reject) { expect(call(nr::SET_TRAP_TABLE, UNMAPPED, 0, 0, 0, 0), -EFAULT) }
        set_trap_table_xen_pointer_efault ("set_trap_table", "table", Attack) { expect(call(nr::SET_TRAP_TABLE, XEN_VA, 0, 0, 0, 0), -EFAULT) }
        set_trap_table_noncanonical_pointer_efault ("set_trap_table", "table", Attack) { expect(call(nr::SET_TRAP_TABLE, NONCANON, 0, 0, 0, 0), -EFAULT) }

        // ---- callback_op / set_callbacks
        callback_register_event_ok ("callback_op", "register event", Accept) { expect(callback(0, 0, 0, some_handler()), 0) }
        callback_register_failsafe_ok ("callback_op", "register failsafe", Accept) { expect(callback(0, 1, 0, some_handler()), 0) }
        callback_register_syscall_masked_ok ("callback_op", "register syscall", Accept) { expect(callback(0, 2, 1, some_handler()), 0) }
        callback_register_syscall32_ok ("callback_op", "register syscall32", Accept) { expect(callback(0, 7, 0, some_handler()), 0) }
        callback_register_nmi_ok ("callback_op", "register nmi", Accept) {
            let r = callback(0, 4, 0, some_handler());
            callback(1, 4, 0, 0);
            expect(r, 0)
        }
        callback_register_noncanonical_einval ("callback_op", "register event", Attack) { expect(callback(0, 0, 0, NONCANON), -EINVAL) }
        callback_register_unknown_type_enosys ("callback_op", "register type 100", Reject) { expect(callback(0, 100, 0, some_handler()), -ENOSYS) }
        callback_register_sysenter_type_5_ok ("callback_op", "register sysenter", Accept) { expect(callback(0, 5, 1, some_handler()), 0) }
        callback_register_type_3_enosys ("callback_op", "register sysenter_deprecated", Reject) { expect(callback(0, 3, 0, some_handler()), -ENOSYS) }
        callback_register_type_3_noncanonical_einval ("callback_op", "register sysenter_deprecated", Attack) { expect(callback(0, 3, 0, NONCANON), -EINVAL) }
        callback_unregister_sysenter_einval ("callback_op", "unregister sysenter", Reject) { expect(callback(1, 5, 0, 0), -EINVAL) }
        callback_unregister_type_3_enosys ("callback_op", "unregister sysenter_deprecated", Reject) { expect(callback(1, 3, 0, 0), -ENOSYS) }
        callback_register_failsafe_masked_ok ("callback_op", "register failsafe", Accept) { expect(callback(0, 1, 1, some_handler()), 0) }
        callback_unregister_event_einval ("callback_op", "unregister event", Reject) { expect(callback(1, 0, 0, 0), -EINVAL) }
        callback_unregister_nmi_ok ("callback_op", "unregister nmi", Accept) { expect(callback(1, 4, 0, 0), 0) }
        callback_unknown_cmd_enosys ("callback_op", "cmd 7", Reject) { expect(callback(7, 0, 0, some_handler()), -ENOSYS) }
        callback_unmapped_pointer_efault ("callback_op", "register event", Reject) { expect(call(nr::CALLBACK_OP, 0, UNMAPPED, 0, 0, 0), -EFAULT) }
        set_callbacks_ok ("set_callbacks", "all three", Accept) {
            let h = some_handler();
            expect(call(nr::SET_CALLBACKS, h, h, h, 0, 0), 0)
        }
        set_callbacks_noncanonical_ignored_returns_0 ("set_callbacks", "all three", Attack) {
            expect(call(nr::SET_CALLBACKS, NONCANON, NONCANON, NONCANON, 0, 0), 0)
        }

        // ---- stack_switch, fpu_taskswitch
        stack_switch_ok ("stack_switch", "ss, sp", Accept) { expect(call(nr::STACK_SWITCH, 0xe02b, start_info().pt_base, 0, 0, 0), 0) }
        stack_switch_xen_sp_accepted_not_used ("stack_switch", "ss, sp", Attack) {
            // Xen checks the stack only when it bounces a frame onto it.
            let r = call(nr::STACK_SWITCH, 0xe02b, XEN_VA, 0, 0, 0);
            call(nr::STACK_SWITCH, 0xe02b, 0, 0, 0, 0);
            expect(r, 0)
        }
        fpu_taskswitch_set_raises_nm ("fpu_taskswitch", "set", Accept) {
            all(&[expect(call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0), 0), expect_trap(probe(Probe::Sse, 0), 7, None, 0)])
        }
        fpu_taskswitch_nm_clears_virtual_ts ("fpu_taskswitch", "set", Accept) {
            call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0);
            let first = probe(Probe::Sse, 0);
            all(&[expect_trap(first, 7, None, 0), check(probe(Probe::Sse, 0).is_ok(), format_args!("second SSE use trapped"))])
        }
        fpu_taskswitch_clear_allows_sse ("fpu_taskswitch", "clear", Accept) {
            call(nr::FPU_TASKSWITCH, 1, 0, 0, 0, 0);
            all(&[expect(call(nr::FPU_TASKSWITCH, 0, 0, 0, 0, 0), 0), check(probe(Probe::Sse, 0).is_ok(), format_args!("SSE trapped"))])
        }
        fpu_taskswitch_arg_is_an_int ("fpu_taskswitch", "set = 2^32", Attack) {
            // The argument is a C int: 2^32 truncates to 0, which clears TS.
            all(&[expect(call(nr::FPU_TASKSWITCH, 1 << 32, 0, 0, 0, 0), 0), check(probe(Probe::Sse, 0).is_ok(), format_args!("SSE trapped"))])
        }
    }
}

/// `vm_assist` and `set_segment_base`.
pub mod assists_and_segment_bases {
    use super::*;

    cases! {
        // ---- vm_assist
        vm_assist_enable_4gb_segments ("vm_assist", "enable 4gb_segments", Accept) { expect(vm_assist(0, 0), 0) }
        vm_assist_disable_4gb_segments ("vm_assist", "disable 4gb_segments", Accept) { expect(vm_assist(1, 0), 0) }
        vm_assist_pae_extended_cr3 ("vm_assist", "enable pae_extended_cr3", Accept) {
            let r = vm_assist(0, 3);
            vm_assist(1, 3);
            expect(r, 0)
        }
        vm_assist_type_64_einval ("vm_assist", "type 64", Reject) { expect(vm_assist(0, 64), -EINVAL) }
        vm_assist_huge_type_einval ("vm_assist", "type 2^32-1", Attack) { expect(vm_assist(0, 0xffff_ffff), -EINVAL) }
        vm_assist_unknown_type_einval ("vm_assist", "type 10", Reject) { expect(vm_assist(0, 10), -EINVAL) }
        vm_assist_bad_cmd_enosys ("vm_assist", "cmd 2", Reject) { expect(vm_assist(2, 0), -ENOSYS) }
        vm_assist_writable_pagetables_ok ("vm_assist", "enable writable_pagetables", Accept) {
            let r = vm_assist(0, 2);
            vm_assist(1, 2);
            expect(r, 0)
        }
        vm_assist_architectural_iopl_ok ("vm_assist", "enable architectural_iopl", Accept) {
            let r = vm_assist(0, 4);
            all(&[expect(r, 0), expect(vm_assist(1, 4), 0)])
        }
        vm_assist_runstate_update_flag_ok ("vm_assist", "enable runstate_update_flag", Accept) {
            let r = vm_assist(0, 5);
            all(&[expect(r, 0), expect(vm_assist(1, 5), 0)])
        }
        vm_assist_m2p_strict_ok ("vm_assist", "enable m2p_strict", Accept) {
            let r = vm_assist(0, 32);
            all(&[expect(r, 0), expect(vm_assist(1, 32), 0)])
        }
        vm_assist_type_6_einval ("vm_assist", "type 6", Reject) { expect(vm_assist(0, 6), -EINVAL) }
        vm_assist_bad_type_before_bad_cmd ("vm_assist", "cmd 2 type 6", Reject) { expect(vm_assist(2, 6), -EINVAL) }

        // ---- set_segment_base
        set_segment_base_fs_loads_base ("set_segment_base", "SEGBASE_FS", Accept) {
            static VALUE: u64 = 0x1234_5678_9abc_def0;
            let r = call(nr::SET_SEGMENT_BASE, 0, ptr(&VALUE), 0, 0, 0);
            if r != 0 { return expect(r, 0); }
            let v: u64;
            // SAFETY: FS now points at VALUE.
            unsafe { core::arch::asm!("mov {}, fs:[0]", out(reg) v) };
            check(v == VALUE, format_args!("%fs:0 read {v:#x}"))
        }
        set_segment_base_gs_kernel_loads_base ("set_segment_base", "SEGBASE_GS_KERNEL", Accept) {
            static VALUE: u64 = 0x0fed_cba9_8765_4321;
            let r = call(nr::SET_SEGMENT_BASE, 2, ptr(&VALUE), 0, 0, 0);
            if r != 0 { return expect(r, 0); }
            let v: u64;
            // SAFETY: GS now points at VALUE.
            unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) v) };
            check(v == VALUE, format_args!("%gs:0 read {v:#x}"))
        }
        set_segment_base_gs_user_ok ("set_segment_base", "SEGBASE_GS_USER", Accept) { expect(call(nr::SET_SEGMENT_BASE, 1, 0x1000, 0, 0, 0), 0) }
        set_segment_base_gs_user_sel_null_ok ("set_segment_base", "SEGBASE_GS_USER_SEL", Accept) { expect(call(nr::SET_SEGMENT_BASE, 3, 0, 0, 0, 0), 0) }
        set_segment_base_fs_noncanonical_einval ("set_segment_base", "SEGBASE_FS", Attack) { expect(call(nr::SET_SEGMENT_BASE, 0, NONCANON, 0, 0, 0), -EINVAL) }
        set_segment_base_gs_kernel_noncanonical_einval ("set_segment_base", "SEGBASE_GS_KERNEL", Attack) { expect(call(nr::SET_SEGMENT_BASE, 2, NONCANON, 0, 0, 0), -EINVAL) }
        set_segment_base_bad_which_einval ("set_segment_base", "which 4", Reject) { expect(call(nr::SET_SEGMENT_BASE, 4, 0, 0, 0, 0), -EINVAL) }
    }
}
