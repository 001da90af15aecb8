//! Host-side analysis of xen-core and Xen traces (issue 19): read and
//! write xentrace dumps ([`dump`]), take guests' own streams off the
//! console ([`guest`]), merge the per-CPU hypervisor streams with
//! guest streams on the TSC ([`merge`]), rebuild each vCPU's and pCPU's
//! state over time ([`state`]), and report it as text ([`summary`]) and as
//! an SVG timeline ([`svg`]).
//!
//! The record format is `xen_public::trace` (Xen's `t_rec`); nothing here
//! trusts a dump: malformed input is an error, never a panic. `cargo xtask
//! trace` ([`crate::trace_cmd`]) runs it on dom0's `xl trace dump`.

pub mod dump;
pub mod guest;
pub mod merge;
pub mod state;
pub mod summary;
pub mod svg;

use xen_public::trace::{Event, SwitchReason};

/// A guest vCPU, as the trace names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VcpuId {
    /// Domain.
    pub domid: u16,
    /// vCPU within it.
    pub vcpu: u16,
}

impl std::fmt::Display for VcpuId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "d{}v{}", self.domid, self.vcpu)
    }
}

/// `__HYPERVISOR_*` names of Xen's `xen.h`, by number.
pub fn hypercall_name(op: u32) -> &'static str {
    const NAMES: [&str; 42] = [
        "set_trap_table",
        "mmu_update",
        "set_gdt",
        "stack_switch",
        "set_callbacks",
        "fpu_taskswitch",
        "sched_op_compat",
        "platform_op",
        "set_debugreg",
        "get_debugreg",
        "update_descriptor",
        "hypercall11",
        "memory_op",
        "multicall",
        "update_va_mapping",
        "set_timer_op",
        "event_channel_op_compat",
        "xen_version",
        "console_io",
        "physdev_op_compat",
        "grant_table_op",
        "vm_assist",
        "update_va_mapping_otherdomain",
        "iret",
        "vcpu_op",
        "set_segment_base",
        "mmuext_op",
        "xsm_op",
        "nmi_op",
        "sched_op",
        "callback_op",
        "xenoprof_op",
        "event_channel_op",
        "physdev_op",
        "hvm_op",
        "sysctl",
        "domctl",
        "kexec_op",
        "tmem_op",
        "argo_op",
        "xenpmu_op",
        "dm_op",
    ];
    NAMES.get(op as usize).copied().unwrap_or("unknown")
}

/// `RUNSTATE_*` names.
pub fn runstate_name(s: u32) -> &'static str {
    match s {
        0 => "running",
        1 => "runnable",
        2 => "blocked",
        _ => "offline",
    }
}

fn reason_name(r: SwitchReason) -> &'static str {
    r.name()
}

/// One line describing a guest's own record
/// (`xen_public::trace_guest`), if it is one of ours.
fn describe_guest(event: u32, extra: &[u32]) -> Option<String> {
    use xen_public::trace_guest::GuestEvent::*;
    let ring = |r: xen_public::trace_guest::RingKind, p: u16| format!("{} ring with d{p}", r.name());
    Some(match xen_public::trace_guest::GuestEvent::decode(event, extra)? {
        EvtchnSend { port, result, tsc_before } => format!("guest: EVTCHNOP_send port {port} -> {result} (called at tsc {tsc_before})"),
        XenbusRequest { type_, req_id, tx_id, len } => format!("guest: xenbus request type {type_} id {req_id} tx {tx_id} ({len} bytes)"),
        XenbusReply { type_, req_id, len } => format!("guest: xenbus reply type {type_} id {req_id} ({len} bytes)"),
        RingPushRequests { ring: r, peer, req_prod, count, notified } => {
            format!("guest: {} requests pushed on the {} (req_prod {req_prod}{})", count, ring(r, peer), if notified { ", notified" } else { "" })
        }
        RingTakeResponses { ring: r, peer, rsp_cons, count } => {
            format!("guest: {count} responses taken from the {} (rsp_cons {rsp_cons})", ring(r, peer))
        }
        RingPushResponses { ring: r, peer, rsp_prod, count, notified } => {
            format!("backend: {count} responses pushed on the {} (rsp_prod {rsp_prod}{})", ring(r, peer), if notified { ", notified" } else { "" })
        }
        BalloonStep { op, asked, done, held } => format!("guest: balloon {} {done} of {asked} pages, holds {held}", op.name()),
    })
}

/// One line describing a record's event, for hover text and listings.
pub fn describe(event: u32, extra: &[u32]) -> String {
    use Event::*;
    if let Some(g) = describe_guest(event, extra) {
        return g;
    }
    let e = match Event::decode(event, extra) {
        Ok(e) => e,
        Err(_) => return format!("malformed event {event:#010x} ({} words)", extra.len()),
    };
    match e {
        LostRecords { lost, domid, vcpu, first_tsc } => format!("lost {lost} records (d{domid}v{vcpu}, first at tsc {first_tsc})"),
        WrapBuffer => "buffer wrap".into(),
        CpuChange { cpu, window_size } => format!("cpu change to {cpu} ({window_size} bytes)"),
        RunstateChange { domid, vcpu, old, new } => format!("d{domid}v{vcpu} {} -> {}", runstate_name(old), runstate_name(new)),
        ContinueRunning { domid, vcpu } => format!("d{domid}v{vcpu} continues running"),
        SchedDomAdd { domid } => format!("sched: add d{domid}"),
        SchedDomRem { domid } => format!("sched: remove d{domid}"),
        Sleep { domid, vcpu } => format!("d{domid}v{vcpu} sleep"),
        Wake { domid, vcpu } => format!("d{domid}v{vcpu} wake"),
        Block { domid, vcpu } => format!("d{domid}v{vcpu} block"),
        Yield { domid, vcpu } => format!("d{domid}v{vcpu} yield"),
        Shutdown { domid, vcpu, reason } => format!("d{domid}v{vcpu} shutdown reason {reason}"),
        ShutdownCode { domid, vcpu, reason } => format!("d{domid}v{vcpu} shutdown code {reason}"),
        Switch { prev_domid, prev_vcpu, next_domid, next_vcpu } => format!("switch d{prev_domid}v{prev_vcpu} -> d{next_domid}v{next_vcpu}"),
        SwitchInfPrev { domid, vcpu, runtime } => format!("switch out d{domid}v{vcpu} after {runtime} ns"),
        SwitchInfNext { domid, vcpu, waited, .. } => format!("switch in d{domid}v{vcpu} after waiting {waited} ns"),
        SwitchInfCont { domid, vcpu, runtime, .. } => format!("d{domid}v{vcpu} continues after {runtime} ns"),
        Dom0DomAdd { domid } => format!("domain d{domid} created"),
        Dom0DomRem { domid } => format!("domain d{domid} destroyed"),
        GrantMap { domid } => format!("grant map from d{domid}"),
        GrantUnmap { domid } => format!("grant unmap from d{domid}"),
        GrantTransfer { domid } => format!("grant transfer to d{domid}"),
        Hypercall { subcall, op, args } => {
            let a: Vec<String> = args.iter().enumerate().filter_map(|(i, a)| a.map(|a| format!("a{i}={a:#x}"))).collect();
            format!("{}{}({op}) {}", if subcall { "multicall: " } else { "hypercall " }, hypercall_name(op), a.join(" "))
        }
        PvTrap { rip, trapnr, use_error_code, error_code } => {
            if use_error_code {
                format!("trap {trapnr} at {rip:#x} error {error_code:#x}")
            } else {
                format!("trap {trapnr} at {rip:#x}")
            }
        }
        PvPageFault { rip, addr, error_code } => format!("page fault at {addr:#x} rip {rip:#x} error {error_code:#x}"),
        IrqHandled { irq, tsc_in, tsc_out } => format!("irq {irq} handled in {} cycles", tsc_out.wrapping_sub(tsc_in)),
        HypercallExit { op, result, cycles } => format!("{}({op}) returns {result} after {cycles} cycles", hypercall_name(op)),
        EvtchnSend { domid, vcpu, port, remote_domid, remote_port } => {
            format!("d{domid}v{vcpu} sends port {port} -> d{remote_domid} port {remote_port}")
        }
        Upcall { domid, vcpu, port, pending_sel } => {
            if port == xen_public::trace::NO_PORT {
                format!("upcall d{domid}v{vcpu} sel {pending_sel:#x}")
            } else {
                format!("upcall d{domid}v{vcpu} port {port}")
            }
        }
        TimerSet { domid, vcpu, deadline } => format!("d{domid}v{vcpu} timer set for {deadline} ns"),
        TimerFire { domid, vcpu, late_ns } => format!("d{domid}v{vcpu} timer fired {late_ns} ns late"),
        VcpuSwitch { prev_domid, prev_vcpu, next_domid, next_vcpu, reason } => {
            format!("switch d{prev_domid}v{prev_vcpu} -> d{next_domid}v{next_vcpu} ({})", reason_name(reason))
        }
        DomPause { domid } => format!("d{domid} paused"),
        DomUnpause { domid } => format!("d{domid} unpaused"),
        DomShutdown { domid, reason } => format!("d{domid} shut down, reason {reason}"),
        DomDestroy { domid } => format!("d{domid} destroyed"),
        PtPin { domid, mfn, level } => format!("d{domid} pins L{level} table mfn {mfn:#x}"),
        PtUnpin { domid, mfn, level } => format!("d{domid} unpins L{level} table mfn {mfn:#x}"),
        GrantCopy { domid, count } => format!("d{domid} grant copy x{count}"),
        Other { event } if xen_public::trace_guest::is_guest_class(event) => format!("guest event {event:#010x} {extra:x?}"),
        Other { event } => format!("event {event:#010x} {extra:x?}"),
    }
}
