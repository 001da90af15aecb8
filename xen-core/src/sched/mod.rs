//! Scheduling policy. Pure logic, driven by the hypervisor's timer on the
//! target and by a simulated clock in the host tests.

pub mod credit;
