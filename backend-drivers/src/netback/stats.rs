//! Per-vif netback statistics, named after the frontend's two rings:
//! `tx_*` is what the guest sent (its tx ring, Linux's `xenvif_tx_action`
//! side), `rx_*` what dom0 delivered to it (its rx ring, `xenvif_rx_action`).
//! Linux's vif netdev counts the same packets the other way round (the
//! guest's tx is the vif's rx); `xl network-list` style output that wants
//! the dom0 view swaps them.
//!
//! Invariant: counters only grow, wrapping at 2^64 (never panicking); a
//! dropped packet is counted in exactly one drop counter, and a fatal error
//! (the device is disabled) only in [`VifStats::fatal`].
#![forbid(unsafe_code)]

/// The counters of one vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VifStats {
    /// Packets the guest sent that were delivered to dom0.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Packets delivered into the guest's rx ring.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Guest packets dropped for their size: a fragment larger than what
    /// the first slot's size leaves (`xenvif_count_requests`' `-EIO`), a
    /// first slot shorter than `ETH_HLEN`, or larger than the caller's
    /// buffer.
    pub tx_bad_size: u64,
    /// Guest packets dropped for using more than
    /// `XEN_NETBK_LEGACY_SLOTS_MAX` fragment slots.
    pub tx_too_many_slots: u64,
    /// Guest packets dropped because copying from their grants failed.
    pub tx_bad_gref: u64,
    /// Guest packets dropped for an extra-info this backend did not offer
    /// (GSO).
    pub tx_bad_extra: u64,
    /// Times the tx ring was left alone for lack of credit (`rate=`).
    pub tx_credit_waits: u64,
    /// Frames for the guest dropped because its rx queue was full.
    pub rx_queue_full: u64,
    /// Frames for the guest dropped for their size (empty, over 64 KiB, or
    /// over one page for a frontend without `feature-sg`).
    pub rx_too_big: u64,
    /// Frames for the guest whose copy into its grants failed (answered
    /// with the grant status).
    pub rx_copy_failed: u64,
    /// Frames sent with a source MAC not the vif's (dropped by dom0's
    /// bridge port, as the vif-bridge script's `antispoof`).
    pub tx_spoofed: u64,
    /// Guest packets answered okay but dropped in dom0 for want of heap
    /// (a flood costs frames, never dom0).
    pub tx_no_memory: u64,
    /// Fatal frontend errors (`xenvif_fatal_tx_err`, a corrupt ring).
    pub fatal: u64,
}

/// `*c += n`, wrapping.
pub(crate) fn bump(c: &mut u64, n: u64) {
    *c = c.wrapping_add(n);
}

impl VifStats {
    /// Packets dropped, every reason (fatal errors are not drops).
    pub fn dropped_total(&self) -> u64 {
        [
            self.tx_bad_size,
            self.tx_too_many_slots,
            self.tx_bad_gref,
            self.tx_bad_extra,
            self.rx_queue_full,
            self.rx_too_big,
            self.rx_copy_failed,
            self.tx_spoofed,
            self.tx_no_memory,
        ]
        .iter()
        .fold(0u64, |s, n| s.wrapping_add(*n))
    }
}
