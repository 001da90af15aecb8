//! `linux-bench`: a static Linux x86_64 program with no libc, in the
//! spirit of lmbench, which `cargo xtask bench` packs into Linux dom0's
//! initramfs. It times each figure of [`linux_bench::Figure`] (null system
//! call, fork+exit, fork+exec, pipe ping-pong) in batches, with
//! `clock_gettime(CLOCK_MONOTONIC)`, and writes one line to stdout:
//! `LBENCH null_syscall_ns=... fork_exit_us=... fork_exec_us=...
//! pipe_pingpong_us=...`, or `LBENCH error <what> <code>`. Started with
//! the argument `exit`, it exits at once (the fork+exec figure's child).
//!
//! For `x86_64-unknown-none` it is `no_std` with its own `_start`; built
//! for a Linux host it runs the same system calls under std's runtime, so
//! `cargo run -p linux-bench` checks it natively.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(all(target_arch = "x86_64", any(target_os = "none", target_os = "linux"))))]
compile_error!("linux-bench is a Linux x86_64 program (or for x86_64-unknown-none, which Linux runs)");

mod sys;

use linux_bench::{BATCHES, EXIT_ARG, Figure, error_line, median, per_op_ns, result_line};

/// What failed and its code (an errno, or a child's wait status).
type Failure = (&'static str, i64);

/// Tag an errno with the call that returned it.
fn call(what: &'static str) -> impl Fn(sys::Errno) -> Failure {
    move |e| (what, e.0)
}

/// The program: exit at once with [`EXIT_ARG`], else measure and print.
/// Returns the exit status.
fn run(args: sys::Args) -> i32 {
    if args.arg1 == Some(EXIT_ARG) {
        return 0;
    }
    let (line, status) = match measure(&args) {
        Ok(per_op) => (result_line(&per_op), 0),
        Err((what, code)) => (error_line(what, code), 1),
    };
    // Nothing is left to report a failed write to.
    let _ = sys::write(1, line.as_bytes());
    status
}

/// Each figure's nanoseconds per operation, in [`Figure::ALL`]'s order.
fn measure(args: &sys::Args) -> Result<[u64; 4], Failure> {
    let mut out = [0u64; 4];
    for (slot, &f) in out.iter_mut().zip(Figure::ALL.iter()) {
        batch(f, args, (f.iterations() / 10).max(1))?;
        let mut batches = [0u64; BATCHES];
        for b in &mut batches {
            let t0 = sys::monotonic_ns().map_err(call("clock_gettime"))?;
            batch(f, args, f.iterations())?;
            let t1 = sys::monotonic_ns().map_err(call("clock_gettime"))?;
            *b = per_op_ns(t1.saturating_sub(t0), f.iterations());
        }
        *slot = median(&mut batches);
    }
    Ok(out)
}

/// Wait for `pid` and require that it exited with status 0.
fn reap(pid: usize, what: &'static str) -> Result<(), Failure> {
    match sys::wait4(pid).map_err(call("wait4"))? {
        0 => Ok(()),
        status => Err((what, i64::from(status))),
    }
}

/// `n` operations of figure `f`.
fn batch(f: Figure, args: &sys::Args, n: u32) -> Result<(), Failure> {
    match f {
        Figure::NullSyscall => {
            for _ in 0..n {
                sys::getppid();
            }
        }
        Figure::ForkExit => {
            for _ in 0..n {
                match sys::fork().map_err(call("fork"))? {
                    0 => sys::exit(0),
                    pid => reap(pid, "fork_exit_child_status")?,
                }
            }
        }
        Figure::ForkExec => {
            let me = args.argv0.ok_or(("no_argv0", 0))?;
            for _ in 0..n {
                match sys::fork().map_err(call("fork"))? {
                    0 => {
                        let e = sys::execve(me, &[me, EXIT_ARG]);
                        // Only a failed execve gets here: the parent sees
                        // the errno as the child's exit code.
                        sys::exit(e.0 as i32)
                    }
                    pid => reap(pid, "fork_exec_child_status")?,
                }
            }
        }
        Figure::PipePingPong => pingpong(n)?,
    }
    Ok(())
}

/// `n` round trips of one byte: parent to child over one pipe, child back
/// over another.
fn pingpong(n: u32) -> Result<(), Failure> {
    let [down_r, down_w] = sys::pipe().map_err(call("pipe"))?;
    let [up_r, up_w] = sys::pipe().map_err(call("pipe"))?;
    let pid = sys::fork().map_err(call("fork"))?;
    let mut byte = [0u8; 1];
    if pid == 0 {
        // The child echoes until the parent closes its end.
        let mut echo = || -> Result<(), sys::Errno> {
            sys::close(down_w)?;
            sys::close(up_r)?;
            while sys::read(down_r, &mut byte)? == 1 {
                sys::write(up_w, &byte)?;
            }
            Ok(())
        };
        sys::exit(if echo().is_ok() { 0 } else { 1 });
    }
    let mut rounds = || -> Result<(), Failure> {
        sys::close(down_r).map_err(call("close"))?;
        sys::close(up_w).map_err(call("close"))?;
        for i in 0..n {
            byte[0] = i as u8;
            sys::write(down_w, &byte).map_err(call("pipe_write"))?;
            match sys::read(up_r, &mut byte).map_err(call("pipe_read"))? {
                1 if byte[0] == i as u8 => {}
                got => return Err(("pipe_echo", got as i64)),
            }
        }
        Ok(())
    };
    let r = rounds();
    // Closing the write end ends the child's loop, failed rounds or not.
    let _ = sys::close(down_w);
    let _ = sys::close(up_r);
    r.and(reap(pid, "pingpong_child_status"))
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    let _ = sys::write(1, error_line("panic", 0).as_bytes());
    sys::exit(101)
}

/// On a Linux host: the same program, its arguments from std.
#[cfg(target_os = "linux")]
fn main() {
    use std::os::unix::ffi::OsStrExt;
    let mut argv = std::env::args_os().map(|a| &*Box::leak(std::ffi::CString::new(a.as_bytes()).unwrap_or_default().into_boxed_c_str()));
    let argv0 = argv.next();
    let arg1 = argv.next();
    std::process::exit(run(sys::Args { argv0, arg1 }))
}
