//! `cargo xtask bench --instructions`: how many hypervisor instructions one
//! hypercall executes on xen-core, counted exactly.
//!
//! Dom0's benchmark loop runs under QEMU with its gdbstub; gdb stops at
//! xen-core's SYSCALL entry when RAX holds the hypercall number, then
//! single-steps until the CPU is back in the guest, counting the
//! instructions by function. Unlike cycle figures this depends neither on
//! the host's load nor on what TCG charges per instruction: the same build
//! gives the same count, so a change in a hot path shows to the
//! instruction. It needs gdb (installed with apt-get when missing).

use crate::image;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The paths counted: a name and the hypercall number RAX holds.
const PATHS: &[(&str, u64)] = &[("xen_version(XENVER_version)", 17), ("event_channel_op(EVTCHNOP_send)", 32)];

/// Hypercalls of that number let by before counting (dom0 is in its
/// benchmark loop by then), and how many are counted.
const SKIP: usize = 20;
const SAMPLES: usize = 3;

/// The gdb script: `{nr}`, `{skip}`, `{samples}` and `{port}` are filled in.
const SCRIPT: &str = r#"
import gdb, collections
gdb.execute("set pagination off")
gdb.execute("target remote 127.0.0.1:{port}")
gdb.execute("hbreak syscall_entry if $rax == {nr}")
for _ in range({skip}):
    gdb.execute("continue", to_string=True)
totals = []
by_fn = collections.Counter()
for _ in range({samples}):
    gdb.execute("continue", to_string=True)
    n = 0
    while n < 100000:
        pc = int(gdb.parse_and_eval("$pc"))
        if not (0xffff82d040000000 <= pc < 0xffff82d080000000):
            break
        sym = gdb.execute("info symbol %d" % pc, to_string=True).split(" in ")[0].split(" + ")[0].strip()
        by_fn[sym] += 1
        n += 1
        gdb.execute("stepi", to_string=True)
    totals.append(n)
print("PATHCOUNT TOTALS " + " ".join(str(t) for t in totals))
for name, n in by_fn.most_common(12):
    print("PATHCOUNT FN %.1f %s" % (n / len(totals), name))
gdb.execute("kill")
"#;

/// xen-core's command lines for `--instructions --trace-only` (issue 19):
/// tracing on with every class, into a buffer with room (256 pages per
/// CPU, far from full when counting starts) and into a full one (1 page,
/// which dom0's boot fills: every record is counted lost).
const TRACED: &[(&str, &str)] = &[("traced, buffer with room", "tbuf_size=256"), ("traced, buffer full", "tbuf_size=1")];

/// Count every path in [`PATHS`] and print the counts: untraced, or with
/// `traced` under each of [`TRACED`]'s command lines.
pub fn command(traced: bool) -> Result<(), String> {
    crate::env::ensure_system_tools()?;
    crate::env::ensure_packages(&[("gdb", "/usr/bin/gdb")])?;
    let k = image::build(image::Profile::Release)?;
    let modes: &[(&str, &str)] = if traced { TRACED } else { &[("untraced", "")] };
    for (mode, extra) in modes {
        let cmdline = format!("loglvl=warning dom0_mem=64M {extra}");
        let iso = image::make_iso(&image::standard_spec("bench-instructions", &k, cmdline.trim_end(), "test=bench"))?;
        for (name, nr) in PATHS {
            let (totals, by_fn) = count(&iso, &k.xen_core, *nr)?;
            let n = totals.iter().min().copied().unwrap_or(0);
            println!("{name} (hypercall {nr}, {mode}): {n} hypervisor instructions (samples: {totals:?})");
            for line in by_fn {
                println!("    {line}");
            }
        }
    }
    Ok(())
}

/// Run the bench ISO under gdb and count hypercall `nr`'s path.
fn count(iso: &Path, elf: &Path, nr: u64) -> Result<(Vec<u64>, Vec<String>), String> {
    let port = 1234 + (std::process::id() % 1000) as u16;
    let script = image::out_dir().join("pathcount.py");
    let text = SCRIPT.replace("{nr}", &nr.to_string()).replace("{skip}", &SKIP.to_string()).replace("{samples}", &SAMPLES.to_string());
    std::fs::write(&script, text.replace("{port}", &port.to_string())).map_err(|e| format!("{}: {e}", script.display()))?;
    let opts = crate::qemu::Options { extra: vec!["-S".into(), "-gdb".into(), format!("tcp:127.0.0.1:{port}")], ..Default::default() };
    let mut qemu = crate::qemu::command(iso, &opts)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("qemu: {e}"))?;
    std::thread::sleep(Duration::from_millis(500));
    let out = Command::new("timeout").args(["300", "gdb", "-batch", "-nx"]).arg(elf).arg("-x").arg(&script).output();
    let _ = qemu.kill();
    let _ = qemu.wait();
    let out = out.map_err(|e| format!("gdb: {e}"))?;
    parse(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("hypercall {nr}: gdb printed no count:\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// The totals line and the per-function lines of the script's output.
fn parse(out: &str) -> Option<(Vec<u64>, Vec<String>)> {
    let totals = out.lines().find_map(|l| l.strip_prefix("PATHCOUNT TOTALS "))?;
    let totals: Vec<u64> = totals.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    let by_fn = out.lines().filter_map(|l| l.strip_prefix("PATHCOUNT FN ")).map(str::to_string).collect();
    (!totals.is_empty()).then_some((totals, by_fn))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_scripts_totals_and_functions() {
        let out = "noise\nPATHCOUNT TOTALS 393 393 394\nPATHCOUNT FN 90.0 xen_core::schedule::resume\n";
        let (t, f) = super::parse(out).unwrap();
        assert_eq!(t, [393, 393, 394]);
        assert_eq!(f, ["90.0 xen_core::schedule::resume"]);
        assert!(super::parse("PATHCOUNT TOTALS \n").is_none());
        assert!(super::parse("nothing").is_none());
    }
}
