//! An SVG a person can read without the numbers: latency CDF per target and phase (log-scale
//! latency axis, p50 marked), and IOPS over time with each target's phases one after another
//! and the drain after `--runtime` shaded. Series differ by colour *and* dash pattern (readable
//! in grey print and by colour-blind readers); long names are shortened with an index and
//! listed in full under the figure, with the run's context (date, host, size, runtime, engine
//! notes). Hand-written SVG: no plotting dependency needed.
use super::{BenchReport, PhaseResult};
use std::fmt::Write;

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
/// Dash patterns, cycled at a different period from the colours so no two of the first 24
/// series look alike.
const DASHES: [&str; 3] = ["none", "8,4", "2,3"];
const W: f64 = 1000.0;
const PANEL_H: f64 = 330.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 330.0;
/// Characters a legend entry may have in the right margin at 11 px.
const LEGEND_CHARS: usize = 44;
/// Characters per line of the footer.
const FOOTER_CHARS: usize = 150;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `s` cut to `max` characters by an ellipsis in the middle: the scheme and the end (image or
/// file name) tell targets apart.
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head = (max - 1) / 3;
    let tail = max - 1 - head;
    let h: String = s.chars().take(head).collect();
    let t: String = s.chars().skip(n - tail).collect();
    format!("{h}…{t}")
}

/// A round step (1, 2 or 5 × 10^k) that cuts `range` into about `n` intervals.
pub fn nice_step(range: f64, n: usize) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for w in text.split(' ') {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

fn label(r: &PhaseResult) -> String {
    if r.run > 0 {
        format!("{} {} #{}", r.target, r.phase, r.run + 1)
    } else {
        format!("{} {}", r.target, r.phase)
    }
}

fn style(i: usize) -> (&'static str, &'static str) {
    (
        COLORS[i % COLORS.len()],
        DASHES[(i / COLORS.len() + i) % DASHES.len()],
    )
}

/// The lines of context printed under the figure.
fn context(report: &BenchReport) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(m) = &report.meta {
        let s = &m.settings;
        let size = s
            .size
            .map(crate::units::format_size)
            .unwrap_or_else(|| "1 GiB (new) / own (existing)".into());
        let runtime = match (s.runtime_s, s.io_total) {
            (Some(r), _) => format!("{r} s"),
            (None, Some(b)) => crate::units::format_size(b),
            (None, None) => "10 s".into(),
        };
        let mix = if s.rw == "randrw" {
            format!(" mix {}% reads", s.mix_read_pct)
        } else {
            String::new()
        };
        lines.push(format!(
            "{} · host {} · rbdkit {} · size {size} · runtime {runtime} per phase · ramp {} s · {}{mix} bs {} iodepth {} jobs {} · {} run(s)",
            m.time, m.host, m.rbdkit_version, s.ramp_s, s.rw, crate::units::format_size(s.bs), s.iodepth, s.jobs, s.repeat
        ));
    }
    let notes = report.notes();
    for n in notes {
        lines.extend(wrap(&format!("note: {n}"), FOOTER_CHARS));
    }
    lines
}

/// Renders the report as an SVG document.
pub fn svg(report: &BenchReport, title: &str) -> String {
    let series: Vec<&PhaseResult> = report.results.iter().filter(|r| r.ios > 0).collect();
    // Legend names: "[i] name", shortened to fit the margin; shortened ones are listed in full
    // under the figure.
    let names: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, r)| format!("[{}] {}", i + 1, shorten(&label(r), LEGEND_CHARS)))
        .collect();
    let mut footer: Vec<String> = series
        .iter()
        .enumerate()
        .filter(|(_, r)| label(r).chars().count() > LEGEND_CHARS)
        .flat_map(|(i, r)| wrap(&format!("[{}] {}", i + 1, label(r)), FOOTER_CHARS))
        .collect();
    footer.extend(context(report));

    let mut s = String::new();
    let h = 2.0 * PANEL_H + 80.0 + footer.len() as f64 * 15.0;
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"##
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="24" font-size="16" text-anchor="middle">{}</text>"##,
        W / 2.0,
        esc(title)
    );

    // Panel 1: latency CDF.
    let (top, plot_w, plot_h) = (50.0, W - LEFT - RIGHT, PANEL_H - 70.0);
    let lo = series
        .iter()
        .flat_map(|r| r.lat_cdf.iter().map(|p| p.0))
        .filter(|v| *v > 0.0)
        .fold(f64::MAX, f64::min)
        .max(1.0);
    let hi = series.iter().map(|r| r.lat_us.max).fold(1.0, f64::max);
    let (llo, lhi) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let x = |v: f64| LEFT + (v.max(1e-3).log10() - llo) / (lhi - llo) * plot_w;
    // Percentiles on a log-of-tail axis (0, 90, 99, 99.9, 99.99 evenly spaced), where a latency
    // distribution's interesting part is.
    let tail = |q: f64| -(1.0 - q).max(1e-5).log10() / 5.0;
    let y = |q: f64| top + (1.0 - tail(q)) * plot_h;
    axes(
        &mut s,
        top,
        plot_w,
        plot_h,
        "latency (µs, log scale)",
        "percentile",
    );
    let mut d = llo;
    while d <= lhi {
        let v = 10f64.powf(d);
        let _ = write!(
            s,
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#ddd"/><text class="lat-tick" x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(v),
            top,
            top + plot_h,
            top + plot_h + 15.0,
            fmt_num(v)
        );
        d += 1.0;
    }
    for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999] {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#eee"/><text x="{2}" y="{3}" text-anchor="end">p{4}</text>"##,
            y(q),
            LEFT + plot_w,
            LEFT - 6.0,
            y(q) + 4.0,
            (q * 1e5).round() / 1e3
        );
    }
    for (i, r) in series.iter().enumerate() {
        let pts: Vec<String> = r
            .lat_cdf
            .iter()
            .map(|(v, q)| format!("{:.1},{:.1}", x(*v), y(*q)))
            .collect();
        let (c, dash) = style(i);
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"##,
            pts.join(" ")
        );
        // The median, where most I/Os sit: a marker on the curve.
        let _ = write!(
            s,
            r##"<circle class="p50" cx="{:.1}" cy="{:.1}" r="4" fill="{c}"><title>{} p50 {:.0} µs</title></circle>"##,
            x(r.lat_us.p50),
            y(0.5),
            esc(&names[i]),
            r.lat_us.p50
        );
        legend(
            &mut s,
            i,
            top,
            c,
            dash,
            &format!(
                "{} p50 {:.0} p99 {:.0} µs",
                names[i], r.lat_us.p50, r.lat_us.p99
            ),
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" font-size="14" text-anchor="middle">Latency by percentile (CDF, tail stretched; dots: p50)</text>"##,
        LEFT + plot_w / 2.0,
        top - 8.0
    );

    // Panel 2: IOPS over time, each target's phases (and repeated runs) one after another.
    let top2 = top + PANEL_H + 10.0;
    let mut offsets = Vec::with_capacity(series.len());
    let mut end_of: Vec<(&str, f64)> = Vec::new();
    for r in &series {
        let at = end_of
            .iter()
            .find(|(t, _)| *t == r.target)
            .map_or(0.0, |e| e.1);
        offsets.push(at);
        let end = at + r.runtime_s;
        match end_of.iter_mut().find(|(t, _)| *t == r.target) {
            Some(e) => e.1 = end,
            None => end_of.push((&r.target, end)),
        }
    }
    let secs = end_of.iter().map(|e| e.1).fold(1.0, f64::max);
    let peak_raw = series
        .iter()
        .flat_map(|r| r.iops_series.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let ystep = nice_step(peak_raw, 4);
    let peak = (peak_raw / ystep).ceil().max(1.0) * ystep;
    let xstep = nice_step(secs, 10);
    let x2 = |t: f64| LEFT + t / secs * plot_w;
    let y2 = |v: f64| top2 + (1.0 - v / peak) * plot_h;
    axes(&mut s, top2, plot_w, plot_h, "seconds", "IOPS");
    let mut v = 0.0;
    while v <= peak + ystep / 2.0 {
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#eee"/><text class="ytick" x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
            y2(v),
            LEFT + plot_w,
            LEFT - 6.0,
            y2(v) + 4.0,
            fmt_num(v)
        );
        v += ystep;
    }
    let mut t = 0.0;
    while t <= secs + 1e-9 {
        let _ = write!(
            s,
            r##"<text class="xtick" x="{}" y="{}" text-anchor="middle">{}</text>"##,
            x2(t),
            top2 + plot_h + 15.0,
            fmt_num(t)
        );
        t += xstep;
    }
    for (i, r) in series.iter().enumerate() {
        let off = offsets[i];
        let (c, dash) = style(i);
        if off > 0.0 {
            let _ = write!(
                s,
                r##"<line class="phase-boundary" x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#999" stroke-dasharray="3,3"/><text x="{3:.1}" y="{4}" font-size="10" fill="#555">{5}</text>"##,
                x2(off),
                top2,
                top2 + plot_h,
                x2(off) + 3.0,
                top2 + 12.0,
                esc(&r.phase)
            );
        }
        if r.drain_s > 0.0 {
            // I/Os still in flight at the deadline finish here: not steady-state throughput.
            let (d0, d1) = (x2(off + r.runtime_s - r.drain_s), x2(off + r.runtime_s));
            let _ = write!(
                s,
                r##"<rect class="drain" x="{d0:.1}" y="{top2}" width="{:.1}" height="{plot_h}" fill="#999" fill-opacity="0.25"><title>drain after --runtime: {:.3} s</title></rect><text x="{d0:.1}" y="{}" font-size="9" fill="#555">drain</text>"##,
                (d1 - d0).max(1.0),
                r.drain_s,
                top2 + plot_h - 4.0
            );
        }
        let pts: Vec<String> = r
            .iops_series
            .iter()
            .enumerate()
            .map(|(t, v)| format!("{:.1},{:.1}", x2(off + t as f64 + 0.5), y2(*v as f64)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" stroke-dasharray="{dash}" points="{}"/>"##,
            pts.join(" ")
        );
        legend(
            &mut s,
            i,
            top2,
            c,
            dash,
            &format!("{} {:.0} IOPS", names[i], r.iops),
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" font-size="14" text-anchor="middle">IOPS over time (phases in run order; shaded: drain after --runtime)</text>"##,
        LEFT + plot_w / 2.0,
        top2 - 8.0
    );
    let fy = top2 + PANEL_H + 20.0;
    for (k, line) in footer.iter().enumerate() {
        let _ = write!(
            s,
            r##"<text class="context" x="10" y="{}" font-size="10">{}</text>"##,
            fy + k as f64 * 15.0,
            esc(line)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn axes(s: &mut String, top: f64, w: f64, h: f64, xlabel: &str, ylabel: &str) {
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#333"/>"##
    );
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle">{xlabel}</text>"##,
        LEFT + w / 2.0,
        top + h + 32.0
    );
    let _ = write!(
        s,
        r##"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">{ylabel}</text>"##,
        top + h / 2.0
    );
}

fn legend(s: &mut String, i: usize, top: f64, color: &str, dash: &str, text: &str) {
    let (lx, ly) = (W - RIGHT + 15.0, top + 10.0 + i as f64 * 18.0);
    let _ = write!(
        s,
        r##"<line x1="{lx}" y1="{0}" x2="{1}" y2="{0}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/><text class="legend" x="{2}" y="{3}" font-size="11">{4}</text>"##,
        ly - 2.0,
        lx + 16.0,
        lx + 20.0,
        ly + 1.0,
        esc(text)
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        trim(v / 1e6, "M")
    } else if v >= 1e3 {
        trim(v / 1e3, "k")
    } else {
        trim(v, "")
    }
}

/// `12k`, `2.5k`, `0.5`: a round tick keeps its one decimal when it has one.
fn trim(v: f64, unit: &str) -> String {
    let r = (v * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}{unit}")
    } else {
        format!("{r:.1}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_steps_and_short_names() {
        assert_eq!(nice_step(23_456.0, 4), 10_000.0);
        assert_eq!(nice_step(7.3, 10), 1.0);
        assert_eq!(nice_step(13.0, 10), 2.0);
        assert_eq!(nice_step(0.9, 4), 0.5);
        let s = shorten(
            &format!("nfs://127.0.0.1:2049/rbdkit/{}", "x".repeat(80)),
            44,
        );
        assert_eq!(s.chars().count(), 44);
        assert!(s.starts_with("nfs://") && s.contains('…'));
        assert_eq!(fmt_num(2500.0), "2.5k");
        assert_eq!(fmt_num(20000.0), "20k");
    }
}
