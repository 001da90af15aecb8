//! Event channels: `event_channel_op` (`xen/include/public/event_channel.h`)
//! and `SCHEDOP_poll` (`xen/include/public/sched.h`).

#[cfg(target_os = "none")]
use super::helpers;
use crate::conformance::{CaseInfo, Kind};

cases! {
    evtchn_loopback_delivers ("event_channel_op", "EVTCHNOP_send (loopback)", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind_interdomain failed")) };
        let before = ev::count(a);
        let r = ev::send(b);
        all(&[expect(r, 0), check(ev::count(a) == before + 1, format_args!("port {a} got {} events", ev::count(a) - before))])
    }
    evtchn_bind_marks_the_new_port_pending ("event_channel_op", "EVTCHNOP_bind_interdomain", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind_interdomain failed")) };
        check(ev::is_pending(b) && !ev::is_pending(a), format_args!("pending: a {} b {}", ev::is_pending(a), ev::is_pending(b)))
    }
    evtchn_masked_port_does_not_deliver ("event_channel_op", "EVTCHNOP_send (masked)", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        ev::set_mask(a, true);
        let before = ev::count(a);
        let r = ev::send(b);
        all(&[expect(r, 0), check(ev::count(a) == before, format_args!("masked port delivered")), check(ev::is_pending(a), format_args!("not pending"))])
    }
    evtchn_unmask_delivers_what_was_pending ("event_channel_op", "EVTCHNOP_unmask", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        ev::set_mask(a, true);
        ev::send(b);
        let before = ev::count(a);
        let r = ev::unmask(a);
        all(&[expect(r, 0), check(ev::count(a) == before + 1, format_args!("unmask delivered {} events", ev::count(a) - before))])
    }
    evtchn_ipi_to_self_delivers ("event_channel_op", "EVTCHNOP_bind_ipi", Accept) {
        use crate::events as ev;
        if ev::init() != 0 { return error(format_args!("no event callback")); }
        let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
        let r = ev::op(&mut ipi);
        let s = ev::send(ipi.port);
        all(&[expect(r, 0), expect(s, 0), check(ev::count(ipi.port) == 1, format_args!("ipi delivered {}", ev::count(ipi.port)))])
    }
    evtchn_close_makes_the_peer_unbound ("event_channel_op", "EVTCHNOP_close, EVTCHNOP_status", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        let c = ev::close(b);
        let mut st = EvtchnStatus { dom: 0x7ff0, port: a, ..Default::default() };
        let r = ev::op(&mut st);
        let mut stb = EvtchnStatus { dom: 0x7ff0, port: b, ..Default::default() };
        let rb = ev::op(&mut stb);
        all(&[
            expect(c, 0),
            expect(r, 0),
            check(st.status == EVTCHNSTAT_UNBOUND, format_args!("peer status {}", st.status)),
            expect(rb, 0),
            check(stb.status == EVTCHNSTAT_CLOSED, format_args!("closed port status {}", stb.status)),
        ])
    }
    evtchn_alloc_until_enospc ("event_channel_op", "EVTCHNOP_alloc_unbound", Attack) {
        use crate::events as ev;
        let mut n = 0;
        let last = loop {
            match ev::alloc_unbound(0x7ff0) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            if n > 5000 { break 0; }
        };
        let r = ev::reset();
        all(&[expect(last, -ENOSPC), check(n > 1000, format_args!("only {n} ports")), expect(r, 0)])
    }
    evtchn_send_on_free_port_einval ("event_channel_op", "EVTCHNOP_send", Reject) { expect(crate::events::send(33), -EINVAL) }
    evtchn_send_beyond_ports_einval ("event_channel_op", "EVTCHNOP_send", Attack) { expect(crate::events::send(0xffff_fff0), -EINVAL) }
    evtchn_close_reserved_port_0_einval ("event_channel_op", "EVTCHNOP_close", Reject) { expect(crate::events::close(0), -EINVAL) }
    evtchn_status_of_a_port_beyond_the_abi_einval ("event_channel_op", "EVTCHNOP_status", Reject) {
        expect(crate::events::op(&mut EvtchnStatus { dom: 0x7ff0, port: 0xffff, ..Default::default() }), -EINVAL)
    }
    evtchn_bind_virq_out_of_range_einval ("event_channel_op", "EVTCHNOP_bind_virq", Attack) {
        expect(crate::events::op(&mut EvtchnBindVirq { virq: 24, vcpu: 0, port: 0 }), -EINVAL)
    }
    evtchn_bind_virq_twice_eexist ("event_channel_op", "EVTCHNOP_bind_virq", Reject) {
        const VIRQ_CONSOLE: u32 = 2;
        let first = crate::events::op(&mut EvtchnBindVirq { virq: VIRQ_CONSOLE, vcpu: 0, port: 0 });
        let second = crate::events::op(&mut EvtchnBindVirq { virq: VIRQ_CONSOLE, vcpu: 0, port: 0 });
        all(&[expect(first, 0), expect(second, -EEXIST)])
    }
    evtchn_bind_ipi_to_missing_vcpu_enoent ("event_channel_op", "EVTCHNOP_bind_ipi", Reject) {
        expect(crate::events::op(&mut EvtchnBindIpi { vcpu: 7, port: 0 }), -ENOENT)
    }
    evtchn_bind_vcpu_of_unbound_and_global_virq_ok ("event_channel_op", "EVTCHNOP_bind_vcpu", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let unbound = crate::events::op(&mut EvtchnBindVcpu { port: a, vcpu: 0 });
        // VIRQ_ENOMEM (12): global, and bound by nothing else here.
        let mut virq = EvtchnBindVirq { virq: 12, vcpu: 0, port: 0 };
        let bound = crate::events::op(&mut virq);
        let global = crate::events::op(&mut EvtchnBindVcpu { port: virq.port, vcpu: 0 });
        let _ = (ev::close(a), ev::close(virq.port));
        all(&[expect(unbound, 0), expect(bound, 0), expect(global, 0)])
    }
    evtchn_bind_vcpu_of_ipi_timer_or_missing_vcpu_refused ("event_channel_op", "EVTCHNOP_bind_vcpu", Reject) {
        use crate::events as ev;
        let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
        let mut timer = EvtchnBindVirq { virq: 0, vcpu: 0, port: 0 };
        let (i, t) = (crate::events::op(&mut ipi), crate::events::op(&mut timer));
        let ipi_rc = crate::events::op(&mut EvtchnBindVcpu { port: ipi.port, vcpu: 0 });
        let timer_rc = crate::events::op(&mut EvtchnBindVcpu { port: timer.port, vcpu: 0 });
        let missing = crate::events::op(&mut EvtchnBindVcpu { port: ipi.port, vcpu: 7 });
        let _ = (ev::close(ipi.port), ev::close(timer.port));
        all(&[expect(i, 0), expect(t, 0), expect(ipi_rc, -EINVAL), expect(timer_rc, -EINVAL), expect(missing, -ENOENT)])
    }
    evtchn_unknown_cmd_enosys ("event_channel_op", "cmd 99", Reject) {
        // No structure belongs to sub-op 99: pass 24 zero bytes (the size
        // of the largest, evtchn_status).
        let mut x = EvtchnStatus::default();
        expect(call(nr::EVENT_CHANNEL_OP, 99, ptr_mut(&mut x), 0, 0, 0), -ENOSYS)
    }
    evtchn_unmapped_argument_efault ("event_channel_op", "EVTCHNOP_send", Reject) { expect(call(nr::EVENT_CHANNEL_OP, 4, UNMAPPED, 0, 0, 0), -EFAULT) }
    evtchn_alloc_for_unknown_domain_esrch ("event_channel_op", "EVTCHNOP_alloc_unbound", Reject) {
        expect(crate::events::op(&mut EvtchnAllocUnbound { dom: 0x1234, remote_dom: 0x7ff0, port: 0 }), -ESRCH)
    }
    poll_unallocated_port_einval ("sched_op", "SCHEDOP_poll", Attack) { expect(crate::events::poll(&[0xffff], 0), -EINVAL) }
    poll_too_many_ports_einval ("sched_op", "SCHEDOP_poll", Reject) {
        let ports = [1u32; 129];
        expect(crate::events::poll(&ports, 0), -EINVAL)
    }
    poll_pending_port_returns_at_once ("sched_op", "SCHEDOP_poll", Accept) {
        use crate::events as ev;
        let Ok(a) = ev::alloc_unbound(0x7ff0) else { return error(format_args!("alloc_unbound failed")) };
        let Ok(b) = ev::bind_interdomain(0x7ff0, a) else { return error(format_args!("bind failed")) };
        ev::set_mask(a, true);
        ev::send(b);
        expect(ev::poll(&[a], 0), 0)
    }
}
