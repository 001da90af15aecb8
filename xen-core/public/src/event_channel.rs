//! Event channels: mirrors Xen 4.17's `public/event_channel.h`.
//!
//! Holds the `EVTCHNOP_*` sub-op numbers of `event_channel_op(cmd, arg)`, the
//! argument structure of every sub-op, and the FIFO ABI's control block.
//! Invariant: every structure has exactly the x86_64 size and field offsets
//! Xen 4.17 gives it; the assertions after each one check that at compile
//! time. Ports are `evtchn_port_t` (u32), domains `domid_t` (u16).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::union_bytes;

/// `EVTCHNOP_bind_interdomain`: [`EvtchnBindInterdomain`].
pub const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
/// `EVTCHNOP_bind_virq`: [`EvtchnBindVirq`].
pub const EVTCHNOP_BIND_VIRQ: u64 = 1;
/// `EVTCHNOP_bind_pirq`: [`EvtchnBindPirq`].
pub const EVTCHNOP_BIND_PIRQ: u64 = 2;
/// `EVTCHNOP_close`: [`EvtchnClose`].
pub const EVTCHNOP_CLOSE: u64 = 3;
/// `EVTCHNOP_send`: [`EvtchnSend`].
pub const EVTCHNOP_SEND: u64 = 4;
/// `EVTCHNOP_status`: [`EvtchnStatus`].
pub const EVTCHNOP_STATUS: u64 = 5;
/// `EVTCHNOP_alloc_unbound`: [`EvtchnAllocUnbound`].
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
/// `EVTCHNOP_bind_ipi`: [`EvtchnBindIpi`].
pub const EVTCHNOP_BIND_IPI: u64 = 7;
/// `EVTCHNOP_bind_vcpu`: [`EvtchnBindVcpu`].
pub const EVTCHNOP_BIND_VCPU: u64 = 8;
/// `EVTCHNOP_unmask`: [`EvtchnUnmask`].
pub const EVTCHNOP_UNMASK: u64 = 9;
/// `EVTCHNOP_reset`: [`EvtchnReset`].
pub const EVTCHNOP_RESET: u64 = 10;
/// `EVTCHNOP_init_control`: [`EvtchnInitControl`] (FIFO ABI).
pub const EVTCHNOP_INIT_CONTROL: u64 = 11;
/// `EVTCHNOP_expand_array`: [`EvtchnExpandArray`] (FIFO ABI).
pub const EVTCHNOP_EXPAND_ARRAY: u64 = 12;
/// `EVTCHNOP_set_priority`: [`EvtchnSetPriority`] (FIFO ABI).
pub const EVTCHNOP_SET_PRIORITY: u64 = 13;
/// `EVTCHNOP_reset_cont`: hypervisor-internal continuation of a reset; never
/// valid from a guest.
pub const EVTCHNOP_RESET_CONT: u64 = 14;

/// `BIND_PIRQ__WILL_SHARE`: the caller will share the physical IRQ.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// `EVTCHNSTAT_closed`: the port is free.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for a remote domain to bind.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a port of another domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to an inter-vCPU interrupt.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `EVTCHN_2L_NR_CHANNELS`: ports of the 2-level ABI on x86_64 (8 * 8 * 64).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;
/// `EVTCHN_FIFO_PRIORITY_MAX`: the highest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// `EVTCHN_FIFO_PRIORITY_DEFAULT`.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// `EVTCHN_FIFO_PRIORITY_MIN`: the lowest FIFO priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// `EVTCHN_FIFO_MAX_QUEUES`: one queue per priority.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = 16;
/// `EVTCHN_FIFO_PENDING`: bit number in an event word.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// `EVTCHN_FIFO_MASKED`: bit number in an event word.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// `EVTCHN_FIFO_LINKED`: bit number in an event word.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// `EVTCHN_FIFO_BUSY`: bit number in an event word.
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// `EVTCHN_FIFO_LINK_BITS`: width of the link field of an event word.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// `EVTCHN_FIFO_LINK_MASK`.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// `EVTCHN_FIFO_NR_CHANNELS`: ports of the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// `struct evtchn_alloc_unbound`: make a port that `remote_dom` may bind.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// IN: domain that owns the new port (`DOMID_SELF` or, privileged, any).
    pub dom: u16,
    /// IN: domain allowed to bind it.
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnAllocUnbound>() == 8);
const _: () = assert!(core::mem::offset_of!(EvtchnAllocUnbound, remote_dom) == 2);
const _: () = assert!(core::mem::offset_of!(EvtchnAllocUnbound, port) == 4);

/// `struct evtchn_bind_interdomain`: connect to a remote unbound port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain.
    pub remote_dom: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: the remote domain's unbound port.
    pub remote_port: u32,
    /// OUT: the local end.
    pub local_port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindInterdomain>() == 12);
const _: () = assert!(core::mem::offset_of!(EvtchnBindInterdomain, remote_port) == 4);
const _: () = assert!(core::mem::offset_of!(EvtchnBindInterdomain, local_port) == 8);

/// `struct evtchn_bind_virq`: bind a virtual IRQ on one vCPU.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    /// IN: the `VIRQ_*` number.
    pub virq: u32,
    /// IN: the vCPU it is delivered to.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindVirq>() == 12);
const _: () = assert!(core::mem::offset_of!(EvtchnBindVirq, port) == 8);

/// `struct evtchn_bind_pirq`: bind a physical IRQ.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    /// IN: the physical IRQ.
    pub pirq: u32,
    /// IN: [`BIND_PIRQ_WILL_SHARE`] or 0.
    pub flags: u32,
    /// OUT: the new port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindPirq>() == 12);
const _: () = assert!(core::mem::offset_of!(EvtchnBindPirq, port) == 8);

/// `struct evtchn_bind_ipi`: make a port for interrupts between own vCPUs.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    /// IN: the vCPU notified.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindIpi>() == 8);
const _: () = assert!(core::mem::offset_of!(EvtchnBindIpi, port) == 4);

/// `struct evtchn_close`: free a local port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnClose {
    /// IN: the port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnClose>() == 4);

/// `struct evtchn_send`: signal the far end of a port.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSend {
    /// IN: the local port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnSend>() == 4);

/// `unbound` member of `evtchn_status.u`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusUnbound {
    /// The domain allowed to bind.
    pub dom: u16,
}
const _: () = assert!(core::mem::size_of::<EvtchnStatusUnbound>() == 2);

/// `interdomain` member of `evtchn_status.u`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatusInterdomain {
    /// The remote domain.
    pub dom: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// The remote port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnStatusInterdomain>() == 8);
const _: () = assert!(core::mem::offset_of!(EvtchnStatusInterdomain, port) == 4);

/// `struct evtchn_status`: what a port is bound to.
///
/// `u` is the C union (8 bytes); read it with the accessor for the member
/// `status` names.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// IN: the domain owning the port.
    pub dom: u16,
    /// Padding; zero.
    pub _pad0: u16,
    /// IN: the port.
    pub port: u32,
    /// OUT: an `EVTCHNSTAT_*` value.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: the union `u` as bytes (unbound / interdomain / pirq / virq).
    pub u: [u8; 8],
}
const _: () = assert!(core::mem::size_of::<EvtchnStatus>() == 24);
const _: () = assert!(core::mem::offset_of!(EvtchnStatus, port) == 4);
const _: () = assert!(core::mem::offset_of!(EvtchnStatus, status) == 8);
const _: () = assert!(core::mem::offset_of!(EvtchnStatus, vcpu) == 12);
const _: () = assert!(core::mem::offset_of!(EvtchnStatus, u) == 16);

impl EvtchnStatus {
    /// `u.unbound` (for [`EVTCHNSTAT_UNBOUND`]).
    pub fn unbound(&self) -> EvtchnStatusUnbound {
        union_bytes::read(&self.u)
    }
    /// Store `u.unbound`.
    pub fn set_unbound(&mut self, v: EvtchnStatusUnbound) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.interdomain` (for [`EVTCHNSTAT_INTERDOMAIN`]).
    pub fn interdomain(&self) -> EvtchnStatusInterdomain {
        union_bytes::read(&self.u)
    }
    /// Store `u.interdomain`.
    pub fn set_interdomain(&mut self, v: EvtchnStatusInterdomain) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.pirq` (for [`EVTCHNSTAT_PIRQ`]).
    pub fn pirq(&self) -> u32 {
        union_bytes::read(&self.u)
    }
    /// Store `u.pirq`.
    pub fn set_pirq(&mut self, v: u32) {
        union_bytes::write(&mut self.u, &v);
    }
    /// `u.virq` (for [`EVTCHNSTAT_VIRQ`]).
    pub fn virq(&self) -> u32 {
        union_bytes::read(&self.u)
    }
    /// Store `u.virq`.
    pub fn set_virq(&mut self, v: u32) {
        union_bytes::write(&mut self.u, &v);
    }
}

/// `struct evtchn_bind_vcpu`: move a port's notifications to another vCPU.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    /// IN: the port.
    pub port: u32,
    /// IN: the vCPU to notify from now on.
    pub vcpu: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnBindVcpu>() == 8);
const _: () = assert!(core::mem::offset_of!(EvtchnBindVcpu, vcpu) == 4);

/// `struct evtchn_unmask`: clear a port's mask bit, delivering a pending event.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnUnmask {
    /// IN: the port.
    pub port: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnUnmask>() == 4);

/// `struct evtchn_reset`: close every port of a domain.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    /// IN: the domain.
    pub dom: u16,
}
const _: () = assert!(core::mem::size_of::<EvtchnReset>() == 2);

/// `struct evtchn_init_control`: switch to the FIFO ABI, registering one
/// vCPU's control block.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnInitControl {
    /// IN: guest frame holding the control block.
    pub control_gfn: u64,
    /// IN: byte offset of the block in that frame.
    pub offset: u32,
    /// IN: the vCPU.
    pub vcpu: u32,
    /// OUT: width of the link field ([`EVTCHN_FIFO_LINK_BITS`]).
    pub link_bits: u8,
    /// Padding; zero.
    pub _pad: [u8; 7],
}
const _: () = assert!(core::mem::size_of::<EvtchnInitControl>() == 24);
const _: () = assert!(core::mem::offset_of!(EvtchnInitControl, vcpu) == 12);
const _: () = assert!(core::mem::offset_of!(EvtchnInitControl, link_bits) == 16);

/// `struct evtchn_expand_array`: add a page of FIFO event words.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnExpandArray {
    /// IN: guest frame of the new page.
    pub array_gfn: u64,
}
const _: () = assert!(core::mem::size_of::<EvtchnExpandArray>() == 8);

/// `struct evtchn_set_priority`: set a port's FIFO priority.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSetPriority {
    /// IN: the port.
    pub port: u32,
    /// IN: 0 (highest) to 15 (lowest).
    pub priority: u32,
}
const _: () = assert!(core::mem::size_of::<EvtchnSetPriority>() == 8);

/// `struct evtchn_op`: the argument of the old `event_channel_op_compat`
/// hypercall, a sub-op number followed by the union of the 2-level
/// sub-ops' arguments (as bytes; the largest member is [`EvtchnStatus`]).
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnOp {
    /// An `EVTCHNOP_*` number.
    pub cmd: u32,
    /// The argument structure of `cmd`, as bytes.
    pub u: [u8; 24],
}
const _: () = assert!(core::mem::size_of::<EvtchnOp>() == 28);
const _: () = assert!(core::mem::offset_of!(EvtchnOp, u) == 4);

impl EvtchnOp {
    /// The argument as the structure `T` of `cmd`.
    pub fn arg<T: FromBytes>(&self) -> T {
        union_bytes::read(&self.u)
    }
    /// Store the argument structure.
    pub fn set_arg<T: IntoBytes + Immutable>(&mut self, v: &T) {
        union_bytes::write(&mut self.u, v);
    }
}

/// `struct evtchn_fifo_control_block`: a vCPU's FIFO queue heads.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    /// Bitmap of queues with events ready.
    pub ready: u32,
    /// Reserved.
    pub _rsvd: u32,
    /// Head port of each priority queue.
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}
const _: () = assert!(core::mem::size_of::<EvtchnFifoControlBlock>() == 72);
const _: () = assert!(core::mem::offset_of!(EvtchnFifoControlBlock, head) == 8);

#[cfg(test)]
mod tests {
    use super::*;

    /// ABI rule: `evtchn_alloc_unbound` is {u16 dom @0, u16 remote_dom @2, u32 port @4}, little endian.
    #[test]
    fn alloc_unbound_fields_at_xen_offsets() {
        let bytes = [0xf0, 0x7f, 0x05, 0x00, 0x2a, 0, 0, 0];
        let a = EvtchnAllocUnbound::read_from_bytes(&bytes).unwrap();
        assert_eq!(a, EvtchnAllocUnbound { dom: 0x7ff0, remote_dom: 5, port: 42 });
        assert_eq!(a.as_bytes(), &bytes);
    }

    /// ABI rule: the `evtchn_status` union starts at byte 16 and its
    /// interdomain port sits at byte 20.
    #[test]
    fn status_interdomain_port_at_byte_20() {
        let mut s = EvtchnStatus { dom: 1, port: 3, status: EVTCHNSTAT_INTERDOMAIN, ..Default::default() };
        s.set_interdomain(EvtchnStatusInterdomain { dom: 7, _pad0: 0, port: 0x1234 });
        let b = s.as_bytes();
        assert_eq!(&b[16..18], &7u16.to_le_bytes());
        assert_eq!(&b[20..24], &0x1234u32.to_le_bytes());
        let back = EvtchnStatus::read_from_bytes(b).unwrap();
        assert_eq!(back.interdomain().port, 0x1234);
        assert_eq!(back.unbound().dom, 7, "unbound.dom aliases interdomain.dom");
    }

    /// ABI rule: `evtchn_op` is {u32 cmd; union u} with the union at byte 4.
    #[test]
    fn compat_op_argument_at_byte_4() {
        let mut op = EvtchnOp { cmd: EVTCHNOP_SEND as u32, ..Default::default() };
        op.set_arg(&EvtchnSend { port: 9 });
        assert_eq!(&op.as_bytes()[4..8], &9u32.to_le_bytes());
        assert_eq!(op.arg::<EvtchnSend>().port, 9);
    }
}
