//! `event_channel_op` and `SCHEDOP_poll` over the domain's ports.

use super::mmu::le64;
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

/// `event_channel_op(cmd, arg)`: the 2-level event channels of
/// `event.rs`, with results written back into the argument structure.
pub(super) fn event_channel_op(d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    use crate::event::{self, op};
    let size = match cmd {
        op::ALLOC_UNBOUND => 8,
        op::BIND_INTERDOMAIN | op::BIND_VIRQ => 12,
        op::BIND_IPI | op::BIND_VCPU => 8,
        op::CLOSE | op::SEND | op::UNMASK => 4,
        op::STATUS => 24,
        op::RESET => 2,
        _ => return -ENOSYS,
    };
    let mem = d.kernel_mem();
    let mut b = [0u8; 24];
    if mem.read(arg, &mut b[..size]).is_err() {
        return -EFAULT;
    }
    let dom = d.domid;
    let result: Result<Option<(usize, u32)>, i64> = match cmd {
        op::ALLOC_UNBOUND => {
            // DOMID_SELF as the remote end means the caller, as in Xen.
            let remote = u16_at(&b, 2);
            let remote = if remote == xen_public::DOMID_SELF { dom } else { remote };
            on_ports(d, u16_at(&b, 0), |p| p.alloc_unbound(remote)).map(|p| Some((4, p)))
        }
        op::BIND_INTERDOMAIN => bind_interdomain(d, u16_at(&b, 0), u32_at(&b, 4)).map(|local| Some((8, local))),
        op::BIND_VIRQ => d.ports.bind_virq(u32_at(&b, 0), u32_at(&b, 4)).map(|p| Some((8, p))),
        op::BIND_IPI => d.ports.bind_ipi(u32_at(&b, 0)).map(|p| Some((4, p))),
        op::CLOSE => {
            let port = u32_at(&b, 0);
            let peer = event::foreign_peer(&d.ports, dom, port);
            event::close(&mut d.ports, dom, port).map(|()| {
                if let Some((rdom, rport)) = peer {
                    crate::schedule::with_domain(rdom, |o| event::peer_closed(&mut o.ports, rport, dom));
                }
                None
            })
        }
        op::SEND => event::send_target(&d.ports, dom, u32_at(&b, 0)).map(|t| {
            if let Some((rdom, port)) = t {
                notify(d, rdom, port);
            }
            None
        }),
        op::UNMASK => {
            let port = u32_at(&b, 0);
            if d.ports.state(port).is_none() {
                Err(-EINVAL)
            } else {
                event::unmask(&mut d.event_bits(), port);
                Ok(None)
            }
        }
        op::BIND_VCPU => match (d.ports.state(u32_at(&b, 0)), u32_at(&b, 4)) {
            (_, v) if v != 0 => Err(-xen_public::errno::ENOENT),
            (None | Some(event::State::Free | event::State::Reserved), _) => Err(-EINVAL),
            _ => Ok(None),
        },
        op::STATUS => on_ports(d, u16_at(&b, 0), |p| event::status(p, u32_at(&b, 4))).map(|(status, w1, w2)| {
            b[8..12].copy_from_slice(&status.to_le_bytes());
            b[12..16].copy_from_slice(&0u32.to_le_bytes());
            if status == event::stat::VIRQ {
                b[16..20].copy_from_slice(&w1.to_le_bytes());
            } else {
                b[16..18].copy_from_slice(&(w1 as u16).to_le_bytes());
                b[20..24].copy_from_slice(&w2.to_le_bytes());
            }
            Some((8, status))
        }),
        op::RESET => reset(d, u16_at(&b, 0)).map(|()| None),
        _ => Err(-ENOSYS),
    };
    match result {
        Err(e) => e,
        Ok(None) => 0,
        Ok(Some((off, v))) => {
            if cmd != op::STATUS {
                b[off..off + 4].copy_from_slice(&v.to_le_bytes());
            }
            if mem.write(arg, &b[..size]).is_err() { -EFAULT } else { 0 }
        }
    }
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
pub(super) fn poll(d: &mut Domain, arg: u64) -> Ret {
    let mem = d.kernel_mem();
    let mut b = [0u8; 24];
    if mem.read(arg, &mut b).is_err() {
        return -EFAULT;
    }
    let (ports, nr, timeout) = (le64(&b[0..8]), u32_at(&b, 8), le64(&b[16..24]));
    if nr > 128 {
        return -EINVAL;
    }
    let mut p = crate::guest::Poll { ports: [0; 128], nr: nr as usize, deadline: timeout };
    for (i, slot) in p.ports[..p.nr].iter_mut().enumerate() {
        let Ok(port) = mem.read_u32(ports + i as u64 * 4) else { return -EFAULT };
        if d.ports.state(port).is_none() {
            return -EINVAL;
        }
        *slot = port;
    }
    // The scheduler ends the poll at once if it is already satisfied.
    d.block(Some(p));
    0
}
