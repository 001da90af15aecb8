//! `event_channel_op` and `SCHEDOP_poll` over the domain's ports.

use super::*;

fn set_pending(d: &Domain, port: u32) {
    crate::event::set_pending(&mut d.event_bits(), port);
}

/// Mark `port` of domain `dom` pending: the caller's own, or another's
/// (which the scheduler then reconsiders).
fn notify(d: &Domain, dom: u16, port: u32) {
    if dom == d.domid {
        set_pending(d, port);
    } else if crate::schedule::with_domain(dom, |o| set_pending(o, port)).is_some() {
        crate::schedule::kick();
    }
}

/// The domain a `dom` field names for an operation on another domain's
/// ports: the caller (`None`), or an existing domain when the caller is
/// privileged (-ESRCH if it does not exist, -EPERM if not privileged).
fn target_dom(d: &Domain, dom: u16) -> Result<Option<u16>, i64> {
    if dom == xen_public::DOMID_SELF || dom == d.domid {
        return Ok(None);
    }
    if crate::schedule::slot_of(dom).is_none() {
        return Err(-ESRCH);
    }
    if !d.privileged {
        return Err(-EPERM);
    }
    Ok(Some(dom))
}

/// Run `f` on the ports of the caller or of the domain `dom` names.
fn on_ports<R>(d: &mut Domain, dom: u16, f: impl FnOnce(&mut crate::event::Ports) -> Result<R, i64>) -> Result<R, i64> {
    match target_dom(d, dom)? {
        None => f(&mut d.ports),
        Some(o) => crate::schedule::with_domain(o, |o| f(&mut o.ports)).unwrap_or(Err(-ESRCH)),
    }
}

/// Copy the operation's argument `T` in from `arg`, run `f` on it, and
/// copy it back out when `f` says it filled in a result (`Ok(true)`).
fn with_arg<T>(v: &mut Vcpu, d: &mut Domain, arg: u64, f: impl FnOnce(&mut Domain, &mut T) -> Result<bool, i64>) -> Ret
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
{
    let mem = v.kernel_mem();
    let Ok(mut a) = mem.copy_from::<T>(arg) else { return -EFAULT };
    match f(d, &mut a) {
        Err(e) => e,
        Ok(false) => 0,
        Ok(true) => mem.copy_to(arg, &a).map_or(-EFAULT, |()| 0),
    }
}

/// `event_channel_op(cmd, arg)`: the 2-level event channels of
/// `event.rs`, each operation's structure as `event_channel.h` lays it out.
pub(super) fn event_channel_op(v: &mut Vcpu, d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    use crate::event;
    use xen_public::event_channel::*;
    match u64::from(cmd) {
        EVTCHNOP_ALLOC_UNBOUND => with_arg(v, d, arg, |d, a: &mut EvtchnAllocUnbound| {
            // DOMID_SELF as the remote end means the caller, as in Xen.
            let remote = if a.remote_dom == xen_public::DOMID_SELF { d.domid } else { a.remote_dom };
            a.port = on_ports(d, a.dom, |p| p.alloc_unbound(remote))?;
            Ok(true)
        }),
        EVTCHNOP_BIND_INTERDOMAIN => with_arg(v, d, arg, |d, a: &mut EvtchnBindInterdomain| {
            a.local_port = bind_interdomain(d, a.remote_dom, a.remote_port)?;
            Ok(true)
        }),
        EVTCHNOP_BIND_VIRQ => with_arg(v, d, arg, |d, a: &mut EvtchnBindVirq| {
            a.port = d.ports.bind_virq(a.virq, a.vcpu)?;
            Ok(true)
        }),
        EVTCHNOP_BIND_IPI => with_arg(v, d, arg, |d, a: &mut EvtchnBindIpi| {
            a.port = d.ports.bind_ipi(a.vcpu)?;
            Ok(true)
        }),
        EVTCHNOP_CLOSE => with_arg(v, d, arg, |d, a: &mut EvtchnClose| close(d, a.port).map(|()| false)),
        EVTCHNOP_SEND => with_arg(v, d, arg, |d, a: &mut EvtchnSend| {
            if let Some((rdom, port)) = event::send_target(&d.ports, d.domid, a.port)? {
                notify(d, rdom, port);
            }
            Ok(false)
        }),
        EVTCHNOP_UNMASK => with_arg(v, d, arg, |d, a: &mut EvtchnUnmask| {
            if d.ports.state(a.port).is_none() {
                return Err(-EINVAL);
            }
            event::unmask(&mut d.event_bits(), a.port);
            Ok(false)
        }),
        EVTCHNOP_BIND_VCPU => with_arg(v, d, arg, |d, a: &mut EvtchnBindVcpu| match (d.ports.state(a.port), a.vcpu) {
            (_, v) if v != 0 => Err(-xen_public::errno::ENOENT),
            (None | Some(event::State::Free | event::State::Reserved), _) => Err(-EINVAL),
            _ => Ok(false),
        }),
        EVTCHNOP_STATUS => with_arg(v, d, arg, status),
        EVTCHNOP_RESET => with_arg(v, d, arg, |d, a: &mut EvtchnReset| reset(d, a.dom).map(|()| false)),
        _ => -ENOSYS,
    }
}

/// EVTCHNOP_close: the caller's port, and the far end of an interdomain
/// channel becomes unbound.
fn close(d: &mut Domain, port: u32) -> Result<(), i64> {
    let dom = d.domid;
    let peer = crate::event::foreign_peer(&d.ports, dom, port);
    crate::event::close(&mut d.ports, dom, port)?;
    if let Some((rdom, rport)) = peer {
        crate::schedule::with_domain(rdom, |o| crate::event::peer_closed(&mut o.ports, rport, dom));
    }
    Ok(())
}

/// EVTCHNOP_status: a port's state and what it is bound to.
fn status(d: &mut Domain, a: &mut xen_public::event_channel::EvtchnStatus) -> Result<bool, i64> {
    use crate::event;
    use xen_public::event_channel::EvtchnStatusInterdomain;
    let port = a.port;
    let (status, w1, w2) = on_ports(d, a.dom, |p| event::status(p, port))?;
    a.status = status;
    a.vcpu = 0;
    if status == event::stat::VIRQ {
        a.set_virq(w1);
    } else {
        // Unbound: the domain allowed to bind (port 0); interdomain: the
        // far end.
        a.set_interdomain(EvtchnStatusInterdomain { dom: w1 as u16, port: w2, ..Default::default() });
    }
    Ok(true)
}

/// EVTCHNOP_reset: close every port of the caller or (privileged) of
/// another domain. As in Xen, the far end of each interdomain channel is
/// closed too: it becomes unbound, waiting for the reset domain again.
fn reset(d: &mut Domain, dom: u16) -> Result<(), i64> {
    use crate::event;
    let tdom = target_dom(d, dom)?.unwrap_or(d.domid);
    let mut from = Some(0);
    while let Some(start) = from {
        let mut peers = [(0u16, 0u32); 64];
        let (n, next) = on_ports(d, dom, |p| Ok(event::foreign_peers_from(p, tdom, start, &mut peers)))?;
        for &(rdom, rport) in &peers[..n] {
            if rdom == d.domid {
                event::peer_closed(&mut d.ports, rport, tdom);
            } else {
                crate::schedule::with_domain(rdom, |o| event::peer_closed(&mut o.ports, rport, tdom));
            }
        }
        from = next;
    }
    on_ports(d, dom, |p| {
        p.reset();
        Ok(())
    })
}

/// EVTCHNOP_bind_interdomain: to the caller's own unbound port (loopback)
/// or to another domain's port offered to the caller.
fn bind_interdomain(d: &mut Domain, remote_dom: u16, remote_port: u32) -> Result<u32, i64> {
    use crate::event;
    let dom = d.domid;
    let local = if remote_dom == xen_public::DOMID_SELF || remote_dom == dom {
        event::bind_loopback(&mut d.ports, dom, remote_port)?
    } else {
        crate::schedule::with_domain(remote_dom, |o| event::bind_interdomain(&mut d.ports, dom, &mut o.ports, remote_dom, remote_port))
            .unwrap_or(Err(-ESRCH))?
    };
    // As Xen: notifications sent to the unbound port may have been lost,
    // so the new local port starts pending.
    set_pending(d, local);
    Ok(local)
}

/// `SCHEDOP_poll`: returns at once if an upcall is deliverable or one of
/// the ports is pending; bad ports are -EINVAL; more than 128 -EINVAL.
/// Otherwise the vCPU blocks until a port is pending or the timeout (system
/// time, 0 = none) passes; either way the result is 0, as in Xen.
pub(super) fn poll(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    let mem = v.kernel_mem();
    let Ok(a) = mem.copy_from::<xen_public::sched::SchedPoll>(arg) else { return -EFAULT };
    let (ports, nr, timeout) = (a.ports, a.nr_ports, a.timeout);
    if nr > 128 {
        return -EINVAL;
    }
    let mut p = crate::domain::vcpu::Poll { ports: [0; 128], nr: nr as usize, deadline: timeout };
    for (i, slot) in p.ports[..p.nr].iter_mut().enumerate() {
        let Ok(port) = mem.read_u32(ports + i as u64 * 4) else { return -EFAULT };
        if d.ports.state(port).is_none() {
            return -EINVAL;
        }
        *slot = port;
    }
    // The scheduler ends the poll at once if it is already satisfied.
    v.block(Some(p));
    0
}
