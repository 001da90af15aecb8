//! `event_channel_op` on the live machine: the operations themselves are
//! in `domain/evtchn_ops.rs` (host-tested; `SCHEDOP_poll`'s decoding too,
//! called by `sched_ops`); this module gives them the other domains and
//! the event bits in each domain's shared_info.

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
    fn sent(&mut self, d: &Domain, port: u32, remote: u16, remote_port: u32) {
        use xen_public::trace::{Event, TRC_XENCORE_EVTCHN_SEND};
        if crate::trace::on(TRC_XENCORE_EVTCHN_SEND) {
            let vcpu = crate::schedule::current_vcpu().map_or(0, |v| v.vcpu_id() as u16);
            crate::trace::record(&Event::EvtchnSend { domid: d.domid, vcpu, port, remote_domid: u32::from(remote), remote_port });
        }
    }
}

/// `event_channel_op(cmd, arg)` from `v` of `d`.
pub(super) fn event_channel_op(v: &mut Vcpu, d: &mut Domain, cmd: u32, arg: u64) -> Ret {
    evtchn_ops::event_channel_op(&mut Live::new(), d, &v.kernel_mem(), cmd, arg)
}
