//! Xen's hypercalls by number, as xen-core implements them: one table
//! that names each, says how much of it exists, and (on the target, in
//! `hypercall/mod.rs`) is matched by the dispatch table entry for entry.
//! `docs/hypercalls.md`'s status column is checked against it by a test.
//!
//! Invariant: a number is `Enosys` here exactly when dispatch has no
//! handler for it (a compile-time check in `hypercall/mod.rs`), and every
//! number from 0 to [`NR_HYPERCALLS`] - 1 is listed once.
#![forbid(unsafe_code)]

use xen_public::hypercall as nr;

/// How much of a hypercall xen-core has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// All of it that a PV guest uses (the docs' status starts "done").
    Done,
    /// Some sub-operations; the others answer -ENOSYS.
    Partial,
    /// None: -ENOSYS, as Xen answers for a hypercall it does not have.
    Enosys,
}

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Hypercall {
    /// Xen's number (`__HYPERVISOR_*`).
    pub nr: u64,
    /// Xen's name.
    pub name: &'static str,
    /// How much of it exists.
    pub status: Status,
}

/// Numbers the dispatch table covers (Xen 4.17 defines up to 55; the
/// rest of the 128 hypercall-page stubs are unused).
pub const NR_HYPERCALLS: usize = 56;

const fn h(nr: u64, name: &'static str, status: Status) -> Hypercall {
    Hypercall { nr, name, status }
}

use Status::{Done, Enosys, Partial};

/// Every hypercall number below [`NR_HYPERCALLS`].
pub const HYPERCALLS: [Hypercall; NR_HYPERCALLS] = [
    h(nr::SET_TRAP_TABLE, "set_trap_table", Done),
    h(nr::MMU_UPDATE, "mmu_update", Done),
    h(nr::SET_GDT, "set_gdt", Done),
    h(nr::STACK_SWITCH, "stack_switch", Done),
    h(nr::SET_CALLBACKS, "set_callbacks", Done),
    h(nr::FPU_TASKSWITCH, "fpu_taskswitch", Done),
    h(nr::SCHED_OP_COMPAT, "sched_op_compat", Enosys),
    h(nr::PLATFORM_OP, "platform_op", Enosys),
    h(nr::SET_DEBUGREG, "set_debugreg", Done),
    h(nr::GET_DEBUGREG, "get_debugreg", Done),
    h(nr::UPDATE_DESCRIPTOR, "update_descriptor", Done),
    h(11, "(unused)", Enosys),
    h(nr::MEMORY_OP, "memory_op", Partial),
    h(nr::MULTICALL, "multicall", Done),
    h(nr::UPDATE_VA_MAPPING, "update_va_mapping", Done),
    h(nr::SET_TIMER_OP, "set_timer_op", Done),
    h(nr::EVENT_CHANNEL_OP_COMPAT, "event_channel_op_compat", Enosys),
    h(nr::XEN_VERSION, "xen_version", Done),
    h(nr::CONSOLE_IO, "console_io", Done),
    h(nr::PHYSDEV_OP_COMPAT, "physdev_op_compat", Enosys),
    h(nr::GRANT_TABLE_OP, "grant_table_op", Partial),
    h(nr::VM_ASSIST, "vm_assist", Done),
    h(nr::UPDATE_VA_MAPPING_OTHERDOMAIN, "update_va_mapping_otherdomain", Enosys),
    h(nr::IRET, "iret", Done),
    h(nr::VCPU_OP, "vcpu_op", Partial),
    h(nr::SET_SEGMENT_BASE, "set_segment_base", Done),
    h(nr::MMUEXT_OP, "mmuext_op", Done),
    h(nr::XSM_OP, "xsm_op", Enosys),
    h(nr::NMI_OP, "nmi_op", Enosys),
    h(nr::SCHED_OP, "sched_op", Done),
    h(nr::CALLBACK_OP, "callback_op", Done),
    h(nr::XENOPROF_OP, "xenoprof_op", Enosys),
    h(nr::EVENT_CHANNEL_OP, "event_channel_op", Done),
    h(nr::PHYSDEV_OP, "physdev_op", Partial),
    h(nr::HVM_OP, "hvm_op", Enosys),
    h(nr::SYSCTL, "sysctl", Partial),
    h(nr::DOMCTL, "domctl", Partial),
    h(nr::KEXEC_OP, "kexec_op", Enosys),
    h(38, "tmem_op", Enosys),
    h(39, "argo_op", Enosys),
    h(40, "xenpmu_op", Enosys),
    h(41, "dm_op", Enosys),
    h(42, "hypfs_op", Enosys),
    h(43, "(unused)", Enosys),
    h(44, "(unused)", Enosys),
    h(45, "(unused)", Enosys),
    h(46, "(unused)", Enosys),
    h(47, "(unused)", Enosys),
    h(48, "mca", Enosys),
    h(49, "arch_1", Enosys),
    h(50, "arch_2", Enosys),
    h(51, "arch_3", Enosys),
    h(52, "arch_4", Enosys),
    h(53, "arch_5", Enosys),
    h(54, "arch_6", Enosys),
    h(55, "arch_7", Enosys),
];

/// The row of hypercall `nr` (`None` past the table: -ENOSYS).
pub fn lookup(nr: u64) -> Option<&'static Hypercall> {
    HYPERCALLS.get(usize::try_from(nr).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_number_is_listed_once_in_order() {
        for (i, h) in HYPERCALLS.iter().enumerate() {
            assert_eq!(h.nr, i as u64, "row {i} is hypercall {} ({})", h.nr, h.name);
        }
    }

    /// The numbers a `| # |` cell of docs/hypercalls.md names: `7`,
    /// `7-9`, `33, 34, 37`.
    fn numbers(cell: &str) -> Vec<u64> {
        let mut out = Vec::new();
        for part in cell.split(',').map(str::trim) {
            match part.split_once('-') {
                Some((a, b)) => {
                    if let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) {
                        out.extend(a..=b);
                    }
                }
                None => out.extend(part.parse::<u64>().ok()),
            }
        }
        out
    }

    #[test]
    fn docs_hypercalls_status_column_matches_the_table() {
        // The status column of docs/hypercalls.md starts with "done" for a
        // hypercall that is done, with "-ENOSYS" for one that is not there,
        // and with neither for one that is partly there.
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/hypercalls.md")).unwrap();
        let mut seen = [false; NR_HYPERCALLS];
        for line in doc.lines().filter(|l| l.starts_with("| ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_digit)) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let (nums, status) = (numbers(cells[1]), cells[3]);
            for n in nums.into_iter().filter(|&n| n < NR_HYPERCALLS as u64) {
                let h = lookup(n).unwrap();
                let documented = if status.starts_with("done") {
                    Status::Done
                } else if status.starts_with("-ENOSYS") {
                    Status::Enosys
                } else {
                    Status::Partial
                };
                assert_eq!(documented, h.status, "docs/hypercalls.md row for {n} ({}) says: {status}", h.name);
                seen[n as usize] = true;
            }
        }
        let missing: Vec<usize> = (0..NR_HYPERCALLS).filter(|&n| !seen[n]).collect();
        assert!(missing.is_empty(), "docs/hypercalls.md has no row for {missing:?}");
    }
}
