//! `event_channel_op` and `SCHEDOP_poll` on the live machine: the
//! operations themselves are in `domain/evtchn_ops.rs` (host-tested);
//! this module gives them the other domains, the event bits in each
//! domain's shared_info and the scheduler's kick.

use super::live::Live;
use super::*;
use crate::domain::evtchn_ops::{self, EventHost};

/// The machine as event-channel operations see it: other domains through
/// their slots, event bits in shared_info.
impl EventHost for Live<'_> {
    type Bits = crate::guest::ShinfoBits;
    fn with_other<R>(&mut self, domid: u16, f: impl FnOnce(&mut Domain, &mut Self::Bits) -> R) -> Option<R> {
        crate::schedule::with_domain(domid, |o| {
            let mut bits = o.event_bits();
            f(o, &mut bits)
        })
    }
    fn bits(&self, d: &Domain) -> Self::Bits {
        d.event_bits()
    }
}

/// `event_channel_op(cmd, arg)` from `v` of `d`.
pub(super) fn event_channel_op(v: &mut Vcpu, d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    evtchn_ops::event_channel_op(&mut Live::new(), d, &v.kernel_mem(), cmd, arg)
}

/// `SCHEDOP_poll`: returns at once if an upcall is deliverable or one of
/// the ports is pending; bad ports are -EINVAL; more than 128 -EINVAL.
/// Otherwise the vCPU blocks until a port is pending or the timeout (system
/// time, 0 = none) passes; either way the result is 0, as in Xen.
pub(super) fn poll(v: &mut Vcpu, d: &mut Domain, arg: u64) -> Ret {
    match evtchn_ops::decode_poll(d, &v.kernel_mem(), arg) {
        Ok(p) => {
            // The scheduler ends the poll at once if it is already satisfied.
            v.block(Some(p));
            0
        }
        Err(e) => e,
    }
}
