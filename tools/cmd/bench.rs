//! `rbdkit bench TARGET...`: RBD images, files, NFS shares, GlusterFS volumes and iSCSI LUNs side by side — latency histograms,
//! a table, JSON, an SVG plot, and a regression gate against a saved baseline.
use crate::global::Global;
use clap::Args;
use rbdkit::bench::{
    self, BenchConfig, BenchReport, Event, OpenPolicy, RunMeta, Rw, Settings, Target,
};
use rbdkit::units::format_size;
use rbdkit::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbdkit bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Targets, run one after another: rbd:POOL/IMAGE, file:PATH, nfs://HOST[:PORT]/EXPORT/FILE,
    /// gluster://HOST[:PORT]/VOLUME/PATH, iscsi://HOST[:PORT]/IQN/LUN. An iSCSI LUN always
    /// exists: writing it needs --allow-existing, which overwrites any of its blocks (and with
    /// --phases first UNMAPs the whole LUN).
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Size of targets the run creates (default 1G; a bare number is MiB, as in rbd). An
    /// existing target is used at its own size: a different --size is refused.
    #[arg(long, value_parser = super::parse_image_size, allow_hyphen_values = true)]
    pub size: Option<u64>,
    /// read, write, randread, randwrite or randrw.
    #[arg(long, default_value = "randwrite")]
    pub rw: String,
    /// Read percentage for randrw.
    #[arg(long, default_value_t = 50)]
    pub mix: u32,
    /// Block size (a bare number is bytes, as in `rbd bench --io-size`).
    #[arg(long, default_value = "4K", value_parser = super::parse_size, allow_hyphen_values = true)]
    pub bs: u64,
    /// I/Os in flight per job.
    #[arg(long, default_value_t = 16)]
    pub iodepth: usize,
    /// Parallel jobs, each with its own queue.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Time per phase (10s, 2m or seconds); default 10 s unless --io-total is given.
    #[arg(long, value_parser = parse_duration)]
    pub runtime: Option<std::time::Duration>,
    /// Bytes per phase instead of (or as well as) a time limit.
    #[arg(long = "io-total", value_parser = super::parse_nonzero_size, allow_hyphen_values = true)]
    pub io_total: Option<u64>,
    /// Warm-up time excluded from the results.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub ramp: std::time::Duration,
    /// Seed for offsets and data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sparse-storage truth: first write into holes, overwrite, then read of written data.
    #[arg(long)]
    pub phases: bool,
    /// Write all of a new target before a write workload as well, as fio lays out its file
    /// first (without it, writes into a fresh target measure first allocations into holes).
    #[arg(long)]
    pub prefill: bool,
    /// Run the workload N times per target: mean ± σ, and a gate that judges the spread.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// plain (the table) or fio-json (fio's --output-format=json field names) on stdout.
    #[arg(long = "output-format", default_value = "plain", value_parser = ["plain", "fio-json"])]
    pub output_format: String,
    /// Use the page cache for file: targets (default O_DIRECT).
    #[arg(long)]
    pub buffered: bool,
    /// Keep targets the run created.
    #[arg(long)]
    pub keep: bool,
    /// Write into targets that already exist (someone's image or file): without it such a
    /// target is refused before any I/O, unless the workload only reads.
    #[arg(long = "allow-existing")]
    pub allow_existing: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw latency CDFs and IOPS over time into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// A previous --json file to compare against.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Fail (exit 1) when a metric is worse than the baseline by more than this percentage.
    #[arg(long = "max-regression", default_value_t = 10.0, requires = "baseline")]
    pub max_regression: f64,
    /// NFS MOUNT port (default: ask the server's portmapper).
    #[arg(long = "nfs-mount-port")]
    pub nfs_mount_port: Option<u16>,
}

#[cfg(feature = "rbd")]
type ClusterHandle = rbdkit::ceph::Cluster;
#[cfg(not(feature = "rbd"))]
type ClusterHandle = ();

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    rbdkit::units::parse_duration(s).map_err(|e| e.to_string())
}

fn open_target(
    t: &str,
    a: &BenchArgs,
    policy: &OpenPolicy,
    g: &Global,
    cluster: &mut Option<ClusterHandle>,
) -> rbdkit::Result<Box<dyn Target>> {
    if let Some(path) = t.strip_prefix("file:") {
        return Ok(Box::new(bench::file::FileTarget::open(
            t,
            PathBuf::from(path),
            policy,
            a.buffered,
        )?));
    }
    if t.starts_with("nfs://") {
        let url = bench::nfs::NfsUrl::parse(t)?;
        return Ok(Box::new(bench::nfs::NfsTarget::open(
            t,
            url,
            a.nfs_mount_port,
            policy,
        )?));
    }
    if t.starts_with("gluster://") {
        return open_gluster(t, policy);
    }
    if t.starts_with("iscsi://") {
        return open_iscsi(t, policy, a.phases);
    }
    if let Some(spec) = t.strip_prefix("rbd:") {
        #[cfg(feature = "rbd")]
        {
            let spec = rbdkit::ceph::ImageSpec::parse(spec)?;
            if cluster.is_none() {
                // An OSD that never comes back would otherwise leave I/O in flight forever;
                // with an op timeout it fails, is counted as an error, and the run ends.
                let mut g = g.clone();
                g.op_timeout = g.op_timeout.or(Some(std::time::Duration::from_secs(60)));
                *cluster = Some(g.connect()?);
            }
            let c = cluster
                .as_ref()
                .ok_or_else(|| Error::Other("no cluster connection".into()))?;
            return Ok(Box::new(bench::rbd::RbdTarget::open(t, c, spec, policy)?));
        }
        #[cfg(not(feature = "rbd"))]
        {
            let _ = (spec, g, cluster);
            return Err(Error::InvalidInput(format!(
                "{t}: this rbdkit was built without RBD support (feature rbd)"
            )));
        }
    }
    Err(Error::InvalidInput(format!(
        "unknown target '{t}': use rbd:POOL/IMAGE, file:PATH, nfs://HOST[:PORT]/EXPORT/FILE, gluster://HOST[:PORT]/VOLUME/PATH, or iscsi://HOST[:PORT]/IQN/LUN"
    )))
}

#[cfg(feature = "gluster")]
fn open_gluster(t: &str, policy: &OpenPolicy) -> rbdkit::Result<Box<dyn Target>> {
    let url = rbdkit::gluster::GlusterUrl::parse(t)?;
    Ok(Box::new(bench::gluster::GlusterTarget::open(
        t, url, policy,
    )?))
}

#[cfg(not(feature = "gluster"))]
fn open_gluster(t: &str, _: &OpenPolicy) -> rbdkit::Result<Box<dyn Target>> {
    Err(Error::InvalidInput(format!(
        "{t}: this rbdkit was built without GlusterFS support (feature gluster)"
    )))
}

#[cfg(feature = "iscsi")]
fn open_iscsi(t: &str, policy: &OpenPolicy, phases: bool) -> rbdkit::Result<Box<dyn Target>> {
    let url = rbdkit::iscsi::IscsiUrl::parse(t)?;
    Ok(Box::new(bench::iscsi::IscsiTarget::open(
        t, url, policy, phases,
    )?))
}

#[cfg(not(feature = "iscsi"))]
fn open_iscsi(t: &str, _: &OpenPolicy, _: bool) -> rbdkit::Result<Box<dyn Target>> {
    Err(Error::InvalidInput(format!(
        "{t}: this rbdkit was built without iSCSI support (feature iscsi)"
    )))
}

/// Fails unless `path` can be written, without leaving anything behind: checked before the
/// run, so a typo in `--plot` does not cost the measurement.
fn check_writable(flag: &str, path: &std::path::Path) -> rbdkit::Result<()> {
    let bad = |e: std::io::Error| {
        Error::InvalidInput(format!(
            "{flag} {}: cannot be written ({e}); checked before the run so no result is lost",
            path.display()
        ))
    };
    if path.is_dir() {
        return Err(bad(std::io::Error::from(std::io::ErrorKind::IsADirectory)));
    }
    if path.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(bad)?;
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(bad)?;
    let _ = std::fs::remove_file(path);
    Ok(())
}

/// Reads the baseline and checks, before any I/O, that it was measured with this run's
/// settings (naming each that differs) and has results for at least one of its targets.
fn load_baseline(
    p: &std::path::Path,
    settings: &Settings,
    targets: &[String],
) -> rbdkit::Result<BenchReport> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| Error::io(format!("read baseline {}", p.display()), e))?;
    let base: BenchReport = serde_json::from_str(&text).map_err(|e| {
        Error::InvalidInput(format!(
            "baseline {} is not an rbdkit bench JSON file: {e}",
            p.display()
        ))
    })?;
    let diffs = match &base.meta {
        Some(m) => settings.differences(&m.settings),
        // Files of older versions carry the settings in each result only.
        None => {
            let mut d = Vec::new();
            for r in base.results.iter().filter(|r| targets.contains(&r.target)) {
                let old = Settings {
                    rw: if settings.phases {
                        settings.rw.clone()
                    } else {
                        r.rw.clone()
                    },
                    bs: r.bs,
                    iodepth: r.iodepth,
                    jobs: r.jobs,
                    ..settings.clone()
                };
                for x in settings.differences(&old) {
                    if !d.contains(&x) {
                        d.push(x);
                    }
                }
            }
            d
        }
    };
    if !diffs.is_empty() {
        return Err(Error::InvalidInput(format!(
            "baseline {} was measured with other settings: {}; rerun the baseline or use the same options",
            p.display(),
            diffs.join(", ")
        )));
    }
    if !base.results.iter().any(|r| targets.contains(&r.target)) {
        let mut have: Vec<&str> = base.results.iter().map(|r| r.target.as_str()).collect();
        have.dedup();
        return Err(Error::InvalidInput(format!(
            "baseline {} has no result for {} (it has: {})",
            p.display(),
            targets.join(", "),
            have.join(", ")
        )));
    }
    Ok(base)
}

/// Runs the benchmark.
pub fn run(a: BenchArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let rw = Rw::parse(&a.rw).ok_or_else(|| {
        Error::InvalidInput(format!(
            "--rw {}: use read, write, randread, randwrite or randrw",
            a.rw
        ))
    })?;
    if a.mix > 100 {
        return Err(Error::InvalidInput(format!(
            "--mix {}: a percentage, 0..=100",
            a.mix
        )));
    }
    if a.iodepth == 0 || a.iodepth > 4096 || a.jobs == 0 || a.jobs > 256 {
        return Err(Error::InvalidInput(
            "--iodepth must be 1..=4096 and --jobs 1..=256".into(),
        ));
    }
    let cfg = BenchConfig {
        rw,
        mix_read_pct: a.mix,
        bs: a.bs,
        iodepth: a.iodepth,
        jobs: a.jobs,
        runtime: a.runtime,
        io_total: a.io_total,
        ramp: a.ramp,
        seed: a.seed,
        phases: a.phases,
        prefill: a.prefill,
        repeat: a.repeat,
    };
    // Everything that can be checked is checked before the first I/O.
    bench::check_config(&cfg)?;
    let settings = Settings::new(&cfg, a.size, a.buffered);
    if let Some(p) = &a.plot {
        check_writable("--plot", p)?;
    }
    if let Some(p) = &a.json {
        check_writable("--json", p)?;
    }
    let baseline = match &a.baseline {
        None => None,
        Some(p) => Some(load_baseline(p, &settings, &a.targets)?),
    };
    let meta = RunMeta::now(settings);
    let policy = OpenPolicy {
        size: a.size,
        allow_existing: a.allow_existing,
        writes: a.phases || rw.writes(),
    };
    let stop = crate::cancel::flag();
    let mut cluster = None;
    let mut targets: Vec<Box<dyn Target>> = Vec::new();
    let mut result = Ok(());
    for t in &a.targets {
        match open_target(t, &a, &policy, g, &mut cluster) {
            Ok(t) => {
                // Said whatever --no-progress says: someone's data is at stake.
                let m = t.meta();
                if !m.created && m.writable {
                    let what = if policy.writes {
                        "this run writes over any of its bytes"
                    } else {
                        "where it is not allocated, this run prefills (writes) its bytes"
                    };
                    eprintln!(
                        "rbdkit bench: --allow-existing: {} exists ({}); {what} 0..{}",
                        m.name,
                        format_size(m.size),
                        m.size
                    );
                } else if !m.created {
                    eprintln!(
                        "rbdkit bench: {} exists ({}): reading it as it is, writing nothing",
                        m.name,
                        format_size(m.size)
                    );
                }
                targets.push(t)
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    // The live status line only on a terminal: piped into a file it would be noise.
    let status = !g.no_progress && std::io::stderr().is_terminal();
    let progress = |e: Event| match e {
        Event::Phase(msg) if !g.no_progress => eprintln!("rbdkit bench: {msg}"),
        Event::Tick {
            target,
            phase,
            elapsed,
            ios,
            bytes,
        } if status => {
            let t = elapsed.as_secs_f64().max(1e-3);
            eprint!(
                "\r\x1b[K{target} {phase}: {:.0} s, {:.0} IOPS, {:.1} MiB/s",
                t,
                ios as f64 / t,
                bytes as f64 / t / (1 << 20) as f64
            );
        }
        Event::PhaseEnd if status => eprint!("\r\x1b[K"),
        _ => {}
    };
    let (mut report, run_result) = match result {
        Ok(()) => bench::run(&targets, &cfg, &stop, &progress),
        Err(e) => (BenchReport::default(), Err(e)),
    };
    report.meta = Some(meta);
    // Targets this run created go away whatever happened.
    let mut cleanup_err = None;
    for t in targets {
        if let Err(e) = t.finish(a.keep) {
            cleanup_err.get_or_insert(e);
        }
    }
    if let Some(base) = &baseline {
        if run_result.is_ok() {
            let name = a
                .baseline
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            report.gate = Some(bench::gate(base, &report, &name, a.max_regression));
        }
    }
    // The results first, whatever fails later: a run is too expensive to lose to a bad path.
    if !report.results.is_empty() {
        print_report(&report, &a, g)?;
    }
    let mut failure: Option<Error> = run_result.err().or(cleanup_err);
    if let Some(p) = &a.json {
        let r = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Other(e.to_string()))
            .and_then(|text| {
                std::fs::write(p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))
            });
        if let Err(e) = r {
            failure.get_or_insert(e);
        }
    }
    if let Some(p) = &a.plot {
        let title = format!(
            "rbdkit bench: {} bs={} iodepth={} jobs={}",
            rw.name(),
            format_size(a.bs),
            a.iodepth,
            a.jobs
        );
        if let Err(e) = std::fs::write(p, bench::plot::svg(&report, &title))
            .map_err(|e| Error::io(format!("write {}", p.display()), e))
        {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut code = ExitCode::SUCCESS;
    if let Some(gate) = &report.gate {
        for r in gate.regressions() {
            eprintln!(
                "rbdkit: regression: {} {} {}: {:.1} -> {:.1} ({:.1}% worse, limit {}%, noise {:.1}%)",
                r.target,
                r.phase,
                r.metric,
                r.baseline.mean,
                r.current.mean,
                r.worse_by_pct,
                a.max_regression,
                r.noise_pct
            );
        }
        eprintln!("rbdkit bench: {}", gate.verdict_line());
        if !gate.passed {
            code = ExitCode::FAILURE;
        }
    }
    let errors: u64 = report.results.iter().map(|r| r.errors).sum();
    if errors > 0 {
        let first = report
            .results
            .iter()
            .find_map(|r| r.first_error.clone())
            .unwrap_or_default();
        eprintln!("rbdkit: {errors} I/O errors during the benchmark; first: {first}");
        code = ExitCode::FAILURE;
    }
    Ok(code)
}

/// The table and notes (or JSON, or fio's JSON) on stdout.
fn print_report(report: &BenchReport, a: &BenchArgs, g: &Global) -> rbdkit::Result<()> {
    let notes = report.notes();
    if a.output_format == "fio-json" {
        // stdout is fio's JSON alone; what qualifies the numbers goes to stderr.
        for n in &notes {
            eprintln!("rbdkit bench: note: {n}");
        }
        return super::print_json(g, &bench::fio::fio_json(report));
    }
    if g.json() {
        return super::print_json(g, report);
    }
    out!("{}", report.table());
    for n in notes {
        outln!("note: {n}");
    }
    for r in &report.results {
        if let (Some(b), Some(af)) = (r.allocated_before, r.allocated_after) {
            outln!(
                "allocated {} {}: {} -> {}",
                r.target,
                r.phase,
                format_size(b),
                format_size(af)
            );
        }
    }
    Ok(())
}
