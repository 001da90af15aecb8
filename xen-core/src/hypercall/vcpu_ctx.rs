//! XEN_DOMCTL_setvcpucontext, getvcpucontext and getvcpuinfo on the live
//! machine: the operations are in `domain/vcpu_ctx_ops.rs` (host-tested,
//! taking the base pointers' and LDT's references through `mmu_ops`); this
//! module gives them shared_info, where vCPUs run and the clock.

use super::live::Live;
use super::*;
use crate::domain::vcpu_ctx_ops::VcpuHost;

impl VcpuHost for Live<'_> {
    fn init_shared(&mut self, d: &Domain, v: &Vcpu) {
        d.init_shared(v);
    }
    fn attach_shared(&mut self, d: &Domain, v: &mut Vcpu) {
        d.attach_shared(v);
    }
    fn running_on(&self, slot: usize, vcpu_id: u32) -> Option<(usize, u64)> {
        crate::schedule::running_on(crate::schedule::VcpuId::new(slot, vcpu_id as usize))
    }
    fn system_time(&self) -> u64 {
        crate::guest::system_time()
    }
}
