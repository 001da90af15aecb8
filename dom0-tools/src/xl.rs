//! The `xl`-like shell of dom0: parsing a command line into a [`Command`]
//! (the formats live in [`crate::xlfmt`]). Pure and host-tested.
//!
//! Invariant: parsing never fails; a line that is not a command with
//! valid arguments becomes [`Command::Usage`] or [`Command::Unknown`],
//! and no argument is longer than the line it came from.
#![forbid(unsafe_code)]
#![cfg_attr(not(target_os = "none"), allow(dead_code))]

use alloc::string::String;
use alloc::vec::Vec;

/// A domain as a command names it: a domid or a name (xl's
/// `find_domain`); the shell resolves it.
pub type DomSpec<'a> = &'a str;

/// A shell command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `help`
    Help,
    /// `list [-l] [DOM]`: the domain table, or libxl's JSON with `-l`.
    List {
        /// `-l`/`--long`.
        long: bool,
        /// Only this domain.
        dom: Option<DomSpec<'a>>,
    },
    /// `vcpu-list [DOM]`
    VcpuList(Option<DomSpec<'a>>),
    /// `info` / `xl info`
    Info,
    /// `uptime [-s] [DOM]`
    Uptime {
        /// `-s`: short form.
        short: bool,
        /// Only this domain.
        dom: Option<DomSpec<'a>>,
    },
    /// `top`: one snapshot, as `xentop -b -i 1`.
    Top,
    /// `dmesg [-c]`: the hypervisor's console ring (`-c`: then clear it).
    Dmesg {
        /// `-c`
        clear: bool,
    },
    /// `version`
    Version,
    /// `trace start|wait|stop|dump ...`: the hypervisor's trace buffers
    /// ([`crate::xltrace`]).
    Trace(crate::xltrace::TraceCmd),
    /// `poweroff`: power dom0 (the host) off.
    Poweroff,
    /// `create [-c] [FILE] [KEY=VALUE ...]` (a config file), or the demo
    /// guest with ARGS on its command line (`create [ARGS]`, when the
    /// first word is not a file): the shell decides.
    Create {
        /// `-c`: attach to the console afterwards.
        console: bool,
        /// The words after the options.
        rest: &'a str,
    },
    /// `destroy DOM`
    Destroy(DomSpec<'a>),
    /// `pause DOM`
    Pause(DomSpec<'a>),
    /// `unpause DOM`
    Unpause(DomSpec<'a>),
    /// `shutdown [-w] DOM`: ask a guest to power off (`control/shutdown`);
    /// `-w`: wait until it has.
    Shutdown(DomSpec<'a>, bool),
    /// `reboot [-w] DOM`: ask a guest to reboot (`control/shutdown`);
    /// `-w`: wait until it has.
    RebootDomain(DomSpec<'a>, bool),
    /// `console DOM`: show a guest's console until Ctrl-].
    Console(DomSpec<'a>),
    /// `mem-set DOM MEM`: the balloon target (`memory/target`).
    MemSet(DomSpec<'a>, &'a str),
    /// `mem-max DOM MEM`: the maximum (`memory/static-max`, max_mem).
    MemMax(DomSpec<'a>, &'a str),
    /// `domid NAME`
    Domid(&'a str),
    /// `domname DOMID`
    Domname(&'a str),
    /// `rename DOM NEWNAME`
    Rename(DomSpec<'a>, &'a str),
    /// `xenstore-ls [PATH]` (`/` when absent).
    XenstoreLs(&'a str),
    /// `xenstore-read PATH`
    XenstoreRead(&'a str),
    /// `xenstore-write PATH VALUE` (the value is the rest of the line).
    XenstoreWrite(&'a str, &'a str),
    /// `xenstore-rm PATH`
    XenstoreRm(&'a str),
    /// `xenstore-watch [-n COUNT] PATH`: print COUNT events (default 1:
    /// the shell never blocks without bound).
    XenstoreWatch {
        /// Events to print before returning.
        count: u32,
        /// The watched path.
        path: &'a str,
    },
    /// `sched-credit [-d ID] [-w WEIGHT] [-c CAP]`: show (every domain, or
    /// one) or set a domain's credit-scheduler weight and cap.
    SchedCredit(SchedCredit),
    /// `block-attach DOM DISKSPEC...`: the words after the domain, one
    /// xl-disk-configuration (several words are joined with commas, as
    /// xl's `parse_disk_config_multistring`).
    BlockAttach(DomSpec<'a>, &'a str),
    /// `block-detach [-f] DOM VDEV`
    BlockDetach {
        /// The domain.
        dom: DomSpec<'a>,
        /// Its vdev (`xvdb`) or device number.
        vdev: &'a str,
        /// `-f`: do not wait for the frontend.
        force: bool,
    },
    /// `block-list DOM...`: the words naming the domains.
    BlockList(&'a str),
    /// `network-attach DOM [KEY=VALUE]...`: the words after the domain,
    /// each one vif option (xl's `parse_nic_config` per word).
    NetworkAttach(DomSpec<'a>, &'a str),
    /// `network-detach DOM DEVID|MAC`
    NetworkDetach {
        /// The domain.
        dom: DomSpec<'a>,
        /// Its devid or MAC.
        dev: &'a str,
    },
    /// `network-list DOM...`: the words naming the domains.
    NetworkList(&'a str),
    /// `netsend IP[:PORT] MIB`: dom0's own TCP send.
    NetSend {
        /// The peer's IPv4 address.
        ip: [u8; 4],
        /// Its TCP port (5001 unless told).
        port: u16,
        /// MiB to send.
        mib: u64,
    },
    /// `ls`: dom0's files.
    Ls,
    /// `cat FILE`
    Cat(&'a str),
    /// `echo TEXT > FILE` (`append`: `>>`): write a config line.
    Echo {
        /// The text.
        text: &'a str,
        /// The file.
        file: &'a str,
        /// `>>`
        append: bool,
    },
    /// `rm FILE`: remove a written file.
    Rm(&'a str),
    /// A command given the wrong arguments: its usage line.
    Usage(&'static str),
    /// An empty line.
    Nothing,
    /// Anything else.
    Unknown(&'a str),
}

/// Usage lines, as the commands print them. Where xl's own words exist,
/// they are used: a command given too few arguments prints def_getopt's
/// `'xl CMD' requires at least N argument(s).` and then help()'s
/// `Usage: xl [-vtT(f)] CMD USAGE` with the command's description
/// (xl_cmdtable.c, xl.c); the others are ours.
mod usage {
    pub const DESTROY: &str =
        "'xl destroy' requires at least 1 argument.\n\nUsage: xl [-vtTf] destroy [options] <Domain>\n\n\nTerminate a domain immediately.\n";
    pub const PAUSE: &str = "'xl pause' requires at least 1 argument.\n\nUsage: xl [-vtTf] pause <Domain>\n\nPause execution of a domain.\n";
    pub const UNPAUSE: &str = "'xl unpause' requires at least 1 argument.\n\nUsage: xl [-vtTf] unpause <Domain>\n\nUnpause a paused domain.\n";
    pub const SHUTDOWN: &str = "usage: shutdown [-w] DOMAIN";
    /// xl_vmcontrol.c, for `shutdown`/`reboot` without a domain (dom0's
    /// host is powered off with `poweroff`).
    pub const NO_DOMAIN: &str = "You must specify -a or a domain id.";
    pub const REBOOT: &str = "usage: reboot [-w] DOMAIN";
    pub const CONSOLE: &str =
        "'xl console' requires at least 1 argument.\n\nUsage: xl [-vtT] console [options] <Domain>\n\nAttach to domain's console.\n";
    pub const MEM_SET: &str = "'xl mem-set' requires at least 2 arguments.\n\nUsage: xl [-vtTf] mem-set <Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>\n\nSet the current memory usage for a domain.\n";
    pub const MEM_MAX: &str = "'xl mem-max' requires at least 2 arguments.\n\nUsage: xl [-vtTf] mem-max <Domain> <MemMB['b'[bytes]|'k'[KB]|'m'[MB]|'g'[GB]|'t'[TB]]>\n\nSet the maximum amount reservation for a domain.\n";
    pub const DOMID: &str =
        "'xl domid' requires at least 1 argument.\n\nUsage: xl [-vtT] domid <DomainName>\n\nConvert a domain name to domain id.\n";
    pub const DOMNAME: &str =
        "'xl domname' requires at least 1 argument.\n\nUsage: xl [-vtT] domname <DomainId>\n\nConvert a domain id to domain name.\n";
    pub const RENAME: &str = "'xl rename' requires at least 2 arguments.\n\nUsage: xl [-vtTf] rename <Domain> <NewDomainName>\n\nRename a domain.\n";
    pub const LIST: &str = "usage: list [-l] [DOMAIN]";
    pub const VCPU_LIST: &str = "usage: vcpu-list [DOMAIN]";
    pub const UPTIME: &str = "usage: uptime [-s] [DOMAIN]";
    pub const DMESG: &str = "usage: dmesg [-c]";
    pub const WATCH: &str = "usage: xenstore-watch [-n COUNT] PATH (COUNT 1-100)";
    pub const CAT: &str = "usage: cat FILE";
    pub const RM: &str = "usage: rm FILE";
    pub const BLOCK_ATTACH: &str = "'xl block-attach' requires at least 2 arguments.\n\nUsage: xl [-vtTf] block-attach <Domain> <disk-spec-component(s)>...\n\nCreate a new virtual block device.\n";
    pub const BLOCK_DETACH: &str = "'xl block-detach' requires at least 2 arguments.\n\nUsage: xl [-vtTf] block-detach [-f] <Domain> <DevId>\n\nDestroy a domain's virtual block device.\n";
    pub const BLOCK_LIST: &str =
        "'xl block-list' requires at least 1 argument.\n\nUsage: xl [-vtT] block-list <Domain(s)>\n\nList virtual block devices for a domain.\n";
    pub const NETWORK_ATTACH: &str = "'xl network-attach' requires at least 1 argument.\n\nUsage: xl [-vtTf] network-attach <Domain> [type=<type>] [mac=<mac>] [bridge=<bridge>] [ip=<ip>] [script=<script>] [backend=<BackDomain>] [vifname=<name>] [rate=<rate>] [model=<model>] [accel=<accel>] [mtu=<mtu>]\n\nCreate a new virtual network device.\n";
    pub const NETWORK_DETACH: &str = "'xl network-detach' requires at least 2 arguments.\n\nUsage: xl [-vtTf] network-detach <Domain> <DevId|mac>\n\nDestroy a domain's virtual network device.\n";
    pub const NETWORK_LIST: &str = "'xl network-list' requires at least 1 argument.\n\nUsage: xl [-vtT] network-list <Domain(s)>\n\nList virtual network interfaces for a domain.\n";
    pub const ECHO: &str = "usage: echo TEXT > FILE | echo TEXT >> FILE";
    pub const NETSEND: &str = "usage: netsend IP[:PORT] MIB";
}

/// Events `xenstore-watch` prints at most.
pub const MAX_WATCH_EVENTS: u32 = 100;

/// Parse one input line; a leading `xl` is optional.
pub fn parse(line: &str) -> Command<'_> {
    let mut words = line.split_ascii_whitespace();
    let mut first = words.next();
    if first == Some("xl") {
        first = words.next();
    }
    let Some(cmd) = first else { return Command::Nothing };
    let mut args = [""; 8];
    let mut n = 0;
    for w in words.by_ref().take(args.len()) {
        args[n] = w;
        n += 1;
    }
    let too_many = words.next().is_some();
    parse_words(line, cmd, &args[..n], too_many)
}

/// One domain argument and nothing else.
fn one_dom<'a>(args: &[&'a str], too_many: bool, make: fn(DomSpec<'a>) -> Command<'a>, usage: &'static str) -> Command<'a> {
    match args {
        [dom] if !too_many => make(dom),
        _ => Command::Usage(usage),
    }
}

fn parse_words<'a>(line: &'a str, cmd: &'a str, args: &[&'a str], too_many: bool) -> Command<'a> {
    match cmd {
        "help" | "?" => Command::Help,
        "list" | "li" => parse_list(args, too_many),
        "vcpu-list" => match args {
            [] => Command::VcpuList(None),
            [dom] => Command::VcpuList(Some(dom)),
            _ => Command::Usage(usage::VCPU_LIST),
        },
        "info" => Command::Info,
        "uptime" => parse_uptime(args),
        "top" => Command::Top,
        "dmesg" => match args {
            [] => Command::Dmesg { clear: false },
            ["-c"] => Command::Dmesg { clear: true },
            _ => Command::Usage(usage::DMESG),
        },
        "version" => Command::Version,
        "trace" if !too_many => crate::xltrace::parse(args).map_or(Command::Usage(crate::xltrace::USAGE), Command::Trace),
        "trace" => Command::Usage(crate::xltrace::USAGE),
        "poweroff" => Command::Poweroff,
        "shutdown" => match args {
            [] => Command::Usage(usage::NO_DOMAIN),
            ["-w", dom] | [dom, "-w"] => Command::Shutdown(dom, true),
            [dom] => Command::Shutdown(dom, false),
            _ => Command::Usage(usage::SHUTDOWN),
        },
        "reboot" => match args {
            [] => Command::Usage(usage::NO_DOMAIN),
            ["-w", dom] | [dom, "-w"] => Command::RebootDomain(dom, true),
            [dom] => Command::RebootDomain(dom, false),
            _ => Command::Usage(usage::REBOOT),
        },
        "destroy" => one_dom(args, too_many, Command::Destroy, usage::DESTROY),
        "pause" => one_dom(args, too_many, Command::Pause, usage::PAUSE),
        "unpause" => one_dom(args, too_many, Command::Unpause, usage::UNPAUSE),
        "console" => one_dom(args, too_many, Command::Console, usage::CONSOLE),
        "mem-set" | "mem-max" => match (args, cmd) {
            ([dom, mem], "mem-set") => Command::MemSet(dom, mem),
            ([dom, mem], _) => Command::MemMax(dom, mem),
            (_, "mem-set") => Command::Usage(usage::MEM_SET),
            _ => Command::Usage(usage::MEM_MAX),
        },
        "domid" => one_dom(args, too_many, Command::Domid, usage::DOMID),
        "domname" => one_dom(args, too_many, Command::Domname, usage::DOMNAME),
        "rename" => match args {
            [dom, name] => Command::Rename(dom, name),
            _ => Command::Usage(usage::RENAME),
        },
        "xenstore-ls" => match args {
            [] => Command::XenstoreLs("/"),
            [path] => Command::XenstoreLs(path),
            _ => Command::Usage("usage: xenstore-ls [PATH]"),
        },
        "xenstore-read" => match args {
            [path] => Command::XenstoreRead(path),
            _ => Command::Usage("usage: xenstore-read PATH"),
        },
        "xenstore-rm" => match args {
            [path] => Command::XenstoreRm(path),
            _ => Command::Usage("usage: xenstore-rm PATH"),
        },
        "xenstore-write" => match args {
            [path, _, ..] => Command::XenstoreWrite(path, value_after(line, path)),
            _ => Command::Usage("usage: xenstore-write PATH VALUE"),
        },
        "xenstore-watch" => parse_watch(args),
        "create" => parse_create(line),
        "sched-credit" => parse_sched_credit(args.iter().copied()).map_or(Command::Usage(SCHED_CREDIT_USAGE), Command::SchedCredit),
        "block-attach" => match args {
            [dom, _, ..] => Command::BlockAttach(dom, rest_after(rest_after(line, "block-attach"), dom)),
            _ => Command::Usage(usage::BLOCK_ATTACH),
        },
        "block-detach" => match args {
            ["-f", dom, vdev] | ["--force", dom, vdev] => Command::BlockDetach { dom, vdev, force: true },
            [dom, vdev] => Command::BlockDetach { dom, vdev, force: false },
            _ => Command::Usage(usage::BLOCK_DETACH),
        },
        "block-list" => match args {
            [] => Command::Usage(usage::BLOCK_LIST),
            _ => Command::BlockList(rest_after(line, "block-list")),
        },
        "network-attach" => match args {
            [dom, ..] => Command::NetworkAttach(dom, rest_after(rest_after(line, "network-attach"), dom)),
            _ => Command::Usage(usage::NETWORK_ATTACH),
        },
        "network-detach" => match args {
            [dom, dev] => Command::NetworkDetach { dom, dev },
            _ => Command::Usage(usage::NETWORK_DETACH),
        },
        "network-list" => match args {
            [] => Command::Usage(usage::NETWORK_LIST),
            _ => Command::NetworkList(rest_after(line, "network-list")),
        },
        "netsend" => parse_netsend(args).unwrap_or(Command::Usage(usage::NETSEND)),
        "ls" => Command::Ls,
        "cat" => one_dom(args, too_many, Command::Cat, usage::CAT),
        "rm" => one_dom(args, too_many, Command::Rm, usage::RM),
        "echo" => parse_echo(line),
        other => Command::Unknown(other),
    }
}

fn parse_list<'a>(args: &[&'a str], too_many: bool) -> Command<'a> {
    let long = args.first().is_some_and(|a| *a == "-l" || *a == "--long");
    let rest = if long { &args[1..] } else { args };
    match rest {
        [] => Command::List { long, dom: None },
        [dom] if !too_many && !dom.starts_with('-') => Command::List { long, dom: Some(dom) },
        _ => Command::Usage(usage::LIST),
    }
}

fn parse_uptime<'a>(args: &[&'a str]) -> Command<'a> {
    let short = args.first() == Some(&"-s");
    match if short { &args[1..] } else { args } {
        [] => Command::Uptime { short, dom: None },
        [dom] if !dom.starts_with('-') => Command::Uptime { short, dom: Some(dom) },
        _ => Command::Usage(usage::UPTIME),
    }
}

fn parse_watch<'a>(args: &[&'a str]) -> Command<'a> {
    match args {
        [path] => Command::XenstoreWatch { count: 1, path },
        ["-n", n, path] => match n.parse::<u32>() {
            Ok(count @ 1..=MAX_WATCH_EVENTS) => Command::XenstoreWatch { count, path },
            _ => Command::Usage(usage::WATCH),
        },
        _ => Command::Usage(usage::WATCH),
    }
}

/// The words of `line` as a POSIX shell splits them (xl's arguments come
/// through one): whitespace separates words outside quotes; `'...'` is
/// literal; in `"..."` a backslash escapes `"` and `\\` only; outside
/// quotes a backslash escapes the next character. The quotes themselves
/// go, so `create web.cfg 'extra="net bench=x"'` passes
/// `extra="net bench=x"` to the config, as from bash. An unterminated
/// quote is an error.
pub fn sh_words(line: &str) -> Result<Vec<String>, &'static str> {
    let (mut words, mut word, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_ascii_whitespace() => {
                if core::mem::take(&mut in_word) {
                    words.push(core::mem::take(&mut word));
                }
                continue;
            }
            '\'' => loop {
                match chars.next().ok_or("unterminated quote")? {
                    '\'' => break,
                    c => word.push(c),
                }
            },
            '"' => loop {
                match chars.next().ok_or("unterminated quote")? {
                    '"' => break,
                    '\\' => match chars.next().ok_or("unterminated quote")? {
                        c @ ('"' | '\\') => word.push(c),
                        c => {
                            word.push('\\');
                            word.push(c);
                        }
                    },
                    c => word.push(c),
                }
            },
            '\\' => word.push(chars.next().unwrap_or('\\')),
            c => word.push(c),
        }
        in_word = true;
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `netsend IP[:PORT] MIB`'s words.
fn parse_netsend<'a>(args: &[&'a str]) -> Option<Command<'a>> {
    let [to, mib] = args else { return None };
    let (ip, port) = to.split_once(':').unwrap_or((to, "5001"));
    let port = port.parse().ok().filter(|p| *p != 0)?;
    Some(Command::NetSend { ip: frontend_drivers::netfront::parse_ipv4(ip)?, port, mib: mib.parse().ok()? })
}

/// `create [-c] REST`; `-c` may also come after the file, as xl allows
/// (a word of its own as sh splits it: not inside a quoted value).
fn parse_create(line: &str) -> Command<'_> {
    let rest = rest_after(line, "create");
    let console = sh_words(rest).is_ok_and(|w| w.iter().any(|w| w == "-c"));
    let rest = rest.strip_prefix("-c").map_or(rest, str::trim_start);
    Command::Create { console, rest }
}

/// `echo TEXT > FILE` or `echo TEXT >> FILE`: the last `>` splits.
fn parse_echo(line: &str) -> Command<'_> {
    let rest = rest_after(line, "echo");
    let Some(at) = rest.rfind('>') else { return Command::Usage(usage::ECHO) };
    let append = at > 0 && rest.as_bytes()[at - 1] == b'>';
    let text = rest[..if append { at - 1 } else { at }].trim();
    let file = rest[at + 1..].trim();
    if file.is_empty() || file.contains(char::is_whitespace) {
        return Command::Usage(usage::ECHO);
    }
    Command::Echo { text: unquote(text), file, append }
}

/// Strip one pair of matching outer quotes, as a shell would.
fn unquote(text: &str) -> &str {
    for q in ['\'', '"'] {
        if let Some(inner) = text.strip_prefix(q).and_then(|t| t.strip_suffix(q)) {
            return inner;
        }
    }
    text
}

/// xl's `parse_mem_size_kb` (xl_parse.c): a decimal number with an
/// optional one-letter suffix b, k, m (the default), g or t; KiB, or
/// `None` for anything else.
pub fn parse_mem_size_kb(mem: &str) -> Option<u64> {
    let split = mem.find(|c: char| !c.is_ascii_digit()).unwrap_or(mem.len());
    let (digits, suffix) = mem.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let shift = |n: u64, by: u32| n.checked_mul(1u64 << by);
    match suffix.to_ascii_lowercase().as_str() {
        "t" => shift(n, 30),
        "g" => shift(n, 20),
        "" | "m" => shift(n, 10),
        "k" => Some(n),
        "b" => Some(n >> 10),
        _ => None,
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
pub const HELP: &str = "\
Domains (DOMAIN is a domid or a name; a leading `xl` is optional):
  create [-c] FILE [KEY=VALUE ...]  build a domain from an xl config (-c: then its console)
  create [ARGS]                     start the demo guest with ARGS on its command line
  list [-l] [DOMAIN]                domains (-l: their configs as JSON)
  shutdown [-w] DOMAIN | reboot [-w] DOMAIN  ask a guest through control/shutdown (-w: wait)
  destroy | pause | unpause DOMAIN
  block-attach DOMAIN DISKSPEC      attach a disk (xl-disk-configuration, e.g. 'vdev=xvdb, access=ro, target=/dev/vda')
  block-detach [-f] DOMAIN VDEV     detach it (-f: without waiting for the guest)
  block-list DOMAIN...              a domain's virtual block devices
  network-attach DOMAIN [OPTION]... attach a vif (xl-network-configuration, e.g. 'mac=00:16:3e:00:00:0b ip=10.0.2.11')
  network-detach DOMAIN DEVID|MAC   detach it
  network-list DOMAIN...            a domain's virtual network interfaces
  netsend IP[:PORT] MIB             dom0 sends MIB MiB of the test pattern over TCP (port 5001 unless told)
  console DOMAIN                    its console (Ctrl-] returns here)
  mem-set DOMAIN MEM | mem-max DOMAIN MEM
  vcpu-list [DOMAIN] | uptime [-s] [DOMAIN] | top | info | dmesg [-c] | version
  domid NAME | domname DOMID | rename DOMAIN NEW-NAME
  sched-credit [-d DOMAIN [-w WEIGHT] [-c CAP]]
Tracing (Xen's trace buffers, as xentrace):
  trace start [-e MASK] [-c CPUMASK] [-s PAGES]  set the size (pages per CPU), event mask (default 0x0ffff000), CPUs (default all); enable
  trace wait SECONDS                keep collecting records (guests keep being served)
  trace stop | trace dump           disable (and collect the rest) | print the records, framed, in xentrace's format
Xenstore:
  xenstore-ls [PATH] | xenstore-read PATH | xenstore-write PATH VALUE | xenstore-rm PATH
  xenstore-watch [-n COUNT] PATH
Files (configs; the boot module's files are read-only):
  ls | cat FILE | echo TEXT > FILE | echo TEXT >> FILE | rm FILE
Host: poweroff (dom0 and every domain) | help";

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn commands_parse_with_or_without_xl() {
        assert_eq!(parse("xl list"), Command::List { long: false, dom: None });
        assert_eq!(parse("  list  "), Command::List { long: false, dom: None });
        assert_eq!(parse("list -l web"), Command::List { long: true, dom: Some("web") });
        assert_eq!(parse("list -x"), Command::Usage(usage::LIST));
        assert_eq!(parse("info"), Command::Info);
        assert_eq!(parse(""), Command::Nothing);
        assert_eq!(parse("xl"), Command::Nothing);
        assert_eq!(parse("frob 1"), Command::Unknown("frob"));
        assert_eq!(parse("poweroff"), Command::Poweroff);
        assert_eq!(parse("shutdown"), Command::Usage(usage::NO_DOMAIN), "never the host by accident");
        assert_eq!(parse("reboot"), Command::Usage(usage::NO_DOMAIN));
    }

    #[test]
    fn block_commands_parse_as_xl_block_attach_detach_list() {
        assert_eq!(
            parse("block-attach web vdev=xvdb, access=ro, target=/dev/vda"),
            Command::BlockAttach("web", "vdev=xvdb, access=ro, target=/dev/vda")
        );
        assert_eq!(parse("xl block-attach 2 /dev/vda xvdb r"), Command::BlockAttach("2", "/dev/vda xvdb r"));
        assert_eq!(parse("block-attach 2"), Command::Usage(usage::BLOCK_ATTACH));
        assert_eq!(parse("block-detach 2 xvdb"), Command::BlockDetach { dom: "2", vdev: "xvdb", force: false });
        assert_eq!(parse("block-detach -f 2 51728"), Command::BlockDetach { dom: "2", vdev: "51728", force: true });
        assert_eq!(parse("block-detach 2"), Command::Usage(usage::BLOCK_DETACH));
        assert_eq!(parse("block-list 1 web"), Command::BlockList("1 web"));
        assert_eq!(parse("block-list"), Command::Usage(usage::BLOCK_LIST));
    }

    #[test]
    fn network_commands_parse_as_xl_network_attach_detach_list() {
        assert_eq!(
            parse("network-attach web mac=00:16:3e:00:00:01 ip=10.0.2.30"),
            Command::NetworkAttach("web", "mac=00:16:3e:00:00:01 ip=10.0.2.30")
        );
        assert_eq!(parse("xl network-attach 2"), Command::NetworkAttach("2", ""), "xl takes a vif of defaults");
        assert_eq!(parse("network-attach"), Command::Usage(usage::NETWORK_ATTACH));
        assert_eq!(parse("network-detach 2 1"), Command::NetworkDetach { dom: "2", dev: "1" });
        assert_eq!(parse("network-detach 2 00:16:3e:00:00:01"), Command::NetworkDetach { dom: "2", dev: "00:16:3e:00:00:01" });
        assert_eq!(parse("network-detach 2"), Command::Usage(usage::NETWORK_DETACH));
        assert_eq!(parse("network-list 1 web"), Command::NetworkList("1 web"));
        assert_eq!(parse("network-list"), Command::Usage(usage::NETWORK_LIST));
        let w = |l: &str| sh_words(l).map(|v| v.join("|"));
        assert_eq!(w("web.cfg 'extra=\"net bench=x\"' memory=8").as_deref(), Ok("web.cfg|extra=\"net bench=x\"|memory=8"));
        assert_eq!(w("  a\\ b \"c \\\" d\"  ''  ").as_deref(), Ok("a b|c \" d|"));
        assert_eq!(w("name=\"web2\"").as_deref(), Ok("name=web2"), "bash strips the quotes of name=\"web2\"");
        assert_eq!(w("a 'b"), Err("unterminated quote"));
        assert!(matches!(parse("create x.cfg 'extra=\" -c \"'"), Command::Create { console: false, .. }), "-c inside a value is no option");
        assert!(matches!(parse("create x.cfg -c"), Command::Create { console: true, .. }));
        assert_eq!(w("a \"b\\"), Err("unterminated quote"));
        assert_eq!(parse("netsend 10.0.2.2:7001 32"), Command::NetSend { ip: [10, 0, 2, 2], port: 7001, mib: 32 });
        assert_eq!(parse("netsend 10.0.2.11 1"), Command::NetSend { ip: [10, 0, 2, 11], port: 5001, mib: 1 });
        for bad in
            ["netsend 10.0.2.2", "netsend 10.0.2:1 1", "netsend 10.0.2.2:0 1", "netsend 10.0.2.2:70000 1", "netsend 10.0.2.2 x", "netsend a b c"]
        {
            assert_eq!(parse(bad), Command::Usage(usage::NETSEND), "{bad}");
        }
    }

    #[test]
    fn shutdown_and_reboot_with_a_domain_ask_the_guest_and_without_act_on_the_host() {
        assert_eq!(parse("xl shutdown 3"), Command::Shutdown("3", false));
        assert_eq!(parse("shutdown -w web"), Command::Shutdown("web", true));
        assert_eq!(parse("reboot web"), Command::RebootDomain("web", false));
        assert_eq!(parse("reboot -w web"), Command::RebootDomain("web", true));
        assert_eq!(parse("shutdown 1 2"), Command::Usage(usage::SHUTDOWN));
        assert_eq!(parse("reboot 1 2"), Command::Usage(usage::REBOOT));
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
    fn xenstore_watch_is_bounded() {
        assert_eq!(parse("xenstore-watch /a"), Command::XenstoreWatch { count: 1, path: "/a" });
        assert_eq!(parse("xenstore-watch -n 3 /a"), Command::XenstoreWatch { count: 3, path: "/a" });
        assert_eq!(parse("xenstore-watch -n 0 /a"), Command::Usage(usage::WATCH));
        assert_eq!(parse("xenstore-watch -n 101 /a"), Command::Usage(usage::WATCH), "never unbounded");
        assert_eq!(parse("xenstore-watch"), Command::Usage(usage::WATCH));
    }

    #[test]
    fn domain_commands_take_a_domid_or_a_name() {
        assert_eq!(parse("create"), Command::Create { console: false, rest: "" });
        assert_eq!(parse("xl create spin quiet"), Command::Create { console: false, rest: "spin quiet" });
        assert_eq!(parse("create -c demo.cfg memory=8"), Command::Create { console: true, rest: "demo.cfg memory=8" });
        assert_eq!(parse("create demo.cfg -c"), Command::Create { console: true, rest: "demo.cfg -c" });
        assert_eq!(parse("destroy 3"), Command::Destroy("3"));
        assert_eq!(parse("xl pause web"), Command::Pause("web"));
        assert_eq!(parse("unpause 1"), Command::Unpause("1"));
        assert_eq!(parse("console 2"), Command::Console("2"));
        assert_eq!(parse("destroy"), Command::Usage(usage::DESTROY));
        assert_eq!(parse("unpause 1 2"), Command::Usage(usage::UNPAUSE));
        assert_eq!(parse("mem-set 1 64m"), Command::MemSet("1", "64m"));
        assert_eq!(parse("mem-max 1"), Command::Usage(usage::MEM_MAX));
        assert_eq!(parse("rename 1 web"), Command::Rename("1", "web"));
        assert_eq!(parse("domid web"), Command::Domid("web"));
        assert_eq!(parse("domname 1"), Command::Domname("1"));
        assert_eq!(parse("uptime -s"), Command::Uptime { short: true, dom: None });
        assert_eq!(parse("dmesg -c"), Command::Dmesg { clear: true });
        assert_eq!(parse("vcpu-list 0"), Command::VcpuList(Some("0")));
    }

    #[test]
    fn trace_subcommands_parse_or_give_their_usage() {
        use crate::xltrace::{TraceCmd, USAGE};
        assert_eq!(parse("xl trace start -s 64"), Command::Trace(TraceCmd::Start { evt_mask: 0x0fff_f000, cpu_mask: u64::MAX, pages: Some(64) }));
        assert_eq!(parse("trace wait 3"), Command::Trace(TraceCmd::Wait { seconds: 3 }));
        assert_eq!(parse("trace stop"), Command::Trace(TraceCmd::Stop));
        assert_eq!(parse("trace dump"), Command::Trace(TraceCmd::Dump));
        assert_eq!(parse("trace"), Command::Usage(USAGE));
        assert_eq!(parse("trace start -e 1 -s 2 -e 3 -s 4 -e"), Command::Usage(USAGE));
    }

    #[test]
    fn file_commands_parse_echo_redirections() {
        assert_eq!(parse("echo name = 'web' > web.cfg"), Command::Echo { text: "name = 'web'", file: "web.cfg", append: false });
        assert_eq!(parse("echo 'memory = 8' >> web.cfg"), Command::Echo { text: "memory = 8", file: "web.cfg", append: true });
        assert_eq!(parse("echo hello"), Command::Usage(usage::ECHO));
        assert_eq!(parse("echo x > a b"), Command::Usage(usage::ECHO));
        assert_eq!(parse("echo x >"), Command::Usage(usage::ECHO));
        assert_eq!(parse("cat demo.cfg"), Command::Cat("demo.cfg"));
        assert_eq!(parse("ls"), Command::Ls);
        assert_eq!(parse("rm a.cfg"), Command::Rm("a.cfg"));
    }

    #[test]
    fn mem_sizes_parse_as_xl_parse_mem_size_kb() {
        // xl_parse.c: no suffix means MiB; b, k, m, g, t; anything else -1.
        assert_eq!(parse_mem_size_kb("64"), Some(64 * 1024));
        assert_eq!(parse_mem_size_kb("64m"), Some(64 * 1024));
        assert_eq!(parse_mem_size_kb("2G"), Some(2 * 1024 * 1024));
        assert_eq!(parse_mem_size_kb("512k"), Some(512));
        assert_eq!(parse_mem_size_kb("4096b"), Some(4));
        assert_eq!(parse_mem_size_kb("1t"), Some(1 << 30));
        assert_eq!(parse_mem_size_kb("12mb"), None);
        assert_eq!(parse_mem_size_kb("x"), None);
        assert_eq!(parse_mem_size_kb(""), None);
        assert_eq!(parse_mem_size_kb("99999999999999999999"), None, "overflow is an error, not a wrap");
        assert_eq!(parse_mem_size_kb("9999999999999t"), None);
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
}
