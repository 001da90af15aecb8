//! A `core::fmt::Write` console over `console_io`, and the guest's panic path.

use crate::hypercall;
use core::fmt::Write;
use xen_public::SHUTDOWN_CRASH;

/// Writer that sends formatted text to the hypervisor console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            let n = hypercall::console_write(rest);
            if n <= 0 {
                return Err(core::fmt::Error);
            }
            rest = &rest[(n as usize).min(rest.len())..];
        }
        Ok(())
    }
}

/// Print to the hypervisor console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}

/// Report a guest panic and crash the domain.
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Console, "guest panic: {}", info.message());
    loop {
        hypercall::shutdown(SHUTDOWN_CRASH);
    }
}
