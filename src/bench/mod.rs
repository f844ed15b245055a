//! `rbdkit bench`: I/O benchmarks of RBD images (librbd aio), files (io_uring, O_DIRECT), NFS
//! shares (userspace NFSv3), GlusterFS volumes (libgfapi) and iSCSI LUNs (libiscsi), side by
//! side, with honest
//! sparse-storage semantics: first writes into holes, overwrites and reads of written data are
//! measured separately, and reads never touch never-written ranges (those are prefilled first).
//! The library measures and returns data; the CLI prints tables, JSON and plots.
pub mod file;
pub mod fio;
#[cfg(feature = "gluster")]
pub mod gluster;
#[cfg(feature = "iscsi")]
pub mod iscsi;
pub mod meta;
pub mod nfs;
pub mod plot;
#[cfg(feature = "rbd")]
pub mod rbd;
pub mod recorder;
pub mod report;
#[cfg(any(feature = "gluster", feature = "iscsi"))]
pub mod slots;
pub mod stats;
pub mod workload;

pub use meta::{RunMeta, Settings};
pub use recorder::{Live, Recorder};
pub use report::{BenchReport, DirStats, Lat, Measured, PhaseResult};
pub use stats::{gate, GateReport, Summary, Verdict};
pub use workload::{Op, OpGen, Pattern, Rw};

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When a job must stop issuing I/O.
#[derive(Clone)]
pub struct JobCtl {
    /// Stop issuing after this instant.
    pub deadline: Option<Instant>,
    /// Bytes left to issue, shared by all jobs of a phase.
    pub budget: Option<Arc<AtomicI64>>,
    /// Set to stop everything (Ctrl-C).
    pub stop: Arc<AtomicBool>,
}

impl JobCtl {
    /// Whether another I/O of `bytes` may be issued; takes it from the budget.
    pub fn take(&self, bytes: u64) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        match &self.budget {
            Some(b) => b.fetch_sub(bytes as i64, Ordering::Relaxed) > 0,
            None => true,
        }
    }
}

/// One job's assignment.
pub struct JobSpec {
    /// Offsets and directions.
    pub pattern: Pattern,
    /// Block size.
    pub bs: u64,
    /// I/Os in flight.
    pub iodepth: usize,
    /// Read percentage for randrw.
    pub mix_read_pct: u32,
    /// RNG seed.
    pub seed: u64,
    /// This job's index.
    pub job: u64,
    /// Number of jobs.
    pub jobs: u64,
    /// Bytes of the target the job may touch.
    pub region: u64,
    /// Phase start.
    pub start: Instant,
    /// Completions before `start + ramp` are not recorded.
    pub ramp: Duration,
    /// Stop conditions.
    pub ctl: JobCtl,
    /// Completions so far, for the live status line.
    pub live: Arc<Live>,
}

impl JobSpec {
    /// The next I/O to issue, or `None` once the job must stop (time, byte budget, Ctrl-C or
    /// the end of a block list).
    pub fn next_op(&self, gen: &mut OpGen) -> Option<Op> {
        if !self.ctl.take(self.bs) {
            return None;
        }
        gen.next_op()
    }

    /// The recorder a target's job records into (it also feeds the live status line).
    pub fn recorder(&self) -> Recorder {
        Recorder::with_live(self.start, self.ramp, self.live.clone())
    }

    /// The job's op generator.
    pub fn op_gen(&self) -> OpGen {
        OpGen::new(
            self.pattern.clone(),
            self.region,
            self.bs,
            self.mix_read_pct,
            self.seed,
            self.job,
            self.jobs,
        )
    }
}

/// What every target knows about itself.
#[derive(Clone, Debug)]
pub struct TargetMeta {
    /// The target as given on the command line.
    pub name: String,
    /// Bytes available for I/O.
    pub size: u64,
    /// Whether this run created it (so it holds no data yet).
    pub created: bool,
    /// Whether the run may write to it: it created it, or `--allow-existing` said so.
    pub writable: bool,
}

/// Size of a target the run creates when `--size` is not given.
pub const DEFAULT_SIZE: u64 = 1 << 30;

/// How a target is opened: the size of one the run creates, and whether one that is already
/// there (someone's volume, a tenant's file) may be written. A benchmark writes random data over
/// whatever it is pointed at, so an existing target is only ever written when told.
#[derive(Clone, Copy, Debug)]
pub struct OpenPolicy {
    /// `--size`: the size of a new target; for an existing one it must match (never resized).
    pub size: Option<u64>,
    /// `--allow-existing`: an existing target may be written (and prefilled).
    pub allow_existing: bool,
    /// Whether the workload writes (a write pattern or `--phases`).
    pub writes: bool,
}

impl OpenPolicy {
    /// The size to create a missing target with.
    pub fn create_size(&self) -> u64 {
        self.size.unwrap_or(DEFAULT_SIZE)
    }

    /// Decides about a target that exists with `size` bytes, before any I/O: refused when the
    /// workload writes and `--allow-existing` was not given, or when `--size` differs from its
    /// size. Returns whether the run may write to it.
    pub fn check_existing(&self, name: &str, size: u64) -> Result<bool> {
        let have = crate::units::format_size(size);
        if self.writes && !self.allow_existing {
            return Err(Error::Other(format!(
                "{name} already exists ({have}) and the benchmark would write over its data: name a new target, or pass --allow-existing to overwrite it"
            )));
        }
        if let Some(want) = self.size.filter(|&s| s != size) {
            return Err(Error::Other(format!(
                "{name} already exists with {have}, not --size {}: bench never resizes an existing target; drop --size to use it at its own size",
                crate::units::format_size(want)
            )));
        }
        Ok(self.allow_existing)
    }

    /// The meta of a file-like target of `size` bytes that this run `created` or found: an
    /// existing one checked with [`OpenPolicy::check_existing`], an empty one refused.
    pub fn file_meta(&self, name: &str, size: u64, created: bool) -> Result<TargetMeta> {
        let writable = created || self.check_existing(name, size)?;
        if size == 0 {
            return Err(Error::Other(format!(
                "{name} is empty: nothing to benchmark; name a new file (bench creates it with --size)"
            )));
        }
        Ok(TargetMeta {
            name: name.to_string(),
            size,
            created,
            writable,
        })
    }
}

/// Something to benchmark.
pub trait Target: Send + Sync {
    /// Name, size and whether this run created it.
    fn meta(&self) -> &TargetMeta;
    /// The target as given on the command line.
    fn name(&self) -> &str {
        &self.meta().name
    }
    /// Bytes available for I/O.
    fn size(&self) -> u64 {
        self.meta().size
    }
    /// Whether this run created it (so it holds no data yet).
    fn created(&self) -> bool {
        self.meta().created
    }
    /// Runs one job to its stop condition.
    fn run_job(&self, spec: &JobSpec) -> Result<Recorder>;
    /// Bytes the storage has allocated for it, when the storage can tell.
    fn allocated_bytes(&self) -> Result<Option<u64>>;
    /// Facts that change results (cache mode, O_DIRECT, ...).
    fn notes(&self) -> Vec<String>;
    /// Whether [`Target::make_holes`] may empty it: a target this run created, or one whose
    /// storage can be emptied in place and that the run may write (an iSCSI LUN with UNMAP
    /// and `--allow-existing`). Such an existing target is emptied before the first `--phases`
    /// run too, so its first-write phase writes into holes.
    fn can_empty(&self) -> bool {
        self.created()
    }
    /// Frees everything written to the target, keeping its size, so it is all holes again: a
    /// repeated `--phases` run measures first writes into holes each time. Each created target
    /// shrinks to 0 and grows back, which frees the storage on all of them (RBD removes the
    /// objects; files and NFS files drop their blocks); an iSCSI LUN is UNMAPped whole.
    fn make_holes(&self) -> Result<()>;
    /// Closes it, and removes it if this run created it and `keep` is false.
    fn finish(self: Box<Self>, keep: bool) -> Result<()>;
}

/// The benchmark as configured on the command line.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Access pattern.
    pub rw: Rw,
    /// Read percentage for randrw.
    pub mix_read_pct: u32,
    /// Block size.
    pub bs: u64,
    /// I/Os in flight per job.
    pub iodepth: usize,
    /// Parallel jobs (threads), each with its own queue.
    pub jobs: usize,
    /// Time limit per phase.
    pub runtime: Option<Duration>,
    /// Byte limit per phase.
    pub io_total: Option<u64>,
    /// Warm-up excluded from the results.
    pub ramp: Duration,
    /// RNG seed for offsets and data.
    pub seed: u64,
    /// Run first-write, overwrite and read phases.
    pub phases: bool,
    /// Write the whole of a new (sparse) target before a write workload too, as fio lays out
    /// its file first: the numbers are then overwrites, not first allocations.
    pub prefill: bool,
    /// Runs of the workload per target (`--repeat`), for mean ± σ.
    pub repeat: usize,
}

/// What [`run`] tells its caller while it runs.
pub enum Event<'a> {
    /// A phase (or a prefill) begins; the text says which.
    Phase(&'a str),
    /// About once a second during a phase.
    Tick {
        /// The target.
        target: &'a str,
        /// The phase.
        phase: &'a str,
        /// Since the phase started (ramp included).
        elapsed: Duration,
        /// I/Os completed so far.
        ios: u64,
        /// Bytes completed so far.
        bytes: u64,
    },
    /// The phase ended.
    PhaseEnd,
}

/// User and system CPU time of the whole process (all threads) so far.
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage writes one rusage struct into the zeroed local we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// How often the live status line is refreshed.
const TICK: Duration = Duration::from_secs(1);

/// Runs one phase on one target with `jobs` threads.
fn run_phase(
    target: &dyn Target,
    cfg: &BenchConfig,
    phase: &str,
    pattern: Pattern,
    rw: Rw,
    stop: &Arc<AtomicBool>,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<(PhaseResult, Recorder)> {
    let start = Instant::now();
    let runtime = match (cfg.runtime, cfg.io_total) {
        (None, None) => Some(Duration::from_secs(10)),
        (r, _) => r,
    };
    let deadline = runtime.map(|r| start + cfg.ramp + r);
    let ctl = JobCtl {
        deadline,
        budget: cfg
            .io_total
            .map(|b| Arc::new(AtomicI64::new(b.min(i64::MAX as u64) as i64))),
        stop: stop.clone(),
    };
    let live = Arc::new(Live::default());
    let jobs_done = AtomicBool::new(false);
    let (usr0, sys0) = cpu_time();
    let results: Vec<Result<Recorder>> = std::thread::scope(|s| {
        // The status ticker only reads the shared counters; it never touches the I/O path.
        s.spawn(|| {
            let mut next = start + TICK;
            while !jobs_done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if Instant::now() >= next {
                    next += TICK;
                    progress(Event::Tick {
                        target: target.name(),
                        phase,
                        elapsed: start.elapsed(),
                        ios: live.ios.load(Ordering::Relaxed),
                        bytes: live.bytes.load(Ordering::Relaxed),
                    });
                }
            }
        });
        let handles: Vec<_> = (0..cfg.jobs.max(1))
            .map(|job| {
                let spec = JobSpec {
                    pattern: pattern.clone(),
                    bs: cfg.bs,
                    iodepth: cfg.iodepth.max(1),
                    mix_read_pct: cfg.mix_read_pct,
                    seed: cfg.seed,
                    job: job as u64,
                    jobs: cfg.jobs.max(1) as u64,
                    region: target.size(),
                    start,
                    ramp: cfg.ramp,
                    ctl: ctl.clone(),
                    live: live.clone(),
                };
                s.spawn(move || target.run_job(&spec))
            })
            .collect();
        let r = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Other("a benchmark job panicked".into())))
            })
            .collect();
        jobs_done.store(true, Ordering::Relaxed);
        r
    });
    progress(Event::PhaseEnd);
    let elapsed = start
        .elapsed()
        .saturating_sub(cfg.ramp)
        .max(Duration::from_millis(1));
    let (usr1, sys1) = cpu_time();
    let mut merged = Recorder::new(start, cfg.ramp);
    for r in results {
        merged.merge(&r?);
    }
    let drain = match (deadline, merged.last_done) {
        (Some(d), Some(last)) => last.saturating_duration_since(d),
        _ => Duration::ZERO,
    };
    let m = Measured {
        elapsed,
        usr: usr1.saturating_sub(usr0),
        sys: sys1.saturating_sub(sys0),
        drain,
    };
    let result = PhaseResult::new(target.name(), phase, rw, cfg, &merged, m);
    Ok((result, merged))
}

/// Checks the configuration before anything is opened or written.
pub fn check_config(cfg: &BenchConfig) -> Result<()> {
    if cfg.bs == 0 || !cfg.bs.is_multiple_of(512) {
        return Err(Error::InvalidInput(format!(
            "--bs {}: must be a positive multiple of 512",
            cfg.bs
        )));
    }
    if cfg.repeat == 0 {
        return Err(Error::InvalidInput("--repeat must be at least 1".into()));
    }
    if cfg.phases && cfg.prefill {
        return Err(Error::InvalidInput(
            "--phases with --prefill: the first-write phase measures writes into holes, which a prefill would fill".into(),
        ));
    }
    Ok(())
}

/// Runs the whole benchmark on each target in turn (`repeat` times each). `progress` hears
/// about each phase and, once a second, about the I/Os done so far. The results measured
/// before a failure are returned with it: a run that fails on its third target still reports
/// the first two.
pub fn run(
    targets: &[Box<dyn Target>],
    cfg: &BenchConfig,
    stop: &Arc<AtomicBool>,
    progress: &(dyn Fn(Event) + Sync),
) -> (BenchReport, Result<()>) {
    let mut report = BenchReport::default();
    let r = run_all(targets, cfg, stop, progress, &mut report);
    report.summary = stats::summarize(&report.results);
    report.relative = stats::relative(&report.summary);
    (report, r)
}

fn run_all(
    targets: &[Box<dyn Target>],
    cfg: &BenchConfig,
    stop: &Arc<AtomicBool>,
    progress: &(dyn Fn(Event) + Sync),
    report: &mut BenchReport,
) -> Result<()> {
    check_config(cfg)?;
    for t in targets.iter().filter(|t| !t.can_empty()) {
        if cfg.phases && cfg.repeat > 1 {
            // Each run's first-write phase needs holes: only a target of our own is emptied,
            // and every target is checked before the first one is written.
            return Err(Error::InvalidInput(format!(
                "{}: --phases with --repeat empties the target between runs, and bench empties only a target it created: name a new target",
                t.name()
            )));
        }
    }
    for t in targets {
        if t.size() < cfg.bs {
            return Err(Error::InvalidInput(format!(
                "{}: size {} is smaller than --bs {}",
                t.name(),
                t.size(),
                cfg.bs
            )));
        }
        let writes = cfg.phases || cfg.rw.writes();
        if writes && !t.meta().writable {
            // The targets refuse this when they open; this is the last line of defence.
            return Err(Error::Other(format!(
                "{}: not created by this run and --allow-existing not given: refusing to write",
                t.name()
            )));
        }
        for run in 0..cfg.repeat.max(1) {
            // A target found in place holds data until it is emptied, even for the first run.
            if cfg.phases && (run > 0 || !t.created() && t.can_empty()) {
                progress(Event::Phase(&format!(
                    "{}: emptying it for run {}",
                    t.name(),
                    run + 1
                )));
                t.make_holes()?;
            }
            let mut phases = Vec::new();
            let r = run_target(t.as_ref(), cfg, run, stop, progress, &mut phases);
            let target_notes = t.notes();
            for p in &mut phases {
                p.run = run;
                p.notes.splice(0..0, target_notes.iter().cloned());
            }
            report.results.extend(phases);
            r?;
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// One run of the workload on one target; results go into `phases` as they are measured.
fn run_target(
    t: &dyn Target,
    cfg: &BenchConfig,
    run: usize,
    stop: &Arc<AtomicBool>,
    progress: &(dyn Fn(Event) + Sync),
    phases: &mut Vec<PhaseResult>,
) -> Result<()> {
    let before = t.allocated_bytes()?;
    let say = |what: &str| progress(Event::Phase(&format!("{}: {what}", t.name())));
    if cfg.phases {
        say("first write into holes");
        let perm = Arc::new(workload::permutation(t.size(), cfg.bs, cfg.seed));
        let (mut first, rec) = run_phase(
            t,
            cfg,
            "first-write",
            Pattern::Blocks {
                blocks: perm.clone(),
                read: false,
                cycle: false,
            },
            Rw::Randwrite,
            stop,
            progress,
        )?;
        // The blocks the first phase wrote: job j took perm[j], perm[j + jobs], ...
        let jobs = cfg.jobs.max(1);
        let per_job = rec.issued.div_ceil(jobs as u64) as usize;
        let written: Vec<u32> = perm.iter().take(per_job * jobs).copied().collect();
        first.allocated_before = before;
        first.allocated_after = t.allocated_bytes()?;
        phases.push(first);
        if written.is_empty() || stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        say("overwrite");
        let again = Arc::new(workload::reshuffle(&written, cfg.seed));
        let (over, _) = run_phase(
            t,
            cfg,
            "overwrite",
            Pattern::Blocks {
                blocks: again.clone(),
                read: false,
                cycle: true,
            },
            Rw::Randwrite,
            stop,
            progress,
        )?;
        phases.push(over);
        say("read of written data");
        let (read, _) = run_phase(
            t,
            cfg,
            "read",
            Pattern::Blocks {
                blocks: again,
                read: true,
                cycle: true,
            },
            Rw::Randread,
            stop,
            progress,
        )?;
        phases.push(read);
        return Ok(());
    }
    let mut notes = Vec::new();
    let sparse = t.created() || before.is_some_and(|a| a < t.size());
    if cfg.rw.reads() && !t.meta().writable {
        // Someone's data: read as it is. Prefilling would overwrite it.
        notes.push("existing target read as it is, not prefilled (holes may read faster)".into());
    }
    // Later runs of --repeat find the target filled by the first.
    let fill_now = run == 0 && sparse && t.meta().writable && (cfg.rw.reads() || cfg.prefill);
    if fill_now {
        say(&format!(
            "prefilling {} bytes so I/O hits written data",
            t.size()
        ));
        let fill = BenchConfig {
            bs: (1 << 20).min(t.size()) / 512 * 512,
            iodepth: cfg.iodepth.min(8),
            jobs: 1,
            runtime: None,
            io_total: Some(t.size()),
            ramp: Duration::ZERO,
            ..cfg.clone()
        };
        let (r, _) = run_phase(
            t,
            &fill,
            "prefill",
            Pattern::Plain(Rw::Write),
            Rw::Write,
            stop,
            progress,
        )?;
        if r.errors > 0 {
            return Err(Error::Other(format!(
                "{}: prefill failed: {}",
                t.name(),
                r.first_error.unwrap_or_default()
            )));
        }
    }
    let prefilled = sparse && t.meta().writable && (cfg.rw.reads() || cfg.prefill);
    if prefilled {
        notes.push(format!("prefilled {} bytes before measuring", t.size()));
    }
    if cfg.rw.writes() && sparse && !prefilled && run == 0 {
        notes.push(
            "a fresh target: writes went into holes (first allocation), where fio lays its file out first; --prefill measures as fio does"
                .into(),
        );
    }
    say(cfg.rw.name());
    // After a prefill, "before" is what the measured phase started from.
    let before = if fill_now {
        t.allocated_bytes()?
    } else {
        before
    };
    let (mut r, _) = run_phase(
        t,
        cfg,
        cfg.rw.name(),
        Pattern::Plain(cfg.rw),
        cfg.rw,
        stop,
        progress,
    )?;
    r.allocated_before = before;
    r.allocated_after = t.allocated_bytes()?;
    r.notes.extend(notes);
    phases.push(r);
    Ok(())
}
