//! One physical CPU's trace buffer as Xen's `__trace_var` fills it: the
//! `t_buf` head (`cons`, `prod`) and the data area of `t_rec` records
//! behind it, shared with dom0, which reads records and moves `cons`.
//!
//! Owns the writer's rules only (the memory is behind [`BufMem`]; the live
//! buffers and their frames are in `trace.rs`): a record goes in whole or
//! not at all; a record never straddles the end of the data area (a
//! `TRC_TRACE_WRAP_BUFFER` record pads to it); records that do not fit are
//! counted per CPU and, once there is room again, announced by one
//! `TRC_LOST_RECORDS` record before the next one, so a loss is never
//! silent. Invariant: `prod` only moves after the bytes before it are
//! written, and a `cons`/`prod` pair that is not a valid ring position
//! (dom0 wrote garbage into `cons`) writes nothing.
#![forbid(unsafe_code)]

use xen_public::trace::{self, Event, TraceRecord};

/// The memory of one CPU's buffer, as the hypervisor writes it and dom0
/// reads it.
pub trait BufMem {
    /// `t_buf.cons`, as dom0 left it (untrusted).
    fn cons(&self) -> u32;
    /// `t_buf.prod`, as the writer left it.
    fn prod(&self) -> u32;
    /// Publish `t_buf.prod` after the records before it are written.
    fn set_prod(&self, prod: u32);
    /// Write `bytes` at `off` in the data area (`off + bytes.len()` is at
    /// most the data size).
    fn write_data(&self, off: u32, bytes: &[u8]);
}

/// Records this CPU could not write since the last one that fitted (Xen's
/// per-CPU `lost_records` and `lost_records_first_tsc`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// How many.
    pub count: u32,
    /// TSC when the first of them was dropped.
    pub first_tsc: u64,
}

/// What became of one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written; `high_water` when the unread bytes crossed half the
    /// buffer with it (Xen then raises `VIRQ_TBUF` for dom0).
    Written {
        /// The buffer went past its high-water mark with this record.
        high_water: bool,
    },
    /// No room: counted in [`Lost`].
    Lost,
    /// `cons` or `prod` is not a ring position: nothing written.
    Bogus,
}

/// Insert `rec` into the buffer `mem` of `data_size` data bytes, after a
/// `TRC_LOST_RECORDS` record if `lost` counts any (written for the vCPU
/// `who`, `(domid, vcpu)`); `tsc` stamps those and a lost record.
pub fn insert(mem: &impl BufMem, data_size: u32, rec: &TraceRecord, lost: &mut Lost, who: (u16, u16), tsc: u64) -> Outcome {
    let (prod, cons) = (mem.prod(), mem.cons());
    if trace::ring_bogus(prod, cons, data_size) {
        return Outcome::Bogus;
    }
    let high_water = data_size / 2;
    let below = trace::ring_unconsumed(prod, cons, data_size) < high_water;
    let Some(plan) = trace::plan_insert(prod, cons, data_size, rec.size() as u32, lost.count > 0) else {
        if lost.count == 0 {
            lost.first_tsc = tsc;
        }
        lost.count = lost.count.saturating_add(1);
        return Outcome::Lost;
    };
    let mut at = prod;
    if let Some(pad) = plan.wrap_before_lost {
        at = put_wrap(mem, at, pad, data_size, tsc);
    }
    if plan.lost {
        let announce = Event::lost_records(lost.count, who.0, who.1, lost.first_tsc).payload().record(tsc);
        at = put(mem, at, &announce, data_size);
        *lost = Lost::default();
    }
    if let Some(pad) = plan.wrap_before_record {
        at = put_wrap(mem, at, pad, data_size, tsc);
    }
    at = put(mem, at, rec, data_size);
    mem.set_prod(at);
    Outcome::Written { high_water: below && trace::ring_unconsumed(at, cons, data_size) >= high_water }
}

/// Write `rec` at ring position `at`; the position after it.
fn put(mem: &impl BufMem, at: u32, rec: &TraceRecord, data_size: u32) -> u32 {
    let (bytes, n) = rec.encode_bytes();
    mem.write_data(trace::ring_offset(at, data_size), &bytes[..n]);
    trace::ring_advance(at, n as u32, data_size)
}

/// Pad the `pad` bytes before the end of the data area (Xen's
/// `insert_wrap_record`); the position after them.
fn put_wrap(mem: &impl BufMem, at: u32, pad: u32, data_size: u32, tsc: u64) -> u32 {
    match trace::wrap_record(pad, tsc) {
        Some(wrap) => put(mem, at, &wrap, data_size),
        // Not representable (never for records of whole words): skip the
        // bytes, which dom0 reads as part of the wrap.
        None => trace::ring_advance(at, pad, data_size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};
    use xen_public::trace::{TRC_LOST_RECORDS, TRC_TRACE_WRAP_BUFFER};

    struct Ring {
        cons: Cell<u32>,
        prod: Cell<u32>,
        data: RefCell<Vec<u8>>,
    }

    impl Ring {
        fn new(data_size: u32) -> Ring {
            Ring { cons: Cell::new(0), prod: Cell::new(0), data: RefCell::new(vec![0; data_size as usize]) }
        }

        /// Every record from `cons` to `prod`, as dom0 reads them; `cons`
        /// follows.
        fn read_all(&self, data_size: u32) -> Vec<TraceRecord> {
            let mut out = Vec::new();
            while self.cons.get() != self.prod.get() {
                let c = self.cons.get();
                let off = trace::ring_offset(c, data_size);
                let (rec, used) = TraceRecord::decode_bytes(&self.data.borrow()[off as usize..]).unwrap();
                self.cons.set(trace::ring_advance(c, used as u32, data_size));
                out.push(rec);
            }
            out
        }
    }

    impl BufMem for Ring {
        fn cons(&self) -> u32 {
            self.cons.get()
        }
        fn prod(&self) -> u32 {
            self.prod.get()
        }
        fn set_prod(&self, prod: u32) {
            self.prod.set(prod);
        }
        fn write_data(&self, off: u32, bytes: &[u8]) {
            let off = off as usize;
            assert!(off + bytes.len() <= self.data.borrow().len(), "a record straddles the end of the data area");
            self.data.borrow_mut()[off..off + bytes.len()].copy_from_slice(bytes);
        }
    }

    fn rec(i: u32) -> TraceRecord {
        TraceRecord::new(trace::TRC_SCHED_WAKE, Some(1000 + u64::from(i)), &[i, 0]).unwrap()
    }

    /// Xen's `__insert_record`: records go in whole, in order, each with
    /// its TSC, and the reader finds exactly them.
    #[test]
    fn records_come_back_in_order_with_their_tsc() {
        let r = Ring::new(4088);
        let mut lost = Lost::default();
        for i in 0..10 {
            assert!(matches!(insert(&r, 4088, &rec(i), &mut lost, (1, 0), 5), Outcome::Written { .. }));
        }
        let got = r.read_all(4088);
        assert_eq!(got, (0..10).map(rec).collect::<Vec<_>>());
    }

    /// `insert_wrap_record`: a record that would straddle the end of the
    /// data area is preceded by a TRC_TRACE_WRAP_BUFFER padding it, and
    /// the record starts again at offset 0 (the fake asserts no straddle).
    #[test]
    fn wrapping_pads_to_the_end_and_never_straddles() {
        let size = 108; // 20-byte records: the sixth would start 8 bytes before the end
        let r = Ring::new(size);
        let mut lost = Lost::default();
        let mut seen = Vec::new();
        for i in 0..40 {
            assert!(matches!(insert(&r, size, &rec(i), &mut lost, (1, 0), 5), Outcome::Written { .. }), "record {i}");
            seen.extend(r.read_all(size));
        }
        let data: Vec<_> = seen.iter().filter(|x| x.event() != TRC_TRACE_WRAP_BUFFER).cloned().collect();
        assert_eq!(data, (0..40).map(rec).collect::<Vec<_>>());
        assert!(seen.iter().any(|x| x.event() == TRC_TRACE_WRAP_BUFFER), "some record needed a wrap");
    }

    /// Xen's lost-records rule: records that do not fit are counted, and
    /// the first one written afterwards is preceded by TRC_LOST_RECORDS
    /// with the count, the current vCPU and the first loss's TSC.
    #[test]
    fn a_full_buffer_counts_losses_and_announces_them_once() {
        let size = 200;
        let r = Ring::new(size);
        let mut lost = Lost::default();
        let mut written = 0;
        for i in 0..20u32 {
            if matches!(insert(&r, size, &rec(i), &mut lost, (3, 1), 7000 + u64::from(i)), Outcome::Written { .. }) {
                written += 1;
            }
        }
        assert_eq!(written + lost.count, 20);
        assert!(lost.count > 0);
        let first_lost_tsc = lost.first_tsc;
        let lost_count = lost.count;
        let _ = r.read_all(size);
        assert!(matches!(insert(&r, size, &rec(99), &mut lost, (3, 1), 9999), Outcome::Written { .. }));
        let after = r.read_all(size);
        assert_eq!(after[0].event(), TRC_LOST_RECORDS);
        assert_eq!(
            after[0].decode_event(),
            Ok(Event::LostRecords { lost: lost_count, domid: 3, vcpu: 1, first_tsc: first_lost_tsc }),
            "count, vCPU and first TSC"
        );
        assert_eq!(after.last(), Some(&rec(99)));
        assert_eq!(lost, Lost::default(), "announced once");
    }

    /// A hostile dom0 writing a `cons` that is no ring position stops the
    /// writer (nothing written, `prod` unchanged), as Xen's `bogus()`.
    #[test]
    fn a_bogus_cons_from_dom0_writes_nothing() {
        let r = Ring::new(4088);
        let mut lost = Lost::default();
        // Unaligned, past the ring, and (aligned and in range) ahead of
        // prod, which would claim more unread bytes than the ring holds.
        for cons in [1, 2 * 4088, u32::MAX, 4] {
            r.cons.set(cons);
            assert_eq!(insert(&r, 4088, &rec(0), &mut lost, (0, 0), 1), Outcome::Bogus);
            assert_eq!(r.prod.get(), 0);
        }
    }

    /// `VIRQ_TBUF` comes once, when the unread bytes cross half the buffer.
    #[test]
    fn high_water_is_reported_once_when_crossed() {
        let size = 400;
        let r = Ring::new(size);
        let mut lost = Lost::default();
        let marks: Vec<bool> =
            (0..15).map(|i| matches!(insert(&r, size, &rec(i), &mut lost, (0, 0), 1), Outcome::Written { high_water: true })).collect();
        assert_eq!(marks.iter().filter(|&&m| m).count(), 1, "{marks:?}");
        assert!(marks[9], "the 10th 20-byte record reaches 200, half of 400: {marks:?}");
    }
}
