//! Trace buffers: mirrors Xen 4.17's `public/trace.h`, the payloads Xen's
//! trace call sites write, and xen-core's own events.
//!
//! Owns three things:
//! - the numbers: every `TRC_*` class, subclass and event constant of
//!   `trace.h`, and the events of xen-core's own class [`TRC_XENCORE`]
//!   (numbered in a class bit Xen leaves unused, see its doc);
//! - the record codec of `struct t_rec` ([`TraceRecord`]): a header word
//!   (`event:28`, `extra_u32:3`, `cycles_included:1`, little-endian
//!   bitfields as x86 GCC packs them), an optional 64-bit TSC as two u32s
//!   (low first), then 0..=7 extra u32s;
//! - typed payloads ([`Event`]): one constructor per event that produces
//!   exactly the words Xen's emitting code writes (`vcpu_runstate_change` of
//!   `common/sched/core.c`, `__trace_hypercall` of `common/trace.c`,
//!   `__trace_pv_trap` of `arch/x86/pv/trace.c`, the `TRACE_nD` call sites)
//!   and a decoder back ([`TraceRecord::decode_event`]).
//!
//! Also the buffer metadata Xen shares with dom0: `struct t_buf`
//! ([`TBuf`]), the `t_info` page layout ([`TInfoLayout`]) and the ring index
//! arithmetic of `common/trace.c`. The sysctl payload is
//! [`crate::sysctl::XenSysctlTbufOp`] (`XEN_SYSCTL_tbuf_op`,
//! `XEN_SYSCTL_TBUFOP_*`).
//!
//! Invariant: every number and every payload word order is Xen 4.17's; a
//! record this module encodes is byte for byte what Xen writes, and the
//! decoder rejects (never panics on) a truncated or malformed record.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::hypercall;

// ---------------------------------------------------------------------------
// Numbers of trace.h
// ---------------------------------------------------------------------------

/// `TRACE_EXTRA_MAX`: most extra u32 words in one record.
pub const TRACE_EXTRA_MAX: usize = 7;
/// `TRACE_EXTRA_SHIFT`: where `extra_u32` sits in the header word.
pub const TRACE_EXTRA_SHIFT: u32 = 28;
/// `TRC_CLS_SHIFT`: the class bits start here (bits 16..=27).
pub const TRC_CLS_SHIFT: u32 = 16;
/// `TRC_SUBCLS_SHIFT`: the subclass bits start here (bits 12..=15).
pub const TRC_SUBCLS_SHIFT: u32 = 12;
/// The `event:28` field of the header.
pub const TRC_EVENT_MASK: u32 = 0x0fff_ffff;
/// `TRC_HD_CYCLE_FLAG`: the header's `cycles_included` bit.
pub const TRC_HD_CYCLE_FLAG: u32 = 1 << 31;
/// `TRC_64_FLAG`: the event's addresses are 64-bit (x86_64 PV guests).
pub const TRC_64_FLAG: u32 = 0x100;

/// `TRC_GEN`: general (buffer bookkeeping) class.
pub const TRC_GEN: u32 = 0x0001_f000;
/// `TRC_SCHED`: scheduler class.
pub const TRC_SCHED: u32 = 0x0002_f000;
/// `TRC_DOM0OP`: dom0 operations class.
pub const TRC_DOM0OP: u32 = 0x0004_f000;
/// `TRC_HVM`: HVM class.
pub const TRC_HVM: u32 = 0x0008_f000;
/// `TRC_MEM`: memory class.
pub const TRC_MEM: u32 = 0x0010_f000;
/// `TRC_PV`: PV guest entry points class.
pub const TRC_PV: u32 = 0x0020_f000;
/// `TRC_SHADOW`: shadow paging class.
pub const TRC_SHADOW: u32 = 0x0040_f000;
/// `TRC_HW`: hardware class.
pub const TRC_HW: u32 = 0x0080_f000;
/// `TRC_GUEST`: records a guest generates.
pub const TRC_GUEST: u32 = 0x0800_f000;
/// `TRC_ALL`: every class and subclass (the default event mask).
pub const TRC_ALL: u32 = 0x0fff_f000;

/// `TRC_HVM_ENTRYEXIT` subclass.
pub const TRC_HVM_ENTRYEXIT: u32 = 0x0008_1000;
/// `TRC_HVM_HANDLER` subclass.
pub const TRC_HVM_HANDLER: u32 = 0x0008_2000;
/// `TRC_HVM_EMUL` subclass.
pub const TRC_HVM_EMUL: u32 = 0x0008_4000;
/// `TRC_SCHED_MIN` subclass: just runstate changes.
pub const TRC_SCHED_MIN: u32 = 0x0002_1000;
/// `TRC_SCHED_CLASS` subclass: scheduler-specific.
pub const TRC_SCHED_CLASS: u32 = 0x0002_2000;
/// `TRC_SCHED_VERBOSE` subclass: more inclusive scheduling.
pub const TRC_SCHED_VERBOSE: u32 = 0x0002_8000;
/// `TRC_DOM0_DOMOPS` subclass: domain manipulations.
pub const TRC_DOM0_DOMOPS: u32 = 0x0004_1000;
/// `TRC_HW_PM` subclass: power management.
pub const TRC_HW_PM: u32 = 0x0080_1000;
/// `TRC_HW_IRQ` subclass: IRQ handling.
pub const TRC_HW_IRQ: u32 = 0x0080_2000;
/// `TRC_PV_ENTRY` subclass: hypervisor entry points for PV guests.
pub const TRC_PV_ENTRY: u32 = 0x0020_1000;
/// `TRC_PV_SUBCALL` subclass: sub-calls of a multicall.
pub const TRC_PV_SUBCALL: u32 = 0x0020_2000;

/// `TRC_LOST_RECORDS`: the buffer was full; payload [`Event::lost_records`].
pub const TRC_LOST_RECORDS: u32 = TRC_GEN + 1;
/// `TRC_TRACE_WRAP_BUFFER`: padding up to the end of the buffer (skipped).
pub const TRC_TRACE_WRAP_BUFFER: u32 = TRC_GEN + 2;
/// `TRC_TRACE_CPU_CHANGE`: xentrace's chunk header in a dump, payload
/// [`Event::cpu_change`].
pub const TRC_TRACE_CPU_CHANGE: u32 = TRC_GEN + 3;

/// `TRC_SCHED_RUNSTATE_CHANGE`: bits 8..=9 carry the old runstate, bits
/// 4..=5 the new one (see [`Event::runstate_change`]).
pub const TRC_SCHED_RUNSTATE_CHANGE: u32 = TRC_SCHED_MIN + 1;
/// `TRC_SCHED_CONTINUE_RUNNING`.
pub const TRC_SCHED_CONTINUE_RUNNING: u32 = TRC_SCHED_MIN + 2;
/// `TRC_SCHED_DOM_ADD`.
pub const TRC_SCHED_DOM_ADD: u32 = TRC_SCHED_VERBOSE + 1;
/// `TRC_SCHED_DOM_REM`.
pub const TRC_SCHED_DOM_REM: u32 = TRC_SCHED_VERBOSE + 2;
/// `TRC_SCHED_SLEEP`.
pub const TRC_SCHED_SLEEP: u32 = TRC_SCHED_VERBOSE + 3;
/// `TRC_SCHED_WAKE`.
pub const TRC_SCHED_WAKE: u32 = TRC_SCHED_VERBOSE + 4;
/// `TRC_SCHED_YIELD`.
pub const TRC_SCHED_YIELD: u32 = TRC_SCHED_VERBOSE + 5;
/// `TRC_SCHED_BLOCK`.
pub const TRC_SCHED_BLOCK: u32 = TRC_SCHED_VERBOSE + 6;
/// `TRC_SCHED_SHUTDOWN`.
pub const TRC_SCHED_SHUTDOWN: u32 = TRC_SCHED_VERBOSE + 7;
/// `TRC_SCHED_CTL`.
pub const TRC_SCHED_CTL: u32 = TRC_SCHED_VERBOSE + 8;
/// `TRC_SCHED_ADJDOM`.
pub const TRC_SCHED_ADJDOM: u32 = TRC_SCHED_VERBOSE + 9;
/// `TRC_SCHED_SWITCH`.
pub const TRC_SCHED_SWITCH: u32 = TRC_SCHED_VERBOSE + 10;
/// `TRC_SCHED_S_TIMER_FN` (defined; Xen 4.17 emits it nowhere).
pub const TRC_SCHED_S_TIMER_FN: u32 = TRC_SCHED_VERBOSE + 11;
/// `TRC_SCHED_T_TIMER_FN` (defined; Xen 4.17 emits it nowhere).
pub const TRC_SCHED_T_TIMER_FN: u32 = TRC_SCHED_VERBOSE + 12;
/// `TRC_SCHED_DOM_TIMER_FN` (defined; Xen 4.17 emits it nowhere).
pub const TRC_SCHED_DOM_TIMER_FN: u32 = TRC_SCHED_VERBOSE + 13;
/// `TRC_SCHED_SWITCH_INFPREV`.
pub const TRC_SCHED_SWITCH_INFPREV: u32 = TRC_SCHED_VERBOSE + 14;
/// `TRC_SCHED_SWITCH_INFNEXT`.
pub const TRC_SCHED_SWITCH_INFNEXT: u32 = TRC_SCHED_VERBOSE + 15;
/// `TRC_SCHED_SHUTDOWN_CODE`.
pub const TRC_SCHED_SHUTDOWN_CODE: u32 = TRC_SCHED_VERBOSE + 16;
/// `TRC_SCHED_SWITCH_INFCONT`.
pub const TRC_SCHED_SWITCH_INFCONT: u32 = TRC_SCHED_VERBOSE + 17;

/// `TRC_DOM0_DOM_ADD`: `domain_create` finished.
pub const TRC_DOM0_DOM_ADD: u32 = TRC_DOM0_DOMOPS + 1;
/// `TRC_DOM0_DOM_REM`: `domain_destroy`'s final release.
pub const TRC_DOM0_DOM_REM: u32 = TRC_DOM0_DOMOPS + 2;

/// `TRC_MEM_PAGE_GRANT_MAP`.
pub const TRC_MEM_PAGE_GRANT_MAP: u32 = TRC_MEM + 1;
/// `TRC_MEM_PAGE_GRANT_UNMAP`.
pub const TRC_MEM_PAGE_GRANT_UNMAP: u32 = TRC_MEM + 2;
/// `TRC_MEM_PAGE_GRANT_TRANSFER`.
pub const TRC_MEM_PAGE_GRANT_TRANSFER: u32 = TRC_MEM + 3;
/// `TRC_MEM_SET_P2M_ENTRY`.
pub const TRC_MEM_SET_P2M_ENTRY: u32 = TRC_MEM + 4;
/// `TRC_MEM_DECREASE_RESERVATION`.
pub const TRC_MEM_DECREASE_RESERVATION: u32 = TRC_MEM + 5;
/// `TRC_MEM_POD_POPULATE`.
pub const TRC_MEM_POD_POPULATE: u32 = TRC_MEM + 16;
/// `TRC_MEM_POD_ZERO_RECLAIM`.
pub const TRC_MEM_POD_ZERO_RECLAIM: u32 = TRC_MEM + 17;
/// `TRC_MEM_POD_SUPERPAGE_SPLINTER`.
pub const TRC_MEM_POD_SUPERPAGE_SPLINTER: u32 = TRC_MEM + 18;

/// `TRC_PV_HYPERCALL` (the old format; Xen 4.17 writes `_V2`).
pub const TRC_PV_HYPERCALL: u32 = TRC_PV_ENTRY + 1;
/// `TRC_PV_TRAP`: a trap bounced to the guest (with [`TRC_64_FLAG`] for
/// 64-bit guests).
pub const TRC_PV_TRAP: u32 = TRC_PV_ENTRY + 3;
/// `TRC_PV_PAGE_FAULT`: a page fault bounced to the guest.
pub const TRC_PV_PAGE_FAULT: u32 = TRC_PV_ENTRY + 4;
/// `TRC_PV_FORCED_INVALID_OP`.
pub const TRC_PV_FORCED_INVALID_OP: u32 = TRC_PV_ENTRY + 5;
/// `TRC_PV_EMULATE_PRIVOP`.
pub const TRC_PV_EMULATE_PRIVOP: u32 = TRC_PV_ENTRY + 6;
/// `TRC_PV_EMULATE_4GB`.
pub const TRC_PV_EMULATE_4GB: u32 = TRC_PV_ENTRY + 7;
/// `TRC_PV_MATH_STATE_RESTORE`.
pub const TRC_PV_MATH_STATE_RESTORE: u32 = TRC_PV_ENTRY + 8;
/// `TRC_PV_PAGING_FIXUP`.
pub const TRC_PV_PAGING_FIXUP: u32 = TRC_PV_ENTRY + 9;
/// `TRC_PV_GDT_LDT_MAPPING_FAULT`.
pub const TRC_PV_GDT_LDT_MAPPING_FAULT: u32 = TRC_PV_ENTRY + 10;
/// `TRC_PV_PTWR_EMULATION`.
pub const TRC_PV_PTWR_EMULATION: u32 = TRC_PV_ENTRY + 11;
/// `TRC_PV_PTWR_EMULATION_PAE`.
pub const TRC_PV_PTWR_EMULATION_PAE: u32 = TRC_PV_ENTRY + 12;
/// `TRC_PV_HYPERCALL_V2`: hypercall entry, payload [`Event::hypercall`].
pub const TRC_PV_HYPERCALL_V2: u32 = TRC_PV_ENTRY + 13;
/// `TRC_PV_HYPERCALL_SUBCALL`: one call of a multicall, same payload.
pub const TRC_PV_HYPERCALL_SUBCALL: u32 = TRC_PV_SUBCALL + 14;
/// `TRC_PV_HYPERCALL_V2_ARG_MASK`: the argument-presence bits of word 0.
pub const TRC_PV_HYPERCALL_V2_ARG_MASK: u32 = 0xfff0_0000;

/// `TRC_PV_HYPERCALL_V2_ARG_32(i)`: argument `i` is present as 32 bits.
pub const fn trc_pv_hypercall_v2_arg_32(i: u32) -> u32 {
    0x1 << (20 + 2 * i)
}
/// `TRC_PV_HYPERCALL_V2_ARG_64(i)`: argument `i` is present as 64 bits.
pub const fn trc_pv_hypercall_v2_arg_64(i: u32) -> u32 {
    0x2 << (20 + 2 * i)
}

/// `TRC_PM_FREQ_CHANGE`.
pub const TRC_PM_FREQ_CHANGE: u32 = TRC_HW_PM + 0x01;
/// `TRC_PM_IDLE_ENTRY`.
pub const TRC_PM_IDLE_ENTRY: u32 = TRC_HW_PM + 0x02;
/// `TRC_PM_IDLE_EXIT`.
pub const TRC_PM_IDLE_EXIT: u32 = TRC_HW_PM + 0x03;
/// `TRC_HW_IRQ_MOVE_CLEANUP_DELAY`.
pub const TRC_HW_IRQ_MOVE_CLEANUP_DELAY: u32 = TRC_HW_IRQ + 0x1;
/// `TRC_HW_IRQ_MOVE_CLEANUP`.
pub const TRC_HW_IRQ_MOVE_CLEANUP: u32 = TRC_HW_IRQ + 0x2;
/// `TRC_HW_IRQ_BIND_VECTOR`.
pub const TRC_HW_IRQ_BIND_VECTOR: u32 = TRC_HW_IRQ + 0x3;
/// `TRC_HW_IRQ_CLEAR_VECTOR`.
pub const TRC_HW_IRQ_CLEAR_VECTOR: u32 = TRC_HW_IRQ + 0x4;
/// `TRC_HW_IRQ_MOVE_FINISH`.
pub const TRC_HW_IRQ_MOVE_FINISH: u32 = TRC_HW_IRQ + 0x5;
/// `TRC_HW_IRQ_ASSIGN_VECTOR`.
pub const TRC_HW_IRQ_ASSIGN_VECTOR: u32 = TRC_HW_IRQ + 0x6;
/// `TRC_HW_IRQ_UNMAPPED_VECTOR`.
pub const TRC_HW_IRQ_UNMAPPED_VECTOR: u32 = TRC_HW_IRQ + 0x7;
/// `TRC_HW_IRQ_HANDLED`: a guest-bound IRQ handled, payload
/// [`Event::irq_handled`].
pub const TRC_HW_IRQ_HANDLED: u32 = TRC_HW_IRQ + 0x8;

/// `RUNSTATE_running` as trace records carry it (2 bits).
pub const TRC_RUNSTATE_RUNNING: u32 = 0;
/// `RUNSTATE_runnable`.
pub const TRC_RUNSTATE_RUNNABLE: u32 = 1;
/// `RUNSTATE_blocked`.
pub const TRC_RUNSTATE_BLOCKED: u32 = 2;
/// `RUNSTATE_offline`.
pub const TRC_RUNSTATE_OFFLINE: u32 = 3;

/// `trace_will_trace_event`'s mask test (also `__trace_var`'s): `event`
/// is recorded under `mask` when they share a bit, a class bit (16..=27)
/// and a subclass bit (12..=15).
#[inline]
pub const fn event_in_mask(mask: u32, event: u32) -> bool {
    mask & event != 0
        && (mask >> TRC_CLS_SHIFT) & (event >> TRC_CLS_SHIFT) != 0
        && ((mask >> TRC_SUBCLS_SHIFT) & 0xf) & ((event >> TRC_SUBCLS_SHIFT) & 0xf) != 0
}

// ---------------------------------------------------------------------------
// xen-core's own class
// ---------------------------------------------------------------------------

/// xen-core's own class, `0x0400_f000` (class bit 26).
///
/// Why it is free: Xen 4.17's `trace.h` uses the class bits 0x001..=0x080
/// (GEN, SCHED, DOM0OP, HVM, MEM, PV, SHADOW, HW) and 0x800 (GUEST) only;
/// no Xen hypervisor code and no Xen tool defines 0x100, 0x200 or 0x400,
/// and xenalyze's toplevel table (`TOPLEVEL_GEN..TOPLEVEL_HW`) only knows
/// bits 0..=7. We take the highest free bit, 0x400, leaving 0x100 (next
/// to HW) for Xen to grow into. Xen's `__trace_var` filters on class bits
/// and then on subclass bits (12..=15) separately, so each of our
/// subclasses is one bit and the mask `TRC_ALL` (or `0x0400_f000`) lets
/// them all through, while e.g. `0x0400_2000` selects event channels only.
///
/// Note: xenalyze cannot process a record of a class outside bits 0..=7
/// (ours, and Xen's own `TRC_GUEST`): `find_toplevel_event` reports
/// "unexpected number bits(0)" (`ERR_RECORD`), at its default tolerance it
/// exits, and at `--tolerance=4` it loops on the record. A dump meant for
/// xenalyze leaves this class out (event mask, or filter the dump).
pub const TRC_XENCORE: u32 = 0x0400_f000;
/// Our subclass 1: hypercall exits.
pub const TRC_XENCORE_HCALL: u32 = 0x0400_1000;
/// Our subclass 2: event channels.
pub const TRC_XENCORE_EVTCHN: u32 = 0x0400_2000;
/// Our subclass 4: scheduling, timers and domain lifecycle.
pub const TRC_XENCORE_SCHED: u32 = 0x0400_4000;
/// Our subclass 8: memory (page-table pins, grant copies).
pub const TRC_XENCORE_MEM: u32 = 0x0400_8000;

/// Hypercall exit, the pair of Xen's [`TRC_PV_HYPERCALL_V2`] entry on the
/// same pCPU: `[op, result_lo, result_hi, cycles_lo, cycles_hi]` (result is
/// the guest's `rax`, cycles the TSC ticks since the entry record).
pub const TRC_XENCORE_HYPERCALL_EXIT: u32 = TRC_XENCORE_HCALL + 1;
/// Event-channel send: `[vcpu | src_domid << 16, src_port, dst_domid,
/// dst_port]` (the sending vCPU packed as Xen packs runstate records).
pub const TRC_XENCORE_EVTCHN_SEND: u32 = TRC_XENCORE_EVTCHN + 1;
/// Upcall delivery (the vCPU is made to enter its event callback):
/// `[vcpu | domid << 16, port, sel_lo, sel_hi]`; `port` is the port whose
/// pending bit caused it or [`NO_PORT`], `sel` the vCPU's
/// `evtchn_pending_sel` at delivery.
pub const TRC_XENCORE_UPCALL: u32 = TRC_XENCORE_EVTCHN + 2;
/// Timer programmed (`set_timer_op`, `VCPUOP_set_singleshot_timer`):
/// `[vcpu | domid << 16, deadline_lo, deadline_hi]` (system time, ns).
pub const TRC_XENCORE_TIMER_SET: u32 = TRC_XENCORE_SCHED + 1;
/// Timer fired: `[vcpu | domid << 16, late_lo, late_hi]` (ns past the
/// deadline).
pub const TRC_XENCORE_TIMER_FIRE: u32 = TRC_XENCORE_SCHED + 2;
/// vCPU context switch with its reason: `[prev_vcpu | prev_domid << 16,
/// next_vcpu | next_domid << 16, reason]` ([`SwitchReason`]; the idle
/// vCPU is domain [`crate::xen::DOMID_IDLE`], vCPU = pCPU).
pub const TRC_XENCORE_VCPU_SWITCH: u32 = TRC_XENCORE_SCHED + 3;
/// Domain paused: `[domid]`.
pub const TRC_XENCORE_DOM_PAUSE: u32 = TRC_XENCORE_SCHED + 4;
/// Domain unpaused: `[domid]`.
pub const TRC_XENCORE_DOM_UNPAUSE: u32 = TRC_XENCORE_SCHED + 5;
/// Domain shut down: `[domid, reason]` (`SHUTDOWN_*`).
pub const TRC_XENCORE_DOM_SHUTDOWN: u32 = TRC_XENCORE_SCHED + 6;
/// Domain destroyed: `[domid]`.
pub const TRC_XENCORE_DOM_DESTROY: u32 = TRC_XENCORE_SCHED + 7;
/// Page table pinned: `[domid, mfn_lo, mfn_hi, level]` (level 1..=4).
pub const TRC_XENCORE_PT_PIN: u32 = TRC_XENCORE_MEM + 1;
/// Page table unpinned: `[domid, mfn_lo, mfn_hi, level]`.
pub const TRC_XENCORE_PT_UNPIN: u32 = TRC_XENCORE_MEM + 2;
/// `GNTTABOP_copy`: `[domid, count]` (the calling domain, segments).
pub const TRC_XENCORE_GRANT_COPY: u32 = TRC_XENCORE_MEM + 3;

/// The `port` of [`TRC_XENCORE_UPCALL`] when no single port caused it.
pub const NO_PORT: u32 = u32::MAX;

/// Why a vCPU left its pCPU ([`TRC_XENCORE_VCPU_SWITCH`] word 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum SwitchReason {
    /// The previous vCPU blocked (`SCHEDOP_block`, `SCHEDOP_poll`).
    Block = 0,
    /// It yielded (`SCHEDOP_yield`).
    Yield = 1,
    /// Its slice ended (preempted, still runnable).
    Preempt = 2,
    /// A woken vCPU took the pCPU (from idle or by preemption).
    Wake = 3,
    /// It went offline (paused, down, shut down).
    Offline = 4,
}

impl SwitchReason {
    /// The reason numbered `v`.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(Self::Block),
            1 => Some(Self::Yield),
            2 => Some(Self::Preempt),
            3 => Some(Self::Wake),
            4 => Some(Self::Offline),
            _ => None,
        }
    }
    /// Its name in summaries.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Yield => "yield",
            Self::Preempt => "preempt",
            Self::Wake => "wake",
            Self::Offline => "offline",
        }
    }
}

// ---------------------------------------------------------------------------
// struct t_rec
// ---------------------------------------------------------------------------

/// Most u32 words one `t_rec` takes: header, TSC (2), 7 extra.
pub const T_REC_MAX_WORDS: usize = 1 + 2 + TRACE_EXTRA_MAX;

/// Why a record could not be built or decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// The input ends inside the record: it needs `need` words (or bytes,
    /// for byte input), `have` are left.
    Truncated {
        /// Units the record needs.
        need: usize,
        /// Units available.
        have: usize,
    },
    /// More than [`TRACE_EXTRA_MAX`] extra words.
    TooManyExtra,
    /// The event does not fit `event:28`.
    EventTooWide,
}

/// Why a record's payload is not the one its event defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadError {
    /// The record's event.
    pub event: u32,
    /// Its number of extra words.
    pub extra_words: usize,
}

/// `calc_rec_size`: bytes of a record with or without the TSC and `extra`
/// extra words.
pub const fn rec_size(cycles: bool, extra_words: usize) -> usize {
    4 + if cycles { 8 } else { 0 } + 4 * extra_words
}

/// One `struct t_rec`: an event, an optional TSC and up to seven words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceRecord {
    event: u32,
    tsc: Option<u64>,
    len: u8,
    extra: [u32; TRACE_EXTRA_MAX],
}

impl TraceRecord {
    /// A record of `event` (28 bits) with `extra` words and, when `tsc` is
    /// `Some`, `cycles_included` set.
    pub fn new(event: u32, tsc: Option<u64>, extra: &[u32]) -> Result<Self, RecordError> {
        if event & !TRC_EVENT_MASK != 0 {
            return Err(RecordError::EventTooWide);
        }
        if extra.len() > TRACE_EXTRA_MAX {
            return Err(RecordError::TooManyExtra);
        }
        let mut words = [0; TRACE_EXTRA_MAX];
        words[..extra.len()].copy_from_slice(extra);
        Ok(TraceRecord { event, tsc, len: extra.len() as u8, extra: words })
    }

    /// The event number (`event:28`).
    pub const fn event(&self) -> u32 {
        self.event
    }
    /// The TSC, when the record carries one.
    pub const fn tsc(&self) -> Option<u64> {
        self.tsc
    }
    /// The extra words.
    pub fn extra(&self) -> &[u32] {
        &self.extra[..usize::from(self.len)]
    }
    /// The header word: `event | extra_u32 << 28 | cycles_included << 31`.
    pub const fn header(&self) -> u32 {
        self.event | (self.len as u32) << TRACE_EXTRA_SHIFT | if self.tsc.is_some() { TRC_HD_CYCLE_FLAG } else { 0 }
    }
    /// Its size in u32 words.
    pub const fn words(&self) -> usize {
        rec_size(self.tsc.is_some(), self.len as usize) / 4
    }
    /// Its size in bytes.
    pub const fn size(&self) -> usize {
        rec_size(self.tsc.is_some(), self.len as usize)
    }

    /// The record as Xen lays it out: the first [`Self::words`] entries of
    /// the array are the record (header, `cycles_lo`, `cycles_hi`, extra).
    pub fn encode(&self) -> ([u32; T_REC_MAX_WORDS], usize) {
        let mut out = [0u32; T_REC_MAX_WORDS];
        out[0] = self.header();
        let mut n = 1;
        if let Some(tsc) = self.tsc {
            out[1] = tsc as u32;
            out[2] = (tsc >> 32) as u32;
            n = 3;
        }
        for w in self.extra() {
            out[n] = *w;
            n += 1;
        }
        (out, n)
    }

    /// The record as little-endian bytes; the first [`Self::size`] bytes
    /// are the record.
    pub fn encode_bytes(&self) -> ([u8; 4 * T_REC_MAX_WORDS], usize) {
        let (words, n) = self.encode();
        let mut out = [0u8; 4 * T_REC_MAX_WORDS];
        for (chunk, w) in out.chunks_exact_mut(4).zip(&words[..n]) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        (out, 4 * n)
    }

    /// The record at the start of `words`, and the number of words it
    /// takes. A record whose header promises more words than `words` holds
    /// is [`RecordError::Truncated`].
    pub fn decode(words: &[u32]) -> Result<(Self, usize), RecordError> {
        let Some(&header) = words.first() else {
            return Err(RecordError::Truncated { need: 1, have: 0 });
        };
        let cycles = header & TRC_HD_CYCLE_FLAG != 0;
        let extra = ((header >> TRACE_EXTRA_SHIFT) & TRACE_EXTRA_MAX as u32) as usize;
        let need = rec_size(cycles, extra) / 4;
        if words.len() < need {
            return Err(RecordError::Truncated { need, have: words.len() });
        }
        let (tsc, first) = if cycles { (Some(u64::from(words[1]) | u64::from(words[2]) << 32), 3) } else { (None, 1) };
        let rec = TraceRecord::new(header & TRC_EVENT_MASK, tsc, &words[first..need])?;
        Ok((rec, need))
    }

    /// The record at the start of little-endian `bytes`, and the number of
    /// bytes it takes.
    pub fn decode_bytes(bytes: &[u8]) -> Result<(Self, usize), RecordError> {
        let mut words = [0u32; T_REC_MAX_WORDS];
        let have = bytes.len() / 4;
        if have == 0 {
            return Err(RecordError::Truncated { need: 4, have: bytes.len() });
        }
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        let n = have.min(T_REC_MAX_WORDS);
        match Self::decode(&words[..n]) {
            Ok((rec, used)) => Ok((rec, 4 * used)),
            Err(RecordError::Truncated { need, .. }) => Err(RecordError::Truncated { need: 4 * need, have: bytes.len() }),
            Err(e) => Err(e),
        }
    }

    /// The typed payload of this record.
    pub fn decode_event(&self) -> Result<Event, PayloadError> {
        Event::decode(self.event, self.extra())
    }
}

/// The records packed one after another in `bytes` (a buffer window, a
/// dump's window, a guest's stream), each with its byte offset and size;
/// a record that does not decode ends the run with its offset and why.
pub fn records_in(bytes: &[u8]) -> RecordsIn<'_> {
    RecordsIn { bytes, at: 0, failed: false }
}

/// [`records_in`]'s iterator.
#[derive(Clone, Debug)]
pub struct RecordsIn<'a> {
    bytes: &'a [u8],
    at: usize,
    failed: bool,
}

/// A record in a run: its offset, its size in bytes and the record.
pub type RecordAt = (usize, usize, TraceRecord);

impl Iterator for RecordsIn<'_> {
    type Item = Result<RecordAt, (usize, RecordError)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let at = self.at;
        match TraceRecord::decode_bytes(&self.bytes[at..]) {
            Ok((rec, used)) => {
                self.at += used;
                Some(Ok((at, used, rec)))
            }
            Err(e) => {
                self.failed = true;
                Some(Err((at, e)))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Typed payloads
// ---------------------------------------------------------------------------

/// One event with its payload, as Xen's call sites (and ours) write it.
/// `vcpu | domid << 16` below is Xen's `struct { uint32_t vcpu:16,
/// domain:16; }` of `trace_runstate_change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// [`TRC_LOST_RECORDS`] (`insert_lost_records`): `[lost, domid | vcpu
    /// << 16, first_tsc_lo, first_tsc_hi]` (a packed `u32, u16 did, u16
    /// vid, u64`: the domain in the low half here).
    LostRecords {
        /// Records dropped.
        lost: u32,
        /// Domain current when the record was written.
        domid: u16,
        /// Its vCPU.
        vcpu: u16,
        /// TSC of the first lost record.
        first_tsc: u64,
    },
    /// [`TRC_TRACE_WRAP_BUFFER`]: padding, any payload.
    WrapBuffer,
    /// [`TRC_TRACE_CPU_CHANGE`] (xentrace's `cpu_change_record`): `[cpu,
    /// window_size]`, never with a TSC.
    CpuChange {
        /// The pCPU whose records follow.
        cpu: u32,
        /// Bytes of records that follow.
        window_size: u32,
    },
    /// [`TRC_SCHED_RUNSTATE_CHANGE`] (`trace_runstate_change`): old state in
    /// event bits 8..=9, new in 4..=5; `[vcpu | domid << 16]`.
    RunstateChange {
        /// Domain.
        domid: u16,
        /// vCPU.
        vcpu: u16,
        /// `RUNSTATE_*` before.
        old: u32,
        /// `RUNSTATE_*` after.
        new: u32,
    },
    /// [`TRC_SCHED_CONTINUE_RUNNING`]: `[vcpu | domid << 16]`.
    ContinueRunning {
        /// Domain.
        domid: u16,
        /// vCPU.
        vcpu: u16,
    },
    /// [`TRC_SCHED_DOM_ADD`]: `[domid]`.
    SchedDomAdd {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_SCHED_DOM_REM`]: `[domid]`.
    SchedDomRem {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_SCHED_SLEEP`] (`vcpu_sleep_nosync`): `[domid, vcpu]`.
    Sleep {
        /// Domain.
        domid: u32,
        /// vCPU.
        vcpu: u32,
    },
    /// [`TRC_SCHED_WAKE`] (`vcpu_wake`): `[domid, vcpu]`.
    Wake {
        /// Domain.
        domid: u32,
        /// vCPU.
        vcpu: u32,
    },
    /// [`TRC_SCHED_BLOCK`] (`vcpu_block`, `do_poll`): `[domid, vcpu]`.
    Block {
        /// Domain.
        domid: u32,
        /// vCPU.
        vcpu: u32,
    },
    /// [`TRC_SCHED_YIELD`] (`vcpu_yield`): `[domid, vcpu]`.
    Yield {
        /// Domain.
        domid: u32,
        /// vCPU.
        vcpu: u32,
    },
    /// [`TRC_SCHED_SHUTDOWN`] (`SCHEDOP_shutdown`): `[domid, vcpu, reason]`.
    Shutdown {
        /// Domain.
        domid: u32,
        /// vCPU.
        vcpu: u32,
        /// `SHUTDOWN_*`.
        reason: u32,
    },
    /// [`TRC_SCHED_SHUTDOWN_CODE`] (`SCHEDOP_shutdown_code`): `[domid,
    /// vcpu, reason]`.
    ShutdownCode {
        /// Domain.
        domid: u32,
        /// vCPU.
        vcpu: u32,
        /// `SHUTDOWN_*`.
        reason: u32,
    },
    /// [`TRC_SCHED_SWITCH`] (`sched_switch_units`): `[prev_domid, prev_unit,
    /// next_domid, next_unit]` (unit = vCPU with per-CPU granularity).
    Switch {
        /// Outgoing domain.
        prev_domid: u32,
        /// Outgoing unit.
        prev_vcpu: u32,
        /// Incoming domain.
        next_domid: u32,
        /// Incoming unit.
        next_vcpu: u32,
    },
    /// [`TRC_SCHED_SWITCH_INFPREV`]: `[domid, unit, runtime]` (ns it ran,
    /// truncated to 32 bits as `TRACE_3D` does).
    SwitchInfPrev {
        /// Domain.
        domid: u32,
        /// Unit.
        vcpu: u32,
        /// Run time, ns (low 32 bits).
        runtime: u32,
    },
    /// [`TRC_SCHED_SWITCH_INFNEXT`]: `[domid, unit, waited, next_time]`
    /// (ns runnable before, 0 if it was not runnable; the slice end; both
    /// truncated to 32 bits).
    SwitchInfNext {
        /// Domain.
        domid: u32,
        /// Unit.
        vcpu: u32,
        /// Time spent runnable, ns (low 32 bits).
        waited: u32,
        /// `prev->next_time` (low 32 bits).
        next_time: u32,
    },
    /// [`TRC_SCHED_SWITCH_INFCONT`]: `[domid, unit, runtime, next_time]`.
    SwitchInfCont {
        /// Domain.
        domid: u32,
        /// Unit.
        vcpu: u32,
        /// Run time so far, ns (low 32 bits).
        runtime: u32,
        /// The new slice end (low 32 bits).
        next_time: u32,
    },
    /// [`TRC_DOM0_DOM_ADD`] (`domain_create`): `[domid]`.
    Dom0DomAdd {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_DOM0_DOM_REM`] (`domain_destroy`): `[domid]`.
    Dom0DomRem {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_MEM_PAGE_GRANT_MAP`] (`map_grant_ref`): `[granting domid]`.
    GrantMap {
        /// The domain that granted.
        domid: u32,
    },
    /// [`TRC_MEM_PAGE_GRANT_UNMAP`] (`unmap_common`): `[granting domid]`
    /// (the handle's `map->domid`, once the handle is found).
    GrantUnmap {
        /// The domain that granted.
        domid: u32,
    },
    /// [`TRC_MEM_PAGE_GRANT_TRANSFER`] (`gnttab_transfer`): `[receiving
    /// domid]`.
    GrantTransfer {
        /// The domain receiving the page.
        domid: u32,
    },
    /// [`TRC_PV_HYPERCALL_V2`] or, with `subcall`, [`TRC_PV_HYPERCALL_SUBCALL`]
    /// (`__trace_hypercall`): word 0 is `op` with 2 presence bits per
    /// argument at bits 20 + 2i; the present arguments follow, 32-bit ones
    /// in one word, 64-bit ones in two (low first).
    Hypercall {
        /// A multicall's sub-call.
        subcall: bool,
        /// `__HYPERVISOR_*` (20 bits).
        op: u32,
        /// The arguments the record carries.
        args: [Option<u64>; 6],
    },
    /// [`TRC_PV_TRAP`] `| TRC_64_FLAG` (`__trace_pv_trap`, 64-bit guest):
    /// `[rip_lo, rip_hi, trapnr | use_error_code << 15 | error_code << 16]`.
    PvTrap {
        /// Guest `rip`.
        rip: u64,
        /// Vector (15 bits).
        trapnr: u16,
        /// Whether the error code is pushed.
        use_error_code: bool,
        /// Error code (low 16 bits).
        error_code: u16,
    },
    /// [`TRC_PV_PAGE_FAULT`] `| TRC_64_FLAG` (`__trace_pv_page_fault`):
    /// `[rip_lo, rip_hi, addr_lo, addr_hi, error_code]`.
    PvPageFault {
        /// Guest `rip`.
        rip: u64,
        /// Faulting address (`cr2`).
        addr: u64,
        /// Error code.
        error_code: u32,
    },
    /// [`TRC_HW_IRQ_HANDLED`] (`do_IRQ`, guest IRQ): `[irq, tsc_in,
    /// tsc_out]`, TSCs truncated to 32 bits.
    IrqHandled {
        /// IRQ.
        irq: u32,
        /// TSC before the handler (low 32 bits).
        tsc_in: u32,
        /// TSC after (low 32 bits).
        tsc_out: u32,
    },
    /// [`TRC_XENCORE_HYPERCALL_EXIT`].
    HypercallExit {
        /// `__HYPERVISOR_*`.
        op: u32,
        /// The result (`rax`).
        result: i64,
        /// TSC ticks since the entry.
        cycles: u64,
    },
    /// [`TRC_XENCORE_EVTCHN_SEND`].
    EvtchnSend {
        /// Sending domain.
        domid: u16,
        /// Sending vCPU.
        vcpu: u16,
        /// Local port.
        port: u32,
        /// Remote domain.
        remote_domid: u32,
        /// Remote port.
        remote_port: u32,
    },
    /// [`TRC_XENCORE_UPCALL`].
    Upcall {
        /// Domain.
        domid: u16,
        /// vCPU.
        vcpu: u16,
        /// The port, or [`NO_PORT`].
        port: u32,
        /// `evtchn_pending_sel` at delivery.
        pending_sel: u64,
    },
    /// [`TRC_XENCORE_TIMER_SET`].
    TimerSet {
        /// Domain.
        domid: u16,
        /// vCPU.
        vcpu: u16,
        /// Deadline, system time ns.
        deadline: u64,
    },
    /// [`TRC_XENCORE_TIMER_FIRE`].
    TimerFire {
        /// Domain.
        domid: u16,
        /// vCPU.
        vcpu: u16,
        /// ns past the deadline.
        late_ns: u64,
    },
    /// [`TRC_XENCORE_VCPU_SWITCH`].
    VcpuSwitch {
        /// Outgoing domain.
        prev_domid: u16,
        /// Outgoing vCPU.
        prev_vcpu: u16,
        /// Incoming domain.
        next_domid: u16,
        /// Incoming vCPU.
        next_vcpu: u16,
        /// Why.
        reason: SwitchReason,
    },
    /// [`TRC_XENCORE_DOM_PAUSE`].
    DomPause {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_XENCORE_DOM_UNPAUSE`].
    DomUnpause {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_XENCORE_DOM_SHUTDOWN`].
    DomShutdown {
        /// Domain.
        domid: u32,
        /// `SHUTDOWN_*`.
        reason: u32,
    },
    /// [`TRC_XENCORE_DOM_DESTROY`].
    DomDestroy {
        /// Domain.
        domid: u32,
    },
    /// [`TRC_XENCORE_PT_PIN`].
    PtPin {
        /// Domain.
        domid: u32,
        /// The table's frame.
        mfn: u64,
        /// 1..=4.
        level: u32,
    },
    /// [`TRC_XENCORE_PT_UNPIN`].
    PtUnpin {
        /// Domain.
        domid: u32,
        /// The table's frame.
        mfn: u64,
        /// 1..=4.
        level: u32,
    },
    /// [`TRC_XENCORE_GRANT_COPY`].
    GrantCopy {
        /// Calling domain.
        domid: u32,
        /// Copy segments.
        count: u32,
    },
    /// Any other event (including [`TRC_GUEST`] records), payload untyped.
    Other {
        /// The event.
        event: u32,
    },
}

const fn lo(v: u64) -> u32 {
    v as u32
}
const fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}
const fn join(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}
const fn vd(domid: u16, vcpu: u16) -> u32 {
    vcpu as u32 | (domid as u32) << 16
}
const fn split_vd(w: u32) -> (u16, u16) {
    ((w >> 16) as u16, w as u16)
}

/// Which arguments `__trace_hypercall` records for `op` (all as 32 bits).
fn hypercall_traced_args(op: u64) -> &'static [u32] {
    match op {
        hypercall::MMU_UPDATE | hypercall::MULTICALL | hypercall::MMUEXT_OP => &[1],
        hypercall::GRANT_TABLE_OP => &[0, 2],
        hypercall::VCPU_OP => &[0, 1],
        hypercall::SCHED_OP => &[0],
        _ => &[],
    }
}

/// An event's id and payload words, ready for [`TraceRecord::new`]. The
/// words sit where a `t_rec` with a TSC has them (after three words for
/// the header and the TSC), so [`Payload::encode_with_tsc`] stamps a copy
/// instead of moving words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The event number.
    pub event: u32,
    len: u8,
    rec: [u32; T_REC_MAX_WORDS],
}

/// Where the payload words start in [`Payload`]'s record words.
const PAYLOAD_AT: usize = 3;

impl Payload {
    fn new(event: u32, w: &[u32]) -> Self {
        let mut rec = [0; T_REC_MAX_WORDS];
        let n = w.len().min(TRACE_EXTRA_MAX);
        rec[PAYLOAD_AT..PAYLOAD_AT + n].copy_from_slice(&w[..n]);
        Payload { event, len: n as u8, rec }
    }
    /// The payload words.
    #[inline]
    pub fn words(&self) -> &[u32] {
        &self.rec[PAYLOAD_AT..PAYLOAD_AT + usize::from(self.len)]
    }
    fn extra(&self) -> [u32; TRACE_EXTRA_MAX] {
        let mut w = [0; TRACE_EXTRA_MAX];
        w.copy_from_slice(&self.rec[PAYLOAD_AT..]);
        w
    }
    /// A record of this payload stamped with `tsc` (every Xen call site
    /// but xentrace's cpu-change header includes the TSC).
    pub fn record(&self, tsc: u64) -> TraceRecord {
        TraceRecord { event: self.event, tsc: Some(tsc), len: self.len, extra: self.extra() }
    }
    /// A record of this payload without a TSC.
    pub fn record_without_tsc(&self) -> TraceRecord {
        TraceRecord { event: self.event, tsc: None, len: self.len, extra: self.extra() }
    }

    /// The payload of `event` with the words `w` (at most
    /// [`TRACE_EXTRA_MAX`]; words past seven are dropped, as
    /// `Payload::new` does).
    #[inline]
    pub const fn of<const N: usize>(event: u32, w: [u32; N]) -> Self {
        let mut rec = [0; T_REC_MAX_WORDS];
        let mut i = 0;
        while i < N && i < TRACE_EXTRA_MAX {
            rec[PAYLOAD_AT + i] = w[i];
            i += 1;
        }
        let len = if N < TRACE_EXTRA_MAX { N } else { TRACE_EXTRA_MAX };
        Payload { event, len: len as u8, rec }
    }

    /// [`Event::hypercall`] (or, with `subcall`, [`Event::hypercall_subcall`])
    /// built straight into its payload, without the typed event: the
    /// hypercall path's trace point (the same words, a host test checks).
    #[inline]
    pub fn hypercall(subcall: bool, op: u64, args: &[u64; 5]) -> Self {
        let mut rec = [0; T_REC_MAX_WORDS];
        let mut word0 = op as u32 & !TRC_PV_HYPERCALL_V2_ARG_MASK;
        let mut n = 1;
        // Xen copies each recorded argument into a uint32_t: always the
        // 32-bit form, at most two arguments (never past seven words).
        // Which ones, Xen decides on the whole 64-bit number.
        for &i in hypercall_traced_args(op) {
            word0 |= trc_pv_hypercall_v2_arg_32(i);
            rec[PAYLOAD_AT + n] = args[i as usize] as u32;
            n += 1;
        }
        rec[PAYLOAD_AT] = word0;
        Payload { event: if subcall { TRC_PV_HYPERCALL_SUBCALL } else { TRC_PV_HYPERCALL_V2 }, len: n as u8, rec }
    }

    /// [`Event::HypercallExit`]'s payload, built directly.
    #[inline]
    pub const fn hypercall_exit(op: u32, result: i64, cycles: u64) -> Self {
        Self::of(TRC_XENCORE_HYPERCALL_EXIT, [op, lo(result as u64), hi(result as u64), lo(cycles), hi(cycles)])
    }

    /// The header word of this payload's `t_rec` with a TSC (`event`,
    /// `extra_u32`, `cycles_included`): word 0 of
    /// [`Self::encode_with_tsc`], for a writer that stores the words itself.
    #[inline]
    pub const fn header_with_tsc(&self) -> u32 {
        self.event | (self.len as u32) << TRACE_EXTRA_SHIFT | TRC_HD_CYCLE_FLAG
    }

    /// The `t_rec` of this payload stamped with `tsc`, as words (the first
    /// `n` of the array): what `TraceRecord::encode` gives for
    /// [`Self::record`]`(tsc)`, without building the record.
    #[inline]
    pub const fn encode_with_tsc(&self, tsc: u64) -> ([u32; T_REC_MAX_WORDS], usize) {
        let mut out = self.rec;
        let len = self.len as usize;
        out[0] = self.header_with_tsc();
        out[1] = lo(tsc);
        out[2] = hi(tsc);
        (out, PAYLOAD_AT + len)
    }
}

impl Event {
    /// The event's id and payload words, as Xen (or xen-core, for our
    /// class) writes them. [`Event::Other`] has no payload.
    pub fn payload(&self) -> Payload {
        use Event::*;
        match *self {
            LostRecords { lost, domid, vcpu, first_tsc } => {
                Payload::new(TRC_LOST_RECORDS, &[lost, u32::from(domid) | u32::from(vcpu) << 16, lo(first_tsc), hi(first_tsc)])
            }
            WrapBuffer => Payload::new(TRC_TRACE_WRAP_BUFFER, &[]),
            CpuChange { cpu, window_size } => Payload::new(TRC_TRACE_CPU_CHANGE, &[cpu, window_size]),
            RunstateChange { domid, vcpu, old, new } => Payload::new(TRC_SCHED_RUNSTATE_CHANGE | (old & 3) << 8 | (new & 3) << 4, &[vd(domid, vcpu)]),
            ContinueRunning { domid, vcpu } => Payload::new(TRC_SCHED_CONTINUE_RUNNING, &[vd(domid, vcpu)]),
            SchedDomAdd { domid } => Payload::new(TRC_SCHED_DOM_ADD, &[domid]),
            SchedDomRem { domid } => Payload::new(TRC_SCHED_DOM_REM, &[domid]),
            Sleep { domid, vcpu } => Payload::new(TRC_SCHED_SLEEP, &[domid, vcpu]),
            Wake { domid, vcpu } => Payload::new(TRC_SCHED_WAKE, &[domid, vcpu]),
            Block { domid, vcpu } => Payload::new(TRC_SCHED_BLOCK, &[domid, vcpu]),
            Yield { domid, vcpu } => Payload::new(TRC_SCHED_YIELD, &[domid, vcpu]),
            Shutdown { domid, vcpu, reason } => Payload::new(TRC_SCHED_SHUTDOWN, &[domid, vcpu, reason]),
            ShutdownCode { domid, vcpu, reason } => Payload::new(TRC_SCHED_SHUTDOWN_CODE, &[domid, vcpu, reason]),
            Switch { prev_domid, prev_vcpu, next_domid, next_vcpu } => {
                Payload::new(TRC_SCHED_SWITCH, &[prev_domid, prev_vcpu, next_domid, next_vcpu])
            }
            SwitchInfPrev { domid, vcpu, runtime } => Payload::new(TRC_SCHED_SWITCH_INFPREV, &[domid, vcpu, runtime]),
            SwitchInfNext { domid, vcpu, waited, next_time } => Payload::new(TRC_SCHED_SWITCH_INFNEXT, &[domid, vcpu, waited, next_time]),
            SwitchInfCont { domid, vcpu, runtime, next_time } => Payload::new(TRC_SCHED_SWITCH_INFCONT, &[domid, vcpu, runtime, next_time]),
            Dom0DomAdd { domid } => Payload::new(TRC_DOM0_DOM_ADD, &[domid]),
            Dom0DomRem { domid } => Payload::new(TRC_DOM0_DOM_REM, &[domid]),
            GrantMap { domid } => Payload::new(TRC_MEM_PAGE_GRANT_MAP, &[domid]),
            GrantUnmap { domid } => Payload::new(TRC_MEM_PAGE_GRANT_UNMAP, &[domid]),
            GrantTransfer { domid } => Payload::new(TRC_MEM_PAGE_GRANT_TRANSFER, &[domid]),
            Hypercall { subcall, op, args } => {
                let mut w = [0u32; TRACE_EXTRA_MAX];
                let mut n = 1;
                let mut word0 = op & !TRC_PV_HYPERCALL_V2_ARG_MASK;
                for (i, a) in args.iter().enumerate() {
                    let Some(a) = *a else { continue };
                    if a >> 32 == 0 && n < TRACE_EXTRA_MAX {
                        word0 |= trc_pv_hypercall_v2_arg_32(i as u32);
                        w[n] = a as u32;
                        n += 1;
                    } else if n + 1 < TRACE_EXTRA_MAX {
                        word0 |= trc_pv_hypercall_v2_arg_64(i as u32);
                        w[n] = lo(a);
                        w[n + 1] = hi(a);
                        n += 2;
                    }
                }
                w[0] = word0;
                Payload::new(if subcall { TRC_PV_HYPERCALL_SUBCALL } else { TRC_PV_HYPERCALL_V2 }, &w[..n])
            }
            PvTrap { rip, trapnr, use_error_code, error_code } => Payload::new(
                TRC_PV_TRAP | TRC_64_FLAG,
                &[lo(rip), hi(rip), u32::from(trapnr & 0x7fff) | u32::from(use_error_code) << 15 | u32::from(error_code) << 16],
            ),
            PvPageFault { rip, addr, error_code } => {
                Payload::new(TRC_PV_PAGE_FAULT | TRC_64_FLAG, &[lo(rip), hi(rip), lo(addr), hi(addr), error_code])
            }
            IrqHandled { irq, tsc_in, tsc_out } => Payload::new(TRC_HW_IRQ_HANDLED, &[irq, tsc_in, tsc_out]),
            HypercallExit { op, result, cycles } => {
                Payload::new(TRC_XENCORE_HYPERCALL_EXIT, &[op, lo(result as u64), hi(result as u64), lo(cycles), hi(cycles)])
            }
            EvtchnSend { domid, vcpu, port, remote_domid, remote_port } => {
                Payload::new(TRC_XENCORE_EVTCHN_SEND, &[vd(domid, vcpu), port, remote_domid, remote_port])
            }
            Upcall { domid, vcpu, port, pending_sel } => Payload::new(TRC_XENCORE_UPCALL, &[vd(domid, vcpu), port, lo(pending_sel), hi(pending_sel)]),
            TimerSet { domid, vcpu, deadline } => Payload::new(TRC_XENCORE_TIMER_SET, &[vd(domid, vcpu), lo(deadline), hi(deadline)]),
            TimerFire { domid, vcpu, late_ns } => Payload::new(TRC_XENCORE_TIMER_FIRE, &[vd(domid, vcpu), lo(late_ns), hi(late_ns)]),
            VcpuSwitch { prev_domid, prev_vcpu, next_domid, next_vcpu, reason } => {
                Payload::new(TRC_XENCORE_VCPU_SWITCH, &[vd(prev_domid, prev_vcpu), vd(next_domid, next_vcpu), reason as u32])
            }
            DomPause { domid } => Payload::new(TRC_XENCORE_DOM_PAUSE, &[domid]),
            DomUnpause { domid } => Payload::new(TRC_XENCORE_DOM_UNPAUSE, &[domid]),
            DomShutdown { domid, reason } => Payload::new(TRC_XENCORE_DOM_SHUTDOWN, &[domid, reason]),
            DomDestroy { domid } => Payload::new(TRC_XENCORE_DOM_DESTROY, &[domid]),
            PtPin { domid, mfn, level } => Payload::new(TRC_XENCORE_PT_PIN, &[domid, lo(mfn), hi(mfn), level]),
            PtUnpin { domid, mfn, level } => Payload::new(TRC_XENCORE_PT_UNPIN, &[domid, lo(mfn), hi(mfn), level]),
            GrantCopy { domid, count } => Payload::new(TRC_XENCORE_GRANT_COPY, &[domid, count]),
            Other { event } => Payload::new(event & TRC_EVENT_MASK, &[]),
        }
    }

    /// `__trace_hypercall(TRC_PV_HYPERCALL_V2, op, args)`: the entry record
    /// of hypercall `op` with the guest's five argument registers; only the
    /// arguments Xen 4.17 records for `op` are kept, truncated to 32 bits as
    /// Xen's `*a++ = args[i]` into a `uint32_t` does.
    pub fn hypercall(op: u64, args: &[u64; 5]) -> Self {
        Self::hypercall_event(false, op, args)
    }

    /// `__trace_hypercall(TRC_PV_HYPERCALL_SUBCALL, ...)`: one call of a
    /// multicall.
    pub fn hypercall_subcall(op: u64, args: &[u64; 5]) -> Self {
        Self::hypercall_event(true, op, args)
    }

    fn hypercall_event(subcall: bool, op: u64, args: &[u64; 5]) -> Self {
        let mut rec = [None; 6];
        for &i in hypercall_traced_args(op) {
            rec[i as usize] = Some(u64::from(args[i as usize] as u32));
        }
        Event::Hypercall { subcall, op: op as u32, args: rec }
    }

    /// `trace_runstate_change(v, new_state)`.
    pub fn runstate_change(domid: u16, vcpu: u16, old: u32, new: u32) -> Self {
        Event::RunstateChange { domid, vcpu, old: old & 3, new: new & 3 }
    }

    /// `insert_lost_records`.
    pub fn lost_records(lost: u32, domid: u16, vcpu: u16, first_tsc: u64) -> Self {
        Event::LostRecords { lost, domid, vcpu, first_tsc }
    }

    /// xentrace's `cpu_change_record`.
    pub fn cpu_change(cpu: u32, window_size: u32) -> Self {
        Event::CpuChange { cpu, window_size }
    }

    /// `trace_pv_trap(vector, rip, use_error_code, error_code)` for a
    /// 64-bit guest.
    pub fn pv_trap(vector: u32, rip: u64, use_error_code: bool, error_code: u32) -> Self {
        Event::PvTrap { rip, trapnr: (vector & 0x7fff) as u16, use_error_code, error_code: error_code as u16 }
    }

    /// `irq_handled`: `TRACE_3D(TRC_HW_IRQ_HANDLED, irq, tsc_in, get_cycles())`.
    pub fn irq_handled(irq: u32, tsc_in: u64, tsc_out: u64) -> Self {
        Event::IrqHandled { irq, tsc_in: tsc_in as u32, tsc_out: tsc_out as u32 }
    }

    /// The typed event of a record's `event` and extra words.
    pub fn decode(event: u32, w: &[u32]) -> Result<Self, PayloadError> {
        use Event::*;
        let bad = PayloadError { event, extra_words: w.len() };
        let need = |n: usize| if w.len() >= n { Ok(()) } else { Err(bad) };
        if event & !0x330 == TRC_SCHED_RUNSTATE_CHANGE {
            need(1)?;
            let (domid, vcpu) = split_vd(w[0]);
            return Ok(RunstateChange { domid, vcpu, old: (event >> 8) & 3, new: (event >> 4) & 3 });
        }
        Ok(match event {
            TRC_LOST_RECORDS => {
                need(4)?;
                LostRecords { lost: w[0], domid: w[1] as u16, vcpu: (w[1] >> 16) as u16, first_tsc: join(w[2], w[3]) }
            }
            TRC_TRACE_WRAP_BUFFER => WrapBuffer,
            TRC_TRACE_CPU_CHANGE => {
                need(2)?;
                CpuChange { cpu: w[0], window_size: w[1] }
            }
            TRC_SCHED_CONTINUE_RUNNING => {
                need(1)?;
                let (domid, vcpu) = split_vd(w[0]);
                ContinueRunning { domid, vcpu }
            }
            TRC_SCHED_DOM_ADD => {
                need(1)?;
                SchedDomAdd { domid: w[0] }
            }
            TRC_SCHED_DOM_REM => {
                need(1)?;
                SchedDomRem { domid: w[0] }
            }
            TRC_SCHED_SLEEP | TRC_SCHED_WAKE | TRC_SCHED_BLOCK | TRC_SCHED_YIELD => {
                need(2)?;
                let (domid, vcpu) = (w[0], w[1]);
                match event {
                    TRC_SCHED_SLEEP => Sleep { domid, vcpu },
                    TRC_SCHED_WAKE => Wake { domid, vcpu },
                    TRC_SCHED_BLOCK => Block { domid, vcpu },
                    _ => Yield { domid, vcpu },
                }
            }
            TRC_SCHED_SHUTDOWN => {
                need(3)?;
                Shutdown { domid: w[0], vcpu: w[1], reason: w[2] }
            }
            TRC_SCHED_SHUTDOWN_CODE => {
                need(3)?;
                ShutdownCode { domid: w[0], vcpu: w[1], reason: w[2] }
            }
            TRC_SCHED_SWITCH => {
                need(4)?;
                Switch { prev_domid: w[0], prev_vcpu: w[1], next_domid: w[2], next_vcpu: w[3] }
            }
            TRC_SCHED_SWITCH_INFPREV => {
                need(3)?;
                SwitchInfPrev { domid: w[0], vcpu: w[1], runtime: w[2] }
            }
            TRC_SCHED_SWITCH_INFNEXT => {
                need(4)?;
                SwitchInfNext { domid: w[0], vcpu: w[1], waited: w[2], next_time: w[3] }
            }
            TRC_SCHED_SWITCH_INFCONT => {
                need(4)?;
                SwitchInfCont { domid: w[0], vcpu: w[1], runtime: w[2], next_time: w[3] }
            }
            TRC_DOM0_DOM_ADD | TRC_DOM0_DOM_REM | TRC_MEM_PAGE_GRANT_MAP | TRC_MEM_PAGE_GRANT_UNMAP | TRC_MEM_PAGE_GRANT_TRANSFER => {
                need(1)?;
                let domid = w[0];
                match event {
                    TRC_DOM0_DOM_ADD => Dom0DomAdd { domid },
                    TRC_DOM0_DOM_REM => Dom0DomRem { domid },
                    TRC_MEM_PAGE_GRANT_MAP => GrantMap { domid },
                    TRC_MEM_PAGE_GRANT_UNMAP => GrantUnmap { domid },
                    _ => GrantTransfer { domid },
                }
            }
            TRC_PV_HYPERCALL_V2 | TRC_PV_HYPERCALL_SUBCALL => {
                need(1)?;
                let mut args = [None; 6];
                let mut n = 1;
                for (i, arg) in args.iter_mut().enumerate() {
                    match (w[0] >> (20 + 2 * i)) & 3 {
                        0 => {}
                        1 => {
                            need(n + 1)?;
                            *arg = Some(u64::from(w[n]));
                            n += 1;
                        }
                        2 => {
                            need(n + 2)?;
                            *arg = Some(join(w[n], w[n + 1]));
                            n += 2;
                        }
                        _ => return Err(bad),
                    }
                }
                Hypercall { subcall: event == TRC_PV_HYPERCALL_SUBCALL, op: w[0] & !TRC_PV_HYPERCALL_V2_ARG_MASK, args }
            }
            e if e == TRC_PV_TRAP | TRC_64_FLAG => {
                need(3)?;
                PvTrap { rip: join(w[0], w[1]), trapnr: (w[2] & 0x7fff) as u16, use_error_code: w[2] & 0x8000 != 0, error_code: (w[2] >> 16) as u16 }
            }
            e if e == TRC_PV_PAGE_FAULT | TRC_64_FLAG => {
                need(5)?;
                PvPageFault { rip: join(w[0], w[1]), addr: join(w[2], w[3]), error_code: w[4] }
            }
            TRC_HW_IRQ_HANDLED => {
                need(3)?;
                IrqHandled { irq: w[0], tsc_in: w[1], tsc_out: w[2] }
            }
            TRC_XENCORE_HYPERCALL_EXIT => {
                need(5)?;
                HypercallExit { op: w[0], result: join(w[1], w[2]) as i64, cycles: join(w[3], w[4]) }
            }
            TRC_XENCORE_EVTCHN_SEND => {
                need(4)?;
                let (domid, vcpu) = split_vd(w[0]);
                EvtchnSend { domid, vcpu, port: w[1], remote_domid: w[2], remote_port: w[3] }
            }
            TRC_XENCORE_UPCALL => {
                need(4)?;
                let (domid, vcpu) = split_vd(w[0]);
                Upcall { domid, vcpu, port: w[1], pending_sel: join(w[2], w[3]) }
            }
            TRC_XENCORE_TIMER_SET | TRC_XENCORE_TIMER_FIRE => {
                need(3)?;
                let (domid, vcpu) = split_vd(w[0]);
                let t = join(w[1], w[2]);
                if event == TRC_XENCORE_TIMER_SET { TimerSet { domid, vcpu, deadline: t } } else { TimerFire { domid, vcpu, late_ns: t } }
            }
            TRC_XENCORE_VCPU_SWITCH => {
                need(3)?;
                let (prev_domid, prev_vcpu) = split_vd(w[0]);
                let (next_domid, next_vcpu) = split_vd(w[1]);
                let reason = SwitchReason::from_u32(w[2]).ok_or(bad)?;
                VcpuSwitch { prev_domid, prev_vcpu, next_domid, next_vcpu, reason }
            }
            TRC_XENCORE_DOM_PAUSE | TRC_XENCORE_DOM_UNPAUSE | TRC_XENCORE_DOM_DESTROY => {
                need(1)?;
                let domid = w[0];
                match event {
                    TRC_XENCORE_DOM_PAUSE => DomPause { domid },
                    TRC_XENCORE_DOM_UNPAUSE => DomUnpause { domid },
                    _ => DomDestroy { domid },
                }
            }
            TRC_XENCORE_DOM_SHUTDOWN => {
                need(2)?;
                DomShutdown { domid: w[0], reason: w[1] }
            }
            TRC_XENCORE_PT_PIN | TRC_XENCORE_PT_UNPIN => {
                need(4)?;
                let (domid, mfn, level) = (w[0], join(w[1], w[2]), w[3]);
                if event == TRC_XENCORE_PT_PIN { PtPin { domid, mfn, level } } else { PtUnpin { domid, mfn, level } }
            }
            TRC_XENCORE_GRANT_COPY => {
                need(2)?;
                GrantCopy { domid: w[0], count: w[1] }
            }
            _ => Other { event },
        })
    }
}

// ---------------------------------------------------------------------------
// Buffer metadata
// ---------------------------------------------------------------------------

/// `struct t_buf`: the head of each per-CPU buffer; the records follow.
/// `cons` and `prod` are byte offsets into the data area counted modulo
/// twice its size (see [`ring_unconsumed`]).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TBuf {
    /// Offset of the next record the consumer (dom0) reads.
    pub cons: u32,
    /// Offset of the next record Xen writes.
    pub prod: u32,
}
const _: () = assert!(core::mem::size_of::<TBuf>() == 8);
const _: () = assert!(core::mem::offset_of!(TBuf, prod) == 4);

/// The data bytes of a buffer of `pages` pages (`data_size`: the pages less
/// the [`TBuf`] head).
#[inline]
pub const fn data_size(pages: u32) -> u32 {
    pages * 4096 - core::mem::size_of::<TBuf>() as u32
}

/// `bogus(prod, cons)`: an index is unaligned or beyond `2 * data_size`.
/// Also bogus: a `cons` ahead of `prod` by more than the ring holds (more
/// unread bytes than `data_size`), which Xen only ASSERTs against; here it
/// is refused like any other bad index, so the free space never
/// underflows.
#[inline]
pub const fn ring_bogus(prod: u32, cons: u32, data_size: u32) -> bool {
    prod & 3 != 0 || prod >= 2 * data_size || cons & 3 != 0 || cons >= 2 * data_size || ring_unconsumed(prod, cons, data_size) > data_size
}

/// The byte offset in the data area of ring position `pos` (a `cons` or
/// `prod`, below `2 * data_size`), as `next_record` computes it.
#[inline]
pub const fn ring_offset(pos: u32, data_size: u32) -> u32 {
    if pos >= data_size { pos - data_size } else { pos }
}

/// `calc_unconsumed_bytes`: bytes written and not yet read.
#[inline]
pub const fn ring_unconsumed(prod: u32, cons: u32, data_size: u32) -> u32 {
    let x = prod.wrapping_sub(cons) as i32;
    if x < 0 { (x + 2 * data_size as i32) as u32 } else { x as u32 }
}

/// `calc_bytes_to_wrap`: bytes from `prod` to the end of the data area.
#[inline]
pub const fn ring_bytes_to_wrap(prod: u32, data_size: u32) -> u32 {
    let x = data_size as i32 - prod as i32;
    if x <= 0 { (x + data_size as i32) as u32 } else { x as u32 }
}

/// `prod` advanced by `n` bytes, modulo `2 * data_size` (as
/// `__insert_record` does).
#[inline]
pub const fn ring_advance(pos: u32, n: u32, data_size: u32) -> u32 {
    let next = pos + n;
    if next >= 2 * data_size { next - 2 * data_size } else { next }
}

/// `LOST_REC_SIZE`: bytes of a `TRC_LOST_RECORDS` record (header, TSC,
/// four words).
pub const LOST_REC_SIZE: u32 = 4 + 8 + 16;

/// `insert_wrap_record`: the `TRC_TRACE_WRAP_BUFFER` record that pads the
/// `space_left` bytes before the end of the data area. It has no TSC and
/// `(space_left - 4) / 4` extra words; when those would be more than seven,
/// it carries the TSC `tsc` to take 8 more bytes. Xen leaves the payload
/// uninitialised; this writes zeros. `None` when `space_left` is not a
/// multiple of 4 in 4..=40.
pub fn wrap_record(space_left: u32, tsc: u64) -> Option<TraceRecord> {
    if space_left < 4 || !space_left.is_multiple_of(4) || space_left as usize > 4 * T_REC_MAX_WORDS {
        return None;
    }
    let mut extra = (space_left - 4) / 4;
    let cycles = extra as usize > TRACE_EXTRA_MAX;
    if cycles {
        extra -= 2;
    }
    let tsc = if cycles { Some(tsc) } else { None };
    TraceRecord::new(TRC_TRACE_WRAP_BUFFER, tsc, &[0; TRACE_EXTRA_MAX][..extra as usize]).ok()
}

/// What `__trace_var` writes for one record, from its dry run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InsertPlan {
    /// A wrap record of this many bytes goes before the lost-records record.
    pub wrap_before_lost: Option<u32>,
    /// A `TRC_LOST_RECORDS` record ([`LOST_REC_SIZE`]) goes first.
    pub lost: bool,
    /// A wrap record of this many bytes goes before the record.
    pub wrap_before_record: Option<u32>,
    /// Bytes written in all.
    pub total: u32,
}

/// `__trace_var`'s dry run: how a record of `rec_size` bytes goes into a
/// buffer at `prod`/`cons` with `data_size` data bytes, after a pending
/// lost-records record when `lost_pending`. `None` when it does not fit:
/// Xen then counts the record lost (and notes the TSC of the first).
pub fn plan_insert(prod: u32, cons: u32, data_size: u32, rec_size: u32, lost_pending: bool) -> Option<InsertPlan> {
    if ring_bogus(prod, cons, data_size) {
        return None;
    }
    let bytes_to_tail = data_size - ring_unconsumed(prod, cons, data_size);
    let mut bytes_to_wrap = ring_bytes_to_wrap(prod, data_size);
    let mut plan = InsertPlan { wrap_before_lost: None, lost: lost_pending, wrap_before_record: None, total: 0 };
    if lost_pending {
        if LOST_REC_SIZE > bytes_to_wrap {
            plan.wrap_before_lost = Some(bytes_to_wrap);
            plan.total += bytes_to_wrap;
            bytes_to_wrap = data_size;
        }
        plan.total += LOST_REC_SIZE;
        bytes_to_wrap -= LOST_REC_SIZE;
        if bytes_to_wrap == 0 {
            bytes_to_wrap = data_size;
        }
    }
    if rec_size > bytes_to_wrap {
        plan.wrap_before_record = Some(bytes_to_wrap);
        plan.total += bytes_to_wrap;
    }
    plan.total += rec_size;
    (plan.total <= bytes_to_tail).then_some(plan)
}

/// `calc_tinfo_first_offset`: the u32 index in `t_info` where the MFN
/// lists start, for a hypervisor of `nr_cpus` (Xen's `NR_CPUS`) CPUs:
/// `offsetof(struct t_info, mfn_offset[NR_CPUS])` rounded up to u32s.
pub const fn t_info_first_offset(nr_cpus: u32) -> u32 {
    (2 + 2 * nr_cpus).div_ceil(4)
}

/// The layout of the `t_info` area `XEN_SYSCTL_TBUFOP_get_info` returns
/// (`buffer_mfn`, `size` bytes): `uint16_t tbuf_size` (pages per CPU), then
/// `uint16_t mfn_offset[NR_CPUS]` (u32 index of each CPU's MFN list, 0 for a
/// CPU without buffer), then the MFN lists as u32s, `tbuf_size` per CPU;
/// each CPU's first page starts with its [`TBuf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TInfoLayout {
    /// `NR_CPUS`: entries of `mfn_offset`.
    pub nr_cpus: u32,
    /// `nr_cpu_ids`: CPUs with a buffer.
    pub nr_cpu_ids: u32,
    /// Pages per CPU (`tbuf_size`).
    pub pages: u16,
}

impl TInfoLayout {
    /// `mfn_offset[cpu]` as `alloc_trace_bufs` sets it: `first_offset +
    /// cpu * pages`.
    pub const fn mfn_offset(&self, cpu: u32) -> u32 {
        t_info_first_offset(self.nr_cpus) + cpu * self.pages as u32
    }
    /// u32 words of `t_info` (`t_info_words`).
    pub const fn words(&self) -> u32 {
        self.nr_cpu_ids * self.pages as u32 + t_info_first_offset(self.nr_cpus)
    }
    /// Pages of `t_info` (`t_info_pages`).
    pub const fn t_info_pages(&self) -> u32 {
        (self.words() * 4).div_ceil(4096)
    }
    /// Write the header and the MFN lists into `t_info` (zeroed by the
    /// caller, [`Self::t_info_pages`] pages); `mfn(cpu, page)` gives each
    /// buffer page's frame. False when `t_info` is too small or an offset
    /// does not fit 16 bits.
    pub fn write(&self, t_info: &mut [u8], mut mfn: impl FnMut(u32, u32) -> u32) -> bool {
        if t_info.len() < self.words() as usize * 4 || self.mfn_offset(self.nr_cpu_ids.saturating_sub(1)) > u32::from(u16::MAX) {
            return false;
        }
        t_info[0..2].copy_from_slice(&self.pages.to_le_bytes());
        for cpu in 0..self.nr_cpu_ids {
            let off = self.mfn_offset(cpu);
            let at = 2 + 2 * cpu as usize;
            t_info[at..at + 2].copy_from_slice(&(off as u16).to_le_bytes());
            for page in 0..u32::from(self.pages) {
                let at = 4 * (off + page) as usize;
                t_info[at..at + 4].copy_from_slice(&mfn(cpu, page).to_le_bytes());
            }
        }
        true
    }
}

/// `t_info->tbuf_size` of a mapped `t_info`.
pub fn t_info_tbuf_size(t_info: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes(t_info.get(0..2)?.try_into().ok()?))
}

/// The MFNs of `cpu`'s buffer pages in a mapped `t_info` (as xentrace's
/// `map_tbufs` reads them), or `None` when the CPU has no buffer
/// (`mfn_offset` 0) or the area is too short.
pub fn t_info_cpu_mfns(t_info: &[u8], cpu: u32) -> Option<impl Iterator<Item = u32> + '_> {
    let pages = t_info_tbuf_size(t_info)?;
    let at = 2 + 2 * cpu as usize;
    let off = u16::from_le_bytes(t_info.get(at..at + 2)?.try_into().ok()?);
    if off == 0 {
        return None;
    }
    let start = 4 * usize::from(off);
    let list = t_info.get(start..start + 4 * usize::from(pages))?;
    Some(list.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(e: &Event) -> (u32, std::vec::Vec<u32>) {
        let p = e.payload();
        (p.event, p.words().to_vec())
    }

    #[test]
    fn trace_h_event_numbers_are_xen_4_17s() {
        // trace.h: TRC_GEN + 1..3, TRC_SCHED_MIN + 1, TRC_SCHED_VERBOSE + n,
        // TRC_PV_ENTRY + 13, TRC_PV_SUBCALL + 14, TRC_HW_IRQ + 8.
        assert_eq!(TRC_LOST_RECORDS, 0x0001_f001);
        assert_eq!(TRC_TRACE_WRAP_BUFFER, 0x0001_f002);
        assert_eq!(TRC_TRACE_CPU_CHANGE, 0x0001_f003);
        assert_eq!(TRC_SCHED_RUNSTATE_CHANGE, 0x0002_1001);
        assert_eq!(TRC_SCHED_SWITCH, 0x0002_800a);
        assert_eq!(TRC_SCHED_SWITCH_INFCONT, 0x0002_8011);
        assert_eq!(TRC_DOM0_DOM_ADD, 0x0004_1001);
        assert_eq!(TRC_MEM_PAGE_GRANT_MAP, 0x0010_f001);
        assert_eq!(TRC_PV_HYPERCALL_V2, 0x0020_100d);
        assert_eq!(TRC_PV_HYPERCALL_SUBCALL, 0x0020_200e);
        assert_eq!(TRC_PV_TRAP | TRC_64_FLAG, 0x0020_1103);
        assert_eq!(TRC_HW_IRQ_HANDLED, 0x0080_2008);
        assert_eq!(trc_pv_hypercall_v2_arg_32(0), 0x0010_0000);
        assert_eq!(trc_pv_hypercall_v2_arg_64(5), 0x8000_0000);
    }

    #[test]
    fn xencore_class_is_one_unused_class_bit_with_one_bit_subclasses() {
        // Xen's classes use bits 0x001..=0x080 and 0x800 of event >> 16.
        let xen = [TRC_GEN, TRC_SCHED, TRC_DOM0OP, TRC_HVM, TRC_MEM, TRC_PV, TRC_SHADOW, TRC_HW, TRC_GUEST];
        for c in xen {
            assert_eq!((c >> TRC_CLS_SHIFT) & (TRC_XENCORE >> TRC_CLS_SHIFT), 0, "{c:#x}");
        }
        assert_eq!((TRC_XENCORE >> TRC_CLS_SHIFT).count_ones(), 1);
        for s in [TRC_XENCORE_HCALL, TRC_XENCORE_EVTCHN, TRC_XENCORE_SCHED, TRC_XENCORE_MEM] {
            assert_eq!(((s >> TRC_SUBCLS_SHIFT) & 0xf).count_ones(), 1);
            // __trace_var's class and subclass checks pass with TRC_ALL.
            assert_ne!((TRC_ALL >> TRC_CLS_SHIFT) & (s >> TRC_CLS_SHIFT), 0);
            assert_ne!((TRC_ALL >> TRC_SUBCLS_SHIFT) & 0xf & (s >> TRC_SUBCLS_SHIFT), 0);
        }
    }

    #[test]
    fn event_mask_matches_class_and_subclass_as_trace_var_does() {
        assert!(event_in_mask(TRC_ALL, TRC_SCHED_SWITCH));
        assert!(event_in_mask(TRC_ALL, TRC_XENCORE_UPCALL));
        assert!(event_in_mask(TRC_SCHED, TRC_SCHED_RUNSTATE_CHANGE));
        // TRC_SCHED_MIN's subclass (1) is not TRC_SCHED_VERBOSE's (8).
        assert!(event_in_mask(TRC_SCHED_MIN, TRC_SCHED_RUNSTATE_CHANGE));
        assert!(!event_in_mask(TRC_SCHED_MIN, TRC_SCHED_SWITCH));
        assert!(!event_in_mask(TRC_PV, TRC_SCHED_SWITCH));
        assert!(event_in_mask(TRC_XENCORE_EVTCHN, TRC_XENCORE_EVTCHN_SEND));
        assert!(!event_in_mask(TRC_XENCORE_EVTCHN, TRC_XENCORE_TIMER_SET));
        assert!(!event_in_mask(0x00ff_f000, TRC_XENCORE_HYPERCALL_EXIT));
    }

    #[test]
    fn t_rec_header_packs_event_28_extra_3_cycles_1() {
        let r = TraceRecord::new(0x0002_1101, Some(0x1122_3344_5566_7788), &[0x0003_0001]).unwrap();
        assert_eq!(r.header(), 0x9002_1101);
        let (w, n) = r.encode();
        assert_eq!(&w[..n], &[0x9002_1101, 0x5566_7788, 0x1122_3344, 0x0003_0001]);
        assert_eq!(r.size(), 16);
        let r = TraceRecord::new(TRC_TRACE_CPU_CHANGE, None, &[1, 0x30]).unwrap();
        assert_eq!(r.header(), 0x2001_f003);
        assert_eq!(r.size(), 12);
        let r = TraceRecord::new(0x0fff_ffff, None, &[0; 7]).unwrap();
        assert_eq!(r.header(), 0x7fff_ffff);
        assert_eq!(TraceRecord::new(0x1000_0000, None, &[]), Err(RecordError::EventTooWide));
        assert_eq!(TraceRecord::new(1, None, &[0; 8]), Err(RecordError::TooManyExtra));
    }

    #[test]
    fn t_rec_round_trips_with_and_without_cycles() {
        for tsc in [None, Some(0xdead_beef_0000_0001)] {
            for n in 0..=TRACE_EXTRA_MAX {
                let extra: std::vec::Vec<u32> = (0..n as u32).map(|i| i * 0x0101_0101).collect();
                let r = TraceRecord::new(TRC_SCHED_SWITCH, tsc, &extra).unwrap();
                let (w, len) = r.encode();
                assert_eq!(len, rec_size(tsc.is_some(), n) / 4);
                let mut input = w[..len].to_vec();
                input.push(0xffff_ffff); // the next record is not consumed
                assert_eq!(TraceRecord::decode(&input), Ok((r, len)));
                let (b, blen) = r.encode_bytes();
                assert_eq!(blen, 4 * len);
                assert_eq!(&b[..4], &r.header().to_le_bytes());
                assert_eq!(TraceRecord::decode_bytes(&b[..blen]), Ok((r, blen)));
            }
        }
    }

    #[test]
    fn t_rec_decode_rejects_truncated_records() {
        // Header promises a TSC and one extra word: 4 words.
        assert_eq!(TraceRecord::decode(&[0x9002_1101, 1, 2]), Err(RecordError::Truncated { need: 4, have: 3 }));
        assert_eq!(TraceRecord::decode(&[]), Err(RecordError::Truncated { need: 1, have: 0 }));
        let (b, n) = TraceRecord::new(TRC_SCHED_WAKE, Some(5), &[1, 2]).unwrap().encode_bytes();
        assert_eq!(TraceRecord::decode_bytes(&b[..n - 1]), Err(RecordError::Truncated { need: n, have: n - 1 }));
        assert_eq!(TraceRecord::decode_bytes(&b[..3]), Err(RecordError::Truncated { need: 4, have: 3 }));
    }

    #[test]
    fn runstate_change_encodes_states_in_event_and_vcpu_low_domain_high() {
        // trace_runstate_change: event |= (old & 3) << 8 | (new & 3) << 4;
        // struct { uint32_t vcpu:16, domain:16; }.
        let e = Event::runstate_change(3, 1, TRC_RUNSTATE_RUNNABLE, TRC_RUNSTATE_RUNNING);
        assert_eq!(words(&e), (0x0002_1101, vec![0x0003_0001]));
        let e = Event::runstate_change(0x7fff, 2, TRC_RUNSTATE_RUNNING, TRC_RUNSTATE_BLOCKED);
        assert_eq!(words(&e), (0x0002_1021, vec![0x7fff_0002]));
        assert_eq!(Event::decode(0x0002_1021, &[0x7fff_0002]), Ok(e));
        assert_eq!(Event::decode(0x0002_1021, &[]), Err(PayloadError { event: 0x0002_1021, extra_words: 0 }));
    }

    #[test]
    fn hypercall_v2_records_xen_4_17s_argument_subset_as_32_bits() {
        // __trace_hypercall: grant_table_op keeps args 0 and 2.
        let e = Event::hypercall(20, &[3, 0xdead, 7, 9, 10]);
        assert_eq!(words(&e), (TRC_PV_HYPERCALL_V2, vec![0x0110_0014, 3, 7]));
        // sched_op: arg 0, truncated to 32 bits by `*a++ = args[i]`.
        let e = Event::hypercall(29, &[0xffff_ffff_0000_0001, 0, 0, 0, 0]);
        assert_eq!(words(&e), (TRC_PV_HYPERCALL_V2, vec![0x0010_001d, 1]));
        // mmu_update: arg 1 (count).
        let e = Event::hypercall(1, &[0xffff_8000_0000_1000, 0x1_0000_0002, 0, 0, 0]);
        assert_eq!(words(&e), (TRC_PV_HYPERCALL_V2, vec![0x0040_0001, 2]));
        // vcpu_op: args 0 and 1; multicall and mmuext_op: arg 1.
        assert_eq!(words(&Event::hypercall(24, &[11, 0, 5, 5, 5])).1, vec![0x0050_0018, 11, 0]);
        assert_eq!(words(&Event::hypercall(13, &[0x1000, 4, 0, 0, 0])).1, vec![0x0040_000d, 4]);
        assert_eq!(words(&Event::hypercall(26, &[0x1000, 1, 0, 0, 0])).1, vec![0x0040_001a, 1]);
        // Others: the op alone.
        assert_eq!(words(&Event::hypercall(17, &[1, 2, 3, 4, 5])).1, vec![17]);
        assert_eq!(words(&Event::hypercall_subcall(29, &[2, 0, 0, 0, 0])), (TRC_PV_HYPERCALL_SUBCALL, vec![0x0010_001d, 2]));
    }

    #[test]
    fn hypercall_v2_decoder_reads_32_and_64_bit_arguments() {
        // A0 32-bit, A2 64-bit (10b), per trace.h's TRC_PV_HYPERCALL_V2 format.
        let w = [0x0210_0014, 3, 0x89ab_cdef, 0x0123_4567];
        let e = Event::decode(TRC_PV_HYPERCALL_V2, &w).unwrap();
        assert_eq!(e, Event::Hypercall { subcall: false, op: 20, args: [Some(3), None, Some(0x0123_4567_89ab_cdef), None, None, None] });
        assert_eq!(words(&e).1, w.to_vec());
        // Reserved 11b and missing words are rejected.
        assert!(Event::decode(TRC_PV_HYPERCALL_V2, &[0x0030_0014, 1]).is_err());
        assert!(Event::decode(TRC_PV_HYPERCALL_V2, &[0x0110_0014, 3]).is_err());
    }

    #[test]
    fn pv_trap_64_packs_rip_then_trapnr15_errflag1_error16() {
        // __trace_pv_trap, 64-bit: struct __packed { u64 rip; u16 trapnr:15;
        // bool use_error_code:1; u16 error_code; }.
        let e = Event::pv_trap(13, 0xffff_ffff_8100_0010, true, 0x18);
        assert_eq!(words(&e), (0x0020_1103, vec![0x8100_0010, 0xffff_ffff, 0x0018_800d]));
        assert_eq!(Event::decode(0x0020_1103, &[0x8100_0010, 0xffff_ffff, 0x0018_800d]), Ok(e));
        let e = Event::PvPageFault { rip: 0x1000, addr: 0xdead_b000, error_code: 2 };
        assert_eq!(words(&e), (0x0020_1104, vec![0x1000, 0, 0xdead_b000, 0, 2]));
    }

    #[test]
    fn lost_records_packs_domain_low_vcpu_high_then_first_tsc() {
        // insert_lost_records: struct __packed { u32 lost; u16 did, vid; u64 first_tsc; }.
        let e = Event::lost_records(5, 1, 2, 0x0000_000a_0000_000b);
        assert_eq!(words(&e), (TRC_LOST_RECORDS, vec![5, 0x0002_0001, 0xb, 0xa]));
        assert_eq!(e.payload().record(9).size(), 28); // LOST_REC_SIZE
        assert_eq!(Event::decode(TRC_LOST_RECORDS, &[5, 0x0002_0001, 0xb, 0xa]), Ok(e));
    }

    #[test]
    fn tracend_payloads_are_the_call_sites_arguments_in_order() {
        // sched_switch_units: TRACE_4D(SWITCH, prev dom, prev unit, next dom, next unit).
        let e = Event::Switch { prev_domid: 1, prev_vcpu: 0, next_domid: 0x7fff, next_vcpu: 1 };
        assert_eq!(words(&e), (0x0002_800a, vec![1, 0, 0x7fff, 1]));
        assert_eq!(words(&Event::Block { domid: 2, vcpu: 1 }), (0x0002_8006, vec![2, 1]));
        assert_eq!(words(&Event::Wake { domid: 2, vcpu: 1 }), (0x0002_8004, vec![2, 1]));
        assert_eq!(words(&Event::Yield { domid: 2, vcpu: 1 }), (0x0002_8005, vec![2, 1]));
        assert_eq!(words(&Event::Shutdown { domid: 2, vcpu: 0, reason: 1 }), (0x0002_8007, vec![2, 0, 1]));
        assert_eq!(words(&Event::SchedDomAdd { domid: 4 }), (0x0002_8001, vec![4]));
        assert_eq!(words(&Event::Dom0DomRem { domid: 4 }), (0x0004_1002, vec![4]));
        assert_eq!(words(&Event::GrantMap { domid: 7 }), (0x0010_f001, vec![7]));
        assert_eq!(words(&Event::ContinueRunning { domid: 1, vcpu: 3 }), (0x0002_1002, vec![0x0001_0003]));
        assert_eq!(words(&Event::irq_handled(9, 0x1_0000_0005, 0x2_0000_0007)), (0x0080_2008, vec![9, 5, 7]));
        assert_eq!(words(&Event::cpu_change(1, 0x30)), (TRC_TRACE_CPU_CHANGE, vec![1, 0x30]));
    }

    #[test]
    fn every_typed_event_decodes_back_to_itself() {
        use Event::*;
        let all = [
            Event::lost_records(1, 2, 3, 4),
            WrapBuffer,
            Event::cpu_change(3, 4096),
            Event::runstate_change(1, 2, 3, 1),
            ContinueRunning { domid: 1, vcpu: 2 },
            SchedDomAdd { domid: 1 },
            SchedDomRem { domid: 1 },
            Sleep { domid: 1, vcpu: 2 },
            Wake { domid: 1, vcpu: 2 },
            Block { domid: 1, vcpu: 2 },
            Yield { domid: 1, vcpu: 2 },
            Shutdown { domid: 1, vcpu: 2, reason: 3 },
            ShutdownCode { domid: 1, vcpu: 2, reason: 3 },
            Switch { prev_domid: 1, prev_vcpu: 2, next_domid: 3, next_vcpu: 4 },
            SwitchInfPrev { domid: 1, vcpu: 2, runtime: 3 },
            SwitchInfNext { domid: 1, vcpu: 2, waited: 3, next_time: 4 },
            SwitchInfCont { domid: 1, vcpu: 2, runtime: 3, next_time: 4 },
            Dom0DomAdd { domid: 1 },
            Dom0DomRem { domid: 1 },
            GrantMap { domid: 1 },
            GrantUnmap { domid: 1 },
            GrantTransfer { domid: 1 },
            Event::hypercall(20, &[1, 2, 3, 4, 5]),
            Event::hypercall_subcall(24, &[1, 2, 3, 4, 5]),
            Event::pv_trap(14, 0x1234_5678_9abc, true, 7),
            PvPageFault { rip: 1, addr: 2, error_code: 3 },
            Event::irq_handled(1, 2, 3),
            HypercallExit { op: 32, result: -22, cycles: 0x1_0000_0010 },
            EvtchnSend { domid: 1, vcpu: 2, port: 3, remote_domid: 4, remote_port: 5 },
            Upcall { domid: 1, vcpu: 2, port: NO_PORT, pending_sel: 1 << 40 },
            TimerSet { domid: 1, vcpu: 2, deadline: 1 << 33 },
            TimerFire { domid: 1, vcpu: 2, late_ns: 1500 },
            VcpuSwitch { prev_domid: 1, prev_vcpu: 0, next_domid: 0x7fff, next_vcpu: 1, reason: SwitchReason::Block },
            DomPause { domid: 1 },
            DomUnpause { domid: 1 },
            DomShutdown { domid: 1, reason: 2 },
            DomDestroy { domid: 1 },
            PtPin { domid: 1, mfn: 0x1_2345, level: 4 },
            PtUnpin { domid: 1, mfn: 0x1_2345, level: 4 },
            GrantCopy { domid: 1, count: 8 },
            Other { event: TRC_GUEST + 0x1001 },
        ];
        for e in all {
            let rec = e.payload().record(77);
            let (w, n) = rec.encode();
            let (back, used) = TraceRecord::decode(&w[..n]).unwrap();
            assert_eq!(used, n);
            assert_eq!(back.decode_event(), Ok(e), "{e:?}");
        }
    }

    /// The hypercall path's direct payloads and word encoder give exactly
    /// the words of the typed events (`__trace_hypercall`'s layout for
    /// every hypercall number, sub-calls too; the exit record's), so the
    /// fast path cannot drift from the codec the layout tests pin.
    /// Records follow one another whole (`t_rec` has no padding between
    /// records): a run reads back with offsets and sizes, and one cut
    /// short ends it with its offset.
    #[test]
    fn a_run_of_records_reads_back_and_stops_at_a_cut_one() {
        let recs = [Event::Wake { domid: 1, vcpu: 0 }.payload().record(7), Event::Block { domid: 2, vcpu: 1 }.payload().record_without_tsc()];
        let mut bytes: Vec<u8> = recs
            .iter()
            .flat_map(|r| {
                let (b, n) = r.encode_bytes();
                b[..n].to_vec()
            })
            .collect();
        let got: Vec<_> = records_in(&bytes).collect();
        assert_eq!(got, [Ok((0, 20, recs[0])), Ok((20, 12, recs[1]))], "header, TSC and two words; header and two words");
        bytes.truncate(24);
        let got: Vec<_> = records_in(&bytes).collect();
        assert_eq!(got, [Ok((0, 20, recs[0])), Err((20, RecordError::Truncated { need: 12, have: 4 }))]);
        assert_eq!(records_in(&[]).count(), 0);
    }

    #[test]
    fn direct_hypercall_payloads_and_encoding_equal_the_typed_events() {
        let args = [0x1_0000_0001, 0xffff_ffff_ffff_fff2, 3, 4, 5];
        // 0x1_0000_0001 is no mmu_update: Xen's `__trace_hypercall`
        // switches on the whole number, so no argument is recorded.
        assert_eq!(Payload::hypercall(false, 0x1_0000_0001, &args).words().len(), 1);
        for op in (0..64).chain([0xfffff, 0x1_0000_0011, 0x1_0000_0001]) {
            for subcall in [false, true] {
                let typed = if subcall { Event::hypercall_subcall(op, &args) } else { Event::hypercall(op, &args) }.payload();
                let direct = Payload::hypercall(subcall, op, &args);
                assert_eq!(direct, typed, "op {op} subcall {subcall}");
                let tsc = 0x1234_5678_9abc_def0 ^ op;
                let (w, n) = direct.encode_with_tsc(tsc);
                let (want, m) = typed.record(tsc).encode();
                assert_eq!(&w[..n], &want[..m], "op {op} subcall {subcall}");
            }
        }
        for (op, result, cycles) in [(17, 0x4_0011, 250), (32, -22, 0x1_0000_0010), (29, i64::MIN, u64::MAX)] {
            let typed = Event::HypercallExit { op, result, cycles }.payload();
            assert_eq!(Payload::hypercall_exit(op, result, cycles), typed);
            let (w, n) = typed.encode_with_tsc(99);
            let (want, m) = typed.record(99).encode();
            assert_eq!(&w[..n], &want[..m]);
        }
        assert_eq!(Payload::of(TRC_LOST_RECORDS, [1, 2, 3]), Payload::new(TRC_LOST_RECORDS, &[1, 2, 3]));
    }

    #[test]
    fn xencore_payload_words_are_as_documented() {
        let e = Event::HypercallExit { op: 29, result: -1, cycles: 0x2_0000_0003 };
        assert_eq!(words(&e), (0x0400_1001, vec![29, 0xffff_ffff, 0xffff_ffff, 3, 2]));
        let e = Event::EvtchnSend { domid: 1, vcpu: 0, port: 5, remote_domid: 2, remote_port: 6 };
        assert_eq!(words(&e), (0x0400_2001, vec![0x0001_0000, 5, 2, 6]));
        let e = Event::VcpuSwitch { prev_domid: 1, prev_vcpu: 0, next_domid: 2, next_vcpu: 1, reason: SwitchReason::Yield };
        assert_eq!(words(&e), (0x0400_4003, vec![0x0001_0000, 0x0002_0001, 1]));
        assert!(Event::decode(TRC_XENCORE_VCPU_SWITCH, &[0, 0, 99]).is_err());
    }

    #[test]
    fn t_buf_and_t_info_layout_match_xen() {
        // struct t_buf { uint32_t cons, prod; }: 8 bytes, records follow.
        assert_eq!(core::mem::size_of::<TBuf>(), 8);
        // calc_tinfo_first_offset with NR_CPUS = 256: (2 + 512) bytes -> 129 u32s.
        assert_eq!(t_info_first_offset(256), 129);
        assert_eq!(t_info_first_offset(1), 1);
        let l = TInfoLayout { nr_cpus: 4, nr_cpu_ids: 2, pages: 3 };
        assert_eq!(l.mfn_offset(0), 3);
        assert_eq!(l.mfn_offset(1), 6);
        assert_eq!(l.words(), 9);
        assert_eq!(l.t_info_pages(), 1);
        let mut page = vec![0u8; 4096];
        assert!(l.write(&mut page, |cpu, p| 0x1000 * (cpu + 1) + p));
        assert_eq!(&page[0..2], &3u16.to_le_bytes());
        assert_eq!(&page[2..6], &[3, 0, 6, 0]);
        assert_eq!(t_info_tbuf_size(&page), Some(3));
        assert_eq!(t_info_cpu_mfns(&page, 1).unwrap().collect::<std::vec::Vec<_>>(), vec![0x2000, 0x2001, 0x2002]);
        assert!(t_info_cpu_mfns(&page, 2).is_none()); // mfn_offset 0: no buffer
        assert!(!l.write(&mut [0u8; 16], |_, _| 0));
    }

    #[test]
    fn wrap_record_fills_exactly_the_bytes_to_the_end() {
        // insert_wrap_record: extra = (space - 4) / 4, with the TSC once
        // that exceeds TRACE_EXTRA_MAX.
        for space in (4..=40).step_by(4) {
            let r = wrap_record(space, 9).unwrap();
            assert_eq!(r.size() as u32, space);
            assert_eq!(r.event(), TRC_TRACE_WRAP_BUFFER);
            assert_eq!(r.tsc().is_some(), space > 32);
        }
        assert_eq!(wrap_record(40, 9).unwrap().header(), 0xf001_f002);
        assert!(wrap_record(0, 0).is_none());
        assert!(wrap_record(6, 0).is_none());
        assert!(wrap_record(44, 0).is_none());
    }

    #[test]
    fn plan_insert_follows_trace_var_dry_run() {
        let ds = 100;
        // Plenty of room, no wrap.
        assert_eq!(plan_insert(0, 0, ds, 16, false), Some(InsertPlan { wrap_before_lost: None, lost: false, wrap_before_record: None, total: 16 }));
        // 12 bytes to the end: a 12-byte wrap record, then the record.
        assert_eq!(
            plan_insert(88, 80, ds, 16, false),
            Some(InsertPlan { wrap_before_lost: None, lost: false, wrap_before_record: Some(12), total: 28 })
        );
        // A pending lost record goes first, wrapping itself when 28 bytes do not fit.
        assert_eq!(
            plan_insert(88, 80, ds, 16, true),
            Some(InsertPlan { wrap_before_lost: Some(12), lost: true, wrap_before_record: None, total: 56 })
        );
        // Lost record ending exactly at the end: the record starts after the wrap.
        assert_eq!(plan_insert(72, 60, ds, 16, true), Some(InsertPlan { wrap_before_lost: None, lost: true, wrap_before_record: None, total: 44 }));
        // Full: 100 - 96 unconsumed = 4 bytes free.
        assert_eq!(plan_insert(96, 0, ds, 8, false), None);
        // Bogus indices never fit.
        assert_eq!(plan_insert(3, 0, ds, 4, false), None);
    }

    #[test]
    fn ring_indices_count_modulo_twice_the_data_size() {
        let ds = data_size(32);
        assert_eq!(ds, 32 * 4096 - 8);
        assert_eq!(ring_unconsumed(8, 2 * ds - 8, ds), 16);
        assert_eq!(ring_unconsumed(100, 40, ds), 60);
        assert_eq!(ring_bytes_to_wrap(ds + 4, ds), ds - 4);
        assert_eq!(ring_bytes_to_wrap(ds, ds), ds);
        assert_eq!(ring_bytes_to_wrap(12, ds), ds - 12);
        assert_eq!(ring_advance(2 * ds - 8, 16, ds), 8);
        assert!(ring_bogus(2, 0, ds));
        assert!(ring_bogus(0, 2 * ds, ds));
        assert!(!ring_bogus(2 * ds - 4, ds - 4, ds), "full, across the index wrap");
        assert!(!ring_bogus(ds, 0, ds), "exactly full");
        assert!(ring_bogus(2 * ds - 4, 0, ds), "more unread than the ring holds");
        assert!(ring_bogus(0, 4, ds), "cons ahead of prod");
    }
}
