//! The pure part of `linux-bench`, with no system calls: which figures the
//! program measures and how often ([`Figure`], [`BATCHES`]), how a figure
//! comes out of its batches (the median batch's time per operation), and
//! the one line the program prints, which `cargo xtask bench` parses.
//!
//! The invariant: a run prints exactly one line starting with [`TAG`].
//! Either it is the result, `LBENCH` followed by one `name=value` per
//! figure of [`Figure::ALL`] in that order, each value in the unit its
//! name ends with (`_ns`: whole nanoseconds, `_us`: microseconds with two
//! decimals); or it is `LBENCH error <what> <code>`, which has no `=`, so
//! no parser can take it for figures.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt::Write;

/// The first word of the program's one line.
pub const TAG: &str = "LBENCH";

/// The argument that makes the program exit at once with status 0: what
/// the fork+exec figure's child runs (the program execs itself, as
/// lmbench's `lat_proc exec` runs a tiny static program).
pub const EXIT_ARG: &core::ffi::CStr = c"exit";

/// Timed batches per figure; the figure is the median batch's time per
/// operation, so one batch slowed by the host (TCG on shared cores) does
/// not move it. One more, untimed, batch warms up first.
pub const BATCHES: usize = 5;

/// One lmbench-style figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// `getppid()`: a system call that does nothing but enter and leave
    /// the kernel (lmbench's `lat_syscall null`).
    NullSyscall,
    /// `fork()`, the child `exit_group(0)`, the parent `wait4()` (lmbench's
    /// `lat_proc fork`).
    ForkExit,
    /// `fork()`, the child `execve()`s this program with [`EXIT_ARG`], the
    /// parent `wait4()` (lmbench's `lat_proc exec`).
    ForkExec,
    /// One byte to a child over a pipe and one byte back over another: a
    /// round trip of two context switches (lmbench's `lat_pipe`).
    PipePingPong,
}

impl Figure {
    /// Every figure, in the order of the result line.
    pub const ALL: [Figure; 4] = [Figure::NullSyscall, Figure::ForkExit, Figure::ForkExec, Figure::PipePingPong];

    /// Its name on the result line (the unit is the suffix).
    pub fn name(self) -> &'static str {
        match self {
            Figure::NullSyscall => "null_syscall_ns",
            Figure::ForkExit => "fork_exit_us",
            Figure::ForkExec => "fork_exec_us",
            Figure::PipePingPong => "pipe_pingpong_us",
        }
    }

    /// Operations per batch: enough for a batch to last well over the
    /// clock's resolution under TCG, few enough that the whole program
    /// stays within seconds on Xen 4.17 under TCG.
    pub fn iterations(self) -> u32 {
        match self {
            Figure::NullSyscall => 5000,
            Figure::ForkExit => 40,
            Figure::ForkExec => 30,
            Figure::PipePingPong => 1000,
        }
    }
}

/// Nanoseconds per operation of a batch of `iterations` that took
/// `elapsed_ns` (0 operations count as 1).
pub fn per_op_ns(elapsed_ns: u64, iterations: u32) -> u64 {
    elapsed_ns / u64::from(iterations.max(1))
}

/// The median of the batches' figures (the upper one of an even count);
/// sorts `batches`. 0 for no batches.
pub fn median(batches: &mut [u64]) -> u64 {
    batches.sort_unstable();
    batches.get(batches.len() / 2).copied().unwrap_or(0)
}

/// The program's one line, with its newline.
pub type Line = heapless::String<192>;

/// The result line for each figure's nanoseconds per operation, in the
/// order of [`Figure::ALL`].
pub fn result_line(per_op_ns: &[u64; 4]) -> Line {
    let mut s = Line::new();
    // The line's capacity holds the tag, four names and four u64 values
    // (at most 20 digits each) with room to spare, so no write can fail.
    let _ = write!(s, "{TAG}");
    for (f, &ns) in Figure::ALL.iter().zip(per_op_ns) {
        if f.name().ends_with("_us") {
            let _ = write!(s, " {}={}.{:02}", f.name(), ns / 1000, ns % 1000 / 10);
        } else {
            let _ = write!(s, " {}={ns}", f.name());
        }
    }
    let _ = s.push('\n');
    s
}

/// The line of a failed run: what failed and its code (an errno, or a
/// child's wait status).
pub fn error_line(what: &str, code: i64) -> Line {
    let mut s = Line::new();
    let what = what.get(..64).unwrap_or(what);
    let _ = writeln!(s, "{TAG} error {what} {code}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_result_line_has_every_figure_in_order_in_its_unit() {
        let line = result_line(&[1234, 5_678_901, 42_000, 999]);
        assert_eq!(line.as_str(), "LBENCH null_syscall_ns=1234 fork_exit_us=5678.90 fork_exec_us=42.00 pipe_pingpong_us=0.99\n");
    }

    #[test]
    fn the_largest_figures_still_fit_the_line() {
        let line = result_line(&[u64::MAX; 4]);
        assert!(line.ends_with('\n'), "nothing was cut: {line}");
        assert_eq!(line.matches('=').count(), 4);
    }

    #[test]
    fn an_error_line_carries_no_figure() {
        let line = error_line("fork", -11);
        assert_eq!(line.as_str(), "LBENCH error fork -11\n");
        assert!(!line.contains('='));
        assert!(error_line(&"x".repeat(500), 1).ends_with(" 1\n"), "a long reason is cut, the code kept");
    }

    #[test]
    fn the_figure_is_the_median_batch_per_operation() {
        let mut b = [per_op_ns(9000, 3), 100, per_op_ns(50, 0), 7, 20_000];
        assert_eq!(b[0], 3000);
        assert_eq!(b[2], 50, "zero iterations count as one");
        assert_eq!(median(&mut b), 100, "one slow and one fast batch do not move it");
        assert_eq!(median(&mut [4, 1]), 4);
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn names_are_unique_and_carry_their_unit() {
        for (i, f) in Figure::ALL.iter().enumerate() {
            assert!(f.name().ends_with("_ns") || f.name().ends_with("_us"), "{f:?}");
            assert!(f.iterations() > 0);
            assert!(Figure::ALL[i + 1..].iter().all(|g| g.name() != f.name()));
        }
    }
}
