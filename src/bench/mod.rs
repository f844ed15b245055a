//! `rbdkit bench`: I/O benchmarks of RBD images (librbd aio), files (io_uring, O_DIRECT) and NFS
//! shares (userspace NFSv3), side by side, with honest sparse-storage semantics: first writes
//! into holes, overwrites and reads of written data are measured separately, and reads never
//! touch never-written ranges (those are prefilled first).
//! The library measures and returns data; the CLI prints tables, JSON and plots.
pub mod file;
pub mod nfs;
pub mod plot;
#[cfg(feature = "rbd")]
pub mod rbd;
pub mod recorder;
pub mod report;
pub mod workload;

pub use recorder::Recorder;
pub use report::{compare, BenchReport, Lat, PhaseResult, Regression};
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
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes one rusage struct into the zeroed local we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs one phase on one target with `jobs` threads.
fn run_phase(
    target: &dyn Target,
    cfg: &BenchConfig,
    phase: &str,
    pattern: Pattern,
    rw: Rw,
    stop: &Arc<AtomicBool>,
) -> Result<(PhaseResult, Recorder)> {
    let start = Instant::now();
    let runtime = match (cfg.runtime, cfg.io_total) {
        (None, None) => Some(Duration::from_secs(10)),
        (r, _) => r,
    };
    let ctl = JobCtl {
        deadline: runtime.map(|r| start + cfg.ramp + r),
        budget: cfg
            .io_total
            .map(|b| Arc::new(AtomicI64::new(b.min(i64::MAX as u64) as i64))),
        stop: stop.clone(),
    };
    let cpu0 = cpu_time();
    let results: Vec<Result<Recorder>> = std::thread::scope(|s| {
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
                };
                s.spawn(move || target.run_job(&spec))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Other("a benchmark job panicked".into())))
            })
            .collect()
    });
    let elapsed = start
        .elapsed()
        .saturating_sub(cfg.ramp)
        .max(Duration::from_millis(1));
    let cpu = cpu_time().saturating_sub(cpu0);
    let mut merged = Recorder::new(start, cfg.ramp);
    for r in results {
        merged.merge(&r?);
    }
    let result = PhaseResult::new(target.name(), phase, rw, cfg, &merged, elapsed, cpu);
    Ok((result, merged))
}

/// Runs the whole benchmark on each target in turn. `progress` hears about each phase.
pub fn run(
    targets: &[Box<dyn Target>],
    cfg: &BenchConfig,
    stop: &Arc<AtomicBool>,
    progress: &dyn Fn(&str),
) -> Result<BenchReport> {
    if cfg.bs == 0 || !cfg.bs.is_multiple_of(512) {
        return Err(Error::InvalidInput(format!(
            "--bs {}: must be a positive multiple of 512",
            cfg.bs
        )));
    }
    let mut report = BenchReport::default();
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
        let before = t.allocated_bytes()?;
        let mut phases = Vec::new();
        if cfg.phases {
            progress(&format!("{}: first write into holes", t.name()));
            let perm = Arc::new(workload::permutation(t.size(), cfg.bs, cfg.seed));
            let (mut first, rec) = run_phase(
                t.as_ref(),
                cfg,
                "first-write",
                Pattern::Blocks {
                    blocks: perm.clone(),
                    read: false,
                    cycle: false,
                },
                Rw::Randwrite,
                stop,
            )?;
            // The blocks the first phase wrote: job j took perm[j], perm[j + jobs], ...
            let jobs = cfg.jobs.max(1);
            let per_job = rec.issued.div_ceil(jobs as u64) as usize;
            let written: Vec<u32> = perm.iter().take(per_job * jobs).copied().collect();
            first.allocated_before = before;
            first.allocated_after = t.allocated_bytes()?;
            phases.push(first);
            if written.is_empty() || stop.load(Ordering::Relaxed) {
                report.results.extend(phases);
                continue;
            }
            progress(&format!("{}: overwrite", t.name()));
            let again = Arc::new(workload::reshuffle(&written, cfg.seed));
            let (over, _) = run_phase(
                t.as_ref(),
                cfg,
                "overwrite",
                Pattern::Blocks {
                    blocks: again.clone(),
                    read: false,
                    cycle: true,
                },
                Rw::Randwrite,
                stop,
            )?;
            phases.push(over);
            progress(&format!("{}: read of written data", t.name()));
            let (read, _) = run_phase(
                t.as_ref(),
                cfg,
                "read",
                Pattern::Blocks {
                    blocks: again,
                    read: true,
                    cycle: true,
                },
                Rw::Randread,
                stop,
            )?;
            phases.push(read);
        } else {
            let mut notes = Vec::new();
            let sparse = t.created() || before.is_some_and(|a| a < t.size());
            if cfg.rw.reads() && !t.meta().writable {
                // Someone's data: read as it is. Prefilling would overwrite it.
                notes.push(
                    "existing target read as it is, not prefilled (holes may read faster)".into(),
                );
            }
            if cfg.rw.reads() && sparse && t.meta().writable {
                progress(&format!(
                    "{}: prefilling {} bytes so reads hit written data",
                    t.name(),
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
                    t.as_ref(),
                    &fill,
                    "prefill",
                    Pattern::Plain(Rw::Write),
                    Rw::Write,
                    stop,
                )?;
                if r.errors > 0 {
                    return Err(Error::Other(format!(
                        "{}: prefill failed: {}",
                        t.name(),
                        r.first_error.unwrap_or_default()
                    )));
                }
                notes.push(format!("prefilled {} bytes before reading", t.size()));
            }
            progress(&format!("{}: {}", t.name(), cfg.rw.name()));
            // After a prefill, "before" is what the measured phase started from.
            let before = if !notes.iter().any(|n| n.starts_with("prefilled")) {
                before
            } else {
                t.allocated_bytes()?
            };
            let (mut r, _) = run_phase(
                t.as_ref(),
                cfg,
                cfg.rw.name(),
                Pattern::Plain(cfg.rw),
                cfg.rw,
                stop,
            )?;
            r.allocated_before = before;
            r.allocated_after = t.allocated_bytes()?;
            r.notes.extend(notes);
            phases.push(r);
        }
        let target_notes = t.notes();
        for p in &mut phases {
            p.notes.splice(0..0, target_notes.iter().cloned());
        }
        report.results.extend(phases);
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(report)
}
