//! The hypervisor command line, in the spirit of Xen's: space-separated
//! `name=value` options and boolean `name` flags.
//!
//! Invariant: parsing never fails as a whole. An unknown option or a bad
//! value becomes a [`Warning`] that boot prints, and the option keeps its
//! default, as Xen does.

/// Log threshold, named as Xen's `loglvl=` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Print nothing.
    None,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warning,
    /// The default: informational messages and above.
    Info,
    /// Debug messages too.
    Debug,
    /// Everything.
    All,
}

impl LogLevel {
    /// Parse a level name. Xen's `loglvl=` also accepts `<level>/<guest level>`;
    /// the guest part is accepted and ignored.
    pub fn parse(s: &str) -> Option<Self> {
        let lvl = s.split('/').next().unwrap_or("");
        Some(match lvl {
            "none" => LogLevel::None,
            "error" => LogLevel::Error,
            "warning" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "all" => LogLevel::All,
            _ => return None,
        })
    }
}

/// A deliberate fault the hypervisor raises on itself after setting up its
/// exception handlers, so boot tests can check the handlers' output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selftest {
    /// A page fault on an unmapped address.
    PageFault,
    /// An invalid opcode (`ud2`).
    InvalidOpcode,
    /// A double fault: a page fault with an unusable stack, taken on the IST.
    DoubleFault,
    /// A general-protection fault (non-canonical access).
    GeneralProtection,
}

impl Selftest {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pf" => Selftest::PageFault,
            "ud" => Selftest::InvalidOpcode,
            "df" => Selftest::DoubleFault,
            "gp" => Selftest::GeneralProtection,
            _ => return None,
        })
    }
}

/// Something on the command line that was not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warning<'a> {
    /// An option name we do not know.
    Unknown(&'a str),
    /// A known option with a value we cannot parse.
    BadValue(&'a str),
}

/// How many warnings are kept; further ones are counted in `dropped_warnings`.
pub const MAX_WARNINGS: usize = 8;

/// The parsed options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options<'a> {
    /// `loglvl=`.
    pub loglvl: LogLevel,
    /// `console=`: only `com1` exists; kept for Xen compatibility.
    pub console: &'a str,
    /// `dom0_mem=`: dom0's memory in bytes, if given.
    pub dom0_mem: Option<u64>,
    /// `selftest=`: a fault to raise after boot.
    pub selftest: Option<Selftest>,
    /// `noreboot`: on a fatal error, halt instead of leaving QEMU.
    pub noreboot: bool,
    /// `bench_floor`: SYSCALL with RAX = `entry::FLOOR_NR` goes straight
    /// back through IRETQ (the benchmarks' floor); off by default, so that
    /// number is -ENOSYS like any unknown hypercall.
    pub bench_floor: bool,
    /// `audit=1`: run the invariant auditor after every createdomain and
    /// destroydomain (`audit=0`, the default: only on request).
    pub audit: bool,
    /// `tbuf_size=`: trace-buffer pages per CPU, allocated at boot with
    /// tracing on (Xen's `opt_tbuf_size`); 0, the default: none until
    /// `XEN_SYSCTL_TBUFOP_set_size`.
    pub tbuf_size: u32,
    warnings: heapless::Vec<Warning<'a>, MAX_WARNINGS>,
    /// Warnings that did not fit.
    pub dropped_warnings: usize,
}

/// Parse a size with an optional K/M/G/T suffix. As in Xen, a bare number
/// means KiB.
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, shift) = match s.as_bytes().last()? {
        b'B' | b'b' => (&s[..s.len() - 1], 0),
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        b'T' | b't' => (&s[..s.len() - 1], 40),
        _ => (s, 10),
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

impl<'a> Options<'a> {
    /// Parse a command line. Never fails; see [`Options::warnings`].
    pub fn parse(cmdline: &'a str) -> Self {
        let mut o = Options {
            loglvl: LogLevel::Info,
            console: "com1",
            dom0_mem: None,
            selftest: None,
            noreboot: false,
            bench_floor: false,
            audit: false,
            tbuf_size: 0,
            warnings: heapless::Vec::new(),
            dropped_warnings: 0,
        };
        for word in cmdline.split_ascii_whitespace() {
            o.apply(word);
        }
        o
    }

    fn apply(&mut self, word: &'a str) {
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (word, None),
        };
        let ok = match (name, value) {
            ("loglvl", Some(v)) => LogLevel::parse(v).map(|l| self.loglvl = l).is_some(),
            ("console", Some(v)) => {
                self.console = v;
                v.split(',').all(|c| c == "com1" || c == "vga" || c == "none")
            }
            ("com1", Some(_)) => true,
            ("dom0_mem", Some(v)) => parse_size(v).map(|s| self.dom0_mem = Some(s)).is_some(),
            // Xen's scheduler choice: xen-core has only the credit scheduler.
            ("sched", Some(v)) => v == "credit",
            ("selftest", Some(v)) => Selftest::parse(v).map(|t| self.selftest = Some(t)).is_some(),
            ("noreboot", None) => {
                self.noreboot = true;
                true
            }
            ("bench_floor", None) => {
                self.bench_floor = true;
                true
            }
            ("audit", Some(v)) => match v {
                "1" | "on" | "yes" | "true" => {
                    self.audit = true;
                    true
                }
                "0" | "off" | "no" | "false" => {
                    self.audit = false;
                    true
                }
                _ => false,
            },
            ("tbuf_size", Some(v)) => v.parse().map(|n| self.tbuf_size = n).is_ok(),
            ("loglvl" | "console" | "com1" | "dom0_mem" | "sched" | "selftest" | "audit" | "tbuf_size", None) => false,
            _ => {
                self.warn(Warning::Unknown(word));
                return;
            }
        };
        if !ok {
            self.warn(Warning::BadValue(word));
        }
    }

    fn warn(&mut self, w: Warning<'a>) {
        if self.warnings.push(w).is_err() {
            self.dropped_warnings += 1;
        }
    }

    /// What was not understood, in command-line order.
    pub fn warnings(&self) -> impl Iterator<Item = Warning<'a>> + '_ {
        self.warnings.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn defaults_on_an_empty_line() {
        let o = Options::parse("");
        assert_eq!(o.loglvl, LogLevel::Info);
        assert_eq!(o.dom0_mem, None);
        assert_eq!(o.selftest, None);
        assert_eq!(o.warnings().count(), 0);
    }

    #[test]
    fn known_options_are_applied() {
        let o = Options::parse("console=com1 com1=115200,8n1 loglvl=all/warning dom0_mem=512M sched=credit selftest=df noreboot");
        assert_eq!(o.loglvl, LogLevel::All);
        assert_eq!(o.dom0_mem, Some(512 << 20));
        assert_eq!(o.selftest, Some(Selftest::DoubleFault));
        assert!(o.noreboot);
        assert_eq!(o.warnings().count(), 0);
    }

    #[test]
    fn audit_option() {
        assert!(!Options::parse("").audit);
        assert!(Options::parse("audit=1").audit);
        assert!(!Options::parse("audit=1 audit=off").audit);
        let o = Options::parse("audit=maybe audit");
        assert!(!o.audit);
        assert_eq!(o.warnings().collect::<Vec<_>>(), [Warning::BadValue("audit=maybe"), Warning::BadValue("audit")]);
    }

    /// Xen's `tbuf_size=` is a page count per CPU (integer_param).
    #[test]
    fn tbuf_size_option_is_pages_per_cpu() {
        assert_eq!(Options::parse("").tbuf_size, 0);
        assert_eq!(Options::parse("tbuf_size=64").tbuf_size, 64);
        let o = Options::parse("tbuf_size=lots");
        assert_eq!((o.tbuf_size, o.warnings().collect::<Vec<_>>()), (0, vec![Warning::BadValue("tbuf_size=lots")]));
    }

    #[test]
    fn unknown_option_is_only_a_warning() {
        let o = Options::parse("loglvl=debug frobnicate=7 quiet");
        assert_eq!(o.loglvl, LogLevel::Debug);
        let w: Vec<_> = o.warnings().collect();
        assert_eq!(w, [Warning::Unknown("frobnicate=7"), Warning::Unknown("quiet")]);
    }

    #[test]
    fn bad_values_keep_the_default_and_warn() {
        let o = Options::parse("loglvl=loud dom0_mem=lots selftest=boom loglvl sched=credit2");
        assert_eq!(o.loglvl, LogLevel::Info);
        assert_eq!(o.dom0_mem, None);
        assert_eq!(o.selftest, None);
        assert_eq!(o.warnings().count(), 5);
        assert!(o.warnings().all(|w| matches!(w, Warning::BadValue(_))));
    }

    #[test]
    fn too_many_warnings_are_counted_not_lost() {
        let o = Options::parse("a b c d e f g h i j");
        assert_eq!(o.warnings().count(), MAX_WARNINGS);
        assert_eq!(o.dropped_warnings, 2);
    }

    #[test]
    fn sizes_follow_xen_units() {
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("256m"), Some(256 << 20));
        assert_eq!(parse_size("1024"), Some(1 << 20));
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999999999T"), None);
    }

    #[test]
    fn level_ordering_matches_verbosity() {
        assert!(LogLevel::None < LogLevel::Error);
        assert!(LogLevel::Info < LogLevel::Debug);
        assert_eq!(LogLevel::parse("warning/all"), Some(LogLevel::Warning));
    }
}
