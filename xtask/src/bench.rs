//! `cargo xtask bench`: dom0's micro-benchmarks on xen-core and on Xen 4.17
//! under the same QEMU, in one run, reported as ratios (xen-core / Xen:
//! below 1.0 means xen-core is faster). Absolute cycles under TCG are noisy;
//! the ratio is the figure to read.

use crate::image;
use crate::qemu;
use std::collections::BTreeMap;
use std::time::Duration;

/// Parse `bench: <name> <value>` lines.
pub fn parse(output: &str) -> BTreeMap<String, f64> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.split("bench: ").nth(1)?;
            let mut w = rest.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// Xen's command line with its speculative-execution mitigations off
/// (XPTI, IBRS/IBPB, VERW...), which under TCG dominate its entry cost.
const XEN_NO_MITIGATIONS: &str = " xpti=false spec-ctrl=no pv-l1tf=false";

/// One benchmark boot: dom0's arguments, machine memory, time limit.
struct Run<'a> {
    dom0_args: &'a str,
    mem_mib: u32,
    timeout_s: u64,
}

/// The main benchmarks (hypercalls, events, grants, domains).
const MAIN: Run<'static> = Run { dom0_args: "test=bench", mem_mib: 256, timeout_s: 180 };
/// Domain density: minimal domains that fit at once in 1 GiB, building
/// for at most 150 s.
const DENSITY: Run<'static> = Run { dom0_args: "test=density budget=150", mem_mib: 1024, timeout_s: 300 };

fn run_on(hv: &str, k: &image::Kernels, run: &Run<'_>) -> Result<BTreeMap<String, f64>, String> {
    let name = format!("bench-{}", hv.replace(' ', "-"));
    let mut opts = qemu::Options { timeout: Some(Duration::from_secs(run.timeout_s)), mem_mib: run.mem_mib, ..Default::default() };
    let spec = if hv.starts_with("xen-4.17") {
        opts.stop_on = qemu::XEN_STOP_LINES.iter().map(|s| s.to_string()).collect();
        let extra = if hv.contains("no-mitigations") { XEN_NO_MITIGATIONS } else { "" };
        image::xen417_spec_with(&name, k, &format!("{}{extra}", crate::xen::XEN_CMDLINE), run.dom0_args)?
    } else {
        image::standard_spec(&name, k, "loglvl=warning dom0_mem=64M bench_floor", run.dom0_args)
    };
    let r = qemu::boot(&image::make_iso(&spec)?, &opts)?;
    let v = parse(&r.output);
    if v.is_empty() {
        return Err(format!("{hv}: no bench lines"));
    }
    Ok(v)
}

/// Seconds from the hypervisor's first serial line to dom0's first line,
/// in `runs` boots of the same dom0 (64 MiB) in 256 MiB, on `hv`.
fn boot_times(hv: &str, k: &image::Kernels, runs: usize) -> Result<Vec<f64>, String> {
    let mut times = Vec::new();
    for i in 0..runs {
        let name = format!("bench-boot-{hv}-{i}");
        let mut opts = qemu::Options { timeout: Some(Duration::from_secs(60)), mem_mib: 256, ..Default::default() };
        let spec = if hv == "xen-4.17" {
            opts.stop_on = qemu::XEN_STOP_LINES.iter().map(|s| s.to_string()).collect();
            image::xen417_spec_with(&name, k, crate::xen::XEN_CMDLINE, "test=banner")?
        } else {
            image::standard_spec(&name, k, "loglvl=warning dom0_mem=64M", "test=banner")
        };
        let r = qemu::boot(&image::make_iso(&spec)?, &opts)?;
        times.push(r.handover_to_dom0.ok_or_else(|| format!("{hv}: dom0 never printed"))?.as_secs_f64());
    }
    Ok(times)
}

/// The median of a few figures.
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// `cargo xtask bench`.
pub fn command(_args: &[String]) -> Result<(), String> {
    crate::env::ensure_system_tools()?;
    let k = image::build(image::Profile::Release)?;
    let (boot_ours, boot_xen) = (boot_times("xen-core", &k, 3)?, boot_times("xen-4.17", &k, 3)?);
    let mut ours = run_on("xen-core", &k, &MAIN)?;
    let mut xen = run_on("xen-4.17", &k, &MAIN)?;
    let xen_nm = run_on("xen-4.17 no-mitigations", &k, &MAIN)?;
    ours.extend(run_on("xen-core", &k, &DENSITY)?);
    xen.extend(run_on("xen-4.17", &k, &DENSITY)?);
    println!("{:<26} {:>10} {:>10} {:>7} {:>14} {:>7}", "benchmark", "xen-core", "xen-4.17", "ratio", "xen (no mitig)", "ratio");
    let ratio = |o: f64, x: Option<&f64>| x.filter(|x| **x > 0.0).map_or("-".into(), |x| format!("{:.2}", o / x));
    let val = |x: Option<&f64>| x.map_or("-".into(), |x| format!("{x:.0}"));
    for (name, o) in &ours {
        let (x, n) = (xen.get(name), xen_nm.get(name));
        println!("{name:<26} {o:>10.0} {:>10} {:>7} {:>14} {:>7}", val(x), ratio(*o, x), val(n), ratio(*o, n));
    }
    println!("(ratio = xen-core / Xen 4.17 in this run. For *_cycles below 1.00 means xen-core is faster;");
    println!(" for *_per_sec above 1.00 means xen-core is faster.)");
    let fmt = |v: &[f64]| v.iter().map(|t| format!("{t:.3}")).collect::<Vec<_>>().join(", ");
    println!(
        "boot_to_dom0_s (median of 3) {:>10.3} {:>10.3} {:>7.2}   runs: xen-core {} / xen-4.17 {}",
        median(&boot_ours),
        median(&boot_xen),
        median(&boot_ours) / median(&boot_xen).max(1e-9),
        fmt(&boot_ours),
        fmt(&boot_xen)
    );
    if let Some(&floor) = ours.get("floor_syscall_iretq_cycles").filter(|f| **f > 0.0) {
        println!("floor: a bare SYSCALL + IRETQ round trip on xen-core costs {floor:.0} cycles in this run;");
        for (name, o) in ours.iter().filter(|(n, _)| n.ends_with("_cycles") && !n.starts_with("floor")) {
            println!("  {name:<34} {:>8.1} x floor", o / floor);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_bench_lines() {
        let v = super::parse("x\nbench: null_hypercall_cycles 1234\n(XEN) bench: a b\nbench: mmu 7\n");
        assert_eq!(v.get("null_hypercall_cycles"), Some(&1234.0));
        assert_eq!(v.get("mmu"), Some(&7.0));
        assert_eq!(v.len(), 2);
    }
}
