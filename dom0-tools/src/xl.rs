//! The `xl`-like shell of dom0: command parsing and output formatting.
//! Pure, so the host tests check the formats against Xen's `xl`.
#![forbid(unsafe_code)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use core::fmt::Write;

/// A shell command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `help`
    Help,
    /// `list` / `xl list`
    List,
    /// `info` / `xl info`
    Info,
    /// `uptime`
    Uptime,
    /// `version`
    Version,
    /// `poweroff` / `shutdown`
    Poweroff,
    /// `reboot`
    Reboot,
    /// `create [ARGS]`: build and start a guest from dom0's boot module,
    /// with ARGS appended to its command line.
    Create(&'a str),
    /// `destroy ID`
    Destroy(u16),
    /// `pause ID`
    Pause(u16),
    /// `unpause ID`
    Unpause(u16),
    /// `shutdown ID`: ask a guest to power off (`control/shutdown`).
    Shutdown(u16),
    /// `xenstore-ls [PATH]` (`/` when absent).
    XenstoreLs(&'a str),
    /// `xenstore-read PATH`
    XenstoreRead(&'a str),
    /// `xenstore-write PATH VALUE` (the value is the rest of the line).
    XenstoreWrite(&'a str, &'a str),
    /// `xenstore-rm PATH`
    XenstoreRm(&'a str),
    /// `sched-credit [-d ID] [-w WEIGHT] [-c CAP]`: show (every domain, or
    /// one) or set a domain's credit-scheduler weight and cap.
    SchedCredit(SchedCredit),
    /// A command given the wrong arguments: its usage line.
    Usage(&'static str),
    /// An empty line.
    Nothing,
    /// Anything else.
    Unknown(&'a str),
}

/// Parse one input line; a leading `xl` is optional.
pub fn parse(line: &str) -> Command<'_> {
    let mut words = line.split_ascii_whitespace();
    let mut first = words.next();
    if first == Some("xl") {
        first = words.next();
    }
    match first {
        None => Command::Nothing,
        Some("help") | Some("?") => Command::Help,
        Some("list") | Some("li") => Command::List,
        Some("info") => Command::Info,
        Some("uptime") => Command::Uptime,
        Some("version") => Command::Version,
        Some("poweroff") => Command::Poweroff,
        Some("shutdown") => match (words.next(), words.next()) {
            (None, _) => Command::Poweroff,
            (Some(id), None) => id.parse().map_or(Command::Usage("usage: shutdown [DOMID]"), Command::Shutdown),
            _ => Command::Usage("usage: shutdown [DOMID]"),
        },
        Some("xenstore-ls") => match (words.next(), words.next()) {
            (path, None) => Command::XenstoreLs(path.unwrap_or("/")),
            _ => Command::Usage("usage: xenstore-ls [PATH]"),
        },
        Some("xenstore-read") => match (words.next(), words.next()) {
            (Some(path), None) => Command::XenstoreRead(path),
            _ => Command::Usage("usage: xenstore-read PATH"),
        },
        Some("xenstore-rm") => match (words.next(), words.next()) {
            (Some(path), None) => Command::XenstoreRm(path),
            _ => Command::Usage("usage: xenstore-rm PATH"),
        },
        Some("xenstore-write") => match words.next() {
            Some(path) if words.next().is_some() => Command::XenstoreWrite(path, value_after(line, path)),
            _ => Command::Usage("usage: xenstore-write PATH VALUE"),
        },
        Some("reboot") => Command::Reboot,
        Some("create") => Command::Create(rest_after(line, "create")),
        Some(cmd @ ("destroy" | "pause" | "unpause")) => {
            let id = words.next().and_then(|w| w.parse::<u16>().ok()).filter(|_| words.next().is_none());
            match (cmd, id) {
                ("destroy", Some(id)) => Command::Destroy(id),
                ("pause", Some(id)) => Command::Pause(id),
                ("unpause", Some(id)) => Command::Unpause(id),
                ("destroy", None) => Command::Usage("usage: destroy DOMID"),
                ("pause", None) => Command::Usage("usage: pause DOMID"),
                _ => Command::Usage("usage: unpause DOMID"),
            }
        }
        Some("sched-credit") => parse_sched_credit(words).map_or(Command::Usage(SCHED_CREDIT_USAGE), Command::SchedCredit),
        Some(other) => Command::Unknown(other),
    }
}

/// The arguments of `sched-credit`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedCredit {
    /// `-d ID`: the domain (every domain when absent).
    pub domid: Option<u16>,
    /// `-w WEIGHT` (1-65535).
    pub weight: Option<u16>,
    /// `-c CAP`, in percent of one CPU (0: none).
    pub cap: Option<u16>,
}

const SCHED_CREDIT_USAGE: &str = "usage: sched-credit [-d DOMID [-w WEIGHT] [-c CAP]]";

/// `-d`, `-w` and `-c` with their values; setting needs a domain, and a
/// weight is 1-65535 (as xl checks).
fn parse_sched_credit<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<SchedCredit> {
    let mut a = SchedCredit::default();
    while let Some(flag) = words.next() {
        let v: u16 = words.next()?.parse().ok()?;
        let slot = match flag {
            "-d" | "--domain" => &mut a.domid,
            "-w" | "--weight" => &mut a.weight,
            "-c" | "--cap" => &mut a.cap,
            _ => return None,
        };
        if slot.replace(v).is_some() {
            return None;
        }
    }
    let sets = a.weight.is_some() || a.cap.is_some();
    (a.weight != Some(0) && (!sets || a.domid.is_some())).then_some(a)
}

/// `xl sched-credit`'s header line.
pub const SCHED_CREDIT_HEADER: &str = "Name                                ID Weight  Cap";

/// One domain as `xl sched-credit` shows it: `"%-33s %4d %6d %4d"`.
pub fn sched_credit_row(out: &mut impl Write, name: &str, id: u16, weight: u16, cap: u16) -> core::fmt::Result {
    write!(out, "{name:<33} {id:>4} {weight:>6} {cap:>4}")
}

/// `xenstore-write`'s value: the text after `path` (after the command),
/// trimmed.
fn value_after<'a>(line: &'a str, path: &str) -> &'a str {
    let after_cmd = line.find("xenstore-write").map_or(line, |at| &line[at + "xenstore-write".len()..]);
    after_cmd.find(path).map_or("", |at| after_cmd[at + path.len()..].trim())
}

/// The text after the first occurrence of the word `cmd`, trimmed.
fn rest_after<'a>(line: &'a str, cmd: &str) -> &'a str {
    line.find(cmd).map_or("", |at| line[at + cmd.len()..].trim())
}

/// The help text.
pub const HELP: &str = "commands: list, info, uptime, version, create [ARGS], destroy ID, pause ID, unpause ID, shutdown ID, xenstore-ls [PATH], xenstore-read PATH, xenstore-write PATH VALUE, xenstore-rm PATH, sched-credit [-d ID [-w WEIGHT] [-c CAP]], help, poweroff, reboot (a leading `xl` is optional)";

/// One domain as `xl list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainRow<'a> {
    /// Name (`Domain-0` for dom0).
    pub name: &'a str,
    /// Domain id.
    pub id: u16,
    /// Memory in MiB.
    pub mem_mib: u64,
    /// vCPUs online.
    pub vcpus: u32,
    /// `XEN_DOMINF_*` flags.
    pub flags: u32,
    /// CPU time in ns.
    pub cpu_time_ns: u64,
}

/// `xl list`'s header line.
pub const LIST_HEADER: &str = "Name                                        ID   Mem VCPUs\tState\tTime(s)";

/// The six state letters: running, blocked, paused, shutdown, crashed, dying.
pub fn state_letters(flags: u32) -> [char; 6] {
    use xen_public::domctl::XEN_DOMINF_SHUTDOWNMASK;
    use xen_public::{
        SHUTDOWN_CRASH, XEN_DOMINF_BLOCKED as BLOCKED, XEN_DOMINF_DYING as DYING, XEN_DOMINF_PAUSED as PAUSED, XEN_DOMINF_RUNNING as RUNNING,
        XEN_DOMINF_SHUTDOWN as SHUTDOWN, XEN_DOMINF_SHUTDOWNSHIFT,
    };
    let reason = (flags >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK;
    let on = |bit: u32, c: char| if flags & bit != 0 { c } else { '-' };
    let shut = flags & SHUTDOWN != 0;
    [
        on(RUNNING, 'r'),
        on(BLOCKED, 'b'),
        on(PAUSED, 'p'),
        if shut && reason != SHUTDOWN_CRASH { 's' } else { '-' },
        if shut && reason == SHUTDOWN_CRASH { 'c' } else { '-' },
        on(DYING, 'd'),
    ]
}

/// One `xl list` row: `%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f`.
pub fn list_row(out: &mut impl Write, r: &DomainRow<'_>) -> core::fmt::Result {
    let s = state_letters(r.flags);
    let tenths = r.cpu_time_ns / 100_000_000;
    write!(
        out,
        "{:<40} {:>5} {:>5} {:>5}     {}{}{}{}{}{}  {:>6}.{}",
        r.name,
        r.id,
        r.mem_mib,
        r.vcpus,
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        s[5],
        tenths / 10,
        tenths % 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::string::String;

    #[test]
    fn commands_parse_with_or_without_xl() {
        assert_eq!(parse("xl list"), Command::List);
        assert_eq!(parse("  list  "), Command::List);
        assert_eq!(parse("info"), Command::Info);
        assert_eq!(parse(""), Command::Nothing);
        assert_eq!(parse("xl"), Command::Nothing);
        assert_eq!(parse("frob 1"), Command::Unknown("frob"));
        assert_eq!(parse("shutdown"), Command::Poweroff);
    }

    #[test]
    fn shutdown_with_a_domain_asks_the_guest_and_without_powers_off_dom0() {
        assert_eq!(parse("xl shutdown 3"), Command::Shutdown(3));
        assert_eq!(parse("shutdown x"), Command::Usage("usage: shutdown [DOMID]"));
        assert_eq!(parse("shutdown 1 2"), Command::Usage("usage: shutdown [DOMID]"));
    }

    #[test]
    fn xenstore_commands_parse_their_paths_and_values() {
        assert_eq!(parse("xenstore-ls"), Command::XenstoreLs("/"));
        assert_eq!(parse("xenstore-ls /local/domain/1"), Command::XenstoreLs("/local/domain/1"));
        assert_eq!(parse("xenstore-read /a"), Command::XenstoreRead("/a"));
        assert_eq!(parse("xenstore-read"), Command::Usage("usage: xenstore-read PATH"));
        assert_eq!(parse("xenstore-write /a/b hello world"), Command::XenstoreWrite("/a/b", "hello world"));
        assert_eq!(parse("xenstore-write /a"), Command::Usage("usage: xenstore-write PATH VALUE"));
        assert_eq!(parse("xenstore-rm /a b"), Command::Usage("usage: xenstore-rm PATH"));
        assert_eq!(parse("xl xenstore-rm /a"), Command::XenstoreRm("/a"));
    }

    #[test]
    fn domain_commands_parse_with_their_ids() {
        assert_eq!(parse("create"), Command::Create(""));
        assert_eq!(parse("xl create spin quiet"), Command::Create("spin quiet"));
        assert_eq!(parse("destroy 3"), Command::Destroy(3));
        assert_eq!(parse("xl pause 12"), Command::Pause(12));
        assert_eq!(parse("unpause 1"), Command::Unpause(1));
        assert_eq!(parse("destroy"), Command::Usage("usage: destroy DOMID"));
        assert_eq!(parse("pause x"), Command::Usage("usage: pause DOMID"));
        assert_eq!(parse("unpause 1 2"), Command::Usage("usage: unpause DOMID"));
        assert_eq!(parse("destroy 70000"), Command::Usage("usage: destroy DOMID"));
    }

    #[test]
    fn sched_credit_parses_like_xl() {
        assert_eq!(parse("xl sched-credit"), Command::SchedCredit(SchedCredit::default()));
        assert_eq!(parse("sched-credit -d 2"), Command::SchedCredit(SchedCredit { domid: Some(2), ..Default::default() }));
        assert_eq!(parse("sched-credit -d 2 -w 512 -c 20"), Command::SchedCredit(SchedCredit { domid: Some(2), weight: Some(512), cap: Some(20) }));
        assert_eq!(parse("sched-credit -w 512"), Command::Usage(SCHED_CREDIT_USAGE), "setting needs a domain");
        assert_eq!(parse("sched-credit -d 2 -w 0"), Command::Usage(SCHED_CREDIT_USAGE), "weight 0 is invalid");
        assert_eq!(parse("sched-credit -d 2 -d 3"), Command::Usage(SCHED_CREDIT_USAGE));
        assert_eq!(parse("sched-credit -d"), Command::Usage(SCHED_CREDIT_USAGE));
        assert_eq!(parse("sched-credit -x 1"), Command::Usage(SCHED_CREDIT_USAGE));
    }

    #[test]
    fn sched_credit_row_matches_xl_format() {
        // xl's format: "%-33s %4d %6d %4d" under "%-33s %4s %6s %4s".
        let mut s = String::new();
        sched_credit_row(&mut s, "Domain-0", 0, 256, 0).unwrap();
        assert_eq!(s, "Domain-0                             0    256    0");
        assert_eq!(SCHED_CREDIT_HEADER, "Name                                ID Weight  Cap");
    }

    #[test]
    fn list_row_matches_xl_format() {
        // xl's format: "%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f".
        let mut s = String::new();
        let r = DomainRow { name: "Domain-0", id: 0, mem_mib: 64, vcpus: 1, flags: 1 << 5, cpu_time_ns: 12_345_000_000 };
        list_row(&mut s, &r).unwrap();
        assert_eq!(s, "Domain-0                                     0    64     1     r-----      12.3");
        assert_eq!(LIST_HEADER.len(), "Name                                        ID   Mem VCPUs\tState\tTime(s)".len());
    }

    #[test]
    fn state_letters_cover_shutdown_reasons() {
        assert_eq!(state_letters(1 << 2), ['-', '-', '-', 's', '-', '-'], "shutdown, reason poweroff");
        assert_eq!(state_letters((1 << 2) | (3 << 16)), ['-', '-', '-', '-', 'c', '-']);
        assert_eq!(state_letters((1 << 3) | (1 << 4) | 1), ['-', 'b', 'p', '-', '-', 'd']);
    }
}
