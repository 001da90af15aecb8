//! A `core::fmt::Write` console over `console_io`, and the guest's panic path.

use crate::hypercall;
use core::fmt::Write;
use xen_public::SHUTDOWN_CRASH;

/// Writer that sends formatted text to the hypervisor console.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // CONSOLEIO_write consumes the whole buffer and returns 0.
        if hypercall::console_write(s.as_bytes()) < 0 { Err(core::fmt::Error) } else { Ok(()) }
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
