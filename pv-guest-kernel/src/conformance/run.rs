//! Running the suite: one `begin` and one `result` line per case, state
//! reset between cases.

use super::{CASE_FNS, CASES, Outcome, ctx};
use crate::{StartInfo, hypercall, println, shared, traps};

/// Put the vCPU back in the state every case starts from.
fn reset() {
    hypercall::clear_trap_table();
    traps::install();
    crate::events::disable();
    crate::events::reset();
    crate::events::reset_counts();
    for w in 0..64u32 {
        crate::events::set_mask(w * 64, false);
    }
    hypercall::fpu_taskswitch(false);
    for which in [0u64, 1, 2] {
        hypercall::set_segment_base(which, 0);
    }
}

/// Run the cases from index `from` whose names contain `filter`.
pub fn run(si: &'static StartInfo, from: usize, filter: &str) {
    ctx::init(si);
    traps::install();
    if let Some(va) = ctx::spare_page() {
        shared::map(va, si.shared_info);
    }
    println!("conformance: cases {}", CASES.len());
    for (info, case) in CASES.iter().zip(CASE_FNS.iter()).skip(from) {
        if !info.name.contains(filter) {
            continue;
        }
        println!("conformance: begin {}", info.name);
        reset();
        match case() {
            Outcome::Success => println!("conformance: result {} success", info.name),
            Outcome::Failure(m) => println!("conformance: result {} failure {}", info.name, m.as_str()),
            Outcome::Error(m) => println!("conformance: result {} error {}", info.name, m.as_str()),
            Outcome::Skip(m) => println!("conformance: result {} skip {}", info.name, m.as_str()),
        }
    }
    reset();
    println!("conformance: end");
}
