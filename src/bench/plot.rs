//! An SVG a person can read without the numbers: latency CDF per target and phase (log-scale
//! latency axis), and IOPS over time. Hand-written SVG: no plotting dependency needed.
use super::BenchReport;
use std::fmt::Write;

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 1000.0;
const PANEL_H: f64 = 330.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 330.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the report as an SVG document.
pub fn svg(report: &BenchReport, title: &str) -> String {
    let mut s = String::new();
    let h = 2.0 * PANEL_H + 80.0;
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
    let series: Vec<_> = report.results.iter().filter(|r| r.ios > 0).collect();
    let label = |r: &super::PhaseResult| format!("{} {}", r.target, r.phase);

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
            r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#ddd"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(v),
            top,
            top + plot_h,
            top + plot_h + 15.0,
            fmt_num(v)
        );
        d += 1.0;
    }
    for q in [0.0, 0.9, 0.99, 0.999, 0.9999, 0.99999] {
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
        let c = COLORS[i % COLORS.len()];
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        );
        legend(
            &mut s,
            i,
            top,
            c,
            &format!("{} p99 {:.0} µs", label(r), r.lat_us.p99),
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" font-size="14" text-anchor="middle">Latency by percentile (CDF, tail stretched)</text>"##,
        LEFT + plot_w / 2.0,
        top - 8.0
    );

    // Panel 2: IOPS over time.
    let top2 = top + PANEL_H + 10.0;
    let secs = series
        .iter()
        .map(|r| r.iops_series.len())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let peak = series
        .iter()
        .flat_map(|r| r.iops_series.iter().copied())
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let x2 = |t: f64| LEFT + t / secs * plot_w;
    let y2 = |v: f64| top2 + (1.0 - v / peak) * plot_h;
    axes(&mut s, top2, plot_w, plot_h, "seconds", "IOPS");
    for k in 0..=4 {
        let v = peak * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#eee"/><text x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
            y2(v),
            LEFT + plot_w,
            LEFT - 6.0,
            y2(v) + 4.0,
            fmt_num(v)
        );
    }
    for t in 0..=(secs as usize) {
        if secs <= 20.0 || t % 5 == 0 {
            let _ = write!(
                s,
                r##"<text x="{}" y="{}" text-anchor="middle">{t}</text>"##,
                x2(t as f64),
                top2 + plot_h + 15.0
            );
        }
    }
    for (i, r) in series.iter().enumerate() {
        let pts: Vec<String> = r
            .iops_series
            .iter()
            .enumerate()
            .map(|(t, v)| format!("{:.1},{:.1}", x2(t as f64 + 0.5), y2(*v as f64)))
            .collect();
        let c = COLORS[i % COLORS.len()];
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"##,
            pts.join(" ")
        );
        legend(
            &mut s,
            i,
            top2,
            c,
            &format!("{} {:.0} IOPS", label(r), r.iops),
        );
    }
    let _ = write!(
        s,
        r##"<text x="{}" y="{}" font-size="14" text-anchor="middle">IOPS over time</text>"##,
        LEFT + plot_w / 2.0,
        top2 - 8.0
    );
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

fn legend(s: &mut String, i: usize, top: f64, color: &str, text: &str) {
    let (lx, ly) = (W - RIGHT + 15.0, top + 10.0 + i as f64 * 18.0);
    let _ = write!(
        s,
        r##"<rect x="{lx}" y="{}" width="14" height="4" fill="{color}"/><text x="{}" y="{}" font-size="11">{}</text>"##,
        ly - 4.0,
        lx + 20.0,
        ly + 1.0,
        esc(text)
    );
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}
