//! The cases other than the hostile-guest ones of `attacks.rs`, one file per
//! hypercall family under `cases/`. Each case states the ABI rule it checks in
//! its name and runs as dom0 (or any PV domain). The lists are the single
//! source for the suite, `docs/conformance.md` and the report.

use super::{CaseInfo, Difference, concat, total_len};

/// Declares cases: each is `name ("hypercall", "sub-op", Kind) { body }`,
/// where the body returns an `Outcome`. Expands to `LIST` and, in the guest,
/// `FNS`; the invoking module must have `CaseInfo`, `Kind` and a `helpers`
/// module (whose items the bodies use) in scope. The family modules below
/// see the macro because they are declared after it; `attacks.rs` imports it.
macro_rules! cases {
    ($( $name:ident ($hc:literal, $subop:literal, $kind:ident) $body:block )*) => {
        /// These cases, in run order.
        pub const LIST: &[CaseInfo] = &[
            $( CaseInfo { name: stringify!($name), hypercall: $hc, subop: $subop, kind: Kind::$kind }, )*
        ];

        #[cfg(target_os = "none")]
        #[allow(clippy::unreadable_literal)]
        mod bodies {
            use $crate::conformance::Outcome;
            #[allow(unused_imports)]
            use $crate::conformance::ctx::*;
            use super::helpers::*;
            $( pub fn $name() -> Outcome $body )*
        }

        /// The case functions, parallel to `LIST`.
        #[cfg(target_os = "none")]
        pub const FNS: &[fn() -> $crate::conformance::Outcome] = &[ $( bodies::$name, )* ];
    };
}
pub(super) use cases;

#[cfg(target_os = "none")]
pub(super) mod helpers;

mod callbacks;
mod console;
mod cr3;
mod debugreg;
mod descriptors;
mod domctl;
mod evtchn;
mod gnttab;
mod gnttab_frames;
mod hypercall_page_msr;
mod memory;
mod mmu;
mod multicall;
mod physdev;
mod pit;
mod privop;
mod ptwr;
mod readconsole;
mod sched;
mod vcpu;
mod version;

/// The case lists and the function lists, built from one list of modules so
/// that the two stay parallel.
macro_rules! run_order {
    ($( $($list:ident)::+ ),* $(,)?) => {
        const LISTS: &[&[CaseInfo]] = &[ $( $($list)::+::LIST ),* ];
        #[cfg(target_os = "none")]
        const FN_LISTS: &[&[fn() -> super::Outcome]] = &[ $( $($list)::+::FNS ),* ];
    };
}

// The order the suite has always run in; keep it. The report and the docs
// list cases in this order, and cases share state that depends on it (spare
// pages are handed out in turn, the grant table is set up once). A family
// whose cases do not run together has one list (a submodule) per stretch.
run_order! {
    version::unused_numbers,
    callbacks::delivery,
    version::xen_version,
    console,
    callbacks::assists_and_segment_bases,
    sched::sched_op,
    mmu,
    multicall::list,
    descriptors,
    evtchn,
    gnttab,
    gnttab_frames,
    sched::timers,
    vcpu::vcpu_op,
    domctl,
    memory,
    multicall::batch,
    readconsole,
    physdev,
    privop,
    debugreg,
    cr3,
    hypercall_page_msr,
    pit,
    ptwr,
}

const NR_CASES: usize = total_len(LISTS);
/// The cases of all families, in run order.
pub const LIST: &[CaseInfo] = &concat::<_, NR_CASES>(LISTS);
/// The case functions, parallel to `LIST`.
#[cfg(target_os = "none")]
pub const FNS: &[fn() -> super::Outcome] = &concat::<_, NR_CASES>(FN_LISTS);

/// Where xen-core and Xen 4.17 differ, and why. `xtask conformance` accepts
/// a disagreement only for a case listed here.
pub static DIFFERENCES: &[Difference] = &[
    Difference {
        case: "memory_op_frames_given_are_scrubbed",
        reason: "xen-core zeroes every frame when it hands it out, so no domain ever sees another's old data. Xen 4.17 scrubs a freed page only when its domain is dying (or with scrub_domheap): a page a live guest gives back keeps its contents, and the same guest (or another) may get it back unscrubbed; Xen expects guests to clear pages before ballooning them out.",
    },
    Difference {
        case: "gnttab_dump_table_ok",
        reason: "The issue asks for GNTTABOP_dump_table, which xen-core implements (it prints the domain's live entries on the console); Xen 4.17 no longer has the sub-op and returns -ENOSYS.",
    },
    Difference {
        case: "trap_int20_without_entry_is_gp",
        reason: "QEMU TCG reports the IDT vector in a #GP error code as vector*16+2, not the architectural vector*8+2. Xen 4.17 passes that on (0x202); xen-core decodes the `int` instruction and delivers the architectural 0x102.",
    },
    Difference {
        case: "trap_int20_dpl1_allowed_in_kernel",
        reason: "Same TCG error-code quirk: Xen 4.17 derives vector 0x40 from 0x202, finds no DPL-1 entry there and injects #GP; xen-core decodes `int $0x20` and delivers vector 0x20 as the trap table allows. On real hardware both agree.",
    },
    Difference {
        case: "memory_op_decrease_of_shared_info_does_nothing",
        reason: "Xen 4.17 counts the shared_info frame as given back (1 extent) but keeps the page alive through its own reference; xen-core's frame table holds no hypervisor reference on it, so it refuses to give back shared_info and grant-table frames (0 extents) rather than free a frame it still writes. Either way the page is never reused while the domain lives.",
    },
];
