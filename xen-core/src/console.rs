//! The hypervisor console: COM1 behind a lock, the `log` backend,
//! `printk!` for lines that must appear whatever the log level, the
//! console history (Xen's conring, read by `XEN_SYSCTL_readconsole`) and
//! the serial input waiting for dom0 (Xen's serial rx ring, drained by
//! `CONSOLEIO_read`, announced with `VIRQ_CONSOLE`).
//!
//! Owns the one [`Com1`], [`CONRING`] and the rx ring. Invariants: every
//! byte on serial goes through `CONSOLE`, so lines from different paths
//! never interleave mid-line; what the hypervisor prints enters the
//! history under the same lock, in the same order (lock order: `CONSOLE`,
//! then `CONRING`; the rx ring before `CONSOLE`). The fatal path may break
//! the lock of COM1 held by the code that faulted, and skips the history
//! if its lock is held. Serial input is taken from the UART only while the
//! rx ring has room for it (what does not fit stays in the UART), so input
//! is not lost while dom0 is slow to read.

use crate::arch::x86_64::serial::Com1;
use crate::boot::cmdline::LogLevel;
use crate::console_ring::{ConRing, SerialRx};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::arch::x86_64::serial::CONSOLE;
static LOGGER: XenLogger = XenLogger;

/// The console history: what the hypervisor printed ("(XEN) " lines).
/// As in Xen 4.17 with its default `console_to_ring=0`, what dom0 writes
/// with `CONSOLEIO_write` goes to serial only.
static CONRING: spin::Mutex<ConRing> = spin::Mutex::new(ConRing::new());

/// Serial input for dom0, taken from the UART by [`pull_input`].
static SERIAL_RX: spin::Mutex<SerialRx> = spin::Mutex::new(SerialRx::new());

/// System time of the last [`poll_due`] that said yes.
static LAST_POLL: AtomicU64 = AtomicU64::new(0);

/// Least time between two polls of the UART from the scheduler.
pub const POLL_MIN_NS: u64 = 1_000_000;
/// Longest an idle CPU 0 halts while dom0 waits for input on
/// `VIRQ_CONSOLE`: how late an idle host notices a key press.
pub const POLL_PERIOD_NS: u64 = 10_000_000;

/// Program COM1 and install the `log` backend at the default level (info).
pub fn init() {
    crate::arch::x86_64::serial::init_com1();
    let _ = log::set_logger(&LOGGER);
    set_level(LogLevel::Info);
}

/// Apply a `loglvl=` threshold.
pub fn set_level(level: LogLevel) {
    log::set_max_level(match level {
        LogLevel::None => log::LevelFilter::Off,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warning => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::All => log::LevelFilter::Trace,
    });
}

/// Write formatted text to serial, prefixed with "(XEN) " on each line,
/// and keep it in the history.
pub fn print(args: core::fmt::Arguments<'_>) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        print_line(c, Some(&mut CONRING.lock()), args);
    }
}

/// One "(XEN) " line to COM1 and, if given, to the history (as Xen's
/// `__putstr` feeds both; the history keeps `\n` where the serial line
/// gets CR LF).
fn print_line(com: &mut Com1, ring: Option<&mut ConRing>, args: core::fmt::Arguments<'_>) {
    let mut out = Tee { com, ring };
    let _ = out.write_str("(XEN) ");
    let _ = out.write_fmt(args);
    let _ = out.write_str("\n");
}

/// Text to COM1 and, if there is one, the history.
struct Tee<'a> {
    com: &'a mut Com1,
    ring: Option<&'a mut ConRing>,
}

impl Write for Tee<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(r) = self.ring.as_mut() {
            r.puts(s.as_bytes());
        }
        self.com.write_str(s)
    }
}

/// Write a guest's console output as-is (`\n` becomes CR LF). Not kept
/// in the history: Xen 4.17 puts dom0's `CONSOLEIO_write` there only with
/// `console_to_ring` (off by default).
pub fn write_guest(bytes: &[u8]) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        for &b in bytes {
            if b == b'\n' {
                c.write_byte(b'\r');
            }
            c.write_byte(b);
        }
    }
}

/// Like [`print`], for the fatal path: takes the console even if the code
/// that failed was holding it, and skips the history if its lock is held
/// (its holder may be that code).
pub fn print_fatal(args: core::fmt::Arguments<'_>) {
    crate::arch::x86_64::serial::seize_com1_for_fatal();
    if let Some(c) = CONSOLE.lock().as_mut() {
        print_line(c, CONRING.try_lock().as_deref_mut(), args);
    }
}

/// One byte of console input for `CONSOLEIO_read`: the oldest in the rx
/// ring, after taking what waits in the UART when the ring is empty (so a
/// dom0 that polls without `VIRQ_CONSOLE` still gets its input).
pub fn read_byte() -> Option<u8> {
    let mut rx = SERIAL_RX.lock();
    if rx.is_empty() {
        pull_into(&mut rx);
    }
    rx.pop()
}

/// Whether the scheduler should poll the UART now: at most once per
/// [`POLL_MIN_NS`] (called on CPU 0 only).
pub fn poll_due(now: u64) -> bool {
    if now.wrapping_sub(LAST_POLL.load(Relaxed)) < POLL_MIN_NS {
        return false;
    }
    LAST_POLL.store(now, Relaxed);
    true
}

/// Move the bytes waiting in the UART into the rx ring, as far as it has
/// room. Whether dom0 should be told (`VIRQ_CONSOLE`): bytes arrived, or
/// input waits that the full ring cannot take (Xen notifies on every
/// received byte, even one it drops, so the receive path never sticks).
pub fn pull_input() -> bool {
    pull_into(&mut SERIAL_RX.lock())
}

fn pull_into(rx: &mut SerialRx) -> bool {
    let mut guard = CONSOLE.lock();
    let Some(com) = guard.as_mut() else { return false };
    let mut moved = false;
    while rx.room() > 0 {
        let Some(b) = com.read_byte() else { return moved };
        moved |= rx.push(b);
    }
    moved || com.input_waiting()
}

/// Run `f` on the console history (`XEN_SYSCTL_readconsole`). `f` must
/// not print: printing takes this lock.
pub fn with_conring<R>(f: impl FnOnce(&mut ConRing) -> R) -> R {
    f(&mut CONRING.lock())
}

/// Print a line to the console regardless of the log level.
#[macro_export]
macro_rules! printk {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

struct XenLogger;

impl log::Log for XenLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match record.level() {
            log::Level::Error => print(format_args!("ERROR: {}", record.args())),
            log::Level::Warn => print(format_args!("WARNING: {}", record.args())),
            _ => print(*record.args()),
        }
    }

    fn flush(&self) {}
}
