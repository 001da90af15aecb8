//! `cargo xtask conformance`: boot the suite on xen-core and on Xen 4.17,
//! collect one result per case from serial, compare, write the JSON report
//! and regenerate `docs/conformance.md` from the suite's own case list.

use crate::image::{self, Kernels};
use crate::qemu;
use pv_guest_kernel::conformance::{CASES, DIFFERENCES, parse_begin, parse_result};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which hypervisors to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum On {
    /// Only xen-core.
    #[value(name = "xen-core")]
    XenCore,
    /// Only Xen 4.17.
    #[value(name = "xen-4.17")]
    Xen417,
    /// Both.
    #[value(name = "both")]
    Both,
}

/// `cargo xtask conformance [FILTER] [--on xen-core|xen-4.17|both]`.
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// Run only the cases whose name contains FILTER.
    #[arg(value_name = "FILTER", default_value = "", hide_default_value = true)]
    pub filter: String,
    /// Which hypervisors to run the suite on.
    #[arg(long, value_name = "HYPERVISOR", value_enum, default_value_t = On::Both)]
    pub on: On,
}

/// One case's result on one hypervisor: the protocol word and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaseResult {
    word: String,
    msg: String,
}

impl CaseResult {
    fn new(word: &str, msg: &str) -> Self {
        CaseResult { word: word.into(), msg: msg.into() }
    }

    fn show(r: Option<&CaseResult>) -> String {
        match r {
            None => "-".into(),
            Some(r) if r.msg.is_empty() => r.word.clone(),
            Some(r) => format!("{} ({})", r.word, r.msg),
        }
    }
}

/// Results of one hypervisor, by case name.
type Results = BTreeMap<String, CaseResult>;

/// Fold one boot's serial output into `results`; returns the case that
/// began but never reported (the domain died in it), and whether the run
/// reached its end line.
pub fn collect(output: &str, results: &mut Results) -> (Option<String>, bool) {
    let mut open: Option<String> = None;
    let mut ended = false;
    for line in output.lines() {
        if let Some(name) = parse_begin(line) {
            open = Some(name.to_string());
        } else if let Some((name, word, msg)) = parse_result(line) {
            results.insert(name.to_string(), CaseResult::new(word, msg));
            open = None;
        } else if line.contains("conformance: end") {
            ended = true;
        }
    }
    (open, ended)
}

fn run_on(hv: &str, filter: &str, k: &Kernels) -> Result<Results, String> {
    let mut results = Results::new();
    let mut from = 0usize;
    for _attempt in 0..CASES.len() + 1 {
        let args = format!("test=conformance from={from}{}", if filter.is_empty() { String::new() } else { format!(" filter={filter}") });
        let name = format!("conformance-{hv}");
        let mut opts = qemu::Options { timeout: Some(Duration::from_secs(240)), ..Default::default() };
        let spec = if hv == "xen-4.17" {
            opts.stop_on = qemu::XEN_STOP_LINES.iter().map(|s| s.to_string()).collect();
            image::xen417_spec_with(&name, k, crate::xen::XEN_CMDLINE_CREDIT, &args)?
        } else {
            image::standard_spec(&name, k, "loglvl=warning dom0_mem=64M", &args)
        };
        let r = qemu::boot(&image::make_iso(&spec)?, &opts)?;
        let (open, ended) = collect(&r.output, &mut results);
        if ended {
            return Ok(results);
        }
        // The domain died (or the run hung) inside `open`: that case failed;
        // go on after it.
        let Some(case) = open else { return Err(format!("{hv}: the suite did not start or end:\n{}", tail(&r.output))) };
        let why = if r.timed_out { "hung (timeout)" } else { "crashed its domain" };
        results.insert(case.clone(), CaseResult::new("failure", why));
        from = CASES.iter().position(|c| c.name == case).map_or(CASES.len(), |i| i + 1);
    }
    Ok(results)
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn documented(case: &str) -> Option<&'static str> {
    DIFFERENCES.iter().find(|d| d.case == case).map(|d| d.reason)
}

/// Judge one case. `None` results mean "not run there".
pub fn judge(case: &str, ours: Option<&CaseResult>, xen: Option<&CaseResult>) -> Result<(), String> {
    let ok_word = |r: &CaseResult| r.word == "success" || r.word == "skip";
    match (ours, xen) {
        (Some(o), _) if !ok_word(o) => Err(format!("{} on xen-core", o.word)),
        (Some(o), Some(x)) if o.word != x.word && documented(case).is_none() => {
            Err(format!("xen-core says {} but Xen 4.17 says {}, and docs/conformance.md does not explain it", o.word, x.word))
        }
        (None, Some(x)) if !ok_word(x) && documented(case).is_none() => Err(format!("{} on Xen 4.17", x.word)),
        (None, None) => Err("no result (the case never reported)".into()),
        _ => Ok(()),
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_result(r: Option<&CaseResult>) -> String {
    match r {
        None => "null".into(),
        Some(r) => format!("{{\"result\": {}, \"message\": {}}}", json_str(&r.word), json_str(&r.msg)),
    }
}

/// One report row: case, xen-core result, Xen result, verdict.
pub type Row<'a> = (&'a str, Option<&'a CaseResult>, Option<&'a CaseResult>, Result<(), String>);

/// The JSON report.
pub fn report_json(rows: &[Row<'_>]) -> String {
    let mut s = String::from("{\n  \"cases\": [\n");
    for (i, (name, o, x, verdict)) in rows.iter().enumerate() {
        let info = CASES.iter().find(|c| c.name == *name);
        s += &format!(
            "    {{\"case\": {}, \"hypercall\": {}, \"subop\": {}, \"kind\": {}, \"xen-core\": {}, \"xen-4.17\": {}, \"passed\": {}, \"why\": {}}}{}\n",
            json_str(name),
            json_str(info.map_or("", |c| c.hypercall)),
            json_str(info.map_or("", |c| c.subop)),
            json_str(info.map_or("", |c| c.kind.name())),
            json_result(*o),
            json_result(*x),
            verdict.is_ok(),
            json_str(verdict.as_ref().err().map_or("", String::as_str)),
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    s += "  ]\n}\n";
    s
}

/// `docs/conformance.md`, generated from the case list and the documented
/// differences.
pub fn render_doc() -> String {
    let mut rows: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for c in CASES {
        rows.entry((c.hypercall, c.subop)).or_default().push(c.name);
    }
    let mut s = String::from(
        "# Conformance\n\n\
         Generated by `cargo xtask conformance` (and checked by `cargo xtask test`) from the suite's\n\
         case lists in `pv-guest-kernel/src/conformance/cases/` (one file per family, run in the order `cases.rs` gives) and, for the hostile-guest cases,\n\
         `attacks.rs`; do not edit by hand.\n\n\
         Each case runs as dom0 on `xen-core` and on Xen 4.17 under the same QEMU. A case passes when it\n\
         succeeds on `xen-core` and Xen 4.17 gives the same result, or the difference is listed below.\n\
         `trap` rows are exception delivery; `unused` rows are hypercall numbers without a handler.\n\
         Rejections of `iret` crash the domain, so they are boot tests (see `docs/hypercalls.md`).\n\n",
    );
    s += &format!("{} cases.\n\n", CASES.len());
    s += "| Hypercall | Sub-op | Implemented | Cases | Agrees with Xen 4.17 | Notes |\n|---|---|---|---|---|---|\n";
    for ((hc, subop), names) in &rows {
        let implemented = if *hc == "unused" { "no: -ENOSYS" } else { "yes" };
        let diffs: Vec<&str> = names.iter().filter(|n| documented(n).is_some()).copied().collect();
        let agrees = if diffs.is_empty() { "yes".to_string() } else { format!("no: {}", diffs.join(", ")) };
        let notes = if diffs.is_empty() { "" } else { "see below" };
        s += &format!("| `{hc}` | {subop} | {implemented} | {} | {agrees} | {notes} |\n", names.join(", "));
    }
    s += "\n## Documented differences from Xen 4.17\n\n";
    for d in DIFFERENCES {
        s += &format!("- `{}`: {}\n", d.case, d.reason);
    }
    s
}

/// Path of the generated page.
fn doc_path() -> std::path::PathBuf {
    crate::workspace_root().join("docs/conformance.md")
}

/// Write `docs/conformance.md` if it changed.
pub fn regenerate_doc() -> Result<(), String> {
    let text = render_doc();
    if std::fs::read_to_string(doc_path()).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(doc_path(), text).map_err(|e| format!("docs/conformance.md: {e}"))?;
        println!("xtask: regenerated docs/conformance.md");
    }
    Ok(())
}

/// Run the suite; returns (passed, failed).
pub fn run(filter: &str, on: On, k: &Kernels) -> Result<(usize, usize), String> {
    regenerate_doc()?;
    let ours = if on != On::Xen417 { Some(run_on("xen-core", filter, k)?) } else { None };
    let xen = if on != On::XenCore { Some(run_on("xen-4.17", filter, k)?) } else { None };
    let mut rows = Vec::new();
    for c in CASES.iter().filter(|c| c.name.contains(filter)) {
        let o = ours.as_ref().and_then(|r| r.get(c.name));
        let x = xen.as_ref().and_then(|r| r.get(c.name));
        let verdict = judge(c.name, o, x);
        rows.push((c.name, o, x, verdict));
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (name, o, x, verdict) in &rows {
        let mark = if verdict.is_ok() { "" } else { "   <-- FAILED" };
        println!("{name:<width$}  xen-core: {}  xen-4.17: {}{mark}", CaseResult::show(*o), CaseResult::show(*x));
        if let Err(why) = verdict {
            println!("{:width$}    {why}", "");
        }
    }
    let report = image::out_dir().parent().map(|t| t.join("conformance.json")).ok_or("no target dir")?;
    std::fs::write(&report, report_json(&rows)).map_err(|e| format!("{}: {e}", report.display()))?;
    println!("report: {}", report.display());
    let failed = rows.iter().filter(|r| r.3.is_err()).count();
    Ok((rows.len() - failed, failed))
}

/// `cargo xtask conformance [FILTER] [--on xen-core|xen-4.17|both]`.
pub fn command(args: &ConformanceArgs) -> Result<(), String> {
    crate::env::ensure_system_tools()?;
    let k = image::build(image::Profile::Release)?;
    let (passed, failed) = run(&args.filter, args.on, &k)?;
    println!("{passed} passed, {failed} failed");
    if failed > 0 { Err("conformance failures".into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(w: &str) -> CaseResult {
        CaseResult::new(w, "")
    }

    #[test]
    fn docs_conformance_md_is_up_to_date() {
        let committed = std::fs::read_to_string(doc_path()).unwrap_or_default();
        assert!(committed == render_doc(), "docs/conformance.md is stale: run `cargo xtask conformance`");
    }

    #[test]
    fn collect_marks_the_case_a_crash_interrupted() {
        let out = "conformance: begin a\nconformance: result a success\nconformance: begin b\n(XEN) Hardware Dom0 crashed";
        let mut res = Results::new();
        assert_eq!(collect(out, &mut res), (Some("b".into()), false));
        assert_eq!(res["a"], r("success"));
        let mut res = Results::new();
        assert_eq!(collect("conformance: begin a\nconformance: result a skip n/a\nconformance: end", &mut res), (None, true));
    }

    #[test]
    fn judging_follows_the_rules() {
        let doc = DIFFERENCES[0].case;
        assert!(judge("x", Some(&r("success")), Some(&r("success"))).is_ok());
        assert!(judge("x", Some(&r("failure")), Some(&r("failure"))).is_err(), "failing on xen-core fails");
        assert!(judge("x", Some(&r("success")), Some(&r("failure"))).is_err(), "undocumented disagreement fails");
        assert!(judge(doc, Some(&r("success")), Some(&r("failure"))).is_ok(), "documented disagreement passes");
        assert!(judge("x", Some(&r("error")), None).is_err());
        assert!(judge("x", None, None).is_err(), "a case that reports nothing is not a pass");
        assert!(judge("x", Some(&r("skip")), Some(&r("skip"))).is_ok());
    }

    #[test]
    fn arguments() {
        use clap::Parser;
        let parse = |args: &[&str]| match crate::Cli::try_parse_from(["xtask", "conformance"].into_iter().chain(args.iter().copied())) {
            Ok(crate::Cli { command: crate::Command::Conformance(c) }) => Ok((c.filter, c.on)),
            Ok(other) => panic!("parsed as {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(parse(&[]).unwrap(), (String::new(), On::Both));
        assert_eq!(parse(&["nr_11", "--on", "xen-core"]).unwrap(), ("nr_11".into(), On::XenCore));
        assert_eq!(parse(&["--on", "xen-4.17", "grant"]).unwrap(), ("grant".into(), On::Xen417));
        assert_eq!(parse(&["--on", "both"]).unwrap().1, On::Both);
        assert!(parse(&["--on", "xen"]).is_err());
        assert!(parse(&["--on"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
