//! Domain control: `domctl` and `sysctl` (`xen/include/public/domctl.h`,
//! `xen/include/public/sysctl.h`), with the other-domain forms of
//! `event_channel_op`, `mmu_update`, `mmuext_op` and `memory_op` that dom0 uses
//! on a domain it created.

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    domctl_getdomaininfo_of_dom0 ("domctl", "XEN_DOMCTL_getdomaininfo", Accept) {
        let mut op = domctl_op(5, 0x15, 0);
        let r = domctl(&mut op);
        let i: XenDomctlGetdomaininfo = op.payload();
        all(&[
            expect(r, 0),
            check(i.domain == 0, format_args!("domain {}", i.domain)),
            check(i.flags & XEN_DOMINF_RUNNING != 0, format_args!("flags {:#x} not running", i.flags)),
            check(i.tot_pages == start_info().nr_pages, format_args!("tot_pages {}", i.tot_pages)),
            check(i.nr_online_vcpus == 1, format_args!("online vcpus {}", i.nr_online_vcpus)),
        ])
    }
    domctl_getdomaininfo_past_the_last_domain_esrch ("domctl", "XEN_DOMCTL_getdomaininfo", Reject) {
        expect(domctl(&mut domctl_op(5, 0x15, 0x7000)), -ESRCH)
    }
    domctl_wrong_interface_version_eacces ("domctl", "interface_version", Reject) {
        expect(domctl(&mut domctl_op(5, 0x14, 0)), -EACCES)
    }
    domctl_unmapped_argument_efault ("domctl", "argument", Reject) { expect(call(nr::DOMCTL, UNMAPPED, 0, 0, 0, 0), -EFAULT) }
    domctl_max_mem_on_dom0_ok ("domctl", "XEN_DOMCTL_max_mem", Accept) {
        expect(max_mem(0, start_info().nr_pages * 4 + 1024), 0)
    }
    domctl_create_populate_destroy ("domctl", "XEN_DOMCTL_createdomain, destroydomain", Accept) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let info = domain_info(id);
        let mm = max_mem(id, 16 * 4);
        let pop = populate(id, 16);
        let cur = current_reservation(id);
        let destroyed = domctl_simple(2, id);
        let after = domain_info(id);
        all(&[
            check(id > 0, format_args!("new id {id}")),
            check(matches!(info, Ok((d, f, 0)) if d == id && f & (1 << 3) != 0), format_args!("info {info:?}")),
            expect(mm, 0),
            expect(pop, 16),
            expect(cur, 16),
            expect(destroyed, 0),
            check(!matches!(after, Ok((d, _, _)) if d == id), format_args!("still there: {after:?}")),
        ])
    }
    domctl_pause_counts_and_unpause_underflow ("domctl", "XEN_DOMCTL_pausedomain, unpausedomain", Accept) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let p = domctl_simple(3, id);
        let u1 = domctl_simple(4, id);
        let still = domain_info(id).map(|i| i.1 & (1 << 3) != 0);
        let u2 = domctl_simple(4, id);
        let gone = domain_info(id).map(|i| i.1 & (1 << 3) != 0);
        let u3 = domctl_simple(4, id);
        let d = domctl_simple(2, id);
        all(&[expect(p, 0), expect(u1, 0), check(still == Ok(true), format_args!("not paused after one unpause")), expect(u2, 0), check(gone == Ok(false), format_args!("still paused")), expect(u3, -EINVAL), expect(d, 0)])
    }
    domctl_create_with_a_taken_id_eexist ("domctl", "XEN_DOMCTL_createdomain", Reject) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let again = create_domain(id);
        domctl_simple(2, id);
        check(again == Err(-EEXIST), format_args!("second create: {again:?}"))
    }
    domctl_pause_unknown_domain_esrch ("domctl", "XEN_DOMCTL_pausedomain", Reject) { expect(domctl_simple(3, 0x1234), -ESRCH) }
    domctl_max_vcpus_must_match_createdomain ("domctl", "XEN_DOMCTL_max_vcpus", Accept) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let two = max_vcpus(id, 2);
        let one = max_vcpus(id, 1);
        domctl_simple(2, id);
        all(&[expect(two, -EINVAL), expect(one, 0)])
    }
    domctl_settscinfo_native_reads_back_with_the_next_incarnation ("domctl", "XEN_DOMCTL_settscinfo, gettscinfo", Accept) {
        // Xen 4.17 tsc_set_info: incarnation = given + 1; tsc_get_info of
        // a never-emulate domain: mode 2, no rate, no elapsed time.
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let set = tsc_info(XEN_DOMCTL_SETTSCINFO, id, XenDomctlTscInfo { tsc_mode: TSC_MODE_NEVER_EMULATE, incarnation: 4, ..Default::default() });
        let got = tsc_info(XEN_DOMCTL_GETTSCINFO, id, XenDomctlTscInfo::default());
        domctl_simple(XEN_DOMCTL_DESTROYDOMAIN, id);
        let t = got.1;
        all(&[
            expect(set.0, 0),
            expect(got.0, 0),
            check((t.tsc_mode, t.gtsc_khz, t.incarnation, t.elapsed_nsec) == (TSC_MODE_NEVER_EMULATE, 0, 5, 0), format_args!("got {t:?}")),
        ])
    }
    domctl_settscinfo_unknown_mode_and_self_einval ("domctl", "XEN_DOMCTL_settscinfo", Reject) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        // TSC_MODE_PVRDTSCP (3) is gone from Xen 4.17: -EINVAL, and the
        // mode stays; dom0 cannot pause itself for the call: -EINVAL.
        let pvrdtscp = tsc_info(XEN_DOMCTL_SETTSCINFO, id, XenDomctlTscInfo { tsc_mode: 3, ..Default::default() }).0;
        let mode = tsc_info(XEN_DOMCTL_GETTSCINFO, id, XenDomctlTscInfo::default()).1.tsc_mode;
        domctl_simple(XEN_DOMCTL_DESTROYDOMAIN, id);
        let own = tsc_info(XEN_DOMCTL_SETTSCINFO, 0, XenDomctlTscInfo::default()).0;
        let own_get = tsc_info(XEN_DOMCTL_GETTSCINFO, 0, XenDomctlTscInfo::default()).0;
        all(&[expect(pvrdtscp, -EINVAL), expect(i64::from(mode), i64::from(TSC_MODE_DEFAULT)), expect(own, -EINVAL), expect(own_get, -EINVAL)])
    }
    domctl_setvcpucontext_before_max_vcpus_einval ("domctl", "XEN_DOMCTL_setvcpucontext", Reject) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let ctx = VcpuGuestContext::default();
        let r = vcpu_context(12, id, 0, ptr(&ctx));
        domctl_simple(2, id);
        expect(r, -EINVAL)
    }
    domctl_setvcpucontext_non_canonical_rip_einval ("domctl", "XEN_DOMCTL_setvcpucontext", Attack) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let mut ctx = VcpuGuestContext::default();
        ctx.user_regs.rip = NONCANON;
        let r = vcpu_context(12, id, 0, ptr(&ctx));
        let bad_vcpu = vcpu_context(12, id, 7, ptr(&ctx));
        domctl_simple(2, id);
        all(&[expect(r, -EINVAL), expect(bad_vcpu, -EINVAL)])
    }
    domctl_setvcpucontext_unmapped_context_efault ("domctl", "XEN_DOMCTL_setvcpucontext", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let r = vcpu_context(12, id, 0, UNMAPPED);
        domctl_simple(2, id);
        expect(r, -EFAULT)
    }
    domctl_setvcpucontext_on_self_einval ("domctl", "XEN_DOMCTL_setvcpucontext", Reject) {
        let ctx = VcpuGuestContext::default();
        expect(vcpu_context(12, 0, 0, ptr(&ctx)), -EINVAL)
    }
    domctl_getvcpucontext_uninitialised_enodata ("domctl", "XEN_DOMCTL_getvcpucontext", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let mut ctx = VcpuGuestContext::default();
        let r = vcpu_context(13, id, 0, ptr_mut(&mut ctx));
        domctl_simple(2, id);
        expect(r, -ENODATA)
    }
    domctl_getvcpuinfo_of_dom0_online ("domctl", "XEN_DOMCTL_getvcpuinfo", Accept) {
        let (r, info) = vcpu_info(0, 0);
        let (bad, _) = vcpu_info(0, 9);
        all(&[
            expect(r, 0),
            check(info.online == 1, format_args!("online {}", info.online)),
            check(info.running == 1, format_args!("running {}", info.running)),
            expect(bad, -EINVAL),
        ])
    }
    domctl_hypercall_init_on_a_frame_not_owned_einval ("domctl", "XEN_DOMCTL_hypercall_init", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        // A frame of dom0's: not the new domain's.
        let mut op = domctl_op(22, 0x15, id);
        op.set_payload(&XenDomctlHypercallInit { gmfn: start_info().store_mfn.max(1) });
        let r = domctl(&mut op);
        domctl_simple(2, id);
        expect(r, -EINVAL)
    }
    evtchn_alloc_unbound_in_another_domain ("event_channel_op", "EVTCHNOP_alloc_unbound", Accept) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let mut a = EvtchnAllocUnbound { dom: id, remote_dom: 0, port: 0 };
        let r = crate::events::op(&mut a);
        let port = a.port;
        // Unbound, for dom0 to bind.
        let mut st = EvtchnStatus { dom: id, port, ..Default::default() };
        let rs = crate::events::op(&mut st);
        domctl_simple(2, id);
        let remote = st.unbound().dom;
        all(&[
            expect(r, 0),
            check(port > 0, format_args!("port {port}")),
            expect(rs, 0),
            check(st.status == EVTCHNSTAT_UNBOUND && remote == 0, format_args!("status {} remote {remote}", st.status)),
        ])
    }
    mmu_update_foreigndom_unknown_domain_esrch ("mmu_update", "foreigndom", Reject) {
        let req = MmuUpdate::default();
        let mut done = 0u32;
        expect(call(nr::MMU_UPDATE, ptr(&req), 1, ptr_mut(&mut done), 0x4321, 0), -ESRCH)
    }
    mmuext_pin_foreign_frame_that_is_no_table_einval ("mmuext_op", "MMUEXT_PIN_L4_TABLE foreigndom", Reject) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        // A frame dom0 owns named as the new domain's: refused.
        let mfn = start_info().store_mfn.max(1);
        let op = MmuextOp { cmd: 3, arg1: mfn, ..Default::default() };
        let r = call(nr::MMUEXT_OP, ptr(&op), 1, 0, u64::from(id), 0);
        domctl_simple(2, id);
        expect(r, -EINVAL)
    }
    mmuext_own_vcpu_commands_naming_another_domain_eperm ("mmuext_op", "foreigndom on NEW_BASEPTR, TLB flushes, SET_LDT", Attack) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        // Privileged dom0 names the new domain as pg_owner for commands
        // that act on the caller's own vCPU and TLB (Xen: currd != pg_owner).
        let on_other = |cmd: u32, arg1: u64, arg2: u64| {
            let op = MmuextOp { cmd, arg1, arg2, ..Default::default() };
            call(nr::MMUEXT_OP, ptr(&op), 1, 0, u64::from(id), 0)
        };
        let r = [on_other(6, 0, 0), on_other(7, 0x1000, 0), on_other(10, 0, 0), on_other(5, 0, 0), on_other(13, 0, 0), on_other(15, 0, 0)];
        domctl_simple(2, id);
        all(&r.map(|r| expect(r, -EPERM)))
    }
    memory_op_populate_beyond_max_mem_stops ("memory_op", "XENMEM_populate_physmap", Attack) {
        let id = match create_domain(0) {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        max_mem(id, 4 * 4);
        let pop = populate(id, 16);
        domctl_simple(2, id);
        check((0..=4).contains(&pop), format_args!("populated {pop} of 16 with a 4-page limit"))
    }
    sysctl_physinfo_reports_memory ("sysctl", "XEN_SYSCTL_physinfo", Accept) {
        let mut op = sysctl_op(3, 0x15);
        let r = sysctl(&mut op);
        let p: XenSysctlPhysinfo = op.payload();
        let (total, free) = (p.total_pages, p.free_pages);
        all(&[expect(r, 0), check(p.nr_cpus >= 1, format_args!("nr_cpus {}", p.nr_cpus)), check(total > start_info().nr_pages && free < total, format_args!("total {total} free {free}"))])
    }
    sysctl_tbuf_op_get_info_without_buffers ("sysctl", "XEN_SYSCTL_tbuf_op", Accept) {
        // No tbuf_size= on either hypervisor's command line: no t_info yet,
        // every class traced by default (tb_event_mask = TRC_ALL).
        let mut op = sysctl_op(2, 0x15);
        op.set_payload(&xen_public::sysctl::XenSysctlTbufOp { cmd: 0, ..Default::default() });
        let r = sysctl(&mut op);
        let t: xen_public::sysctl::XenSysctlTbufOp = op.payload();
        all(&[expect(r, 0), expect(t.buffer_mfn as i64, 0), expect(i64::from(t.size), 0), expect(i64::from(t.evt_mask), 0x0fff_f000)])
    }
    sysctl_tbuf_op_enable_without_buffers_einval ("sysctl", "XEN_SYSCTL_tbuf_op", Reject) {
        let op = |cmd: u32, size: u32| {
            let mut op = sysctl_op(2, 0x15);
            op.set_payload(&xen_public::sysctl::XenSysctlTbufOp { cmd, size, ..Default::default() });
            sysctl(&mut op)
        };
        // enable before any buffer, set_size of 0 pages, an unknown command.
        all(&[expect(op(4, 0), -EINVAL), expect(op(3, 0), -EINVAL), expect(op(9, 0), -EINVAL)])
    }
    sysctl_sched_id_is_credit ("sysctl", "XEN_SYSCTL_sched_id", Accept) {
        let mut op = sysctl_op(4, 0x15);
        let r = sysctl(&mut op);
        let id = op.payload::<XenSysctlSchedId>().sched_id;
        // XEN_SCHEDULER_CREDIT (both hypervisors run credit in our tests).
        all(&[expect(r, 0), check(id == XEN_SCHEDULER_CREDIT, format_args!("sched_id {id}"))])
    }
    domctl_scheduler_op_put_then_get_weight_and_cap ("domctl", "XEN_DOMCTL_scheduler_op", Accept) {
        let id = match create_with_vcpu() {
            Ok(id) => id,
            Err(e) => return expect(e, 0),
        };
        let (put, _) = sched_op(id, 5, 0, 512, 30);
        // weight 0 and cap 0xffff leave both alone.
        let (keep, _) = sched_op(id, 5, 0, 0, 0xffff);
        let (get, credit) = sched_op(id, 5, 1, 0, 0);
        domctl_simple(2, id);
        let XenDomctlSchedCredit { weight, cap } = credit;
        all(&[expect(put, 0), expect(keep, 0), expect(get, 0), check(weight == 512 && cap == 30, format_args!("weight {weight} cap {cap}"))])
    }
    domctl_scheduler_op_default_weight_256 ("domctl", "XEN_DOMCTL_scheduler_op", Accept) {
        let (r, c) = sched_op(0, 5, 1, 0, 0);
        all(&[expect(r, 0), check(c.weight == 256 && c.cap == 0, format_args!("weight {} cap {}", c.weight, c.cap))])
    }
    domctl_scheduler_op_wrong_scheduler_einval ("domctl", "XEN_DOMCTL_scheduler_op", Reject) {
        // XEN_SCHEDULER_CREDIT2 while credit runs; then an unknown command.
        let (other, _) = sched_op(0, 6, 1, 0, 0);
        let (bad_cmd, _) = sched_op(0, 5, 7, 0, 0);
        let (vcpu_cmd, _) = sched_op(0, 5, 3, 0, 0);
        all(&[expect(other, -EINVAL), expect(bad_cmd, -EINVAL), expect(vcpu_cmd, -EINVAL)])
    }
    domctl_scheduler_op_unknown_domain_esrch ("domctl", "XEN_DOMCTL_scheduler_op", Reject) { expect(sched_op(0x1234, 5, 1, 0, 0).0, -ESRCH) }
    sysctl_getdomaininfolist_sees_dom0 ("sysctl", "XEN_SYSCTL_getdomaininfolist", Accept) {
        let mut infos = [XenDomctlGetdomaininfo::default(); 4];
        let mut op = sysctl_op(6, 0x15);
        op.set_payload(&XenSysctlGetdomaininfolist { first_domain: 0, max_domains: 4, buffer: ptr_mut(&mut infos), ..Default::default() });
        let r = sysctl(&mut op);
        let n = op.payload::<XenSysctlGetdomaininfolist>().num_domains;
        all(&[expect(r, 0), check(n >= 1, format_args!("num_domains {n}")), check(infos[0].domain == 0, format_args!("first is not dom0"))])
    }
    sysctl_wrong_interface_version_eacces ("sysctl", "interface_version", Reject) {
        expect(sysctl(&mut sysctl_op(3, 0x1)), -EACCES)
    }
}
