//! Event channels, 2-level ABI: per-domain port state and the pending/mask
//! bit logic in shared_info and vcpu_info.
//!
//! Pure logic. The port table follows Xen's state machine (free,
//! reserved port 0, unbound, interdomain, VIRQ, IPI) and error codes; the
//! bit logic runs over the [`EventBits`] trait so the host tests can drive
//! it with a model of shared_info. Invariants: port 0 is never handed out;
//! an interdomain port's peer points back at it; closing one end leaves the
//! other unbound; a send sets a pending bit and raises the upcall only for
//! an unmasked port whose selector bit was newly set.
#![forbid(unsafe_code)]

/// Ports in the 2-level ABI on 64-bit guests (64 x 64).
pub const NR_PORTS: usize = 4096;
/// VIRQs (Xen's `NR_VIRQS`).
pub const NR_VIRQS: u32 = 24;
/// Ports are made valid in buckets, as Xen allocates them.
const BUCKET: usize = 64;

/// `EVTCHNSTAT_*`.
pub mod stat {
    /// closed
    pub const CLOSED: u32 = 0;
    /// unbound
    pub const UNBOUND: u32 = 1;
    /// interdomain
    pub const INTERDOMAIN: u32 = 2;
    /// virq
    pub const VIRQ: u32 = 4;
    /// ipi
    pub const IPI: u32 = 5;
}

/// A port's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum State {
    /// Not in use.
    #[default]
    Free,
    /// Port 0.
    Reserved,
    /// Waiting for `remote_dom` to bind to it.
    Unbound {
        /// Who may bind.
        remote_dom: u16,
    },
    /// Connected to `remote_port` of `remote_dom`.
    Interdomain {
        /// The peer domain.
        remote_dom: u16,
        /// The peer port.
        remote_port: u32,
    },
    /// Bound to a VIRQ.
    Virq(u32),
    /// An IPI channel.
    Ipi,
}

/// A negated errno.
pub type Errno = i64;
const EINVAL: Errno = -22;
const ENOSPC: Errno = -28;
const EEXIST: Errno = -17;
const ENOENT: Errno = -2;

/// A state packed into 32 bits: kind in bits 28-30, remote domain in bits
/// 12-27, remote port (or VIRQ) in bits 0-11.
fn pack(s: State) -> u32 {
    let (kind, dom, port) = match s {
        State::Free => (0, 0, 0),
        State::Reserved => (1, 0, 0),
        State::Unbound { remote_dom } => (2, remote_dom, 0),
        State::Interdomain { remote_dom, remote_port } => (3, remote_dom, remote_port),
        State::Virq(v) => (4, 0, v),
        State::Ipi => (5, 0, 0),
    };
    (kind << 28) | (u32::from(dom) << 12) | (port & 0xfff)
}

fn unpack(v: u32) -> State {
    let dom = ((v >> 12) & 0xffff) as u16;
    let port = v & 0xfff;
    match v >> 28 {
        1 => State::Reserved,
        2 => State::Unbound { remote_dom: dom },
        3 => State::Interdomain { remote_dom: dom, remote_port: port },
        4 => State::Virq(port),
        5 => State::Ipi,
        _ => State::Free,
    }
}

/// One domain's ports (16 KiB: one packed word per port).
#[derive(Clone)]
pub struct Ports {
    state: [u32; NR_PORTS],
    /// Ports below this are "valid" (allocated buckets).
    valid: usize,
    virq: [u32; NR_VIRQS as usize],
    nr_vcpus: u32,
}

impl Ports {
    /// A fresh table: port 0 reserved.
    pub fn new(nr_vcpus: u32) -> Self {
        let mut p = Ports { state: [0; NR_PORTS], valid: BUCKET, virq: [0; NR_VIRQS as usize], nr_vcpus };
        p.set(0, State::Reserved);
        p
    }

    /// A port's state, if valid.
    pub fn state(&self, port: u32) -> Option<State> {
        let p = port as usize;
        (p < self.valid).then(|| unpack(self.state[p]))
    }

    fn set(&mut self, port: u32, s: State) {
        self.state[port as usize] = pack(s);
    }

    /// Close every port (EVTCHNOP_reset); loopback peers go too. Ports
    /// stay valid up to the high-water mark, as Xen never frees buckets.
    pub fn reset(&mut self) {
        let (nr_vcpus, valid) = (self.nr_vcpus, self.valid);
        *self = Ports::new(nr_vcpus);
        self.valid = valid;
    }

    fn free_port(&mut self) -> Result<u32, Errno> {
        let p = (1..NR_PORTS).find(|&p| self.state[p] == 0).ok_or(ENOSPC)?;
        self.valid = self.valid.max((p / BUCKET + 1) * BUCKET);
        Ok(p as u32)
    }

    /// EVTCHNOP_alloc_unbound for this domain, for `remote_dom`.
    pub fn alloc_unbound(&mut self, remote_dom: u16) -> Result<u32, Errno> {
        let p = self.free_port()?;
        self.set(p, State::Unbound { remote_dom });
        Ok(p)
    }

    /// EVTCHNOP_bind_virq.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, Errno> {
        if virq >= NR_VIRQS {
            return Err(EINVAL);
        }
        if is_global_virq(virq) && vcpu != 0 {
            return Err(EINVAL);
        }
        if vcpu >= self.nr_vcpus {
            return Err(ENOENT);
        }
        if self.virq[virq as usize] != 0 {
            return Err(EEXIST);
        }
        let p = self.free_port()?;
        self.set(p, State::Virq(virq));
        self.virq[virq as usize] = p;
        Ok(p)
    }

    /// EVTCHNOP_bind_ipi.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, Errno> {
        if vcpu >= self.nr_vcpus {
            return Err(ENOENT);
        }
        let p = self.free_port()?;
        self.set(p, State::Ipi);
        Ok(p)
    }

    /// The port bound to a VIRQ, if any.
    pub fn virq_port(&self, virq: u32) -> Option<u32> {
        self.virq.get(virq as usize).copied().filter(|&p| p != 0)
    }
}

/// Whether a VIRQ is global (bound on vCPU 0 only).
pub fn is_global_virq(virq: u32) -> bool {
    // VIRQ_TIMER 0, DEBUG 1 and XENOPROF 7 are per-vCPU; the rest global.
    !matches!(virq, 0 | 1 | 7)
}

/// EVTCHNOP_bind_interdomain when both ends are in the same table (the
/// loopback case: `dom` binds to its own unbound port).
pub fn bind_loopback(p: &mut Ports, dom: u16, remote_port: u32) -> Result<u32, Errno> {
    match p.state(remote_port) {
        Some(State::Unbound { remote_dom }) if remote_dom == dom => {}
        _ => return Err(EINVAL),
    }
    let local = p.free_port()?;
    p.set(local, State::Interdomain { remote_dom: dom, remote_port });
    p.set(remote_port, State::Interdomain { remote_dom: dom, remote_port: local });
    Ok(local)
}

/// EVTCHNOP_bind_interdomain across two tables: `local` (of domain
/// `ldom`) binds to `remote_port` of `remote` (of domain `rdom`), which must
/// be unbound and offered to `ldom`. Both ends then point at each other.
pub fn bind_interdomain(local: &mut Ports, ldom: u16, remote: &mut Ports, rdom: u16, remote_port: u32) -> Result<u32, Errno> {
    match remote.state(remote_port) {
        Some(State::Unbound { remote_dom }) if remote_dom == ldom => {}
        _ => return Err(EINVAL),
    }
    let lp = local.free_port()?;
    local.set(lp, State::Interdomain { remote_dom: rdom, remote_port });
    remote.set(remote_port, State::Interdomain { remote_dom: ldom, remote_port: lp });
    Ok(lp)
}

/// The other domain's end of `port`, if it is an interdomain channel to a
/// domain other than `dom` (closing it must unbind that end).
pub fn foreign_peer(p: &Ports, dom: u16, port: u32) -> Option<(u16, u32)> {
    match p.state(port) {
        Some(State::Interdomain { remote_dom, remote_port }) if remote_dom != dom => Some((remote_dom, remote_port)),
        _ => None,
    }
}

/// Every interdomain channel of `p` (domain `dom`) to another domain.
pub fn foreign_peers(p: &Ports, dom: u16) -> impl Iterator<Item = (u16, u32)> + '_ {
    (0..p.valid as u32).filter_map(move |port| foreign_peer(p, dom, port))
}

/// Up to `out.len()` interdomain channels of `p` (domain `dom`) to other
/// domains, from local port `from` on: how many were written, and the port
/// to continue from (`None` when the table is done).
pub fn foreign_peers_from(p: &Ports, dom: u16, from: u32, out: &mut [(u16, u32)]) -> (usize, Option<u32>) {
    let mut n = 0;
    for port in from..p.valid as u32 {
        if n == out.len() {
            return (n, Some(port));
        }
        if let Some(peer) = foreign_peer(p, dom, port) {
            out[n] = peer;
            n += 1;
        }
    }
    (n, None)
}

/// `closer` closed its end of the channel whose other end is `port` here:
/// this end becomes unbound, waiting for `closer` again (as in Xen).
pub fn peer_closed(p: &mut Ports, port: u32, closer: u16) {
    if let Some(State::Interdomain { remote_dom, .. }) = p.state(port)
        && remote_dom == closer
    {
        p.set(port, State::Unbound { remote_dom: closer });
    }
}

/// EVTCHNOP_close within one domain's table (loopback peers are local).
pub fn close(p: &mut Ports, dom: u16, port: u32) -> Result<(), Errno> {
    match p.state(port) {
        None | Some(State::Free) | Some(State::Reserved) => Err(EINVAL),
        Some(State::Interdomain { remote_dom, remote_port }) if remote_dom == dom => {
            p.set(remote_port, State::Unbound { remote_dom: dom });
            p.set(port, State::Free);
            Ok(())
        }
        Some(State::Virq(v)) => {
            p.virq[v as usize] = 0;
            p.set(port, State::Free);
            Ok(())
        }
        Some(_) => {
            p.set(port, State::Free);
            Ok(())
        }
    }
}

/// Where a send lands: `Some((dom, port))` to set pending on, `None` to drop.
pub fn send_target(p: &Ports, dom: u16, port: u32) -> Result<Option<(u16, u32)>, Errno> {
    match p.state(port) {
        Some(State::Interdomain { remote_dom, remote_port }) => Ok(Some((remote_dom, remote_port))),
        Some(State::Ipi) => Ok(Some((dom, port))),
        Some(State::Unbound { .. }) => Ok(None),
        _ => Err(EINVAL),
    }
}

/// EVTCHNOP_status: `(status, word1, word2)` as in `evtchn_status`'s union.
pub fn status(p: &Ports, port: u32) -> Result<(u32, u32, u32), Errno> {
    Ok(match p.state(port).ok_or(EINVAL)? {
        State::Free | State::Reserved => (stat::CLOSED, 0, 0),
        State::Unbound { remote_dom } => (stat::UNBOUND, u32::from(remote_dom), 0),
        State::Interdomain { remote_dom, remote_port } => (stat::INTERDOMAIN, u32::from(remote_dom), remote_port),
        State::Virq(v) => (stat::VIRQ, v, 0),
        State::Ipi => (stat::IPI, 0, 0),
    })
}

/// The pending/mask words and the vCPU's selector and flags, as they sit in
/// shared_info and vcpu_info.
pub trait EventBits {
    /// Atomically set pending bit `port`; return its old value.
    fn test_and_set_pending(&mut self, port: u32) -> bool;
    /// Whether `port` is masked.
    fn is_masked(&self, port: u32) -> bool;
    /// Clear the mask bit of `port`.
    fn clear_mask(&mut self, port: u32);
    /// Whether `port` is pending.
    fn is_pending(&self, port: u32) -> bool;
    /// Atomically set selector bit `word`; return its old value.
    fn test_and_set_sel(&mut self, word: u32) -> bool;
    /// Set `evtchn_upcall_pending`.
    fn set_upcall_pending(&mut self);
}

/// Mark `port` pending (Xen's 2-level `evtchn_2l_set_pending`); returns
/// whether the vCPU must be kicked (its upcall became pending).
pub fn set_pending(bits: &mut impl EventBits, port: u32) -> bool {
    if bits.test_and_set_pending(port) {
        return false;
    }
    if !bits.is_masked(port) && !bits.test_and_set_sel(port / 64) {
        bits.set_upcall_pending();
        return true;
    }
    false
}

/// EVTCHNOP_unmask: clear the mask and, if the port was pending, re-run
/// the selector/upcall logic.
pub fn unmask(bits: &mut impl EventBits, port: u32) -> bool {
    bits.clear_mask(port);
    if bits.is_pending(port) && !bits.test_and_set_sel(port / 64) {
        bits.set_upcall_pending();
        return true;
    }
    false
}

/// Event bits in plain memory, for host tests of code that marks ports.
#[cfg(test)]
pub mod fake {
    use super::*;

    /// Event bits in plain memory.
    pub struct Bits {
        /// Pending bits.
        pub pending: [u64; 64],
        /// Mask bits.
        pub mask: [u64; 64],
        /// Selector bits.
        pub sel: u64,
        /// `evtchn_upcall_pending`.
        pub upcall: bool,
    }

    impl Default for Bits {
        fn default() -> Self {
            Bits { pending: [0; 64], mask: [0; 64], sel: 0, upcall: false }
        }
    }

    impl EventBits for Bits {
        fn test_and_set_pending(&mut self, port: u32) -> bool {
            let (w, b) = ((port / 64) as usize, port % 64);
            let old = self.pending[w] & (1 << b) != 0;
            self.pending[w] |= 1 << b;
            old
        }
        fn is_masked(&self, port: u32) -> bool {
            self.mask[(port / 64) as usize] & (1 << (port % 64)) != 0
        }
        fn clear_mask(&mut self, port: u32) {
            self.mask[(port / 64) as usize] &= !(1 << (port % 64));
        }
        fn is_pending(&self, port: u32) -> bool {
            self.pending[(port / 64) as usize] & (1 << (port % 64)) != 0
        }
        fn test_and_set_sel(&mut self, word: u32) -> bool {
            let old = self.sel & (1 << word) != 0;
            self.sel |= 1 << word;
            old
        }
        fn set_upcall_pending(&mut self) {
            self.upcall = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::Bits;
    use super::*;

    #[test]
    fn port_zero_is_reserved_and_allocation_runs_to_enospc() {
        // ABI: 4096 channels in the 2-level ABI; port 0 is never handed out.
        let mut p = Ports::new(1);
        assert_eq!(p.alloc_unbound(0), Ok(1));
        for want in 2..NR_PORTS as u32 {
            assert_eq!(p.alloc_unbound(0), Ok(want));
        }
        assert_eq!(p.alloc_unbound(0), Err(ENOSPC));
        assert_eq!(p.bind_ipi(0), Err(ENOSPC));
        assert_eq!(status(&p, 0), Ok((stat::CLOSED, 0, 0)));
    }

    #[test]
    fn loopback_binding_and_close_leaves_the_peer_unbound() {
        // ABI: closing one end makes the other end unbound.
        let mut p = Ports::new(1);
        let a = p.alloc_unbound(3).unwrap();
        assert_eq!(bind_loopback(&mut p, 3, a), Ok(2));
        assert_eq!(status(&p, a), Ok((stat::INTERDOMAIN, 3, 2)));
        assert_eq!(status(&p, 2), Ok((stat::INTERDOMAIN, 3, a)));
        assert_eq!(send_target(&p, 3, 2), Ok(Some((3, a))));
        close(&mut p, 3, 2).unwrap();
        assert_eq!(status(&p, a), Ok((stat::UNBOUND, 3, 0)));
        assert_eq!(status(&p, 2), Ok((stat::CLOSED, 0, 0)));
        assert_eq!(send_target(&p, 3, a), Ok(None), "send on an unbound port is dropped");
    }

    #[test]
    fn bind_errors() {
        let mut p = Ports::new(1);
        assert_eq!(bind_loopback(&mut p, 0, 5), Err(EINVAL), "not an unbound port");
        let a = p.alloc_unbound(9).unwrap();
        assert_eq!(bind_loopback(&mut p, 0, a), Err(EINVAL), "unbound for another domain");
        assert_eq!(p.bind_virq(NR_VIRQS, 0), Err(EINVAL));
        assert_eq!(p.bind_virq(3, 1), Err(EINVAL), "global VIRQ on vCPU 1");
        assert_eq!(p.bind_virq(0, 1), Err(ENOENT), "no vCPU 1");
        let v = p.bind_virq(3, 0).unwrap();
        assert_eq!(p.bind_virq(3, 0), Err(EEXIST));
        assert_eq!(p.virq_port(3), Some(v));
        assert_eq!(status(&p, v), Ok((stat::VIRQ, 3, 0)));
        assert_eq!(send_target(&p, 0, v), Err(EINVAL), "cannot send on a VIRQ");
        close(&mut p, 0, v).unwrap();
        assert_eq!(p.virq_port(3), None);
        assert_eq!(p.bind_ipi(1), Err(ENOENT));
    }

    #[test]
    fn packing_round_trips() {
        for s in [
            State::Free,
            State::Reserved,
            State::Unbound { remote_dom: 0x7ff0 },
            State::Interdomain { remote_dom: 5, remote_port: 4095 },
            State::Virq(23),
            State::Ipi,
        ] {
            assert_eq!(unpack(pack(s)), s);
        }
    }

    #[test]
    fn reset_closes_everything() {
        let mut p = Ports::new(1);
        let a = p.alloc_unbound(0).unwrap();
        p.bind_virq(3, 0).unwrap();
        p.reset();
        assert_eq!(status(&p, a), Ok((stat::CLOSED, 0, 0)), "still valid after a reset");
        assert_eq!(p.virq_port(3), None);
        assert_eq!(p.alloc_unbound(0), Ok(1));
    }

    #[test]
    fn invalid_ports_and_double_close() {
        let mut p = Ports::new(1);
        assert_eq!(close(&mut p, 0, 0), Err(EINVAL), "reserved port");
        assert_eq!(close(&mut p, 0, 7), Err(EINVAL), "free port");
        assert_eq!(close(&mut p, 0, 5000), Err(EINVAL));
        assert_eq!(status(&p, 4000), Err(EINVAL), "outside the allocated buckets");
        let i = p.bind_ipi(0).unwrap();
        assert_eq!(send_target(&p, 0, i), Ok(Some((0, i))));
        close(&mut p, 0, i).unwrap();
        assert_eq!(close(&mut p, 0, i), Err(EINVAL));
    }

    #[test]
    fn pending_mask_selector_logic() {
        // ABI: set pending; if newly set, not masked, and the selector bit newly set,
        // raise evtchn_upcall_pending. Unmask re-runs the check.
        let mut b = Bits::default();
        assert!(set_pending(&mut b, 70));
        assert!(b.upcall && b.sel == 1 << 1);
        assert!(!set_pending(&mut b, 70), "already pending");
        b.upcall = false;
        assert!(!set_pending(&mut b, 71), "selector already set: no new upcall");
        let mut b = Bits::default();
        b.mask[0] = 1 << 5;
        assert!(!set_pending(&mut b, 5), "masked: pending but no upcall");
        assert!(b.is_pending(5) && !b.upcall);
        assert!(unmask(&mut b, 5), "unmask delivers what was pending");
        assert!(b.upcall);
        let mut b = Bits::default();
        assert!(!unmask(&mut b, 9), "nothing pending: nothing to deliver");
    }

    #[test]
    fn interdomain_bind_send_and_close_across_two_tables() {
        // ABI: bind_interdomain needs an unbound port offered to the binder;
        // both ends then name each other; closing one end leaves the other
        // unbound for the closer.
        let (a, b) = (0u16, 5u16);
        let mut pa = Ports::new(1);
        let mut pb = Ports::new(1);
        let offered = pb.alloc_unbound(a).unwrap();
        let wrong = pb.alloc_unbound(7).unwrap();
        assert_eq!(bind_interdomain(&mut pa, a, &mut pb, b, wrong), Err(EINVAL), "offered to someone else");
        assert_eq!(bind_interdomain(&mut pa, a, &mut pb, b, 999), Err(EINVAL), "not a valid port");
        let la = bind_interdomain(&mut pa, a, &mut pb, b, offered).unwrap();
        assert_eq!(pb.state(offered), Some(State::Interdomain { remote_dom: a, remote_port: la }));
        assert_eq!(send_target(&pa, a, la), Ok(Some((b, offered))));
        assert_eq!(send_target(&pb, b, offered), Ok(Some((a, la))));
        assert_eq!(foreign_peers(&pa, a).collect::<Vec<_>>(), [(b, offered)]);
        assert_eq!(foreign_peer(&pa, a, la), Some((b, offered)));
        close(&mut pa, a, la).unwrap();
        peer_closed(&mut pb, offered, a);
        assert_eq!(pb.state(offered), Some(State::Unbound { remote_dom: a }));
        assert_eq!(bind_interdomain(&mut pa, a, &mut pb, b, offered).map(|_| ()), Ok(()), "rebindable");
    }
}
