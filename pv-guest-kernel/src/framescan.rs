//! `frame-scan`: a hostile domU that tries to map every machine frame.
//!
//! It points one of its own PTEs (`update_va_mapping`, read-only) at each
//! frame from 0 to `XENMEM_maximum_ram_page`, counting the frames that map:
//! only its own may (its P2M's, its shared_info page and its grant-table
//! frame). Before that it asks for the hypervisor's trace
//! buffers the two ways dom0's `xl trace` uses (`XEN_SYSCTL_tbuf_op`
//! get_info, and `mmu_update` with `foreigndom` = `DOMID_XEN`), and to set
//! dom0's TSC mode (`XEN_DOMCTL_settscinfo`), all of which a domU must be
//! refused. Run while `xl trace` has the buffers live, so the
//! scan crosses frames the hypervisor shares with dom0 only.
//!
//! Console contract: `scan: ` lines; the verdict is `scan: mapped <n> of
//! its own frames and <m> of others` (`m` must be 0), with the first few
//! foreign frames that mapped and a count of each refusal's errno.

use pv_guest_kernel::alloc::EarlyAlloc;
use pv_guest_kernel::mm::{self, PTE_RO, p2m};
use pv_guest_kernel::notes::VIRT_BASE;
use pv_guest_kernel::{StartInfo, hypercall, println};
use xen_public::MmuUpdate;
use xen_public::errno::name;
use xen_public::sysctl::{XEN_SYSCTL_TBUF_OP, XenSysctl, XenSysctlTbufOp};

/// Foreign frames that mapped, named on the console.
const SHOWN: usize = 8;

/// Run the scan and power off.
pub fn run(si: &StartInfo) -> ! {
    trace_buffers_refused();
    let mut pages = EarlyAlloc::from_start_info(si.pt_base, si.nr_pt_frames, VIRT_BASE, si.nr_pages);
    let Some(va) = pages.alloc_page() else {
        println!("scan: no spare page: failed");
        crate::xs::poweroff();
    };
    let home = mm::mfn_of(si, va);
    let top = hypercall::maximum_ram_page();
    if top <= 0 {
        println!("scan: XENMEM_maximum_ram_page -> {top}: failed");
        crate::xs::poweroff();
    }
    // The first grant-table frame is the domain's too (Xen gives a domU
    // one at creation; xen-core at the first setup).
    let mut grant = [0u64; 1];
    let (rc, status) = hypercall::gnttab_setup_table(xen_public::DOMID_SELF, &mut grant);
    println!("scan: GNTTABOP_setup_table of 1 frame -> {rc}, status {status}");
    let mut tally = Tally::default();
    for mfn in 0..=top as u64 {
        let rc = mm::map(va, mfn, false).err().map_or(0, |e| e.0);
        tally.add(mfn, rc, own(si, grant[0], mfn));
    }
    let back = mm::map(va, home, true);
    println!("scan: tried frames 0..={top}; the page maps its own frame again: {back:?}");
    tally.report();
    crate::xs::poweroff();
}

/// `XEN_SYSCTL_tbuf_op` and a `DOMID_XEN` mapping, from a domU.
fn trace_buffers_refused() {
    let mut op = XenSysctl::new(XEN_SYSCTL_TBUF_OP);
    op.set_payload(&XenSysctlTbufOp::default());
    // SAFETY: the tbuf_op payload holds only a CPU-map handle, left null
    // (get_info does not read it).
    let rc = unsafe { hypercall::sysctl(&mut op) };
    println!("scan: XEN_SYSCTL_tbuf_op get_info from a domU -> {rc} ({})", name(rc));
    // An entry of our own L1 (the first page of the initial region), a
    // frame the hypervisor owns: the request is refused for its owner.
    let l1e = MmuUpdate { ptr: 0, val: PTE_RO };
    let (rc, done) = hypercall::mmu_update(&[l1e], xen_public::DOMID_XEN);
    println!("scan: mmu_update with foreigndom DOMID_XEN from a domU -> {rc} ({}), {done} done", name(rc));
    // The toolstack's TSC setting (xl.cfg tsc_mode), on dom0: tools only.
    let mut op = xen_public::domctl::XenDomctl::new(xen_public::domctl::XEN_DOMCTL_SETTSCINFO, 0);
    op.set_payload(&xen_public::domctl::XenDomctlTscInfo { tsc_mode: xen_public::domctl::TSC_MODE_ALWAYS_EMULATE, ..Default::default() });
    // SAFETY: the tsc_info payload holds no guest handle.
    let rc = unsafe { hypercall::domctl(&mut op) };
    println!("scan: XEN_DOMCTL_settscinfo on dom0 from a domU -> {rc} ({})", name(rc));
}

/// Whether `mfn` is the domain's own: a frame of its P2M (the M2P says
/// which pfn, and the P2M agrees), its shared_info page or its grant-table
/// frame (`grant`, from GNTTABOP_setup_table).
fn own(si: &StartInfo, grant: u64, mfn: u64) -> bool {
    if mfn == si.shared_info >> 12 || mfn == grant {
        return true;
    }
    let pfn = pv_guest_kernel::console::mfn_to_pfn(mfn);
    pfn < si.nr_pages && p2m(si, pfn) == mfn
}

/// What the scan saw.
#[derive(Default)]
struct Tally {
    own: u64,
    foreign: u64,
    shown: heapless::Vec<u64, SHOWN>,
    /// (errno, count) of the refusals.
    refused: heapless::Vec<(i64, u64), 16>,
}

impl Tally {
    fn add(&mut self, mfn: u64, rc: i64, own: bool) {
        match (rc, own) {
            (0, true) => self.own += 1,
            (0, false) => {
                self.foreign += 1;
                let _ = self.shown.push(mfn);
            }
            (rc, _) => match self.refused.iter_mut().find(|(e, _)| *e == rc) {
                Some((_, n)) => *n += 1,
                None => {
                    let _ = self.refused.push((rc, 1));
                }
            },
        }
    }

    fn report(&self) {
        for (rc, n) in &self.refused {
            println!("scan: refused {n} times with {rc} ({})", name(*rc));
        }
        if !self.shown.is_empty() {
            println!("scan: foreign frames that mapped (first {SHOWN}): {:x?}", self.shown);
        }
        println!("scan: mapped {} of its own frames and {} of others", self.own, self.foreign);
    }
}
