//! Per-device blkback statistics, as Linux's xen-blkback keeps them
//! (`st_oo_req`, `st_rd_req`, `st_wr_req`, `st_f_req`, `st_ds_req`,
//! `st_rd_sect`, `st_wr_sect`, shown in sysfs `statistics/`), plus one
//! counter per refusal [`Reason`].
//!
//! Invariant: counters only grow (wrapping at 2^64, never panicking), and
//! each validation step is counted once through the [`Tally`] it carries.
#![forbid(unsafe_code)]

use super::validate::{Plan, Reason, Refusal, ReqClass, Tally};

/// The counters of one vbd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VbdStats {
    /// Times the ring had a request but no free pending request
    /// (`st_oo_req`).
    pub oo_req: u64,
    /// Read requests (`st_rd_req`).
    pub rd_req: u64,
    /// Write requests (`st_wr_req`).
    pub wr_req: u64,
    /// Flush and barrier requests (`st_f_req`).
    pub f_req: u64,
    /// Discard requests (`st_ds_req`).
    pub ds_req: u64,
    /// Sectors read (`st_rd_sect`).
    pub rd_sect: u64,
    /// Sectors written, flushes' data included (`st_wr_sect`).
    pub wr_sect: u64,
    refused: [u64; Reason::COUNT],
}

impl VbdStats {
    /// No free pending request for a request on the ring.
    pub fn note_out_of_requests(&mut self) {
        self.oo_req = self.oo_req.wrapping_add(1);
    }

    /// Counts an accepted step ([`super::validate::validate`] or
    /// [`super::validate::parse_indirect`]).
    pub fn account_plan(&mut self, plan: &Plan<'_>) {
        self.add(&plan.tally());
    }

    /// Counts a refusal: its reason, and its class where Linux counts it.
    pub fn account_refusal(&mut self, refusal: &Refusal) {
        self.add(&refusal.tally);
        let slot = &mut self.refused[refusal.reason.index()];
        *slot = slot.wrapping_add(1);
    }

    /// Requests refused for `reason`.
    pub fn refused(&self, reason: Reason) -> u64 {
        self.refused[reason.index()]
    }

    /// Requests refused, all reasons.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().fold(0u64, |sum, n| sum.wrapping_add(*n))
    }

    fn add(&mut self, tally: &Tally) {
        if let Some(class) = tally.class {
            let counter = match class {
                ReqClass::Read => &mut self.rd_req,
                ReqClass::Write => &mut self.wr_req,
                ReqClass::Flush => &mut self.f_req,
                ReqClass::Discard => &mut self.ds_req,
            };
            *counter = counter.wrapping_add(1);
        }
        self.rd_sect = self.rd_sect.wrapping_add(tally.rd_sect);
        self.wr_sect = self.wr_sect.wrapping_add(tally.wr_sect);
    }
}
