//! Per-domain quotas with Xen 4.17's defaults and errnos; dom0 is exempt
//! (xenstored's `domain_is_unprivileged`).
//!
//! Owns the limits and the comparisons, exactly as xenstored makes them
//! (note the `>` for watches and transactions: Xen checks the count before
//! adding, so one more than the quota fits). Invariant: no check ever
//! refuses dom0.
#![forbid(unsafe_code)]

use xen_public::errno::{E2BIG, ENOMEM, ENOSPC};

use super::{DomId, Errno};

/// The limits (xenstored_core.c:105-111 in RELEASE-4.17.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// `quota_nb_entry_per_domain` = 1000: nodes a domain owns.
    pub nodes: u32,
    /// `quota_max_entry_size` = 2048: a node's stored record, in bytes.
    pub entry_size: usize,
    /// `quota_nb_watch_per_domain` = 128.
    pub watches: usize,
    /// `quota_max_transaction` = 10: open transactions of a connection.
    pub transactions: usize,
    /// `quota_trans_nodes` = 1024: nodes one transaction may touch.
    pub trans_nodes: usize,
    /// `quota_memory_per_domain_hard`: bytes a domain's nodes, watches,
    /// transactions and queued events may hold. Xen's is 2.5 MiB; ours is
    /// [`MEMORY_PER_DOMAIN`] so that `MAX_GUESTS` domains at the limit fit
    /// dom0's 2 MiB heap with room for dom0's own data.
    pub memory: usize,
}

/// Our `quota_memory_per_domain_hard` (Xen 4.17: 2.5 MiB). The charge is
/// an estimate that a measurement found about 1.4 times below real heap
/// use (allocator headers, map entries): 7 domains at 96 KiB, times 1.5,
/// plus their connections' buffers (about 20 KiB each) and dom0's event
/// queue stay near 1.25 MiB of dom0's 2 MiB heap.
pub const MEMORY_PER_DOMAIN: usize = 96 * 1024;

impl Default for Quota {
    fn default() -> Self {
        Quota { nodes: 1000, entry_size: 2048, watches: 128, transactions: 10, trans_nodes: 1024, memory: MEMORY_PER_DOMAIN }
    }
}

impl Quota {
    /// create_node (xenstored_core.c:1492): a new node when `conn`
    /// already owns `owned`: ENOSPC at the quota.
    pub fn new_node(&self, conn: DomId, owned: u32) -> Result<(), Errno> {
        if conn != 0 && owned >= self.nodes { Err(ENOSPC) } else { Ok(()) }
    }

    /// write_node_raw (xenstored_core.c:806): a record of `dsize` bytes:
    /// ENOSPC at the quota.
    pub fn entry(&self, conn: DomId, dsize: usize) -> Result<(), Errno> {
        if conn != 0 && dsize >= self.entry_size { Err(ENOSPC) } else { Ok(()) }
    }

    /// do_watch (xenstored_watch.c:266): E2BIG past the quota.
    pub fn watch(&self, conn: DomId, have: usize) -> Result<(), Errno> {
        if conn != 0 && have > self.watches { Err(E2BIG) } else { Ok(()) }
    }

    /// do_transaction_start (xenstored_transaction.c:482): ENOSPC past
    /// the quota.
    pub fn transaction(&self, conn: DomId, open: usize) -> Result<(), Errno> {
        if conn != 0 && open > self.transactions { Err(ENOSPC) } else { Ok(()) }
    }

    /// domain_memory_add (xenstored_domain.c:1161): `add` more bytes when
    /// `conn` holds `have`: ENOMEM once the total reaches the hard quota.
    pub fn memory(&self, conn: DomId, have: usize, add: usize) -> Result<(), Errno> {
        if conn != 0 && have.saturating_add(add) >= self.memory { Err(ENOMEM) } else { Ok(()) }
    }

    /// access_node (xenstored_transaction.c:261): ENOSPC once a
    /// transaction has touched `trans_nodes` nodes.
    pub fn trans_node(&self, conn: DomId, touched: usize) -> Result<(), Errno> {
        if conn != 0 && touched >= self.trans_nodes { Err(ENOSPC) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_xen_4_17s() {
        let q = Quota::default();
        assert_eq!((q.nodes, q.entry_size, q.watches, q.transactions, q.trans_nodes), (1000, 2048, 128, 10, 1024));
    }

    #[test]
    fn limits_answer_xens_errnos_and_spare_dom0() {
        let q = Quota::default();
        assert_eq!(q.new_node(1, 1000), Err(ENOSPC));
        assert_eq!(q.new_node(1, 999), Ok(()));
        assert_eq!(q.entry(1, 2048), Err(ENOSPC));
        assert_eq!(q.watch(1, 129), Err(E2BIG));
        assert_eq!(q.watch(1, 128), Ok(()), "Xen checks before adding: 129 fit");
        assert_eq!(q.transaction(1, 11), Err(ENOSPC));
        assert_eq!(q.transaction(1, 10), Ok(()));
        assert_eq!(q.new_node(0, 1_000_000), Ok(()));
        assert_eq!(q.entry(0, 1 << 20), Ok(()));
        assert_eq!(q.watch(0, 10_000), Ok(()));
    }
}
