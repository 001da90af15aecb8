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

use xen_public::trace::{self, Event};

/// The memory of one CPU's buffer, as the hypervisor writes it and dom0
/// reads it.
pub trait BufMem {
    /// `t_buf.cons`, as dom0 left it (untrusted).
    fn cons(&self) -> u32;
    /// `t_buf.prod`, as the writer left it.
    fn prod(&self) -> u32;
    /// Publish `t_buf.prod` after the records before it are written.
    fn set_prod(&self, prod: u32);
    /// Write the little-endian `words` at byte `off` (a multiple of 4) of
    /// the data area (`off + 4 * words.len()` is at most the data size).
    fn write_words(&self, off: u32, words: &[u32]);
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

/// Insert the encoded record `rec` (its `t_rec` words, header first) into
/// the buffer `mem` of `data_size` data bytes, after a `TRC_LOST_RECORDS`
/// record if `lost` counts any (written for the vCPU `who()` returns,
/// `(domid, vcpu)`, asked only then); `tsc` stamps those and a lost
/// record.
#[inline]
pub fn insert(mem: &impl BufMem, data_size: u32, rec: &[u32], lost: &mut Lost, who: impl FnOnce() -> (u16, u16), tsc: u64) -> Outcome {
    let (prod, cons) = (mem.prod(), mem.cons());
    if trace::ring_bogus(prod, cons, data_size) {
        return Outcome::Bogus;
    }
    let size = 4 * rec.len() as u32;
    if lost.count == 0
        && let Some(slot) = fast_slot(prod, cons, data_size, size)
    {
        mem.write_words(slot.offset, rec);
        mem.set_prod(slot.next);
        return Outcome::Written { high_water: slot.high_water };
    }
    if no_room(prod, cons, data_size, size, lost.count > 0) {
        if lost.count == 0 {
            lost.first_tsc = tsc;
        }
        lost.count = lost.count.saturating_add(1);
        return Outcome::Lost;
    }
    insert_planned(mem, data_size, rec, lost, who, tsc, prod, cons)
}

/// What [`write_fast`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// Stored; `high_water` as [`Outcome::Written`]'s.
    Written {
        /// The buffer went past its high-water mark with this record.
        high_water: bool,
    },
    /// The buffer is still full since the last loss: one more lost (the
    /// caller counts it).
    Lost,
    /// Neither: a wrap or a lost-records record is due, or the ring is
    /// bogus; [`insert`] decides.
    Slow,
}

/// The trace points' hot path: a record given as its `t_rec` header (with
/// the TSC flag), TSC and payload `words`, stored straight into `mem` when
/// nothing lost is pending (`lost` counts the losses since the last record
/// written) and it fits before the end of the data area and `cons`;
/// [`Fast::Lost`] when losses are pending and the buffer still has no
/// room; [`Fast::Slow`] otherwise. Wherever it writes, [`insert`] would
/// write the same words.
#[inline(always)]
pub fn write_fast(mem: &impl BufMem, data_size: u32, header: u32, tsc: u64, words: &[u32], lost: u32) -> Fast {
    let size = 4 * (3 + words.len() as u32);
    let (prod, cons) = (mem.prod(), mem.cons());
    if lost != 0 {
        return if no_room(prod, cons, data_size, size, true) { Fast::Lost } else { Fast::Slow };
    }
    let Some(slot) = fast_slot(prod, cons, data_size, size) else { return Fast::Slow };
    mem.write_words(slot.offset, &[header, tsc as u32, (tsc >> 32) as u32]);
    if !words.is_empty() {
        mem.write_words(slot.offset + 12, words);
    }
    mem.set_prod(slot.next);
    Fast::Written { high_water: slot.high_water }
}

/// Where a record goes in the common case: no wrap and no lost-records
/// record due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Its byte offset in the data area.
    pub offset: u32,
    /// `prod` after it.
    pub next: u32,
    /// The unread bytes cross half the buffer with it (`VIRQ_TBUF`).
    pub high_water: bool,
}

/// The common case of `__trace_var`, decided without the full plan: with
/// nothing lost to announce (the caller checks), a record of `size` bytes
/// that fits before both the end of the data area and `cons` goes at
/// `prod` (what `plan_insert` then says: no wrap, no lost record). `None`
/// when the indexes are bogus or it does not fit so: [`insert`] decides.
#[inline(always)]
pub fn fast_slot(prod: u32, cons: u32, data_size: u32, size: u32) -> Option<Slot> {
    if trace::ring_bogus(prod, cons, data_size) {
        return None;
    }
    let unconsumed = trace::ring_unconsumed(prod, cons, data_size);
    if size > trace::ring_bytes_to_wrap(prod, data_size) || size > data_size - unconsumed {
        return None;
    }
    let high_water = data_size / 2;
    Some(Slot {
        offset: trace::ring_offset(prod, data_size),
        next: trace::ring_advance(prod, size, data_size),
        high_water: unconsumed < high_water && unconsumed + size >= high_water,
    })
}

/// A full buffer (dom0 not reading) loses every record: when the free
/// bytes cannot hold a record of `size` bytes and, if `lost_pending`, the
/// lost-records record before it, no plan can (a plan only adds wrap
/// padding), so the loss is certain without planning. False for bogus
/// indexes ([`insert`] reports those).
#[inline(always)]
pub fn no_room(prod: u32, cons: u32, data_size: u32, size: u32, lost_pending: bool) -> bool {
    let pending = if lost_pending { trace::LOST_REC_SIZE } else { 0 };
    !trace::ring_bogus(prod, cons, data_size) && size.saturating_add(pending) > data_size - trace::ring_unconsumed(prod, cons, data_size)
}

/// [`insert`] when a wrap or a lost-records record may be due, or the
/// record may not fit: by `plan_insert`, as Xen's `__trace_var`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn insert_planned(
    mem: &impl BufMem,
    data_size: u32,
    rec: &[u32],
    lost: &mut Lost,
    who: impl FnOnce() -> (u16, u16),
    tsc: u64,
    prod: u32,
    cons: u32,
) -> Outcome {
    let high_water = data_size / 2;
    let below = trace::ring_unconsumed(prod, cons, data_size) < high_water;
    let Some(plan) = trace::plan_insert(prod, cons, data_size, 4 * rec.len() as u32, lost.count > 0) else {
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
        let (domid, vcpu) = who();
        let (words, n) = Event::lost_records(lost.count, domid, vcpu, lost.first_tsc).payload().encode_with_tsc(tsc);
        at = put(mem, at, &words[..n], data_size);
        *lost = Lost::default();
    }
    if let Some(pad) = plan.wrap_before_record {
        at = put_wrap(mem, at, pad, data_size, tsc);
    }
    at = put(mem, at, rec, data_size);
    mem.set_prod(at);
    Outcome::Written { high_water: below && trace::ring_unconsumed(at, cons, data_size) >= high_water }
}

/// Write the record `words` at ring position `at`; the position after it.
fn put(mem: &impl BufMem, at: u32, words: &[u32], data_size: u32) -> u32 {
    mem.write_words(trace::ring_offset(at, data_size), words);
    trace::ring_advance(at, 4 * words.len() as u32, data_size)
}

/// Pad the `pad` bytes before the end of the data area (Xen's
/// `insert_wrap_record`); the position after them.
fn put_wrap(mem: &impl BufMem, at: u32, pad: u32, data_size: u32, tsc: u64) -> u32 {
    match trace::wrap_record(pad, tsc) {
        Some(wrap) => {
            let (words, n) = wrap.encode();
            put(mem, at, &words[..n], data_size)
        }
        // Not representable (never for records of whole words): skip the
        // bytes, which dom0 reads as part of the wrap.
        None => trace::ring_advance(at, pad, data_size),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};
    use xen_public::trace::{TRC_LOST_RECORDS, TRC_TRACE_WRAP_BUFFER, TraceRecord};

    /// `insert` of a [`TraceRecord`], as its encoded words.
    fn insert(mem: &Ring, data_size: u32, rec: &TraceRecord, lost: &mut Lost, who: (u16, u16), tsc: u64) -> Outcome {
        let (words, n) = rec.encode();
        super::insert(mem, data_size, &words[..n], lost, || who, tsc)
    }

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
        fn write_words(&self, off: u32, words: &[u32]) {
            let off = off as usize;
            assert!(off.is_multiple_of(4), "records are whole words");
            assert!(off + 4 * words.len() <= self.data.borrow().len(), "a record straddles the end of the data area");
            for (i, w) in words.iter().enumerate() {
                self.data.borrow_mut()[off + 4 * i..off + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
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

    /// `__trace_var`'s dry run decides every insert: at every valid
    /// `prod`/`cons` pair and record size, with and without lost records
    /// to announce (the cases `insert` decides without `plan_insert`), the
    /// record is lost exactly when the plan says it does not fit, and
    /// otherwise `prod` moves by the plan's total, with the planned wrap
    /// and lost-records records before the record.
    #[test]
    fn the_fast_paths_agree_with_xens_plan_everywhere() {
        let size = 120;
        for prod in (0..2 * size).step_by(4) {
            for cons in (0..2 * size).step_by(4) {
                if trace::ring_bogus(prod, cons, size) {
                    continue;
                }
                for (extra, pending) in (0..=7u32).flat_map(|e| [(e, false), (e, true)]) {
                    let at = format!("prod {prod} cons {cons} extra {extra} lost pending {pending}");
                    let r = Ring::new(size);
                    r.prod.set(prod);
                    r.cons.set(cons);
                    let rec = TraceRecord::new(trace::TRC_SCHED_WAKE, Some(5), &[7; 7][..extra as usize]).unwrap();
                    let mut lost = if pending { Lost { count: 3, first_tsc: 9 } } else { Lost::default() };
                    let got = insert(&r, size, &rec, &mut lost, (0, 0), 1);
                    match trace::plan_insert(prod, cons, size, rec.size() as u32, pending) {
                        None => assert_eq!((got, lost.count, r.prod.get()), (Outcome::Lost, if pending { 4 } else { 1 }, prod), "{at}"),
                        Some(plan) => {
                            assert!(matches!(got, Outcome::Written { .. }), "{at}");
                            assert_eq!(r.prod.get(), trace::ring_advance(prod, plan.total, size), "{at}");
                            assert_eq!(lost, Lost::default(), "{at}");
                            // What this insert wrote, from the old `prod`.
                            r.cons.set(prod);
                            let back = r.read_all(size);
                            assert_eq!(back.last(), Some(&rec), "{at}");
                            let wraps = usize::from(plan.wrap_before_record.is_some()) + usize::from(plan.wrap_before_lost.is_some());
                            assert_eq!(back.len(), 1 + usize::from(pending) + wraps, "{at}");
                        }
                    }
                }
            }
        }
    }

    /// The live writer's hot path writes what `__trace_var` would, where
    /// it writes at all: at every valid `prod`/`cons` pair and record
    /// size, with and without losses pending, [`write_fast`] either leaves
    /// the ring untouched (slow: [`insert`] decides) or matches [`insert`]
    /// byte for byte and in `prod`; it reports a loss only where Xen's
    /// plan finds no room.
    #[test]
    fn the_live_writers_fast_path_writes_what_insert_writes() {
        let size = 120;
        for prod in (0..2 * size).step_by(4) {
            for cons in (0..2 * size).step_by(4) {
                if trace::ring_bogus(prod, cons, size) {
                    continue;
                }
                for (extra, pending) in (0..=7u32).flat_map(|e| [(e, 0u32), (e, 3)]) {
                    let at = format!("prod {prod} cons {cons} extra {extra} lost {pending}");
                    let rec = TraceRecord::new(trace::TRC_SCHED_WAKE, Some(0x1_2345_6789), &[7; 7][..extra as usize]).unwrap();
                    let (fast, slow) = (Ring::new(size), Ring::new(size));
                    for r in [&fast, &slow] {
                        r.prod.set(prod);
                        r.cons.set(cons);
                    }
                    let got = write_fast(&fast, size, rec.header(), 0x1_2345_6789, rec.extra(), pending);
                    let mut lost = Lost { count: pending, first_tsc: u64::from(pending) };
                    let want = insert(&slow, size, &rec, &mut lost, (0, 0), 1);
                    match got {
                        Fast::Slow => assert_eq!((fast.prod.get(), fast.data.borrow().iter().all(|&b| b == 0)), (prod, true), "{at}"),
                        Fast::Lost => assert_eq!((want, fast.prod.get()), (Outcome::Lost, prod), "{at}"),
                        Fast::Written { high_water } => {
                            assert_eq!(want, Outcome::Written { high_water }, "{at}");
                            assert_eq!((fast.prod.get(), &*fast.data.borrow()), (slow.prod.get(), &*slow.data.borrow()), "{at}");
                        }
                    }
                    let plan = trace::plan_insert(prod, cons, size, rec.size() as u32, pending > 0);
                    // A loss only where the plan has no room (where the
                    // plan fails only for the wrap padding, insert decides).
                    assert!(got != Fast::Lost || plan.is_none(), "{at}: a loss where the plan has room");
                }
            }
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
