//! XEN_DOMCTL_setvcpucontext, getvcpucontext and getvcpuinfo on the live
//! machine: the operations are in `domain/vcpu_ctx_ops.rs` (host-tested);
//! this module gives them the base pointers' and LDT's references in the
//! frame table, shared_info, where vCPUs run and the clock.

use super::live::Live;
use super::*;
use crate::domain::vcpu_ctx_ops::VcpuHost;

impl VcpuHost for Live<'_> {
    fn drain_pending(&mut self, domid: u16) -> Result<(), i64> {
        mmu::drain_pending(domid)
    }
    fn switch_base(&mut self, d: &Domain, new_mfn: u64, old_maddr: u64) -> Result<(), i64> {
        mmu::switch_base(d, new_mfn, old_maddr)
    }
    fn set_ldt(&mut self, v: &mut Vcpu, d: &mut Domain, va: u64, ents: u64) {
        let _ = mmu::set_ldt(v, d, va, ents);
    }
    fn release_vcpu_refs(&mut self, v: &mut Vcpu) {
        mmu::release_vcpu_refs(v);
    }
    fn init_shared(&mut self, d: &Domain, v: &Vcpu) {
        d.init_shared(v);
    }
    fn running_on(&self, slot: usize, vcpu_id: u32) -> Option<(usize, u64)> {
        crate::schedule::running_on(crate::schedule::VcpuId::new(slot, vcpu_id as usize))
    }
    fn system_time(&self) -> u64 {
        crate::guest::system_time()
    }
}
