//! Dom0's domain-lifecycle self-test: create, populate and destroy domains
//! through domctl and memory_op, and check that every frame comes back.

use pv_guest_kernel::hypercall::hypercall5;
use pv_guest_kernel::println;
use xen_public::hypercall as nr;

fn domctl(op: &mut [u32; 36]) -> i64 {
    // SAFETY: the domctl structure is ours.
    unsafe { hypercall5(nr::DOMCTL, op.as_mut_ptr() as u64, 0, 0, 0, 0) }
}

fn op(cmd: u32, dom: u16) -> [u32; 36] {
    let mut o = [0u32; 36];
    o[0] = cmd;
    o[1] = 0x15;
    o[2] = u32::from(dom);
    o
}

fn free_pages() -> u64 {
    let mut s = [0u32; 34];
    s[0] = 3;
    s[1] = 0x15;
    // SAFETY: the sysctl structure is ours.
    let rc = unsafe { hypercall5(nr::SYSCTL, s.as_mut_ptr() as u64, 0, 0, 0, 0) };
    if rc != 0 { 0 } else { u64::from(s[14]) | (u64::from(s[15]) << 32) }
}

/// One cycle: `Err(step)` names what failed.
fn cycle(pages: u64) -> Result<(), &'static str> {
    let mut c = op(1, 0);
    c[11] = 1; // max_vcpus
    c[12] = 1023;
    c[13] = u32::MAX;
    c[14] = u32::MAX;
    c[15] = 1; // grant_opts: version 1
    if domctl(&mut c) != 0 {
        return Err("createdomain");
    }
    let id = c[2] as u16;
    let mut m = op(11, id);
    m[4] = (pages * 4) as u32;
    if domctl(&mut m) != 0 {
        return Err("max_mem");
    }
    let mut list = [0u64; 64];
    for (i, e) in list.iter_mut().enumerate() {
        *e = i as u64;
    }
    let resv: [u64; 4] = [list.as_mut_ptr() as u64, pages, 0, u64::from(id)];
    // SAFETY: the reservation and its extent list are ours.
    let got = unsafe { hypercall5(nr::MEMORY_OP, 6, resv.as_ptr() as u64, 0, 0, 0) };
    if got != pages as i64 {
        return Err("populate_physmap");
    }
    if domctl(&mut op(2, id)) != 0 {
        return Err("destroydomain");
    }
    Ok(())
}

/// 100 create/populate/destroy cycles; the free-frame count must end where
/// it started.
pub fn leak_test() {
    let before = free_pages();
    for i in 0..100 {
        if let Err(step) = cycle(64) {
            println!("dom0: domains: cycle {i}: {step} failed");
            return;
        }
    }
    let after = free_pages();
    println!("dom0: domains: 100 create/populate/destroy cycles; free pages {before} before, {after} after");
    println!("dom0: domains: {}", if before == after { "no frame leaked" } else { "frames leaked" });
}
