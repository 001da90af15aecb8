//! Event channels in the guest: the upcall entry, a handler per port,
//! and wrappers for binding, sending, masking and polling.
//!
//! The hypervisor enters `guest_event_entry` with events masked and the
//! frame `{RCX, R11, RIP, CS, RFLAGS, RSP, SS}`; the dispatcher clears
//! `evtchn_upcall_pending`, takes the selector word by word, and runs the
//! handler of every pending, unmasked port (clearing its pending bit
//! first). The `iret` back unmasks events, and the hypervisor delivers
//! again if more arrived meanwhile. The `EVTCHNOP_*` calls take
//! `xen_public`'s argument structures ([`op`] picks the sub-op from the
//! type); the bitmaps are found at `xen_public::SharedInfo`'s offsets.

use crate::hypercall;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use xen_public::event_channel::{EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnClose, EvtchnReset, EvtchnSend, EvtchnUnmask};
use xen_public::hypercall as nr;
use xen_public::{SharedInfo, VcpuInfo};

pub use crate::hypercall::EvtchnOp;

/// Byte offsets in `shared_info` of what the dispatcher uses: vCPU 0's
/// upcall flags and selector, and the 2-level pending and mask bitmaps.
const UPCALL_PENDING: u64 = (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_upcall_pending)) as u64;
const UPCALL_MASK: u64 = (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_upcall_mask)) as u64;
const PENDING_SEL: u64 = (offset_of!(SharedInfo, vcpu_info) + offset_of!(VcpuInfo, evtchn_pending_sel)) as u64;
const PENDING: u64 = offset_of!(SharedInfo, evtchn_pending) as u64;
const MASK: u64 = offset_of!(SharedInfo, evtchn_mask) as u64;

/// Ports with a handler slot.
pub const NR_PORTS: usize = 4096;

/// How many events each port has received (the built-in handler).
static COUNTS: [AtomicU32; NR_PORTS] = [const { AtomicU32::new(0) }; NR_PORTS];

core::arch::global_asm!(
    r#"
    .text
    .global guest_event_entry
guest_event_entry:
    pop %rcx
    pop %r11
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call {dispatch}
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    push $0                         /* iret flags */
    jmp hypercall_page + {iret} * 32
    "#,
    dispatch = sym guest_event_dispatch,
    iret = const nr::IRET,
    options(att_syntax)
);

unsafe extern "C" {
    fn guest_event_entry();
}

/// The mapped shared_info page, or 0.
fn shinfo() -> u64 {
    crate::shared::base()
}

fn word(off: u64) -> &'static AtomicU64 {
    // SAFETY: `off` is an 8-aligned offset inside the mapped shared_info
    // page, whose words the hypervisor also updates atomically.
    unsafe { &*((shinfo() + off) as *const AtomicU64) }
}

/// TSC at the start of the most recent upcall (for latency measurements).
static LAST_UPCALL_TSC: AtomicU64 = AtomicU64::new(0);

/// TSC value taken when the last upcall began.
pub fn last_upcall_tsc() -> u64 {
    LAST_UPCALL_TSC.load(Ordering::SeqCst)
}

extern "C" fn guest_event_dispatch() {
    LAST_UPCALL_TSC.store(crate::shared::rdtsc(), Ordering::SeqCst);
    if shinfo() == 0 {
        return;
    }
    // SAFETY: vcpu_info[0].evtchn_upcall_pending, a byte of the mapped
    // shared_info page.
    unsafe { ((shinfo() + UPCALL_PENDING) as *mut u8).write_volatile(0) };
    let mut sel = word(PENDING_SEL).swap(0, Ordering::SeqCst);
    while sel != 0 {
        let w = sel.trailing_zeros() as u64;
        sel &= sel - 1;
        let mut bits = word(PENDING + w * 8).load(Ordering::SeqCst) & !word(MASK + w * 8).load(Ordering::SeqCst);
        while bits != 0 {
            let b = bits.trailing_zeros() as u64;
            bits &= bits - 1;
            word(PENDING + w * 8).fetch_and(!(1 << b), Ordering::SeqCst);
            COUNTS[(w * 64 + b) as usize].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The upcall entry's address (what [`register`] registers).
pub fn entry_address() -> u64 {
    guest_event_entry as *const () as u64
}

/// Register the upcall entry without changing the mask (a domU does this
/// at boot: its user programs run with events enabled, so an upcall can
/// come at any time).
pub fn register() -> i64 {
    hypercall::register_callback(xen_public::callback::CALLBACKTYPE_EVENT, 0, guest_event_entry as *const () as u64)
}

/// Register the upcall entry and unmask event delivery. Needs shared_info
/// mapped (`shared::map`).
pub fn init() -> i64 {
    let rc = register();
    if rc == 0 {
        enable();
    }
    rc
}

/// Unmask upcalls; if one was pending, make a hypercall so it is delivered
/// on the way back (Xen's `force_evtchn_callback`).
pub fn enable() {
    // SAFETY: vcpu_info[0].evtchn_upcall_mask, a byte of the mapped page.
    unsafe { ((shinfo() + UPCALL_MASK) as *mut u8).write_volatile(0) };
    // SAFETY: vcpu_info[0].evtchn_upcall_pending, likewise.
    if unsafe { ((shinfo() + UPCALL_PENDING) as *const u8).read_volatile() } != 0 {
        hypercall::xen_version();
    }
}

/// Mask upcalls.
pub fn disable() {
    // SAFETY: vcpu_info[0].evtchn_upcall_mask, a byte of the mapped page.
    unsafe { ((shinfo() + UPCALL_MASK) as *mut u8).write_volatile(1) };
}

/// Events received on `port`.
pub fn count(port: u32) -> u32 {
    COUNTS.get(port as usize).map_or(0, |c| c.load(Ordering::SeqCst))
}

/// Forget the counts.
pub fn reset_counts() {
    for c in &COUNTS {
        c.store(0, Ordering::SeqCst);
    }
}

/// Mask or unmask `port` in shared_info directly (masking needs no
/// hypercall; see [`unmask`] for the delivering kind).
pub fn set_mask(port: u32, masked: bool) {
    let w = word(MASK + u64::from(port / 64) * 8);
    if masked {
        w.fetch_or(1 << (port % 64), Ordering::SeqCst);
    } else {
        w.fetch_and(!(1 << (port % 64)), Ordering::SeqCst);
    }
}

/// Clear `port`'s pending bit (after handling it without an upcall).
pub fn clear_pending(port: u32) {
    word(PENDING + u64::from(port / 64) * 8).fetch_and(!(1 << (port % 64)), Ordering::SeqCst);
}

/// Whether `port` is pending.
pub fn is_pending(port: u32) -> bool {
    word(PENDING + u64::from(port / 64) * 8).load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

/// `event_channel_op` on one of `xen_public::event_channel`'s argument
/// structures; the sub-op is the type's ([`EvtchnOp::CMD`]).
pub fn op<T: EvtchnOp>(arg: &mut T) -> i64 {
    hypercall::event_channel_op(arg)
}

/// EVTCHNOP_alloc_unbound for `remote` on ourselves.
pub fn alloc_unbound(remote: u16) -> Result<u32, i64> {
    let mut a = EvtchnAllocUnbound { dom: xen_public::DOMID_SELF, remote_dom: remote, port: 0 };
    let rc = op(&mut a);
    if rc != 0 { Err(rc) } else { Ok(a.port) }
}

/// EVTCHNOP_bind_interdomain to `remote_port` of `remote_dom`.
pub fn bind_interdomain(remote_dom: u16, remote_port: u32) -> Result<u32, i64> {
    let mut a = EvtchnBindInterdomain { remote_dom, _pad0: 0, remote_port, local_port: 0 };
    let rc = op(&mut a);
    if rc != 0 { Err(rc) } else { Ok(a.local_port) }
}

/// EVTCHNOP_send; traced (`crate::gtrace`) with the TSC before and after.
pub fn send(port: u32) -> i64 {
    let tsc_before = crate::gtrace::tsc_if_on();
    let rc = op(&mut EvtchnSend { port });
    if let Some(tsc_before) = tsc_before {
        crate::gtrace::record(xen_public::trace_guest::GuestEvent::EvtchnSend { port, result: rc as i32, tsc_before });
    }
    rc
}

/// EVTCHNOP_unmask (delivers what was pending).
pub fn unmask(port: u32) -> i64 {
    op(&mut EvtchnUnmask { port })
}

/// EVTCHNOP_close.
pub fn close(port: u32) -> i64 {
    op(&mut EvtchnClose { port })
}

/// EVTCHNOP_reset of ourselves.
pub fn reset() -> i64 {
    op(&mut EvtchnReset { dom: xen_public::DOMID_SELF })
}

/// SCHEDOP_poll on `ports` with a timeout (absolute system time, 0 = none).
pub fn poll(ports: &[u32], timeout: u64) -> i64 {
    hypercall::sched_poll(ports, timeout)
}
