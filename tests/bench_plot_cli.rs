//! The SVG of `rbdkit bench --plot`, read as text: legend names that fit (indexed, shortened,
//! full names under the figure), each target's phases one after another on the time axis, the
//! drain after `--runtime` marked, round axis ticks, a p50 marker per series, dash patterns as
//! well as colours, and the run's context (date, host, size, runtime, engine notes).
mod common;
use common::*;
use std::collections::BTreeSet;

fn nfs_dir() -> String {
    std::env::var("RBDKIT_NFS_DIR")
        .expect("RBDKIT_NFS_DIR is not set: run the tests with scripts/test.sh")
}

/// Every `attr="..."` value of elements whose tag starts with `tag` and carry `class`.
fn texts_of_class(svg: &str, class: &str) -> Vec<String> {
    let needle = format!("class=\"{class}\"");
    svg.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &svg[i..];
            let open = rest.find('>')?;
            let close = rest[open..].find('<')?;
            Some(rest[open + 1..open + close].to_string())
        })
        .collect()
}

fn attr_values(svg: &str, class: &str, attr: &str) -> Vec<f64> {
    let needle = format!("class=\"{class}\"");
    svg.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &svg[i..];
            let end = rest.find('>')?;
            let el = &rest[..end];
            let a = el.find(&format!(" {attr}=\""))? + attr.len() + 3;
            el[a..].split('"').next()?.parse().ok()
        })
        .collect()
}

fn tick_value(label: &str) -> f64 {
    let (num, mult) = match label.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => match label.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (label, 1.0),
        },
    };
    num.parse::<f64>()
        .unwrap_or_else(|_| panic!("tick {label} is not a number"))
        * mult
}

/// Ticks 0, s, 2s, ... with s = 1, 2 or 5 times a power of ten.
fn assert_round_ticks(labels: &[String]) {
    let v: Vec<f64> = labels.iter().map(|l| tick_value(l)).collect();
    assert!(v.len() >= 3, "{labels:?}");
    assert_eq!(v[0], 0.0, "{labels:?}");
    let step = v[1];
    let mant = step / 10f64.powf(step.log10().floor());
    assert!(
        [1.0, 2.0, 5.0].iter().any(|m| (mant - m).abs() < 1e-9),
        "step {step}: {labels:?}"
    );
    for (i, x) in v.iter().enumerate() {
        assert!(
            (x - step * i as f64).abs() < 1e-9 * step.max(1.0),
            "{labels:?}"
        );
    }
}

#[test]
fn the_plot_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("r.svg");
    let long = format!(
        "file:{}/{}-{}",
        nfs_dir(),
        unique("plot"),
        "a-very-long-volume-name-".repeat(3)
    );
    let short = format!("file:{}/{}", nfs_dir(), unique("p"));
    let out = rbdkit(&[
        "bench",
        &long,
        &short,
        "--size",
        "16M",
        "--phases",
        "--runtime",
        "1s",
        "--iodepth",
        "8",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));

    // Legend: six series, indexed, none wider than the margin; the long name is shortened and
    // given in full under the figure.
    let legend = texts_of_class(&svg, "legend");
    assert_eq!(legend.len(), 12, "two panels x six series: {legend:?}");
    for (i, l) in legend.iter().take(6).enumerate() {
        assert!(l.starts_with(&format!("[{}] ", i + 1)), "{l}");
        let name_part = l.split(" p50 ").next().unwrap();
        assert!(
            name_part.chars().count() <= 50,
            "legend entry too wide: {l}"
        );
    }
    assert!(legend[0].contains('…'), "{}", legend[0]);
    let context = texts_of_class(&svg, "context");
    assert!(
        context
            .iter()
            .any(|c| c.starts_with("[1] ") && c.contains(&long)),
        "{context:?}"
    );

    // Phases one after another: boundary lines at increasing x, labelled with the phases.
    let bounds = attr_values(&svg, "phase-boundary", "x1");
    assert_eq!(bounds.len(), 4, "two boundaries per target: {bounds:?}");
    assert!(bounds[0] < bounds[1] && bounds[2] < bounds[3], "{bounds:?}");
    assert!(svg.contains(">overwrite</text>") && svg.contains(">read</text>"));
    // The drain after --runtime is marked.
    assert!(
        !attr_values(&svg, "drain", "x").is_empty(),
        "no drain marked"
    );
    assert!(svg.contains(">drain</text>"));

    // Round ticks: decades on the latency axis, 1/2/5 steps from 0 on the IOPS panel's axes.
    let lat = texts_of_class(&svg, "lat-tick");
    assert!(lat.len() >= 2, "{lat:?}");
    for t in &lat {
        let v = tick_value(t);
        assert!((v.log10() - v.log10().round()).abs() < 1e-9, "{t}: {lat:?}");
    }
    assert_round_ticks(&texts_of_class(&svg, "xtick"));
    assert_round_ticks(&texts_of_class(&svg, "ytick"));

    // A p50 marker per series, on the p50 line.
    assert_eq!(svg.matches("class=\"p50\"").count(), 6);
    let ys: BTreeSet<String> = svg
        .match_indices("class=\"p50\"")
        .map(|(i, _)| {
            svg[i..]
                .split("cy=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ys.len(),
        1,
        "all p50 markers at the same percentile: {ys:?}"
    );

    // Line styles as well as colours: the series do not all share a dash pattern.
    let dashes: BTreeSet<&str> = svg
        .match_indices("<polyline")
        .map(|(i, _)| {
            svg[i..]
                .split("stroke-dasharray=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert!(dashes.len() >= 3, "{dashes:?}");

    // Context: date, host, size, runtime, engine notes.
    let all = context.join("\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for want in [
        host.trim(),
        "size 16 MiB",
        "runtime 1 s",
        "iodepth 8",
        "O_DIRECT",
        "rbdkit ",
    ] {
        assert!(all.contains(want), "{want}: {all}");
    }
    let line = context.iter().find(|c| c.contains(" · host ")).unwrap();
    let year = &line[..4];
    assert!(year.parse::<u32>().is_ok_and(|y| y >= 2024), "{line}");
}
