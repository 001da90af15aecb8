//! The SVG timeline of a reconstructed trace.
//!
//! Layout, top to bottom: a title; a time axis in microseconds with
//! labelled ticks at a 1/2/5 step; one group per domain with one row per
//! vCPU, each span a rectangle coloured by state (running, in the
//! hypervisor, runnable, blocked, offline); one row per pCPU, coloured by
//! the domain it runs (grey when idle); then a legend of the state and
//! domain colours. Each record is a
//! tick on the row of the vCPU it concerns (its pCPU's row otherwise), and
//! every rectangle and tick carries a `<title>` that a browser shows on
//! hover.
//!
//! Invariant: the output is a well-formed standalone SVG 1.1 document:
//! every piece of text goes through [`escape`], and every row has an `id`
//! (`vcpu-d1v0`, `pcpu-0`) so tools and tests can find it.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::merge::{Source, Stamped};
use super::state::{PcpuState, Timeline, VcpuState, tsc_to_us};
use super::{VcpuId, describe};

/// Escape `&`, `<`, `>`, `"` and `'` for XML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 forbids: shown as U+FFFD.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The fill colour of a vCPU state.
pub fn state_colour(s: VcpuState) -> &'static str {
    match s {
        VcpuState::Running => "#2ca02c",
        VcpuState::Hypervisor => "#d62728",
        VcpuState::Runnable => "#ffbf00",
        VcpuState::Blocked => "#c6dbef",
        VcpuState::Offline => "#7f7f7f",
    }
}

/// pCPU rows: the colour of the domain running (none is a state colour).
const DOMAIN_COLOURS: [&str; 8] = ["#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939"];

fn domain_colour(domid: u16) -> &'static str {
    DOMAIN_COLOURS[usize::from(domid) % DOMAIN_COLOURS.len()]
}
const IDLE_COLOUR: &str = "#e0e0e0";

/// A step of 1, 2 or 5 times a power of ten giving at most `max_ticks`
/// ticks over `span` (> 0).
pub fn axis_step(span: f64, max_ticks: u32) -> f64 {
    let raw = span / f64::from(max_ticks.max(1));
    let mut p = 10f64.powf(raw.log10().floor());
    loop {
        for m in [1.0, 2.0, 5.0] {
            if m * p >= raw {
                return m * p;
            }
        }
        p *= 10.0;
    }
}

const LEFT: f64 = 110.0;
const ROW: f64 = 16.0;
const GAP: f64 = 4.0;

struct Canvas {
    body: String,
    t0: u64,
    dur: u64,
    width: f64,
    khz: u64,
    /// The row and pixel column the last rectangle ended in: a span that
    /// starts and ends inside that same pixel is not drawn (it would not
    /// show), which keeps busy rows to about one rectangle per pixel.
    last_px: Option<(u64, i64)>,
}

impl Canvas {
    fn x(&self, tsc: u64) -> f64 {
        if self.dur == 0 { LEFT } else { LEFT + (tsc.saturating_sub(self.t0)) as f64 / self.dur as f64 * self.width }
    }
    fn us(&self, tsc: u64) -> f64 {
        tsc_to_us(tsc.saturating_sub(self.t0), self.khz)
    }
    fn rect(&mut self, start: u64, end: u64, y: f64, fill: &str, title: &str) {
        let (x0, x1) = (self.x(start), self.x(end));
        let px = (y.to_bits(), x1.floor() as i64);
        if x0.floor() == x1.floor() && self.last_px == Some(px) {
            return;
        }
        self.last_px = Some(px);
        let _ = writeln!(
            self.body,
            r#"<rect x="{x0:.2}" y="{y:.1}" width="{:.2}" height="{ROW}" fill="{fill}"><title>{}</title></rect>"#,
            (x1 - x0).max(0.5),
            escape(title)
        );
    }
    /// A row label; group headers in bold, rows indented.
    fn label(&mut self, y: f64, text: &str, header: bool) {
        let (x, weight) = if header { (4, r#" font-weight="bold""#) } else { (16, "") };
        let _ = writeln!(self.body, r#"<text x="{x}" y="{:.1}"{weight}>{}</text>"#, y + ROW - 4.0, escape(text));
    }
}

/// Render the timeline of `tl` (built from `records`) for a TSC of
/// `tsc_khz` kHz, the plot `width` pixels wide.
pub fn render(tl: &Timeline, records: &[Stamped], tsc_khz: u64, width: u32) -> String {
    let mut c = Canvas { body: String::new(), t0: tl.start, dur: tl.duration(), width: f64::from(width), khz: tsc_khz, last_px: None };
    let total_us = tsc_to_us(tl.duration(), tsc_khz);

    // Time axis.
    let axis_y = 40.0;
    let _ = writeln!(c.body, r#"<g id="axis"><line x1="{LEFT}" y1="{axis_y}" x2="{:.1}" y2="{axis_y}" stroke="black"/>"#, LEFT + c.width);
    if total_us > 0.0 {
        let step = axis_step(total_us, 10);
        let mut t = 0.0;
        while t <= total_us * (1.0 + 1e-9) {
            let x = LEFT + t / total_us * c.width;
            let _ = writeln!(
                c.body,
                r#"<line x1="{x:.2}" y1="{:.1}" x2="{x:.2}" y2="{axis_y}" stroke="black"/><text x="{x:.2}" y="{:.1}" text-anchor="middle">{} us</text>"#,
                axis_y - 5.0,
                axis_y - 8.0,
                escape(&format_us(t, step))
            );
            t += step;
        }
    }
    c.body.push_str("</g>\n");

    // Rows: vCPUs grouped by domain, then pCPUs.
    let mut y = axis_y + 10.0;
    let mut vcpu_rows: std::collections::BTreeMap<VcpuId, f64> = std::collections::BTreeMap::new();
    let mut pcpu_rows: std::collections::BTreeMap<u32, f64> = std::collections::BTreeMap::new();
    let mut domain = None;
    for (&v, spans) in &tl.vcpus {
        if domain != Some(v.domid) {
            if domain.is_some() {
                c.body.push_str("</g>\n");
            }
            let _ = writeln!(c.body, r#"<g id="domain-{}" class="domain">"#, v.domid);
            c.label(y, &format!("domain {}", v.domid), true);
            y += ROW + GAP;
            domain = Some(v.domid);
        }
        let _ = writeln!(c.body, r#"<g id="vcpu-{v}" class="vcpu-row">"#);
        c.label(y, &v.to_string(), false);
        for s in spans {
            let title = format!("{v} {} {:.2}-{:.2} us ({:.2} us)", s.state.name(), c.us(s.start), c.us(s.end), tsc_to_us(s.end - s.start, tsc_khz));
            c.rect(s.start, s.end, y, state_colour(s.state), &title);
        }
        c.body.push_str("</g>\n");
        vcpu_rows.insert(v, y);
        y += ROW + GAP;
    }
    if domain.is_some() {
        c.body.push_str("</g>\n");
    }
    c.body.push_str("<g id=\"pcpus\">\n");
    c.label(y, "physical CPUs", true);
    y += ROW + GAP;
    for (&cpu, spans) in &tl.pcpus {
        let _ = writeln!(c.body, r#"<g id="pcpu-{cpu}" class="pcpu-row">"#);
        c.label(y, &format!("cpu{cpu}"), false);
        for s in spans {
            let (fill, what) = match s.state {
                PcpuState::Unknown => continue,
                PcpuState::Idle => (IDLE_COLOUR, "idle".to_string()),
                PcpuState::Vcpu(v) => (domain_colour(v.domid), v.to_string()),
            };
            let title = format!("cpu{cpu} {what} {:.2}-{:.2} us", c.us(s.start), c.us(s.end));
            c.rect(s.start, s.end, y, fill, &title);
        }
        c.body.push_str("</g>\n");
        pcpu_rows.insert(cpu, y);
        y += ROW + GAP;
    }
    c.body.push_str("</g>\n");

    // Event ticks, on the row of the vCPU concerned or of the pCPU. The
    // records that land in the same pixel column of a row share one tick
    // (its title counts them and shows the first few), so a busy trace
    // stays a picture a browser can open.
    c.body.push_str("<g id=\"events\" stroke=\"black\" stroke-width=\"1.5\">\n");
    let mut columns: BTreeMap<(u64, i64), TickColumn> = BTreeMap::new();
    for (i, s) in records.iter().enumerate() {
        let who = tl.attribution.get(i).copied().flatten();
        let row = who.and_then(|v| vcpu_rows.get(&v)).or(match s.source {
            Source::Hypervisor { cpu } => pcpu_rows.get(&cpu),
            Source::Guest(_) => None,
        });
        let Some(&ry) = row else { continue };
        // A guest's record outside the hypervisor's span has no place on
        // the axis.
        if s.tsc < tl.start || s.tsc > tl.end {
            continue;
        }
        let x = c.x(s.tsc);
        let from = match s.source {
            Source::Hypervisor { cpu } => format!("xen cpu{cpu}"),
            Source::Guest(v) => format!("guest {v}"),
        };
        let col = columns.entry((ry.to_bits(), x.floor() as i64)).or_insert_with(|| TickColumn { x, y: ry, count: 0, titles: Vec::new() });
        col.count += 1;
        if col.titles.len() < TICK_TITLES {
            col.titles.push(format!("{:.3} us [{from}] {}", c.us(s.tsc), describe(s.record.event(), s.record.extra())));
        }
    }
    for col in columns.values() {
        let more = col.count - col.titles.len();
        let title = if more == 0 { col.titles.join("\n") } else { format!("{} events:\n{}\n(and {more} more)", col.count, col.titles.join("\n")) };
        let _ = writeln!(
            c.body,
            r#"<line class="tick" x1="{x:.2}" y1="{:.1}" x2="{x:.2}" y2="{:.1}"><title>{}</title></line>"#,
            col.y - 2.0,
            col.y + ROW + 2.0,
            escape(&title),
            x = col.x,
        );
    }
    c.body.push_str("</g>\n");

    // Legend.
    y += GAP;
    c.body.push_str("<g id=\"legend\">\n");
    let mut x = LEFT;
    let mut items: Vec<(&str, String)> = VcpuState::ALL.iter().map(|&s| (state_colour(s), s.name().to_string())).collect();
    items.push((IDLE_COLOUR, "pCPU idle".to_string()));
    let mut domains: Vec<u16> = tl.vcpus.keys().map(|v| v.domid).collect();
    domains.dedup();
    items.extend(domains.iter().map(|&d| (domain_colour(d), format!("pCPU runs d{d}"))));
    for (i, (fill, name)) in items.into_iter().enumerate() {
        if i > 0 && i % 8 == 0 {
            x = LEFT;
            y += 18.0;
        }
        let _ = writeln!(
            c.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="12" height="12" fill="{fill}" stroke="black"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 16.0,
            y + 11.0,
            escape(&name)
        );
        x += 110.0;
    }
    c.body.push_str("</g>\n");
    y += 24.0;

    let total_w = LEFT + c.width + 20.0;
    let mut out = String::new();
    let _ = writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{total_w:.0}" height="{y:.0}" viewBox="0 0 {total_w:.0} {y:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect x="0" y="0" width="{total_w:.0}" height="{y:.0}" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="4" y="16" font-size="14" font-weight="bold">{}</text>"#,
        escape(&format!("xen-core trace: {total_us:.2} us, {} vCPUs, {} pCPUs", tl.vcpus.len(), tl.pcpus.len()))
    );
    out.push_str(&c.body);
    out.push_str("</svg>\n");
    out
}

/// Records described in one tick's title; the rest are counted.
const TICK_TITLES: usize = 4;

/// The records of one pixel column of one row: one tick.
struct TickColumn {
    /// Where the first of them falls.
    x: f64,
    /// The row.
    y: f64,
    /// How many.
    count: usize,
    /// The first [`TICK_TITLES`] described.
    titles: Vec<String>,
}

/// A tick label: as many decimals as the step needs.
fn format_us(t: f64, step: f64) -> String {
    let decimals = if step >= 1.0 { 0 } else { (-step.log10().floor()) as usize };
    format!("{t:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::merge::{GuestStream, merge};
    use crate::trace::state::reconstruct;
    use crate::trace::state::tests::three_guests;
    use xen_public::trace::{TRC_GUEST, TraceRecord};

    #[test]
    fn escape_covers_xml_specials() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{1}y"), "x\u{fffd}y");
    }

    #[test]
    fn axis_steps_are_1_2_5() {
        assert_eq!(axis_step(10.0, 10), 1.0);
        assert_eq!(axis_step(15.0, 10), 2.0);
        assert_eq!(axis_step(40.0, 10), 5.0);
        assert!((axis_step(0.3, 10) - 0.05).abs() < 1e-12);
        assert_eq!(axis_step(1234.0, 10), 200.0);
    }

    #[test]
    fn timeline_is_well_formed_svg_with_vcpu_and_pcpu_rows() {
        let mut m = three_guests();
        // A guest record whose payload needs escaping in its title.
        let g = GuestStream { vcpu: VcpuId { domid: 2, vcpu: 0 }, records: vec![TraceRecord::new(TRC_GUEST + 1, Some(5300), &[0x3c26]).unwrap()] };
        let hv = {
            let mut per_cpu = std::collections::BTreeMap::new();
            for s in &m {
                if let Source::Hypervisor { cpu } = s.source {
                    per_cpu.entry(cpu).or_insert_with(Vec::new).push(s.record);
                }
            }
            per_cpu
        };
        m = merge(&hv, &[g]).unwrap();
        let tl = reconstruct(&m);
        let svg = render(&tl, &m, 1_000_000, 800);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"));
        let ids: Vec<&str> = doc.descendants().filter_map(|n| n.attribute("id")).collect();
        for id in ["axis", "domain-1", "domain-2", "domain-3", "vcpu-d1v0", "vcpu-d2v0", "vcpu-d3v0", "pcpus", "pcpu-0", "pcpu-1", "events", "legend"]
        {
            assert!(ids.contains(&id), "no row {id}");
        }
        // Domains in order, each with its vCPU row inside.
        let domains: Vec<&str> = doc.descendants().filter(|n| n.attribute("class") == Some("domain")).filter_map(|n| n.attribute("id")).collect();
        assert_eq!(domains, vec!["domain-1", "domain-2", "domain-3"]);
        let row = doc.descendants().find(|n| n.attribute("id") == Some("vcpu-d2v0")).unwrap();
        assert_eq!(row.parent().and_then(|p| p.attribute("id")), Some("domain-2"));
        // The blocker's row: its states as coloured rectangles with hover titles.
        let fills: Vec<&str> = row.children().filter(|n| n.has_tag_name("rect")).filter_map(|n| n.attribute("fill")).collect();
        assert_eq!(fills.first(), Some(&state_colour(VcpuState::Running)));
        assert!(fills.contains(&state_colour(VcpuState::Blocked)));
        assert!(fills.contains(&state_colour(VcpuState::Hypervisor)));
        let title = row.descendants().find(|n| n.has_tag_name("title")).and_then(|n| n.text()).unwrap();
        assert_eq!(title, "d2v0 running 0.00-0.05 us (0.05 us)");
        // Every record is on a tick with its description on hover; records
        // in one pixel column of a row share a tick that counts them.
        let ticks: Vec<_> = doc.descendants().filter(|n| n.attribute("class") == Some("tick")).collect();
        let texts: Vec<&str> = ticks.iter().filter_map(|t| t.first_element_child()).filter_map(|t| t.text()).collect();
        let covered: usize =
            texts.iter().map(|t| t.split_once(" events:").and_then(|(n, _)| n.parse().ok()).unwrap_or_else(|| t.lines().count())).sum();
        assert_eq!(covered, m.len(), "{texts:?}");
        assert!(ticks.len() < m.len(), "800 px for 41 records over 10 us: some share a column");
        let lines: Vec<&str> = texts.iter().flat_map(|t| t.lines()).collect();
        assert!(lines.contains(&"5.205 us [xen cpu0] d3v0 sends port 3 -> d1 port 7"), "{lines:?}");
        assert!(lines.iter().any(|t| t.starts_with("5.300 us [guest d2v0] guest event")));
        // Axis labels in microseconds: 0 to 10 us by 1 us.
        let labels: Vec<&str> = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("axis"))
            .unwrap()
            .children()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(labels.first(), Some(&"0 us"));
        assert_eq!(labels.last(), Some(&"10 us"));
        assert_eq!(labels.len(), 11);
        // The legend names every state.
        let legend = doc.descendants().find(|n| n.attribute("id") == Some("legend")).unwrap();
        let names: Vec<&str> = legend.children().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).collect();
        assert_eq!(
            names,
            vec!["running", "hypervisor", "runnable", "blocked", "offline", "pCPU idle", "pCPU runs d1", "pCPU runs d2", "pCPU runs d3"]
        );
    }

    #[test]
    fn empty_trace_still_renders_a_document() {
        let tl = reconstruct(&[]);
        let svg = render(&tl, &[], 1_000_000, 400);
        assert!(roxmltree::Document::parse(&svg).is_ok());
    }
}
