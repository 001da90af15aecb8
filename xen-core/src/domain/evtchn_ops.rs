//! `event_channel_op` and the decoding of `SCHEDOP_poll`: each operation's
//! structure as `event_channel.h` lays it out, over the 2-level ports of
//! `event.rs`. Generic over the caller's memory ([`GuestAccess`]) and over
//! the rest of the machine ([`EventHost`]: other domains, event bits, the
//! scheduler's kick), so decoding, errno and cross-domain effects are
//! tested on the host.
//!
//! Invariants: a domain touches another domain's ports only through an
//! interdomain channel it is a party to, or as the privileged domain
//! naming it; the caller's own ports are reached directly, never through
//! [`EventHost::with_other`] (whose slot lock the caller holds).
#![forbid(unsafe_code)]

use super::Domain;
use super::guest_mem::{GuestAccess, rc};
use super::host::{Domains, Kick};
use crate::event::{self, EventBits, Ports};
use xen_public::errno::{EFAULT, EINVAL, ENOSYS, EPERM, ESRCH};
use xen_public::event_channel::*;

/// A hypercall's result for the guest's RAX (a negated errno on failure).
type Ret = i64;

/// What event-channel operations need from the machine beyond the
/// caller's domain.
pub trait EventHost: Domains + Kick {
    /// Event bits of a domain's shared_info.
    type Bits: EventBits;
    /// Run `f` on the domain `domid`, never the caller's own (`None` if
    /// it does not exist).
    fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self::Bits) -> R) -> Option<R>;
    /// The event bits of `d` (the caller's own domain).
    fn bits(&self, d: &Domain) -> Self::Bits;
    /// `d` sent on its `port` to `remote`'s `remote_port` (a trace point;
    /// nothing by default).
    fn sent(&mut self, _d: &Domain, _port: u32, _remote: u16, _remote_port: u32) {}
}

/// `event_channel_op(cmd, arg)` for the caller `d`, whose memory is `mem`.
pub fn event_channel_op<H: EventHost>(h: &mut H, d: &mut Domain, mem: &impl GuestAccess, cmd: u32, arg: u64) -> Ret {
    match u64::from(cmd) {
        EVTCHNOP_ALLOC_UNBOUND => with_arg(mem, arg, |a: &mut EvtchnAllocUnbound| {
            // DOMID_SELF as the remote end means the caller, as in Xen.
            let remote = if a.remote_dom == xen_public::DOMID_SELF { d.domid } else { a.remote_dom };
            a.port = on_ports(h, d, a.dom, |p| p.alloc_unbound(remote))?;
            Ok(true)
        }),
        EVTCHNOP_BIND_INTERDOMAIN => with_arg(mem, arg, |a: &mut EvtchnBindInterdomain| {
            a.local_port = bind_interdomain(h, d, a.remote_dom, a.remote_port)?;
            Ok(true)
        }),
        EVTCHNOP_BIND_VIRQ => with_arg(mem, arg, |a: &mut EvtchnBindVirq| {
            a.port = d.ports.bind_virq(a.virq, a.vcpu)?;
            Ok(true)
        }),
        EVTCHNOP_BIND_IPI => with_arg(mem, arg, |a: &mut EvtchnBindIpi| {
            a.port = d.ports.bind_ipi(a.vcpu)?;
            Ok(true)
        }),
        EVTCHNOP_CLOSE => with_arg(mem, arg, |a: &mut EvtchnClose| close(h, d, a.port).map(|()| false)),
        EVTCHNOP_SEND => with_arg(mem, arg, |a: &mut EvtchnSend| {
            if let Some((rdom, port)) = event::send_target(&d.ports, d.domid, a.port)? {
                h.sent(d, a.port, rdom, port);
                notify(h, d, rdom, port);
            }
            Ok(false)
        }),
        EVTCHNOP_UNMASK => with_arg(mem, arg, |a: &mut EvtchnUnmask| {
            if d.ports.state(a.port).is_none() {
                return Err(-EINVAL);
            }
            event::unmask(&mut h.bits(d), a.port);
            Ok(false)
        }),
        EVTCHNOP_BIND_VCPU => with_arg(mem, arg, |a: &mut EvtchnBindVcpu| {
            // As Xen's evtchn_bind_vcpu: the vCPU must exist, and only
            // unbound, interdomain and global-VIRQ ports can move (every
            // port notifies vCPU 0 while a domain has one vCPU).
            if a.vcpu >= d.max_vcpus {
                return Err(-xen_public::errno::ENOENT);
            }
            match d.ports.state(a.port) {
                Some(event::State::Unbound { .. } | event::State::Interdomain { .. }) => Ok(false),
                Some(event::State::Virq(virq)) if virq_is_global(virq) => Ok(false),
                _ => Err(-EINVAL),
            }
        }),
        EVTCHNOP_STATUS => with_arg(mem, arg, |a: &mut EvtchnStatus| status(h, d, a)),
        EVTCHNOP_RESET => with_arg(mem, arg, |a: &mut EvtchnReset| reset(h, d, a.dom).map(|()| false)),
        _ => -ENOSYS,
    }
}

/// Whether a VIRQ is delivered to one vCPU of the domain's choosing (Xen's
/// `virq_is_global`): all but VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENOPROF and
/// VIRQ_XENPMU, which are per vCPU (x86 has no per-vCPU arch VIRQ).
fn virq_is_global(virq: u32) -> bool {
    use xen_public::{VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU};
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// Copy the operation's argument `T` in from `arg`, run `f` on it, and
/// copy it back out when `f` says it filled in a result (`Ok(true)`).
fn with_arg<T>(mem: &impl GuestAccess, arg: u64, f: impl FnOnce(&mut T) -> Result<bool, i64>) -> Ret
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable,
{
    let Ok(mut a) = mem.copy_from::<T>(arg) else { return -EFAULT };
    match f(&mut a) {
        Err(e) => e,
        Ok(false) => 0,
        Ok(true) => rc(mem.copy_to(arg, &a)),
    }
}

/// Mark `port` of domain `dom` pending: the caller's own, or another's
/// (which the scheduler then reconsiders).
fn notify<H: EventHost>(h: &mut H, d: &Domain, dom: u16, port: u32) {
    if dom == d.domid {
        event::set_pending(&mut h.bits(d), port);
    } else if h.with_other(dom, |_, bits| event::set_pending(bits, port)).is_some() {
        h.kick();
    }
}

/// The domain a `dom` field names for an operation on another domain's
/// ports: the caller (`None`), or an existing domain when the caller is
/// privileged (-ESRCH if it does not exist, -EPERM if not privileged).
fn target_dom(h: &impl EventHost, d: &Domain, dom: u16) -> Result<Option<u16>, i64> {
    if dom == xen_public::DOMID_SELF || dom == d.domid {
        return Ok(None);
    }
    if !h.exists(dom) {
        return Err(-ESRCH);
    }
    if !d.privileged {
        return Err(-EPERM);
    }
    Ok(Some(dom))
}

/// Run `f` on the ports of the caller or of the domain `dom` names.
fn on_ports<H: EventHost, R>(h: &mut H, d: &mut Domain, dom: u16, f: impl FnOnce(&mut Ports) -> Result<R, i64>) -> Result<R, i64> {
    match target_dom(h, d, dom)? {
        None => f(&mut d.ports),
        Some(o) => h.with_other(o, |o, _| f(&mut o.ports)).unwrap_or(Err(-ESRCH)),
    }
}

/// EVTCHNOP_close: the caller's port, and the far end of an interdomain
/// channel becomes unbound.
fn close<H: EventHost>(h: &mut H, d: &mut Domain, port: u32) -> Result<(), i64> {
    let dom = d.domid;
    let peer = event::foreign_peer(&d.ports, dom, port);
    event::close(&mut d.ports, dom, port)?;
    if let Some((rdom, rport)) = peer {
        h.with_other(rdom, |o, _| event::peer_closed(&mut o.ports, rport, dom));
    }
    Ok(())
}

/// EVTCHNOP_status: a port's state and what it is bound to.
fn status<H: EventHost>(h: &mut H, d: &mut Domain, a: &mut EvtchnStatus) -> Result<bool, i64> {
    let port = a.port;
    let (status, w1, w2) = on_ports(h, d, a.dom, |p| event::status(p, port))?;
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
fn reset<H: EventHost>(h: &mut H, d: &mut Domain, dom: u16) -> Result<(), i64> {
    let tdom = target_dom(h, d, dom)?.unwrap_or(d.domid);
    let mut from = Some(0);
    while let Some(start) = from {
        let mut peers = [(0u16, 0u32); 64];
        let (n, next) = on_ports(h, d, dom, |p| Ok(event::foreign_peers_from(p, tdom, start, &mut peers)))?;
        for &(rdom, rport) in &peers[..n] {
            if rdom == d.domid {
                event::peer_closed(&mut d.ports, rport, tdom);
            } else {
                h.with_other(rdom, |o, _| event::peer_closed(&mut o.ports, rport, tdom));
            }
        }
        from = next;
    }
    on_ports(h, d, dom, |p| {
        p.reset();
        Ok(())
    })
}

/// EVTCHNOP_bind_interdomain: to the caller's own unbound port (loopback)
/// or to another domain's port offered to the caller.
fn bind_interdomain<H: EventHost>(h: &mut H, d: &mut Domain, remote_dom: u16, remote_port: u32) -> Result<u32, i64> {
    let dom = d.domid;
    let local = if remote_dom == xen_public::DOMID_SELF || remote_dom == dom {
        event::bind_loopback(&mut d.ports, dom, remote_port)?
    } else {
        let ports = &mut d.ports;
        h.with_other(remote_dom, |o, _| event::bind_interdomain(ports, dom, &mut o.ports, remote_dom, remote_port)).unwrap_or(Err(-ESRCH))?
    };
    // As Xen: notifications sent to the unbound port may have been lost,
    // so the new local port starts pending.
    event::set_pending(&mut h.bits(d), local);
    Ok(local)
}

/// Most ports one `SCHEDOP_poll` may wait on (Xen's limit).
pub const POLL_MAX_PORTS: u32 = 128;

/// Decode `SCHEDOP_poll`'s argument: more than [`POLL_MAX_PORTS`] ports or
/// a port the caller does not have is -EINVAL, an unreadable list -EFAULT.
pub fn decode_poll(d: &Domain, mem: &impl GuestAccess, arg: u64) -> Result<super::vcpu::Poll, i64> {
    let Ok(a) = mem.copy_from::<xen_public::sched::SchedPoll>(arg) else { return Err(-EFAULT) };
    if a.nr_ports > POLL_MAX_PORTS {
        return Err(-EINVAL);
    }
    let mut p = super::vcpu::Poll { ports: [0; 128], nr: a.nr_ports as usize, deadline: a.timeout };
    for (i, slot) in p.ports[..p.nr].iter_mut().enumerate() {
        let Ok(port) = mem.copy_from::<u32>(a.ports + i as u64 * 4) else { return Err(-EFAULT) };
        if d.ports.state(port).is_none() {
            return Err(-EINVAL);
        }
        *slot = port;
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::guest_mem::tests::FakeGuest;
    use crate::event::fake::Bits;
    use crate::mm::Mfn;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;

    /// One domain's event bits, shared so a test can look at them.
    #[derive(Clone, Default)]
    struct SharedBits(Rc<RefCell<Bits>>);

    impl EventBits for SharedBits {
        fn test_and_set_pending(&mut self, port: u32) -> bool {
            self.0.borrow_mut().test_and_set_pending(port)
        }
        fn is_masked(&self, port: u32) -> bool {
            self.0.borrow().is_masked(port)
        }
        fn clear_mask(&mut self, port: u32) {
            self.0.borrow_mut().clear_mask(port)
        }
        fn is_pending(&self, port: u32) -> bool {
            self.0.borrow().is_pending(port)
        }
        fn test_and_set_sel(&mut self, word: u32) -> bool {
            self.0.borrow_mut().test_and_set_sel(word)
        }
        fn set_upcall_pending(&mut self) {
            self.0.borrow_mut().set_upcall_pending()
        }
    }

    /// The other domains of a test machine, and their bits by domid.
    #[derive(Default)]
    struct Machine {
        others: BTreeMap<u16, Domain>,
        bits: RefCell<BTreeMap<u16, SharedBits>>,
        kicks: usize,
    }

    impl Machine {
        fn bits_of(&self, domid: u16) -> SharedBits {
            self.bits.borrow_mut().entry(domid).or_default().clone()
        }
        fn pending(&self, domid: u16, port: u32) -> bool {
            self.bits_of(domid).is_pending(port)
        }
    }

    impl Domains for Machine {
        fn exists(&self, domid: u16) -> bool {
            self.others.contains_key(&domid)
        }
        fn next_domid_from(&self, from: u16) -> Option<u16> {
            self.others.keys().copied().find(|&id| id >= from)
        }
    }

    impl Kick for Machine {
        fn kick(&mut self) {
            self.kicks += 1;
        }
    }

    impl EventHost for Machine {
        type Bits = SharedBits;
        fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut SharedBits) -> R) -> Option<R> {
            let mut bits = self.bits_of(domid);
            self.others.get_mut(&domid).map(|o| f(o, &mut bits))
        }
        fn bits(&self, d: &Domain) -> SharedBits {
            self.bits_of(d.domid)
        }
    }

    const ARG: u64 = 0x9000;

    fn dom(domid: u16) -> Domain {
        Domain::empty(domid, domid == 0, Mfn(0x100 + u64::from(domid)))
    }

    fn setup() -> (Machine, Domain, FakeGuest) {
        let mut m = Machine::default();
        m.others.insert(2, dom(2));
        let g = FakeGuest::default();
        g.map(ARG);
        (m, dom(1), g)
    }

    fn op<T: zerocopy::IntoBytes + zerocopy::FromBytes + zerocopy::Immutable>(
        m: &mut Machine,
        d: &mut Domain,
        g: &FakeGuest,
        cmd: u64,
        a: T,
    ) -> (Ret, T) {
        g.copy_to(ARG, &a).unwrap();
        let rc = event_channel_op(m, d, g, cmd as u32, ARG);
        (rc, g.copy_from(ARG).unwrap())
    }

    /// Domain 2 offers a port to `to`; the port.
    fn offer(m: &mut Machine, to: u16) -> u32 {
        m.others.get_mut(&2).unwrap().ports.alloc_unbound(to).unwrap()
    }

    /// EVTCHNOP_bind_interdomain from `d` to `remote_port` of `remote_dom`.
    fn bind_to(m: &mut Machine, d: &mut Domain, g: &FakeGuest, remote_dom: u16, remote_port: u32) -> (Ret, EvtchnBindInterdomain) {
        op(m, d, g, EVTCHNOP_BIND_INTERDOMAIN, EvtchnBindInterdomain { remote_dom, remote_port, ..Default::default() })
    }

    #[test]
    fn bind_interdomain_then_send_marks_the_peer_pending_and_kicks() {
        let (mut m, mut d, g) = setup();
        let remote = offer(&mut m, 1);
        let (rc, b) = bind_to(&mut m, &mut d, &g, 2, remote);
        assert_eq!(rc, 0);
        assert!(m.pending(1, b.local_port), "the new local port starts pending, as in Xen");
        let (rc, _) = op(&mut m, &mut d, &g, EVTCHNOP_SEND, EvtchnSend { port: b.local_port });
        assert_eq!(rc, 0);
        assert!(m.pending(2, remote));
        assert_eq!(m.kicks, 1);
    }

    #[test]
    fn bind_interdomain_to_a_port_offered_to_someone_else_is_einval() {
        let (mut m, mut d, g) = setup();
        let remote = offer(&mut m, 3);
        let (rc, _) = bind_to(&mut m, &mut d, &g, 2, remote);
        assert_eq!(rc, -EINVAL);
        let (rc, _) = bind_to(&mut m, &mut d, &g, 9, 1);
        assert_eq!(rc, -ESRCH, "no such domain");
    }

    #[test]
    fn alloc_unbound_in_another_domain_needs_privilege() {
        let (mut m, mut d, g) = setup();
        let a = EvtchnAllocUnbound { dom: 2, remote_dom: 1, port: 0 };
        assert_eq!(op(&mut m, &mut d, &g, EVTCHNOP_ALLOC_UNBOUND, a).0, -EPERM);
        d.privileged = true;
        let (rc, out) = op(&mut m, &mut d, &g, EVTCHNOP_ALLOC_UNBOUND, a);
        assert_eq!(rc, 0);
        assert!(m.others[&2].ports.state(out.port).is_some(), "the port is domain 2's");
        assert_eq!(op(&mut m, &mut d, &g, EVTCHNOP_ALLOC_UNBOUND, EvtchnAllocUnbound { dom: 7, ..a }).0, -ESRCH);
    }

    #[test]
    fn close_makes_the_far_end_unbound_again() {
        let (mut m, mut d, g) = setup();
        let remote = offer(&mut m, 1);
        let (_, b) = bind_to(&mut m, &mut d, &g, 2, remote);
        assert_eq!(op(&mut m, &mut d, &g, EVTCHNOP_CLOSE, EvtchnClose { port: b.local_port }).0, 0);
        let status = EvtchnStatus { dom: xen_public::DOMID_SELF, port: remote, ..Default::default() };
        let mut other = m.others.remove(&2).unwrap();
        let (rc, s) = op(&mut m, &mut other, &g, EVTCHNOP_STATUS, status);
        assert_eq!((rc, s.status), (0, event::stat::UNBOUND));
    }

    #[test]
    fn reset_by_a_domu_of_another_domain_is_eperm_and_of_itself_closes_peers() {
        let (mut m, mut d, g) = setup();
        assert_eq!(op(&mut m, &mut d, &g, EVTCHNOP_RESET, EvtchnReset { dom: 2 }).0, -EPERM);
        let remote = offer(&mut m, 1);
        let (_, b) = bind_to(&mut m, &mut d, &g, 2, remote);
        assert_eq!(op(&mut m, &mut d, &g, EVTCHNOP_RESET, EvtchnReset { dom: xen_public::DOMID_SELF }).0, 0);
        assert!(d.ports.state(b.local_port).is_none_or(|s| matches!(s, event::State::Free)));
        assert_eq!(event::status(&m.others[&2].ports, remote).unwrap().0, event::stat::UNBOUND, "the far end waits again");
    }

    #[test]
    fn send_on_a_free_port_is_einval_and_unknown_cmd_enosys() {
        let (mut m, mut d, g) = setup();
        assert_eq!(op(&mut m, &mut d, &g, EVTCHNOP_SEND, EvtchnSend { port: 5 }).0, -EINVAL);
        assert_eq!(op(&mut m, &mut d, &g, 99, EvtchnSend { port: 5 }).0, -ENOSYS);
        assert_eq!(event_channel_op(&mut m, &mut d, &FakeGuest::default(), EVTCHNOP_SEND as u32, ARG), -EFAULT);
    }

    #[test]
    fn bind_vcpu_moves_only_unbound_interdomain_and_global_virq_ports() {
        let (mut m, mut d, g) = setup();
        let bind = |m: &mut Machine, d: &mut Domain, port, vcpu| op(m, d, &g, EVTCHNOP_BIND_VCPU, EvtchnBindVcpu { port, vcpu }).0;
        let (_, ipi) = op(&mut m, &mut d, &g, EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu: 0, port: 0 });
        let unbound = d.ports.alloc_unbound(2).unwrap();
        let timer = d.ports.bind_virq(0, 0).unwrap();
        let dom_exc = d.ports.bind_virq(3, 0).unwrap();
        assert_eq!(bind(&mut m, &mut d, unbound, 1), -xen_public::errno::ENOENT, "no vCPU 1");
        assert_eq!(bind(&mut m, &mut d, unbound, 0), 0);
        assert_eq!(bind(&mut m, &mut d, dom_exc, 0), 0, "VIRQ_DOM_EXC is global");
        assert_eq!(bind(&mut m, &mut d, timer, 0), -EINVAL, "VIRQ_TIMER is per vCPU");
        assert_eq!(bind(&mut m, &mut d, ipi.port, 0), -EINVAL, "an IPI port stays");
        assert_eq!(bind(&mut m, &mut d, 0, 0), -EINVAL, "the reserved port");
        assert_eq!(bind(&mut m, &mut d, 900, 0), -EINVAL, "a free port");
    }

    #[test]
    fn poll_decodes_ports_and_refuses_bad_ones() {
        let (mut m, mut d, g) = setup();
        let (_, b) = op(&mut m, &mut d, &g, EVTCHNOP_BIND_IPI, EvtchnBindIpi { vcpu: 0, port: 0 });
        g.copy_to(ARG + 0x100, &b.port).unwrap();
        let poll = |nr, list| xen_public::sched::SchedPoll { ports: list, nr_ports: nr, timeout: 77, ..Default::default() };
        g.copy_to(ARG, &poll(1, ARG + 0x100)).unwrap();
        let p = decode_poll(&d, &g, ARG).unwrap();
        assert_eq!((p.nr, p.ports[0], p.deadline), (1, b.port, 77));
        g.copy_to(ARG, &poll(129, ARG + 0x100)).unwrap();
        assert_eq!(decode_poll(&d, &g, ARG).err(), Some(-EINVAL), "more than 128 ports");
        g.copy_to(ARG + 0x100, &1000u32).unwrap();
        g.copy_to(ARG, &poll(1, ARG + 0x100)).unwrap();
        assert_eq!(decode_poll(&d, &g, ARG).err(), Some(-EINVAL), "a port the caller does not have");
        g.copy_to(ARG, &poll(1, 0x40_0000)).unwrap();
        assert_eq!(decode_poll(&d, &g, ARG).err(), Some(-EFAULT), "an unmapped list");
    }
}
