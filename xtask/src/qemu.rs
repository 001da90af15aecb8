//! Booting an ISO in QEMU: serial on stdio, `isa-debug-exit` for the exit
//! code, a pinned Intel CPU model, a timeout so a hung guest fails instead
//! of hanging, optional scripted console input, and the boot-time figure.

use crate::image;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// QEMU's exit status when the guest wrote the success value (0x10) to
/// `isa-debug-exit`: `(0x10 << 1) | 1`.
pub const EXIT_SUCCESS: i32 = 33;
/// QEMU's exit status for the failure value (0x11).
pub const EXIT_FAILURE: i32 = 35;

/// How to run QEMU.
#[derive(Clone, Debug)]
pub struct Options {
    /// `-cpu` model.
    pub cpu: String,
    /// `-smp`.
    pub smp: u32,
    /// `-m`, in MiB.
    pub mem_mib: u32,
    /// Kill QEMU after this long.
    pub timeout: Option<Duration>,
    /// Console input, one line per prompt. A line starting with `@` is
    /// sent (without the `@`) once the console has been quiet for a
    /// second, prompt or not (input for a guest's console); `^]` in a
    /// line is sent as the byte Ctrl-] (leaves `xl console`). A line
    /// `?TEXT` waits until TEXT has appeared since the last line sent (a
    /// guest done with slow work), then sends an empty line (a prompt);
    /// `?*TEXT` waits until TEXT has appeared at all.
    pub script: Vec<String>,
    /// Copy serial output to our stdout as it arrives.
    pub echo: bool,
    /// Forward our stdin to the console (when there is no script).
    pub interactive: bool,
    /// Stop QEMU as soon as a complete serial line contains one of these
    /// (real Xen halts without leaving QEMU).
    pub stop_on: Vec<String>,
    /// More QEMU arguments (e.g. `-d cpu_reset -D FILE`).
    pub extra: Vec<String>,
    /// A virtio-net NIC on QEMU's user network, with a host port forward.
    pub net: Option<NetOpts>,
    /// Texts whose first complete serial line is timed
    /// ([`Outcome::watched`]): boot milestones.
    pub watch: Vec<String>,
}

/// QEMU's user networking (slirp: 10.0.2.0/24, the host's gateway at
/// 10.0.2.2) with one TCP port of the host's loopback forwarded to a
/// guest, and an optional HTTP probe of it from the host.
#[derive(Clone, Debug)]
pub struct NetOpts {
    /// The host's port on 127.0.0.1 (see [`free_host_port`]).
    pub host_port: u16,
    /// The guest address it forwards to (e.g. `10.0.2.11`).
    pub guest_ip: String,
    /// The guest port it forwards to.
    pub guest_port: u16,
    /// When a serial line contains this, fetch [`NetOpts::probe_path`]
    /// over the forward and add `[host] ...` lines to the output.
    pub probe_on: Option<String>,
    /// The path the probe asks for (e.g. `/`).
    pub probe_path: String,
}

/// Lines after which Xen 4.17 stops doing anything useful: dom0 halted
/// (QEMU keeps running) or crashed (Xen reboots after 5 s).
pub const XEN_STOP_LINES: &[&str] = &["Hardware Dom0 halted", "Hardware Dom0 crashed", "Hardware Dom0 shutdown"];

impl Default for Options {
    fn default() -> Self {
        Options {
            cpu: "Haswell-noTSX".into(),
            smp: 1,
            mem_mib: 256,
            timeout: Some(Duration::from_secs(60)),
            script: Vec::new(),
            echo: false,
            interactive: false,
            stop_on: Vec::new(),
            extra: Vec::new(),
            net: None,
            watch: Vec::new(),
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status, if it exited by itself.
    pub exit: Option<i32>,
    /// Whether we killed it at the timeout.
    pub timed_out: bool,
    /// Everything the serial port printed, `\r` removed.
    pub output: String,
    /// From spawning QEMU to the first hypervisor line on serial.
    pub first_line_after: Option<Duration>,
    /// From the hypervisor's first serial line to dom0's first line (the
    /// hand-over from GRUB is a few instructions before the former; GRUB
    /// itself cannot print on the serial port here without slowing the
    /// boot by seconds).
    pub handover_to_dom0: Option<Duration>,
    /// The `stop_on` line that ended the run, if any.
    pub stopped_on: Option<String>,
    /// For each of [`Options::watch`], when (since QEMU was spawned) a
    /// complete serial line first contained it.
    pub watched: Vec<Option<Duration>>,
    /// From spawning QEMU to the end of the run (exit, stop or timeout).
    pub ended_after: Option<Duration>,
}

/// The start of dom0's first line (the same dom0 on both hypervisors).
const DOM0_FIRST: &str = "dom0: dom0-tools";

/// The QEMU command line shared by every run.
pub(crate) fn command(iso: &Path, o: &Options) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none"]);
    c.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    c.args(["-cpu", &o.cpu, "-smp", &o.smp.to_string(), "-m", &o.mem_mib.to_string()]);
    c.arg("-cdrom").arg(iso).args(["-boot", "d"]);
    c.args(&o.extra);
    if let Some(n) = &o.net {
        c.args(net_args(n));
    }
    c
}

/// QEMU arguments for [`NetOpts`]: a user-mode network with the forward,
/// and a virtio-net PCI NIC on it (transitional, the next free slot after
/// any disk; no option ROM: nothing boots from it). `-nic none` (in every command line) only drops QEMU's
/// default NIC.
pub fn net_args(n: &NetOpts) -> Vec<String> {
    vec![
        "-netdev".into(),
        format!("user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:{}-{}:{}", n.host_port, n.guest_ip, n.guest_port),
        "-device".into(),
        "virtio-net-pci,netdev=n0,romfile=".into(),
    ]
}

/// A TCP port of 127.0.0.1 free now (bound and released; QEMU binds it
/// right after, a small race any other user of the port could win).
pub fn free_host_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free host port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The two `[host]` lines of an HTTP/1.0 response: its status line and
/// the first line of its body; `None` for an empty response (nothing
/// answered behind the forward yet).
pub fn probe_lines(path: &str, response: &[u8]) -> Option<[String; 2]> {
    let text = String::from_utf8_lossy(response);
    let status = text.lines().next().filter(|l| !l.trim().is_empty())?.trim_end().to_string();
    let body = text.split_once("\r\n\r\n").or_else(|| text.split_once("\n\n")).map_or("", |(_, b)| b);
    let first = body.lines().next().unwrap_or("").trim_end();
    Some([format!("[host] GET {path} -> {status}"), format!("[host] body: {first}")])
}

/// `GET path HTTP/1.0` to 127.0.0.1:port, a few tries a second apart
/// (slirp accepts the host's connection before the guest does, and
/// closes it empty while nothing listens): the `[host]` lines to add.
pub fn http_probe(port: u16, path: &str) -> Vec<String> {
    const TRIES: u32 = 5;
    let mut why = String::new();
    for attempt in 0..TRIES {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(1));
        }
        match http_get(port, path) {
            Ok(resp) => match probe_lines(path, &resp) {
                Some(lines) => return lines.to_vec(),
                None => why = "empty response".into(),
            },
            Err(e) => why = e,
        }
    }
    vec![format!("[host] GET {path} failed: {why} ({TRIES} tries)")]
}

fn http_get(port: u16, path: &str) -> Result<Vec<u8>, String> {
    use std::net::{SocketAddr, TcpStream};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(2))).map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut resp = Vec::new();
    // An HTTP/1.0 server closes after the response; a timeout keeps what came.
    match s.take(1 << 20).read_to_end(&mut resp) {
        Ok(_) => Ok(resp),
        Err(_) if !resp.is_empty() => Ok(resp),
        Err(e) => Err(format!("receive: {e}")),
    }
}

/// QEMU arguments attaching the raw image `file` as a virtio-blk PCI disk
/// (transitional, 00:04.0 on the default machine). `cache=writeback`:
/// QEMU's default, spelled out: a completed write is in the host's page
/// cache (any reader of the file sees it, even after QEMU is killed), and
/// the guest's VIRTIO_BLK_T_FLUSH, offered because the cache is
/// write-back, becomes an fdatasync of the file (`cache=unsafe` would
/// drop flushes, `none`/`directsync` bypass the page cache).
pub fn disk_args(file: &Path) -> Vec<String> {
    // QEMU's option syntax doubles a comma inside a value.
    let file = file.display().to_string().replace(',', ",,");
    vec!["-drive".into(), format!("file={file},format=raw,if=none,id=disk0,cache=writeback"), "-device".into(), "virtio-blk-pci,drive=disk0".into()]
}

/// Create `path` afresh: a sparse image of `mib` MiB for `disk_args`
/// (dom0's virtio disk), with `vdisk::HOST_BYTES` of the host's pattern
/// from `vdisk::TEST_BYTES` on if `host_fill` (what `test=disk` checks).
pub fn make_disk_image(path: &Path, mib: u64, host_fill: bool) -> Result<(), String> {
    use dom0_tools::vdisk::{HOST_BYTES, HOST_SEED, TEST_BYTES, fill_pattern};
    use std::io::{Seek, SeekFrom};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.set_len(mib << 20).map_err(|e| e.to_string())?;
    if host_fill {
        let mut buf = vec![0u8; HOST_BYTES as usize];
        fill_pattern(HOST_SEED, TEST_BYTES, &mut buf);
        f.seek(SeekFrom::Start(TEST_BYTES)).and_then(|_| f.write_all(&buf)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Whether a serial line comes from the hypervisor (ours or Xen's), rather
/// than from firmware or the boot loader.
fn is_hypervisor_line(line: &str) -> bool {
    line.contains("(XEN)") || line.contains("xen-core")
}

/// Boot `iso` and collect its serial output.
pub fn boot(iso: &Path, o: &Options) -> Result<Outcome, String> {
    let mut child = command(iso, o)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-x86_64: {e}"))?;
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdin = child.stdin.take();
    let quit = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A terminal goes to raw-ish mode (no echo, no line editing: dom0's
    // shell echoes and edits) and comes back when `_terminal` drops.
    let mut _terminal = None;
    if o.interactive
        && o.script.is_empty()
        && let Some(qemu_in) = stdin.take()
    {
        _terminal = RawTerminal::enter();
        let quit = quit.clone();
        std::thread::spawn(move || forward_stdin(qemu_in, &quit));
    }

    let mut out = Vec::new();
    let mut first_line_after = None;
    let (mut handover_at, mut dom0_at) = (None, None);
    let mut last_data = Instant::now();
    let mut script = o.script.iter().peekable();
    // Where the output stood when the script last sent a line.
    let mut sent_at = 0;
    let mut timed_out = false;
    let mut stopped_on = None;
    let mut scanned = 0;
    let mut watched: Vec<Option<Duration>> = vec![None; o.watch.len()];
    // The host's HTTP probe: started once, its lines added at a line end.
    let (probe_tx, probe_rx) = mpsc::channel::<Vec<String>>();
    let (mut probe_started, mut probe_pending) = (false, false);
    let mut host_lines: Vec<String> = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => {
                if o.echo {
                    let mut so = std::io::stdout();
                    let _ = so.write_all(&chunk);
                    let _ = so.flush();
                }
                out.extend_from_slice(&chunk);
                last_data = Instant::now();
                // Look only at lines completed by this chunk: a long run's
                // output is scanned once, not once per chunk.
                let end = out.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let text = String::from_utf8_lossy(&out[scanned.min(end)..end]).into_owned();
                scanned = end;
                for line in text.lines() {
                    if first_line_after.is_none() && is_hypervisor_line(line) {
                        first_line_after = Some(start.elapsed());
                        handover_at = Some(Instant::now());
                    }
                    if dom0_at.is_none() && line.contains(DOM0_FIRST) {
                        dom0_at = Some(Instant::now());
                    }
                    for (w, seen) in o.watch.iter().zip(watched.iter_mut()) {
                        if seen.is_none() && line.contains(w.as_str()) {
                            *seen = Some(start.elapsed());
                        }
                    }
                    if stopped_on.is_none() && o.stop_on.iter().any(|s| line.contains(s.as_str())) {
                        stopped_on = Some(line.to_string());
                    }
                    if let Some(n) = o.net.as_ref().filter(|n| !probe_started && n.probe_on.as_ref().is_some_and(|p| line.contains(p.as_str()))) {
                        (probe_started, probe_pending) = (true, true);
                        let (port, path, tx) = (n.host_port, n.probe_path.clone(), probe_tx.clone());
                        std::thread::spawn(move || tx.send(http_probe(port, &path)));
                    }
                }
                if stopped_on.is_some() {
                    let _ = child.kill();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        for lines in probe_rx.try_iter() {
            host_lines.extend(lines);
            probe_pending = false;
        }
        if !host_lines.is_empty() && (out.is_empty() || out.last() == Some(&b'\n')) {
            add_host_lines(&mut out, &mut host_lines, o.echo);
            scanned = out.len();
        }
        if o.timeout.is_some_and(|t| start.elapsed() > t) {
            let _ = child.kill();
            timed_out = true;
            break;
        }
        if quit.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = child.kill();
            stopped_on = Some("Ctrl-A x".into());
            break;
        }
        let at_prompt = !out.is_empty() && out.last() != Some(&b'\n');
        let quiet = last_data.elapsed();
        let ready = |line: &str| match line.as_bytes().first() {
            Some(b'@') => quiet > Duration::from_secs(1),
            // `?TEXT`: TEXT since the last line sent; `?*TEXT`: anywhere so
            // far (for waits on guests whose order varies).
            Some(b'?') => match line[1..].strip_prefix('*') {
                Some(text) => String::from_utf8_lossy(&out).contains(text),
                None => String::from_utf8_lossy(&out[sent_at.min(out.len())..]).contains(&line[1..]),
            },
            _ => at_prompt && quiet > Duration::from_millis(300),
        };
        if script.peek().is_some_and(|l| ready(l))
            && let (Some(line), Some(si)) = (script.next(), stdin.as_mut())
        {
            let text = if line.starts_with('?') { String::new() } else { line.strip_prefix('@').unwrap_or(line).replace("^]", "\x1d") };
            let _ = si.write_all(format!("{text}\n").as_bytes());
            let _ = si.flush();
            last_data = Instant::now();
            sent_at = out.len();
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let ended_after = Some(start.elapsed());
    // A probe still under way when QEMU left: its lines, bounded.
    if probe_pending {
        host_lines.extend(probe_rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default());
    }
    if !host_lines.is_empty() {
        if out.last().is_some_and(|&b| b != b'\n') {
            out.push(b'\n');
        }
        add_host_lines(&mut out, &mut host_lines, o.echo);
    }
    let qemu_err = err_thread.join().unwrap_or_default();
    let mut output = String::from_utf8_lossy(&out).replace('\r', "");
    if !qemu_err.trim().is_empty() {
        output.push_str("\n[qemu stderr]\n");
        output.push_str(&qemu_err);
    }
    let exit = if timed_out || stopped_on.is_some() { None } else { status.code() };
    let handover_to_dom0 = handover_at.zip(dom0_at).map(|(h, d)| d.saturating_duration_since(h));
    Ok(Outcome { exit, timed_out, output, first_line_after, handover_to_dom0, stopped_on, watched, ended_after })
}

/// Append `lines` (taken) to the serial output, echoed if asked.
fn add_host_lines(out: &mut Vec<u8>, lines: &mut Vec<String>, echo: bool) {
    for l in lines.drain(..) {
        let l = format!("{l}\n");
        if echo {
            let _ = std::io::stdout().write_all(l.as_bytes());
        }
        out.extend_from_slice(l.as_bytes());
    }
}

/// Copy our stdin to QEMU's until EOF; Ctrl-A x sets `quit` instead.
fn forward_stdin(mut qemu_in: std::process::ChildStdin, quit: &std::sync::atomic::AtomicBool) {
    let mut buf = [0u8; 256];
    let mut ours = std::io::stdin();
    let mut ctrl_a = false;
    while let Ok(n) = ours.read(&mut buf) {
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if ctrl_a && b == b'x' {
                quit.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            ctrl_a = b == 0x01;
        }
        if qemu_in.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// The terminal's settings while QEMU runs interactively: no local echo
/// and no line editing (dom0's shell does both, so a typed line shows
/// once), no signals (Ctrl-C goes to dom0; Ctrl-A x quits). Restored on
/// drop.
struct RawTerminal {
    saved: String,
}

impl RawTerminal {
    /// Enter the mode if stdin is a terminal (and `stty` works).
    fn enter() -> Option<RawTerminal> {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        let out = Command::new("stty").arg("-g").stdin(Stdio::inherit()).output().ok()?;
        let saved = String::from_utf8(out.stdout).ok()?.trim().to_string();
        let ok = Command::new("stty").args(["-icanon", "-echo", "-isig", "min", "1"]).stdin(Stdio::inherit()).status().ok()?.success();
        eprintln!("[xtask] console: type at the xl> prompt; Ctrl-A x quits QEMU");
        ok.then_some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = Command::new("stty").arg(&self.saved).stdin(Stdio::inherit()).status();
    }
}

/// The guest address `run --net` forwards the host's port to.
pub const RUN_GUEST_IP: &str = "10.0.2.11";

/// `cargo xtask run [options]`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Stop QEMU after SECS seconds (default: none).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Feed FILE's lines to the console, one per prompt.
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// QEMU CPU model.
    #[arg(long, value_name = "MODEL", default_value = "Haswell-noTSX")]
    pub cpu: String,
    /// Number of CPUs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub smp: u32,
    /// Memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub mem: u32,
    /// xen-core's command line.
    #[arg(long, value_name = "STR", default_value = "loglvl=all", allow_hyphen_values = true)]
    pub cmdline: String,
    /// dom0's command line (e.g. test=pagefault; empty means the default).
    #[arg(long = "dom0-cmdline", value_name = "STR", default_value = "guests=1", allow_hyphen_values = true)]
    pub dom0_cmdline: String,
    /// Boot the same dom0 on real Xen 4.17 instead (fetched from Debian).
    #[arg(long = "xen-4.17")]
    pub xen_417: bool,
    /// Attach FILE (a raw image) as a virtio-blk PCI disk, which dom0
    /// drives (e.g. `--dom0-cmdline test=disk` checks it, overwriting its
    /// first 4 MiB).
    #[arg(long, value_name = "FILE")]
    pub disk: Option<PathBuf>,
    /// Attach a virtio-net NIC (dom0's uplink) on QEMU's user network and
    /// forward a free port of the host's 127.0.0.1 to 10.0.2.11:80 (a
    /// guest's HTTP server); the port is printed.
    #[arg(long)]
    pub net: bool,
}

/// `cargo xtask run [options]`.
pub fn run_command(args: RunArgs) -> Result<(), String> {
    let mut o = Options {
        echo: true,
        interactive: true,
        timeout: args.timeout.map(Duration::from_secs),
        cpu: args.cpu,
        smp: args.smp,
        mem_mib: args.mem,
        ..Options::default()
    };
    if let Some(f) = &args.script {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        o.script = text.lines().map(String::from).collect();
    }
    if let Some(disk) = &args.disk {
        if !disk.is_file() {
            return Err(format!("--disk {}: no such file (create one, e.g. truncate -s 64M disk.img)", disk.display()));
        }
        o.extra.extend(disk_args(disk));
    }
    if args.net {
        let n = NetOpts { host_port: free_host_port()?, guest_ip: RUN_GUEST_IP.into(), guest_port: 80, probe_on: None, probe_path: "/".into() };
        eprintln!("[xtask] net: host port {} forwards to {}:{}", n.host_port, n.guest_ip, n.guest_port);
        o.net = Some(n);
    }
    let cmdline = args.cmdline;
    let on_xen = args.xen_417;
    // The default session: dom0's shell with one demo guest running.
    let dom0_args = if args.dom0_cmdline.is_empty() { "guests=1".to_string() } else { args.dom0_cmdline };
    let kernels = image::build(image::Profile::Release)?;
    let spec = if on_xen {
        o.stop_on = XEN_STOP_LINES.iter().map(|s| s.to_string()).collect();
        image::xen417_spec("xen-4.17", &kernels, &dom0_args)?
    } else {
        image::standard_spec("xen-core", &kernels, &cmdline, &dom0_args)
    };
    let iso = image::make_iso(&spec)?;
    eprintln!("[xtask] booting {} (cpu {}, {} CPU(s), {} MiB)", iso.display(), o.cpu, o.smp, o.mem_mib);
    let r = boot(&iso, &o)?;
    match r.first_line_after {
        Some(t) => {
            eprintln!("[xtask] boot time: {:.2} s from QEMU start to the hypervisor's first serial line", t.as_secs_f64());
            if let Some(h) = r.handover_to_dom0 {
                eprintln!("[xtask] boot time: {:.3} s from the hypervisor's first line to dom0's first line", h.as_secs_f64());
            }
        }
        None => eprintln!("[xtask] boot time: the hypervisor printed no line"),
    }
    if let Some(line) = &r.stopped_on {
        eprintln!("[xtask] stopped QEMU after Xen printed: {line}");
        return if line.contains("halted") || line.contains("rebooting") { Ok(()) } else { Err(line.clone()) };
    }
    match r.exit {
        Some(EXIT_SUCCESS) => Ok(()),
        _ if r.timed_out => Err(format!("stopped at the {} s timeout", o.timeout.map_or(0, |t| t.as_secs()))),
        Some(EXIT_FAILURE) => Err("the hypervisor reported a failure (QEMU exit 35)".into()),
        code => Err(format!("QEMU exited with {code:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_args_forward_the_host_port_to_the_guest_on_a_virtio_nic() {
        let n = NetOpts { host_port: 5555, guest_ip: "10.0.2.11".into(), guest_port: 80, probe_on: None, probe_path: "/".into() };
        assert_eq!(
            net_args(&n),
            ["-netdev", "user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:5555-10.0.2.11:80", "-device", "virtio-net-pci,netdev=n0,romfile="]
        );
    }

    #[test]
    fn probe_lines_take_the_status_line_and_the_first_body_line() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\ndomid 3\r\nuptime 5 s\r\n";
        assert_eq!(probe_lines("/", r), Some(["[host] GET / -> HTTP/1.0 200 OK".to_string(), "[host] body: domid 3".to_string()]));
        assert_eq!(
            probe_lines("/x", b"HTTP/1.0 404 Not Found\r\n"),
            Some(["[host] GET /x -> HTTP/1.0 404 Not Found".into(), "[host] body: ".into()])
        );
        assert_eq!(probe_lines("/", b""), None, "slirp's empty close: nothing listens yet");
    }

    #[test]
    fn probe_fetches_over_tcp_and_reports_status_and_body() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 256];
            let n = s.read(&mut req).unwrap();
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\ndomid 1\n");
            String::from_utf8_lossy(&req[..n]).into_owned()
        });
        assert_eq!(http_probe(port, "/status"), ["[host] GET /status -> HTTP/1.0 200 OK", "[host] body: domid 1"]);
        assert!(server.join().unwrap().starts_with("GET /status HTTP/1.0\r\n"));
    }

    #[test]
    fn probe_of_a_closed_port_reports_failure() {
        let port = free_host_port().unwrap();
        let lines = http_get(port, "/");
        assert!(lines.is_err());
    }
}
