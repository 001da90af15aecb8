//! The hypervisor console: COM1 behind a lock, the `log` backend, and
//! `printk!` for lines that must appear whatever the log level.
//!
//! Owns the one [`Com1`]. Invariant: every byte on serial goes through
//! `CONSOLE`, so lines from different paths never interleave mid-line. The
//! fatal path may break a lock held by the code that faulted.

use crate::arch::x86_64::serial::Com1;
use crate::boot::cmdline::LogLevel;
use core::fmt::Write;

use crate::arch::x86_64::serial::CONSOLE;
static LOGGER: XenLogger = XenLogger;

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

/// Write formatted text to serial, prefixed with "(XEN) " on each line.
pub fn print(args: core::fmt::Arguments<'_>) {
    if let Some(c) = CONSOLE.lock().as_mut() {
        let _ = c.write_str("(XEN) ");
        let _ = c.write_fmt(args);
        let _ = c.write_str("\n");
    }
}

/// Write a guest's console output as-is (`\n` becomes CR LF).
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
/// that failed was holding it.
pub fn print_fatal(args: core::fmt::Arguments<'_>) {
    crate::arch::x86_64::serial::seize_com1_for_fatal();
    print(args);
}

/// Read one byte of console input, if any is waiting.
pub fn read_byte() -> Option<u8> {
    CONSOLE.lock().as_mut().and_then(Com1::read_byte)
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
