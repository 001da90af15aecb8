//! The guest's console: `console_io` for the initial domain, the console
//! ring page and its event channel (`start_info.console.domU`) for every
//! other domain, whose output dom0 relays. Also the guest's panic path.
//!
//! Invariant: the ring is used only once [`init`] found its page inside
//! the domain's initial mapping; until then (and for dom0) output goes
//! through `console_io`.

use crate::hypercall;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use xen_public::console::{self as ring, RingMem};
use xen_public::{SHUTDOWN_CRASH, StartInfo};

/// Where the console ring page is mapped (0: use `console_io`).
static RING_VA: AtomicU64 = AtomicU64::new(0);
/// The ring's event channel.
static RING_PORT: AtomicU32 = AtomicU32::new(0);

/// Start of the read-only machine-to-phys table every PV domain sees.
const RO_MPT_VIRT_START: u64 = 0xffff_8000_0000_0000;

/// The pfn of machine frame `mfn`, from the read-only M2P.
pub fn mfn_to_pfn(mfn: u64) -> u64 {
    // SAFETY: the hypervisor maps the M2P read-only at RO_MPT_VIRT_START in
    // every PV domain; an entry is one aligned u64.
    unsafe { ((RO_MPT_VIRT_START + mfn * 8) as *const u64).read_volatile() }
}

/// Choose the console: a domU with a console page writes to its ring.
pub fn init(si: &StartInfo) {
    if si.sif_flags().contains(xen_public::SifFlags::INITDOMAIN) || si.console.mfn_or_info_off == 0 {
        return;
    }
    let pfn = mfn_to_pfn(si.console.mfn_or_info_off);
    if pfn >= si.nr_pages {
        return;
    }
    RING_PORT.store(si.console.evtchn_or_info_size, Ordering::Relaxed);
    RING_VA.store(crate::notes::VIRT_BASE + pfn * 4096, Ordering::Release);
}

/// A console ring page mapped at a virtual address: the guest's own, or
/// (in dom0's console backend) a guest's page mapped into dom0.
pub struct RingPage(pub u64);

impl RingMem for RingPage {
    fn load(&self, off: usize) -> u32 {
        // SAFETY: the page is mapped at `self.0` (by `init`'s check, or by
        // the backend's mapping); the index words are 4-aligned and shared
        // with the other end.
        unsafe { core::sync::atomic::AtomicU32::from_ptr((self.0 + off as u64) as *mut u32).load(Ordering::Acquire) }
    }
    fn store(&mut self, off: usize, v: u32) {
        // SAFETY: as above.
        unsafe { core::sync::atomic::AtomicU32::from_ptr((self.0 + off as u64) as *mut u32).store(v, Ordering::Release) }
    }
    fn byte(&self, off: usize) -> u8 {
        // SAFETY: `off` < 4096 (the ring arithmetic keeps it in `in`/`out`).
        unsafe { ((self.0 + off as u64) as *const u8).read_volatile() }
    }
    fn set_byte(&mut self, off: usize, v: u8) {
        // SAFETY: as above.
        unsafe { ((self.0 + off as u64) as *mut u8).write_volatile(v) }
    }
}

/// Put `bytes` on the ring, kicking the backend and yielding while full.
fn ring_write(va: u64, mut bytes: &[u8]) {
    let port = RING_PORT.load(Ordering::Relaxed);
    let mut page = RingPage(va);
    while !bytes.is_empty() {
        let n = ring::write_out(&mut page, bytes);
        crate::events::send(port);
        bytes = &bytes[n..];
        if n == 0 {
            hypercall::sched_yield();
        }
    }
}

/// Writer that sends formatted text to the domain's console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        match RING_VA.load(Ordering::Acquire) {
            0 => {
                // CONSOLEIO_write consumes the whole buffer and returns 0.
                if hypercall::console_write(s.as_bytes()) < 0 { Err(core::fmt::Error) } else { Ok(()) }
            }
            va => {
                ring_write(va, s.as_bytes());
                Ok(())
            }
        }
    }
}

/// The console ring's event channel (0: no ring; dom0 uses console_io).
pub fn ring_port() -> u32 {
    if RING_VA.load(Ordering::Acquire) == 0 { 0 } else { RING_PORT.load(Ordering::Relaxed) }
}

/// Take up to `buf.len()` bytes of console input (what `xl console`
/// typed) from the ring's `in` side, and tell the backend there is room;
/// how many. A corrupt `in` ring (indices a hostile backend made up)
/// yields nothing.
pub fn read_input(buf: &mut [u8]) -> usize {
    let va = RING_VA.load(Ordering::Acquire);
    if va == 0 {
        return 0;
    }
    let n = ring::IN_RING.consume(&mut RingPage(va), buf);
    if n > 0 {
        crate::events::send(RING_PORT.load(Ordering::Relaxed));
    }
    n
}

/// A line being formatted: written out whole, in one console write (one
/// `CONSOLEIO_write` or one ring write), so that no other output lands in
/// its middle; a line longer than the buffer goes out in buffer-sized
/// pieces.
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

/// Bytes of a line written in one piece (xen-core's console takes 256-byte
/// chunks under one lock).
const LINE_MAX: usize = 256;

impl Line {
    /// An empty line.
    pub const fn new() -> Line {
        Line { buf: [0; LINE_MAX], len: 0 }
    }

    /// Write what is buffered.
    pub fn flush(&mut self) {
        if self.len > 0 {
            // The bytes are whole UTF-8 sequences: only `write_str` fills
            // the buffer, and it splits at character boundaries.
            let _ = Console.write_str(core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?"));
            self.len = 0;
        }
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl Write for Line {
    fn write_str(&mut self, mut s: &str) -> core::fmt::Result {
        while !s.is_empty() {
            if self.len == LINE_MAX {
                self.flush();
            }
            let mut take = s.len().min(LINE_MAX - self.len);
            while !s.is_char_boundary(take) {
                take -= 1;
            }
            if take == 0 {
                self.flush();
                continue;
            }
            self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
            self.len += take;
            s = &s[take..];
        }
        Ok(())
    }
}

/// Print to the domain's console, the whole line in one write.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut line = $crate::console::Line::new();
        let _ = writeln!(line, $($arg)*);
        line.flush();
    }};
}

/// Report a guest panic and crash the domain.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::println!("guest panic: {}", info.message());
    loop {
        hypercall::shutdown(SHUTDOWN_CRASH);
    }
}
