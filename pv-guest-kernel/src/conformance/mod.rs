//! The hypercall conformance suite, in the spirit of the Xen Test Framework.
//!
//! Each case is a named function that reports exactly one [`Outcome`]. The
//! case list ([`CASES`]) and the documented differences from Xen 4.17
//! ([`DIFFERENCES`]) are pure data, built on the host too, so `xtask` can
//! generate `docs/conformance.md` from them and judge a run. Invariant: the
//! serial protocol is one `begin` line before a case runs and one `result`
//! line after; a case without a result line did not finish (error), and a
//! domain that crashes mid-case fails that case.
#![cfg_attr(not(target_os = "none"), forbid(unsafe_code))]

mod attacks;
mod cases;
#[cfg(target_os = "none")]
mod ctx;
#[cfg(target_os = "none")]
mod run;

pub use cases::DIFFERENCES;

/// How many elements `lists` hold together.
const fn total_len<T>(lists: &[&[T]]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < lists.len() {
        n += lists[i].len();
        i += 1;
    }
    n
}

/// `lists` one after another, as one array (the case lists of the families
/// under `cases/` and of `attacks.rs` are joined at compile time).
const fn concat<T: Copy, const N: usize>(lists: &[&[T]]) -> [T; N] {
    assert!(total_len(lists) == N && !lists[0].is_empty());
    let mut out = [lists[0][0]; N];
    let (mut n, mut l) = (0, 0);
    while l < lists.len() {
        let mut i = 0;
        while i < lists[l].len() {
            out[n] = lists[l][i];
            n += 1;
            i += 1;
        }
        l += 1;
    }
    out
}

const NR_CASES: usize = cases::LIST.len() + attacks::LIST.len();
static ALL_CASES: [CaseInfo; NR_CASES] = concat(&[cases::LIST, attacks::LIST]);
/// Every case, in run order: the families of `cases.rs`, then the
/// hostile-guest cases of `attacks.rs`.
pub static CASES: &[CaseInfo] = &ALL_CASES;
#[cfg(target_os = "none")]
static ALL_FNS: [fn() -> Outcome; NR_CASES] = concat(&[cases::FNS, attacks::FNS]);
/// The case functions, parallel to [`CASES`].
#[cfg(target_os = "none")]
static CASE_FNS: &[fn() -> Outcome] = &ALL_FNS;
#[cfg(target_os = "none")]
pub use run::run;

/// What a case reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hypervisor behaved as the ABI says.
    Success,
    /// The hypervisor misbehaved.
    Failure(Message),
    /// The test or its environment is broken.
    Error(Message),
    /// Not applicable here.
    Skip(Message),
}

/// A short fixed-capacity message (no allocator in guests).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    buf: [u8; 96],
    len: usize,
}

impl Message {
    /// Format into a message, truncating at 96 bytes.
    pub fn new(args: core::fmt::Arguments<'_>) -> Self {
        let mut m = Message { buf: [0; 96], len: 0 };
        let _ = core::fmt::write(&mut m, args);
        m
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = if b == b'\n' { b' ' } else { b };
                self.len += 1;
            }
        }
        Ok(())
    }
}

impl core::fmt::Debug for Message {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of check a case makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A valid request succeeds with the documented effect.
    Accept,
    /// An invalid request fails with the exact errno.
    Reject,
    /// Hostile input of the kinds in Xen's PV security advisories.
    Attack,
    /// An exception is delivered to the guest as Xen delivers it.
    Trap,
}

impl Kind {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Accept => "accept",
            Kind::Reject => "reject",
            Kind::Attack => "attack",
            Kind::Trap => "trap",
        }
    }
}

/// One case's metadata.
#[derive(Clone, Copy, Debug)]
pub struct CaseInfo {
    /// Unique name.
    pub name: &'static str,
    /// The hypercall it exercises (or `trap` for exception delivery).
    pub hypercall: &'static str,
    /// The sub-operation.
    pub subop: &'static str,
    /// What kind of check.
    pub kind: Kind,
}

/// A documented disagreement with Xen 4.17.
#[derive(Clone, Copy, Debug)]
pub struct Difference {
    /// The case.
    pub case: &'static str,
    /// Why xen-core differs, and until when.
    pub reason: &'static str,
}

/// Result words on the serial protocol.
pub const RESULT_WORDS: [&str; 4] = ["success", "failure", "error", "skip"];

/// Parse a `conformance: result <case> <word> [message]` line.
pub fn parse_result(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.split("conformance: result ").nth(1)?;
    let mut parts = rest.splitn(3, ' ');
    let case = parts.next()?;
    let word = parts.next()?.trim_end();
    let msg = parts.next().unwrap_or("").trim_end();
    RESULT_WORDS.contains(&word).then_some((case, word, msg))
}

/// Parse a `conformance: begin <case>` line.
pub fn parse_begin(line: &str) -> Option<&str> {
    Some(line.split("conformance: begin ").nth(1)?.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_and_well_formed() {
        let mut names: std::vec::Vec<_> = CASES.iter().map(|c| c.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate case names");
        assert!(CASES.iter().all(|c| !c.name.contains(' ') && !c.hypercall.is_empty()));
        assert!(n >= 80, "the suite must keep at least 80 cases, has {n}");
    }

    #[test]
    fn every_difference_names_a_real_case() {
        for d in DIFFERENCES {
            assert!(CASES.iter().any(|c| c.name == d.case), "{} is not a case", d.case);
            assert!(!d.reason.is_empty());
        }
    }

    #[test]
    fn every_hypercall_has_accept_and_reject_cases() {
        // Accept and reject/attack per hypercall. Exempt: exception delivery,
        // unused numbers, and iret, whose rejections crash the domain and so
        // are boot tests (`unhandled_fault_crashes_domain` and friends).
        for c in CASES.iter().filter(|c| !["trap", "unused", "iret"].contains(&c.hypercall)) {
            let same = CASES.iter().filter(|d| d.hypercall == c.hypercall);
            let accept = same.clone().any(|d| d.kind == Kind::Accept);
            let reject = same.clone().any(|d| matches!(d.kind, Kind::Reject | Kind::Attack));
            assert!(accept && reject, "{} lacks an accept or a reject case", c.hypercall);
        }
    }

    #[test]
    fn result_lines_parse() {
        assert_eq!(parse_result("conformance: result a_b success"), Some(("a_b", "success", "")));
        assert_eq!(parse_result("x conformance: result c failure got -22 want 0\r"), Some(("c", "failure", "got -22 want 0")));
        assert_eq!(parse_result("conformance: result c maybe"), None);
        assert_eq!(parse_begin("conformance: begin nr_11"), Some("nr_11"));
    }

    #[test]
    fn messages_truncate_and_flatten() {
        let m = Message::new(format_args!("a\nb{}", "x".repeat(200)));
        assert_eq!(m.as_str().len(), 96);
        assert!(m.as_str().starts_with("a b"));
    }
}
