//! Mapping `shared_info` and reading the fields the runtime needs, at the
//! offsets of `xen_public::SharedInfo`.

use crate::hypercall;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};
use xen_public::event_channel::EvtchnBindVirq;
use xen_public::{SharedInfo, VcpuInfo, VcpuTimeInfo};

/// Where shared_info is mapped, 0 until [`map`] succeeds.
static SHARED_INFO_VA: AtomicU64 = AtomicU64::new(0);

/// `vcpu_info[0].evtchn_upcall_mask`.
const VCPU0_UPCALL_MASK: u64 = (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_upcall_mask)) as u64;
/// `vcpu_info[0].arch.cr2`.
const VCPU0_CR2: u64 = (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, arch)) as u64;

/// Map the shared_info frame (machine address `maddr`) at `va`, a page of
/// the initial region the caller gives up.
pub fn map(va: u64, maddr: u64) -> i64 {
    let rc = hypercall::update_va_mapping(va, (maddr & !0xfff) | crate::mm::PTE_RW, xen_public::xen::UVMF_INVLPG);
    if rc == 0 {
        SHARED_INFO_VA.store(va, Ordering::Release);
    }
    rc
}

unsafe extern "C" {
    /// A page of the kernel image given up to map shared_info (`arch`).
    static shared_info_page: [u8; 4096];
}

/// At entry: map shared_info over the page the image reserves for it, mask
/// event upcalls (a domU starts with them unmasked, as Xen builds it), and
/// in a domU register the event callback, since its user programs run with
/// upcalls enabled.
pub fn map_at_boot(si: &xen_public::StartInfo) {
    let va = core::ptr::addr_of!(shared_info_page) as u64;
    if map(va, si.shared_info) != 0 {
        return;
    }
    // SAFETY: vcpu_info[0].evtchn_upcall_mask is a byte of the page just
    // mapped; the hypervisor reads it.
    unsafe { ((va + VCPU0_UPCALL_MASK) as *mut u8).write_volatile(1) };
    if !si.sif_flags().contains(xen_public::SifFlags::INITDOMAIN) {
        crate::events::register();
    }
}

/// Where shared_info is mapped (0 if not yet).
pub fn base() -> u64 {
    SHARED_INFO_VA.load(Ordering::Acquire)
}

/// `vcpu_info[0].arch.cr2`, once shared_info is mapped.
pub fn cr2() -> Option<u64> {
    let va = SHARED_INFO_VA.load(Ordering::Acquire);
    // SAFETY: a non-zero value means `map` mapped the shared_info page
    // there; the field is 8-aligned and written only by the hypervisor.
    (va != 0).then(|| unsafe { ((va + VCPU0_CR2) as *const u64).read_volatile() })
}

/// `vcpu_info[0].time`.
const VCPU0_TIME: u64 = (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, time)) as u64;
/// The wall clock's seconds, low and high halves.
const WC_SEC: u64 = offset_of!(SharedInfo, wc_sec) as u64;
const WC_SEC_HI: u64 = offset_of!(SharedInfo, wc_sec_hi) as u64;

/// The time-stamp counter (the hypervisor's own: PV guests read it
/// unscaled).
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn snapshot(va: u64) -> crate::pvclock::TimeInfo {
    // SAFETY: shared_info is mapped at `va`; vcpu_info[0].time is an
    // 8-aligned `vcpu_time_info` in it (a torn read is caught by the
    // caller's version check).
    let t = unsafe { ((va + VCPU0_TIME) as *const VcpuTimeInfo).read_volatile() };
    crate::pvclock::TimeInfo::from(&t)
}

/// Nanoseconds since the hypervisor booted, once shared_info is mapped:
/// retried while the hypervisor is updating the record (odd or changed
/// version).
pub fn now_ns() -> Option<u64> {
    let va = SHARED_INFO_VA.load(Ordering::Acquire);
    if va == 0 {
        return None;
    }
    loop {
        let t = snapshot(va);
        let ns = t.system_time_at(rdtsc());
        if t.version & 1 == 0 && snapshot(va).version == t.version {
            return Some(ns);
        }
    }
}

/// The TSC's rate in kHz, from vcpu_info[0].time's scale.
pub fn tsc_khz() -> Option<u64> {
    let va = SHARED_INFO_VA.load(Ordering::Acquire);
    (va != 0).then(|| snapshot(va).tsc_khz()).flatten()
}

/// Seconds since 1970 (the wall clock at boot plus system time).
pub fn wallclock_seconds() -> Option<u64> {
    let va = SHARED_INFO_VA.load(Ordering::Acquire);
    if va == 0 {
        return None;
    }
    // SAFETY: the wall-clock fields lie inside the mapped shared_info page.
    let (sec, hi) = unsafe { (((va + WC_SEC) as *const u32).read_volatile(), ((va + WC_SEC_HI) as *const u32).read_volatile()) };
    Some((u64::from(hi) << 32 | u64::from(sec)) + now_ns()? / 1_000_000_000)
}

/// Wait `ns` nanoseconds, yielding the CPU meanwhile.
pub fn sleep_ns(ns: u64) -> Option<()> {
    let deadline = now_ns()? + ns;
    while now_ns()? < deadline {
        hypercall::sched_yield();
    }
    Some(())
}

/// Block for `ns` nanoseconds with `SCHEDOP_poll` on no port and a
/// timeout (no event channel needed), so the vCPU is switched out and in;
/// at most 1000 polls, in case the timeout never fires.
pub fn poll_sleep_ns(ns: u64) -> Option<()> {
    let deadline = now_ns()? + ns;
    let mut polls = 0;
    while now_ns().is_some_and(|t| t < deadline) && polls < 1000 {
        hypercall::sched_poll(&[], deadline);
        polls += 1;
    }
    Some(())
}

/// `set_timer_op(abs_ns)`: a single-shot timer at system time `abs_ns`,
/// delivered on VIRQ_TIMER; 0 cancels.
pub fn set_timer(abs_ns: u64) -> i64 {
    hypercall::set_timer_op(abs_ns)
}

/// `SCHEDOP_block`: sleep until an event upcall is pending (unmasks
/// upcalls, as Xen does).
pub fn block() -> i64 {
    hypercall::sched_block()
}

/// `VIRQ_TIMER`.
const VIRQ_TIMER: u32 = 0;

/// Bind VIRQ_TIMER on vCPU 0: the port.
pub fn bind_timer_virq() -> Result<u32, i64> {
    let mut v = EvtchnBindVirq { virq: VIRQ_TIMER, vcpu: 0, port: 0 };
    let rc = crate::events::op(&mut v);
    if rc != 0 { Err(rc) } else { Ok(v.port) }
}

/// Sleep until system time `deadline` on the timer (VIRQ_TIMER on `port`);
/// returns the system time at wake-up.
pub fn sleep_until(deadline: u64, port: u32) -> Option<u64> {
    let before = crate::events::count(port);
    if set_timer(deadline) != 0 {
        return None;
    }
    while crate::events::count(port) == before {
        block();
    }
    now_ns()
}
