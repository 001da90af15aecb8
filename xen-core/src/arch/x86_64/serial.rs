//! The COM1 16550 UART: the hypervisor's console device.
//!
//! Owns I/O ports 0x3f8-0x3ff. Invariant: only the console lock's holder
//! touches them after `init`.

use super::cpu::{inb, outb};

const COM1: u16 = 0x3f8;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_DATA_READY: u8 = 1 << 0;

/// The COM1 port. Holding one is the right to program it.
pub struct Com1 {
    _private: (),
}

impl Com1 {
    /// Program 115200 baud, 8N1, FIFOs on, interrupts off.
    ///
    /// # Safety
    /// At most one `Com1` may exist at a time.
    pub unsafe fn init() -> Self {
        let regs = [(1, 0x00), (3, 0x80), (0, 0x01), (1, 0x00), (3, 0x03), (2, 0xc7), (4, 0x03)];
        for (off, val) in regs {
            // SAFETY: COM1's ports belong to the console, and the caller
            // guarantees nobody else programs them.
            unsafe { outb(COM1 + off, val) };
        }
        Com1 { _private: () }
    }

    /// Send one byte, waiting for room in the transmitter (bounded, so a
    /// missing UART cannot hang the hypervisor).
    pub fn write_byte(&mut self, b: u8) {
        for _ in 0..100_000 {
            // SAFETY: reading the line-status register has no side effect.
            if unsafe { inb(COM1 + 5) } & LSR_THR_EMPTY != 0 {
                break;
            }
        }
        // SAFETY: `&mut self` proves exclusive use of COM1.
        unsafe { outb(COM1, b) };
    }

    /// Receive one byte if one is waiting.
    pub fn read_byte(&mut self) -> Option<u8> {
        // SAFETY: `&mut self` proves exclusive use of COM1; reading the data
        // register consumes the byte, which is what we want.
        unsafe { (inb(COM1 + 5) & LSR_DATA_READY != 0).then(|| inb(COM1)) }
    }

    /// Whether a received byte waits in the UART (the line-status
    /// register's data-ready bit; nothing is consumed).
    pub fn input_waiting(&mut self) -> bool {
        // SAFETY: `&mut self` proves exclusive use of COM1; reading the
        // line-status register consumes no data (it clears only the
        // line's error flags).
        unsafe { inb(COM1 + 5) & LSR_DATA_READY != 0 }
    }
}

impl core::fmt::Write for Com1 {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}

/// The one COM1: the hypervisor's console, behind its lock.
pub static CONSOLE: spin::Mutex<Option<Com1>> = spin::Mutex::new(None);

/// Program COM1 once.
pub fn init_com1() {
    let mut c = CONSOLE.lock();
    if c.is_none() {
        // SAFETY: this is the only place a `Com1` is created, and it runs
        // under the console lock, once.
        *c = Some(unsafe { Com1::init() });
    }
}

/// Take COM1 on the fatal path even if the code that failed held it.
pub fn seize_com1_for_fatal() {
    if CONSOLE.is_locked() {
        // SAFETY: the machine is stopping; the holder of the lock is the
        // code that faulted and will never run again, and the UART
        // tolerates a half-written line.
        unsafe { CONSOLE.force_unlock() };
    }
}
