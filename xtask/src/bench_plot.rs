//! `cargo xtask bench --plot`: the bench's saved figures and the SVG chart
//! of its ratios (pure: text in, text out; host-tested).
//!
//! It owns two things:
//! - the results file `cargo xtask bench` writes under
//!   `target/xtask/bench/` (one `result <part> <side> <figure> <values...>`
//!   line per figure and hypervisor, every run's value, `#` lines for the
//!   command, date and commit), and its parser, which merges several
//!   files (a later line replaces an earlier one of the same part, side
//!   and figure, so parts run separately combine);
//! - the chart: one row per figure, grouped by bench part, with one bar
//!   for xen-core / Xen 4.17 (the ratio of medians the bench prints), one
//!   for xen-core / Xen 4.17 without its mitigations where the bench ran
//!   it, one for the figure in multiples of the floor where the bench has
//!   one, and one for traced / untraced xen-core in the tracing part.
//!
//! The invariant the chart keeps: on its log axis, left of the 1.0 line is
//! always xen-core better. A figure where lower is better (cycles, time,
//! percent, KiB) is drawn at the ratio; one where higher is better (MiB/s,
//! IOPS, per second, domains) at 1/ratio. Every label shows the ratio as
//! the bench prints it (`{:.2}`, xen-core / other), not the drawn value.
//!
//! The floor is what the bench calls the floor: `floor_syscall_iretq_cycles`,
//! a bare SYSCALL + IRETQ round trip on xen-core booted with `bench_floor`,
//! which the bench relates to its `*_cycles` figures only. Other figures
//! have no floor and the legend says so.

#![forbid(unsafe_code)]

use crate::trace::svg::escape;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The bench's figure the floor ratios divide by.
pub const FLOOR_FIGURE: &str = "floor_syscall_iretq_cycles";

/// The sides (hypervisors and configurations) a results file names.
pub const XEN_CORE: &str = "xen-core";
pub const XEN_417: &str = "xen-4.17";
pub const XEN_417_NM: &str = "xen-4.17-no-mitigations";
pub const XEN_CORE_TRACED: &str = "xen-core-traced";

/// The bench parts, in the chart's order, with their group titles.
pub const PARTS: [(&str, &str); 6] = [
    ("dom0", "dom0 micro-benchmarks"),
    ("xenstore", "xenstore from a domU"),
    ("block", "block I/O"),
    ("net", "network"),
    ("linux", "Linux 6.1 as dom0"),
    ("trace", "tracing overhead (xen-core traced / untraced)"),
];

/// The median as the bench takes it: the upper middle of the sorted
/// values (0 for none).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

/// One figure of one side of one part, every run's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub part: String,
    pub side: String,
    pub figure: String,
    pub values: Vec<f64>,
}

/// The results-file lines of one part on one side.
pub fn result_lines(part: &str, side: &str, series: &BTreeMap<String, Vec<f64>>) -> String {
    let mut out = String::new();
    for (figure, values) in series {
        let vals: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        let _ = writeln!(out, "result {part} {side} {figure} {}", vals.join(" "));
    }
    out
}

/// Saved results: the records of one or more files, merged, and their
/// `#` lines.
#[derive(Debug, Default, Clone)]
pub struct Results {
    pub records: Vec<Record>,
    pub notes: Vec<String>,
}

impl Results {
    /// Add a file's text: its `result` lines (a record of the same part,
    /// side and figure replaces the earlier one in place) and its `#`
    /// lines. Other lines are ignored, so a file may carry anything else;
    /// a malformed `result` line is an error with its line number.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(note) = line.strip_prefix('#') {
                self.notes.push(note.trim().to_string());
                continue;
            }
            let Some(rest) = line.strip_prefix("result ") else { continue };
            let w: Vec<&str> = rest.split_whitespace().collect();
            let bad = || format!("line {}: not `result <part> <side> <figure> <values...>`: {line}", n + 1);
            let [part, side, figure, vals @ ..] = &w[..] else { return Err(bad()) };
            let values: Vec<f64> = vals.iter().map(|v| v.parse::<f64>().map_err(|_| bad())).collect::<Result<_, _>>()?;
            if values.is_empty() {
                return Err(bad());
            }
            let r = Record { part: part.to_string(), side: side.to_string(), figure: figure.to_string(), values };
            match self.records.iter_mut().find(|x| x.part == r.part && x.side == r.side && x.figure == r.figure) {
                Some(x) => *x = r,
                None => self.records.push(r),
            }
        }
        Ok(())
    }

    fn median_of(&self, part: &str, side: &str, figure: &str) -> Option<f64> {
        self.records.iter().find(|r| r.part == part && r.side == side && r.figure == figure).map(|r| median(&r.values))
    }
}

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
}

/// Which way a figure improves, from its unit suffix (as the bench's
/// tables say: cycles and times lower, rates higher); `None` when the
/// name does not tell.
pub fn better(figure: &str) -> Option<Better> {
    const HIGHER: [&str; 4] = ["_per_sec", "_mib_s", "_iops", "domains_at_once"];
    const LOWER: [&str; 6] = ["_cycles", "_ns", "_us", "_s", "_pct", "_kib"];
    if HIGHER.iter().any(|s| figure.ends_with(s)) {
        Some(Better::Higher)
    } else if LOWER.iter().any(|s| figure.ends_with(s)) {
        Some(Better::Lower)
    } else {
        None
    }
}

/// What a bar compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Against {
    /// xen-core / Xen 4.17.
    Xen,
    /// xen-core / Xen 4.17 without its speculative mitigations.
    XenNoMitigations,
    /// xen-core's figure / the floor.
    Floor,
    /// traced xen-core / untraced xen-core.
    Untraced,
}

impl Against {
    /// The SVG class of its bars and labels.
    pub fn class(self) -> &'static str {
        match self {
            Against::Xen => "vs-xen",
            Against::XenNoMitigations => "vs-xen-nm",
            Against::Floor => "vs-floor",
            Against::Untraced => "vs-untraced",
        }
    }

    fn colour(self) -> &'static str {
        match self {
            Against::Xen => "#1f5fa8",
            Against::XenNoMitigations => "#8fb8e6",
            Against::Floor => "#7a7a7a",
            Against::Untraced => "#e07b1a",
        }
    }

    fn legend(self) -> &'static str {
        match self {
            Against::Xen => "xen-core / Xen 4.17",
            Against::XenNoMitigations => "xen-core / Xen 4.17 with xpti=false spec-ctrl=no pv-l1tf=false",
            Against::Floor => "xen-core's figure / the floor (a bare SYSCALL+IRETQ on xen-core, bench_floor); 1.0 is the floor",
            Against::Untraced => "xen-core traced (tbuf_size=256, every class) / untraced",
        }
    }
}

/// One bar: the ratio as the bench prints it (xen-core / other), or
/// `None` when the other side has no figure or a zero one (`other`: the
/// other side's median, when it has one).
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub against: Against,
    pub ratio: Option<f64>,
    pub other: Option<f64>,
}

impl Bar {
    /// Where the bar ends on the axis, so that left of 1.0 is xen-core
    /// better: the ratio, or 1/ratio for a figure where higher is better.
    /// The floor is a cost: always the ratio.
    pub fn drawn(&self, better: Option<Better>) -> Option<f64> {
        let r = self.ratio?;
        match (self.against, better) {
            (Against::Floor, _) | (_, Some(Better::Lower) | None) => Some(r),
            (_, Some(Better::Higher)) => (r > 0.0).then(|| 1.0 / r),
        }
    }
}

/// One figure's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub part: String,
    pub figure: String,
    pub better: Option<Better>,
    pub bars: Vec<Bar>,
}

/// `a / b`, or nothing when `b` is not positive (as the bench).
pub fn ratio_of(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Every figure's row, parts in [`PARTS`]' order, figures in the order the
/// files first named them. A figure has a bar against each side that
/// part's records name (so a `--xen-core-only` run has none against Xen),
/// and one against the floor when it is a dom0 `*_cycles` figure and the
/// run measured the floor.
pub fn rows(res: &Results) -> Vec<Row> {
    let mut out = Vec::new();
    for (part, _) in PARTS {
        let has = |side: &str| res.records.iter().any(|r| r.part == part && r.side == side);
        let mut figures: Vec<&str> = Vec::new();
        for r in res.records.iter().filter(|r| r.part == part && r.side == XEN_CORE) {
            if !figures.contains(&r.figure.as_str()) && r.figure != FLOOR_FIGURE {
                figures.push(&r.figure);
            }
        }
        let floor = res.median_of(part, XEN_CORE, FLOOR_FIGURE).filter(|f| *f > 0.0);
        for figure in figures {
            let Some(ours) = res.median_of(part, XEN_CORE, figure) else { continue };
            let against = |a: Against, side: &str| {
                let other = res.median_of(part, side, figure);
                Bar { against: a, ratio: other.and_then(|x| ratio_of(ours, x)), other }
            };
            let mut bars = Vec::new();
            if part == "trace" {
                if !has(XEN_CORE_TRACED) {
                    continue;
                }
                // Traced over untraced: the bar's "other" is the untraced figure.
                let traced = res.median_of(part, XEN_CORE_TRACED, figure);
                bars.push(Bar { against: Against::Untraced, ratio: traced.and_then(|t| ratio_of(t, ours)), other: traced.map(|_| ours) });
            } else {
                if has(XEN_417) {
                    bars.push(against(Against::Xen, XEN_417));
                }
                if has(XEN_417_NM) {
                    bars.push(against(Against::XenNoMitigations, XEN_417_NM));
                }
                if figure.ends_with("_cycles")
                    && let Some(f) = floor
                {
                    bars.push(Bar { against: Against::Floor, ratio: Some(ours / f), other: Some(f) });
                }
            }
            out.push(Row { part: part.to_string(), figure: figure.to_string(), better: better(figure), bars });
        }
    }
    out
}

/// The chart's log axis: decades from `lo` to `hi`, both powers of ten,
/// 1.0 always inside.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    pub lo: f64,
    pub hi: f64,
    /// Left and right x of the plot area.
    pub x0: f64,
    pub x1: f64,
}

/// Smallest and largest decade the axis spans at most.
const AXIS_LIMIT: (i32, i32) = (-4, 4);

impl Axis {
    /// The decades around every drawn value (at least 0.1 to 10).
    pub fn for_rows(rows: &[Row], x0: f64, x1: f64) -> Axis {
        let drawn = rows.iter().flat_map(|r| r.bars.iter().filter_map(|b| b.drawn(r.better))).filter(|v| *v > 0.0 && v.is_finite());
        let (mut lo, mut hi) = (-1i32, 1i32);
        for v in drawn {
            let l = v.log10();
            lo = lo.min(l.floor() as i32);
            hi = hi.max(l.ceil() as i32);
        }
        let (lo, hi) = (lo.max(AXIS_LIMIT.0), hi.min(AXIS_LIMIT.1));
        Axis { lo: 10f64.powi(lo), hi: 10f64.powi(hi), x0, x1 }
    }

    /// The x of a value, clamped to the plot area (zero and below at its
    /// left edge).
    pub fn x(&self, v: f64) -> f64 {
        if v.is_nan() || v <= 0.0 {
            return self.x0;
        }
        let t = (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.x0 + t.clamp(0.0, 1.0) * (self.x1 - self.x0)
    }
}

/// What a row says about its direction.
fn direction(b: Option<Better>) -> &'static str {
    match b {
        Some(Better::Lower) => "lower is better",
        Some(Better::Higher) => "higher is better: drawn at 1/ratio",
        None => "direction unknown: drawn at the ratio",
    }
}

/// The ratio as the bench prints it.
pub fn label(r: f64) -> String {
    format!("{r:.2}")
}

const WIDTH: f64 = 1180.0;
const NAME_X: f64 = 12.0;
const PLOT_X0: f64 = 430.0;
const PLOT_X1: f64 = 1090.0;
const BAR_H: f64 = 11.0;
const BAR_GAP: f64 = 2.0;
const ROW_PAD: f64 = 7.0;
const GROUP_H: f64 = 26.0;
const MIN_ROW_H: f64 = 32.0;

/// The SVG chart of `rows`, titled `title`, with `notes` (the results'
/// `#` lines) under the title.
pub fn svg(rows: &[Row], title: &str, notes: &[String]) -> String {
    let axis = Axis::for_rows(rows, PLOT_X0, PLOT_X1);
    let top = 70.0 + 14.0 * notes.len() as f64;
    let (body, plot_bottom) = figures(rows, &axis, top + 10.0);
    let (grid, refline) = grid(&axis, top, plot_bottom);
    let (legend, height) = legend(rows, plot_bottom);
    let head = head(title, notes);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height:.0}\" viewBox=\"0 0 {WIDTH} {height:.0}\" \
         font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n{head}{grid}{body}{refline}\n{legend}</svg>\n"
    )
}

/// The rows from `y` down, a header before each part: their SVG and the
/// bottom of the last.
fn figures(rows: &[Row], axis: &Axis, mut y: f64) -> (String, f64) {
    let mut body = String::new();
    let mut part = "";
    for row in rows {
        if row.part != part {
            part = &row.part;
            let name = PARTS.iter().find(|(p, _)| *p == part).map_or(part, |(_, n)| n);
            y += 6.0;
            let _ =
                writeln!(body, r##"<text class="group" x="{NAME_X}" y="{:.1}" font-weight="bold" font-size="14">{}</text>"##, y + 14.0, escape(name));
            let _ = writeln!(body, r##"<line x1="{NAME_X}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#bbb"/>"##, WIDTH - 12.0, y + 19.0, y + 19.0);
            y += GROUP_H;
        }
        y += figure(&mut body, row, axis, y);
    }
    (body, y + 6.0)
}

/// One figure's row at `y`: its name, direction and bars; its height.
fn figure(body: &mut String, row: &Row, axis: &Axis, y: f64) -> f64 {
    let n = row.bars.len().max(1) as f64;
    // Room for the name and the direction line at least.
    let h = (n * BAR_H + (n - 1.0) * BAR_GAP + 2.0 * ROW_PAD).max(MIN_ROW_H);
    let _ = writeln!(body, r##"<g class="figure" data-figure="{}">"##, escape(&row.figure));
    let mid = y + h / 2.0;
    let _ = writeln!(body, r##"<text class="name" x="{NAME_X}" y="{:.1}">{}</text>"##, mid - 1.0, escape(&row.figure));
    let _ =
        writeln!(body, r##"<text class="direction" x="{NAME_X}" y="{:.1}" font-size="10" fill="#666">{}</text>"##, mid + 11.0, direction(row.better));
    if row.bars.is_empty() {
        let _ = writeln!(
            body,
            r##"<text class="missing" x="{PLOT_X0}" y="{:.1}" fill="#666">no figure to compare with</text>"##,
            y + ROW_PAD + BAR_H - 2.0
        );
    }
    for (i, bar) in row.bars.iter().enumerate() {
        bar_svg(body, row, bar, axis, y + ROW_PAD + i as f64 * (BAR_H + BAR_GAP));
    }
    let _ = writeln!(body, "</g>");
    h
}

/// One bar at `by` with its label, or what is missing instead.
fn bar_svg(body: &mut String, row: &Row, bar: &Bar, axis: &Axis, by: f64) {
    let cls = bar.against.class();
    match (bar.ratio, bar.drawn(row.better)) {
        (Some(r), Some(d)) => {
            let (xa, xb) = (axis.x(d), axis.x(1.0));
            let (left, w) = (xa.min(xb), (xa - xb).abs());
            let tip = format!("{}: {} ({})", row.figure, label(r), bar.against.legend());
            let _ = writeln!(
                body,
                r##"<rect class="bar {cls}" data-ratio="{r}" data-drawn="{d}" x="{left:.2}" y="{by:.1}" width="{w:.2}" height="{BAR_H}" fill="{}"><title>{}</title></rect>"##,
                bar.against.colour(),
                escape(&tip)
            );
            let clipped = d <= axis.lo || d >= axis.hi;
            let unit = if bar.against == Against::Floor { " x floor" } else { "" };
            let text = format!("{}{unit}{}", label(r), if clipped { " (off the axis)" } else { "" });
            let (lx, anchor) = if xa < xb { (xa - 4.0, "end") } else { (xa + 4.0, "start") };
            let _ = writeln!(
                body,
                r##"<text class="label {cls}" x="{lx:.2}" y="{:.1}" font-size="10" text-anchor="{anchor}">{}</text>"##,
                by + BAR_H - 2.0,
                escape(&text)
            );
        }
        _ => {
            let side = bar.against.side_name();
            // Traced / untraced divides by the untraced figure.
            let divisor = if bar.against == Against::Untraced { "untraced" } else { side };
            let what = match bar.other {
                Some(_) => format!("no ratio: the {divisor} figure is 0"),
                None => format!("no {side} figure"),
            };
            let _ = writeln!(
                body,
                r##"<text class="label {cls} missing" x="{:.2}" y="{:.1}" font-size="10" fill="#666">{what}</text>"##,
                axis.x(1.0) + 4.0,
                by + BAR_H - 2.0
            );
        }
    }
}

impl Against {
    /// The other side's name where a bar is missing.
    fn side_name(self) -> &'static str {
        match self {
            Against::Xen => "Xen 4.17",
            Against::XenNoMitigations => "Xen 4.17 (no mitigations)",
            Against::Floor => "floor",
            Against::Untraced => "traced",
        }
    }
}

/// The axis from `top` to `plot_bottom`: decades and 2x, 5x between them;
/// and the 1.0 line, drawn over the bars.
fn grid(axis: &Axis, top: f64, plot_bottom: f64) -> (String, String) {
    let mut grid = String::new();
    let (lo, hi) = (axis.lo.log10().round() as i32, axis.hi.log10().round() as i32);
    for e in lo..=hi {
        for m in [1.0, 2.0, 5.0] {
            let v = m * 10f64.powi(e);
            if v > axis.hi * 1.0001 {
                continue;
            }
            let x = axis.x(v);
            let major = m == 1.0;
            let _ = writeln!(
                grid,
                r##"<line class="grid" x1="{x:.2}" x2="{x:.2}" y1="{:.1}" y2="{plot_bottom:.1}" stroke="{}"/>"##,
                top,
                if major { "#ccc" } else { "#eee" }
            );
            let _ = writeln!(
                grid,
                r##"<text class="tick" x="{x:.2}" y="{:.1}" font-size="10" text-anchor="middle" fill="{}">{}</text>"##,
                top - 4.0,
                if major { "#333" } else { "#999" },
                tick(v)
            );
        }
    }
    let one = axis.x(1.0);
    let _ = writeln!(
        grid,
        r##"<text x="{:.2}" y="{:.1}" font-size="11" text-anchor="end" fill="#2a7d2a">&#8592; xen-core better</text>"##,
        one - 6.0,
        top - 18.0
    );
    let _ = writeln!(grid, r##"<text x="{:.2}" y="{:.1}" font-size="11" fill="#a33">xen-core worse &#8594;</text>"##, one + 6.0, top - 18.0);
    let refline = format!(
        r##"<line class="ref-line" data-ratio="1" x1="{one:.2}" x2="{one:.2}" y1="{:.1}" y2="{plot_bottom:.1}" stroke="#000" stroke-width="1.5"/>"##,
        top - 14.0
    );
    (grid, refline)
}

/// The legend below `plot_bottom`: its SVG and the picture's height.
fn legend(rows: &[Row], plot_bottom: f64) -> (String, f64) {
    let mut legend = String::new();
    let mut ly = plot_bottom + 24.0;
    let used: Vec<Against> = [Against::Xen, Against::XenNoMitigations, Against::Floor, Against::Untraced]
        .into_iter()
        .filter(|a| rows.iter().any(|r| r.bars.iter().any(|b| b.against == *a)))
        .collect();
    for a in &used {
        let _ = writeln!(
            legend,
            r##"<rect class="legend {}" x="{NAME_X}" y="{:.1}" width="22" height="{BAR_H}" fill="{}"/>"##,
            a.class(),
            ly - 10.0,
            a.colour()
        );
        let _ = writeln!(legend, r##"<text x="{:.1}" y="{ly:.1}">{}</text>"##, NAME_X + 30.0, escape(a.legend()));
        ly += 17.0;
    }
    let no_floor = rows.iter().filter(|r| r.part != "trace" && !r.bars.iter().any(|b| b.against == Against::Floor)).count();
    let lines = [
        "Log axis; every bar runs from 1.0 to the figure's drawn value, and left of 1.0 is always xen-core better.".to_string(),
        "Lower-is-better figures (cycles, ns, us, s, %, KiB) are drawn at the ratio; higher-is-better ones (MiB/s, IOPS, /s, domains)".to_string(),
        "at 1/ratio. Labels show the ratio as the bench prints it: xen-core / other, ratio of medians.".to_string(),
        if used.contains(&Against::Floor) {
            format!(
                "No floor for {no_floor} figures: the bench measures its floor ({FLOOR_FIGURE}) on xen-core and relates only the dom0 *_cycles figures to it."
            )
        } else {
            format!("No floor for any figure: these results have no {FLOOR_FIGURE} (the bench measures it in its dom0 part, on xen-core).")
        },
    ];
    for l in lines {
        let _ = writeln!(legend, r##"<text x="{NAME_X}" y="{ly:.1}" font-size="11" fill="#333">{}</text>"##, escape(&l));
        ly += 15.0;
    }
    let height = ly + 10.0;
    (legend, height)
}

/// The title and the notes under it.
fn head(title: &str, notes: &[String]) -> String {
    let mut head = String::new();
    let _ = writeln!(head, r##"<text class="title" x="{NAME_X}" y="24" font-size="17" font-weight="bold">{}</text>"##, escape(title));
    for (i, n) in notes.iter().enumerate() {
        let _ =
            writeln!(head, r##"<text class="note" x="{NAME_X}" y="{:.1}" font-size="11" fill="#444">{}</text>"##, 42.0 + 14.0 * i as f64, escape(n));
    }
    head
}

/// An axis tick's text: 0.01, 0.5, 1, 20, 1000.
fn tick(v: f64) -> String {
    if v >= 1.0 { format!("{v:.0}") } else { format!("{v}").chars().take(8).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bench's results: dom0 with the floor, xenstore, a block figure,
    /// net with Xen's mitigations off, and the tracing part.
    fn sample() -> Results {
        let mut text = String::from("# cargo xtask bench --runs 1\nsome other line\n");
        let s = |pairs: &[(&str, &[f64])]| -> BTreeMap<String, Vec<f64>> { pairs.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect() };
        text += &result_lines(
            "dom0",
            XEN_CORE,
            &s(&[(FLOOR_FIGURE, &[300.0, 280.0, 320.0]), ("null_hypercall_cycles", &[1500.0, 1400.0, 1600.0]), ("grant_copy_mib_per_sec", &[800.0])]),
        );
        text += &result_lines("dom0", XEN_417, &s(&[("null_hypercall_cycles", &[60000.0]), ("grant_copy_mib_per_sec", &[32.0])]));
        text += &result_lines("dom0", XEN_417_NM, &s(&[("null_hypercall_cycles", &[30000.0])]));
        text += &result_lines("xenstore", XEN_CORE, &s(&[("xs_read_median_ns", &[140000.0])]));
        text += &result_lines("xenstore", XEN_417, &s(&[("xs_read_median_ns", &[2800000.0])]));
        text += &result_lines("block", XEN_CORE, &s(&[("blk_guest_rand_read_4k_iops", &[4000.0])]));
        text += &result_lines("block", XEN_417, &s(&[("blk_guest_rand_read_4k_iops", &[2000.0])]));
        text += &result_lines("trace", XEN_CORE, &s(&[("null_hypercall_cycles", &[1000.0])]));
        text += &result_lines("trace", XEN_CORE_TRACED, &s(&[("null_hypercall_cycles", &[1050.0])]));
        let mut r = Results::default();
        r.add(&text).unwrap();
        r
    }

    #[test]
    fn results_lines_round_trip_and_a_later_file_replaces_the_same_figure() {
        let mut r = sample();
        assert_eq!(r.notes, ["cargo xtask bench --runs 1"]);
        let floor = r.records.iter().find(|x| x.figure == FLOOR_FIGURE).unwrap();
        assert_eq!(floor.values, [300.0, 280.0, 320.0]);
        let n = r.records.len();
        r.add("result xenstore xen-4.17 xs_read_median_ns 1400000\n").unwrap();
        assert_eq!(r.records.len(), n, "same part, side and figure: replaced, not added");
        assert_eq!(r.median_of("xenstore", XEN_417, "xs_read_median_ns"), Some(1_400_000.0));
        assert!(r.add("result dom0 xen-core null_hypercall_cycles many\n").unwrap_err().starts_with("line 1:"));
        assert!(r.add("result dom0 xen-core\n").is_err());
    }

    /// The bench's median: the upper middle of the sorted runs.
    #[test]
    fn median_is_the_benchs() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0]), 4.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn direction_follows_the_unit() {
        assert_eq!(better("null_hypercall_cycles"), Some(Better::Lower));
        assert_eq!(better("linux_banner_s"), Some(Better::Lower));
        assert_eq!(better("compute_slowdown_with_antisocial_pct"), Some(Better::Lower));
        assert_eq!(better("blk_direct_seq_read_mib_s"), Some(Better::Higher), "_mib_s before _s");
        assert_eq!(better("blk_guest_rand_read_4k_iops"), Some(Better::Higher));
        assert_eq!(better("grant_map_unmap_per_sec"), Some(Better::Higher));
        assert_eq!(better("domains_at_once"), Some(Better::Higher));
        assert_eq!(better("mystery"), None);
    }

    #[test]
    fn rows_carry_the_benchs_ratios_of_medians_and_the_floor_for_cycles_only() {
        let rows = rows(&sample());
        let names: Vec<&str> = rows.iter().map(|r| r.figure.as_str()).collect();
        assert_eq!(
            names,
            ["grant_copy_mib_per_sec", "null_hypercall_cycles", "xs_read_median_ns", "blk_guest_rand_read_4k_iops", "null_hypercall_cycles"]
        );
        let null = &rows[1];
        assert_eq!(null.bars[0], Bar { against: Against::Xen, ratio: Some(1500.0 / 60000.0), other: Some(60000.0) });
        assert_eq!(null.bars[1], Bar { against: Against::XenNoMitigations, ratio: Some(0.05), other: Some(30000.0) });
        assert_eq!(null.bars[2], Bar { against: Against::Floor, ratio: Some(1500.0 / 300.0), other: Some(300.0) });
        let copy = &rows[0];
        assert_eq!(copy.bars.len(), 2, "no floor for a rate: {copy:?}");
        assert_eq!(
            copy.bars[1],
            Bar { against: Against::XenNoMitigations, ratio: None, other: None },
            "Xen without mitigations ran, but has no such figure"
        );
        assert_eq!(copy.bars[0].ratio, Some(25.0));
        assert_eq!(copy.bars[0].drawn(copy.better), Some(0.04), "higher is better: drawn at 1/ratio, left of 1.0");
        assert_eq!(rows[3].bars, [Bar { against: Against::Xen, ratio: Some(2.0), other: Some(2000.0) }], "block has no no-mitigations side");
        assert_eq!(rows[4].bars, [Bar { against: Against::Untraced, ratio: Some(1.05), other: Some(1000.0) }]);
    }

    /// The chart: well-formed XML, one row per figure, one bar per
    /// comparison with the bench's ratio as its label, and the 1.0 line
    /// where the log axis puts 1.0.
    #[test]
    fn svg_is_well_formed_with_a_bar_per_figure_and_the_one_line_in_place() {
        let rows = rows(&sample());
        let text = svg(&rows, "bench & ratios", &["run <1>".into()]);
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        let class = |n: &roxmltree::Node| n.attribute("class").unwrap_or("").split(' ').map(String::from).collect::<Vec<_>>();
        let figures: Vec<roxmltree::Node> = doc.descendants().filter(|n| class(n).contains(&"figure".to_string())).collect();
        assert_eq!(figures.len(), rows.len());
        for (g, row) in figures.iter().zip(&rows) {
            assert_eq!(g.attribute("data-figure"), Some(row.figure.as_str()));
            let bars: Vec<_> = g.children().filter(|n| n.has_tag_name("rect") && class(n).contains(&"bar".into())).collect();
            assert_eq!(bars.len(), row.bars.iter().filter(|b| b.ratio.is_some()).count(), "{}", row.figure);
            for b in row.bars.iter().filter(|b| b.ratio.is_some()) {
                let c = b.against.class().to_string();
                let rect = bars.iter().find(|n| class(n).contains(&c)).unwrap();
                assert_eq!(rect.attribute("data-ratio").unwrap().parse::<f64>().unwrap(), b.ratio.unwrap());
                let lab = g.children().find(|n| n.has_tag_name("text") && class(n).contains(&"label".into()) && class(n).contains(&c)).unwrap();
                assert!(lab.text().unwrap().starts_with(&label(b.ratio.unwrap())), "{}: {:?}", row.figure, lab.text());
            }
        }
        let xen_bars =
            doc.descendants().filter(|n| n.has_tag_name("rect") && class(n).contains(&"bar".into()) && class(n).contains(&"vs-xen".into())).count();
        assert_eq!(xen_bars, 4, "one xen-core / Xen 4.17 bar per figure that has a Xen figure");
        // Drawn values 0.025 .. 5: the axis spans 0.01 .. 10, so 1.0 sits
        // two thirds of the way across the plot area.
        let axis = Axis::for_rows(&rows, PLOT_X0, PLOT_X1);
        assert_eq!((axis.lo, axis.hi), (0.01, 10.0));
        let one = doc.descendants().find(|n| class(n).contains(&"ref-line".into())).unwrap();
        let x: f64 = one.attribute("x1").unwrap().parse().unwrap();
        assert!((x - (PLOT_X0 + (PLOT_X1 - PLOT_X0) * 2.0 / 3.0)).abs() < 0.01, "{x}");
        // A bar runs from its drawn value to the 1.0 line.
        let null = figures[1].children().find(|n| class(n).contains(&"vs-xen".into()) && n.has_tag_name("rect")).unwrap();
        let left: f64 = null.attribute("x").unwrap().parse().unwrap();
        let w: f64 = null.attribute("width").unwrap().parse().unwrap();
        assert!((left + w - x).abs() < 0.02 && (left - axis.x(0.025)).abs() < 0.01);
        assert!(text.contains("bench &amp; ratios") && text.contains("run &lt;1&gt;"));
    }

    #[test]
    fn the_legend_says_which_figures_have_no_floor() {
        let text = svg(&rows(&sample()), "t", &[]);
        assert!(text.contains("No floor for 3 figures"), "grant copy, xenstore read and the block figure");
        let mut r = Results::default();
        r.add("result net xen-core net_g2g_tcp_mib_s 14\nresult net xen-4.17 net_g2g_tcp_mib_s 1\n").unwrap();
        let text = svg(&rows(&r), "t", &[]);
        assert!(text.contains("No floor for any figure"));
        assert!(!text.contains("class=\"legend vs-floor\""));
    }

    #[test]
    fn a_missing_or_zero_figure_is_said_not_drawn() {
        let mut r = Results::default();
        r.add("result dom0 xen-core compute_slowdown_with_antisocial_pct 0\nresult dom0 xen-4.17 compute_slowdown_with_antisocial_pct 0\n").unwrap();
        r.add("result dom0 xen-core domains_at_once 1023\n").unwrap();
        let rows = rows(&r);
        assert_eq!(rows[0].bars, [Bar { against: Against::Xen, ratio: None, other: Some(0.0) }], "Xen's 0: no ratio, as the bench prints '-'");
        let text = svg(&rows, "t", &[]);
        roxmltree::Document::parse(&text).unwrap();
        assert_eq!(text.matches("no Xen 4.17 figure").count(), 1, "domains_at_once on xen-core only");
        assert_eq!(text.matches("no ratio: the Xen 4.17 figure is 0").count(), 1);
        let mut t = Results::default();
        t.add("result trace xen-core compute_slowdown_with_antisocial_pct 0\nresult trace xen-core-traced compute_slowdown_with_antisocial_pct 0\n")
            .unwrap();
        let text = svg(&super::rows(&t), "t", &[]);
        assert!(text.contains("no ratio: the untraced figure is 0"), "traced / untraced divides by the untraced figure");
        assert!(!text.contains("<rect class=\"bar"));
    }
}
