//! `rbdkit backup VOLUME BACKUP_POOL`: a Cinder-style backup of an RBD volume (full the first
//! time, incremental after), read as one client and written as another (`--dest-*`);
//! `rbdkit backup ls BACKUP_POOL [VOLUME]`: the chains in a backup pool.
use crate::global::Global;
use clap::{Args, Subcommand};
use rbdkit::backup::chain::list_chains;
use rbdkit::backup::rbd::{backup, BackupRequest};
use rbdkit::backup::remove::remove_backup;
use rbdkit::ceph::ImageSpec;
use rbdkit::copy::{Checksum, Control};
use rbdkit::text::escape;
use rbdkit::units::format_size;
use rbdkit::Error;
use std::process::ExitCode;

/// Arguments of `rbdkit backup`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// The volume to back up, POOL[/NAMESPACE]/IMAGE (`volumes/volume-<id>`; with --to-diff
    /// also IMAGE@SNAP), or a raw file (a path starting with `/` or `.`: an NFS volume).
    #[arg(required = true)]
    pub src: Option<String>,
    /// The backup pool, POOL[/NAMESPACE] (Cinder's `backup_ceph_pool`, e.g. `backups`).
    #[arg(required_unless_present = "to_diff", conflicts_with = "to_diff")]
    pub backup_pool: Option<String>,
    /// Write the backup as an `rbd export-diff` stream to FILE or `-` (stdout) instead of into
    /// a backup pool: `rbd import-diff` and `rbdkit restore --from-diff` apply it.
    #[arg(long = "to-diff", value_name = "FILE|-")]
    pub to_diff: Option<std::path::PathBuf>,
    /// With --to-diff: only what changed since this snapshot of the volume.
    #[arg(long = "from-snap", value_name = "SNAP", requires = "to_diff")]
    pub from_snap: Option<String>,
    /// The backup id (default: a new UUID, as Cinder makes).
    #[arg(long = "backup-id", value_name = "ID")]
    pub backup_id: Option<String>,
    /// Start a new chain with a full backup even when an incremental is possible.
    #[arg(long)]
    pub full: bool,
    /// Keep the previous backup's snapshot on the volume after an incremental (by default only
    /// the latest backup snapshot stays: all the next incremental needs).
    #[arg(long = "keep-source-snaps")]
    pub keep_source_snaps: bool,
    /// librbd writes in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[command(flatten)]
    pub dest: super::dest::DestFlags,
    #[command(flatten)]
    pub engine: super::source::EngineFlags,
}

/// `backup` subcommands.
#[derive(Subcommand)]
pub enum BackupCommand {
    /// The backup chains in a backup pool: full backup, incrementals, sizes, dates.
    Ls(LsArgs),
    /// Remove one backup: its snapshot on the base image and its block digests, and the base
    /// image with the chain's last backup (as Cinder deletes a backup). The other backups of
    /// the chain stay restorable.
    Rm(RmArgs),
}

/// Arguments of `rbdkit backup rm`.
#[derive(Args)]
pub struct RmArgs {
    /// The backup, BACKUP_POOL[/NAMESPACE]/BASE@SNAP (the backup id may stand for the snapshot
    /// name; `rbdkit backup ls` lists them).
    pub backup: String,
}

/// Arguments of `rbdkit backup ls`.
#[derive(Args)]
pub struct LsArgs {
    /// The backup pool, POOL[/NAMESPACE].
    pub backup_pool: String,
    /// Only the chains of this volume image (`volume-<id>`).
    pub volume: Option<String>,
}

/// `POOL[/NAMESPACE]`.
pub fn pool_spec(s: &str) -> rbdkit::Result<(String, Option<String>)> {
    let (p, ns) = match s.split_once('/') {
        Some((p, n)) => (p, Some(n.to_string())),
        None => (s, None),
    };
    if p.is_empty()
        || ns
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.contains(['/', '@']))
    {
        return Err(Error::InvalidInput(format!(
            "invalid pool '{}': expected POOL[/NAMESPACE]",
            escape(s)
        )));
    }
    Ok((p.to_string(), ns))
}

/// Backs up, or lists.
pub fn run(a: BackupArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    match a.command {
        Some(BackupCommand::Ls(l)) => return ls(l, g),
        Some(BackupCommand::Rm(r)) => return rm(r, g),
        None => {}
    }
    let file_src = a
        .src
        .as_deref()
        .filter(|s| s.starts_with('/') || s.starts_with('.'))
        .map(std::path::PathBuf::from);
    if let (Some(src), Some(path)) = (&a.src, &a.to_diff) {
        let src = match &file_src {
            Some(f) if a.from_snap.is_some() => {
                return Err(Error::InvalidInput(format!(
                    "backup {} --from-snap: a file has no snapshots to diff from; without --from-snap the stream holds the whole file",
                    f.display()
                )))
            }
            Some(f) => DiffSource::File(f),
            None => DiffSource::Volume(ImageSpec::parse(src)?),
        };
        return to_diff(&src, path, a.from_snap.as_deref(), &a.engine, g);
    }
    let (Some(src_text), Some(pool)) = (a.src, a.backup_pool) else {
        return Err(Error::InvalidInput(
            "backup: give VOLUME and BACKUP_POOL".into(),
        ));
    };
    let src = match &file_src {
        Some(_) => ImageSpec {
            pool: "-".into(),
            namespace: None,
            image: "-".into(),
            snap: None,
        },
        None => ImageSpec::parse(&src_text)?,
    };
    let (backup_pool, backup_namespace) = pool_spec(&pool)?;
    let req = BackupRequest {
        volume: src.clone(),
        backup_pool,
        backup_namespace,
        backup_id: a.backup_id,
        full: a.full,
        copy: a
            .engine
            .copy_options(4 << 20, Some(Checksum::Sha256Blocks))?,
        concurrency: a.concurrency,
        keep_source_snaps: a.keep_source_snaps,
    };
    let src_cluster = g.connect_for_bulk_io()?;
    let other = a.dest.connect(g)?;
    let dest_cluster = other.as_ref().unwrap_or(&src_cluster);
    let cancel = crate::cancel::flag();
    let bar = crate::progress::bytes_bar(0, "backing up", !g.no_progress);
    let ctl = Control {
        progress: &|done, total| {
            bar.set_length(total);
            bar.set_position(done)
        },
        cancel: &cancel,
    };
    let result = match &file_src {
        Some(path) => rbdkit::backup::file::backup_file(dest_cluster, path, &req, &ctl),
        None => backup(&src_cluster, dest_cluster, &req, &ctl),
    };
    bar.finish_and_clear();
    let r = match result {
        Err(Error::Interrupted(m)) => {
            return Err(Error::Interrupted(format!(
            "backup of {src} stopped by a signal: {m}; the volume's temporary snapshot was removed"
        )))
        }
        other => other?,
    };
    if g.json() {
        super::print_json(g, &r)?;
    } else {
        let from = r
            .from_snap
            .as_deref()
            .map(|f| format!(" since {f}"))
            .unwrap_or_default();
        outln!(
            "backup {} of {}: {}{from} into {}@{}",
            r.backup_id,
            r.volume,
            r.kind,
            r.base,
            r.snap
        );
        outln!(
            "  {} looked at, {} of data written, {} zeroed, {:.2} s",
            format_size(r.bytes_changed),
            format_size(r.bytes_written),
            format_size(r.bytes_zeroed),
            r.elapsed_s
        );
        outln!(
            "  {} {} (verified: {})",
            r.checksum_algorithm.name(),
            r.checksum,
            r.verified
        );
        if let Some(s) = &r.removed_source_snap {
            outln!("  removed the previous backup snapshot {}@{s}", r.volume);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `backup --to-diff` reads.
enum DiffSource<'a> {
    /// An RBD volume (or one of its snapshots).
    Volume(ImageSpec),
    /// A raw file (an NFS volume): always whole.
    File(&'a std::path::Path),
}

impl std::fmt::Display for DiffSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiffSource::Volume(v) => write!(f, "{v}"),
            DiffSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

fn to_diff(
    src: &DiffSource,
    path: &std::path::Path,
    from_snap: Option<&str>,
    engine: &super::source::EngineFlags,
    g: &Global,
) -> rbdkit::Result<ExitCode> {
    use std::io::IsTerminal;
    let to_stdout = path.as_os_str() == "-";
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Error::InvalidInput(format!(
            "backup {src} --to-diff -: stdout is a terminal; redirect it (> FILE, | rbd import-diff - IMAGE)"
        )));
    }
    let copy = engine.copy_options(4 << 20, None)?;
    let cancel = crate::cancel::flag();
    let ctl = Control {
        progress: &|_, _| {},
        cancel: &cancel,
    };
    let write = |out: &mut dyn std::io::Write| match src {
        DiffSource::Volume(v) => {
            rbdkit::backup::to_diff::backup_to_diff(&g.connect()?, v, from_snap, &copy, out, &ctl)
        }
        DiffSource::File(f) => rbdkit::backup::to_diff::file_to_diff(f, &copy, out, &ctl),
    };
    let report = if to_stdout {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        write(&mut out)?
    } else {
        // Written under a temporary name, renamed when the stream is complete.
        let tmp = path.with_file_name(format!(
            ".{}.rbdkit-partial.{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        if path.exists() {
            return Err(Error::Other(format!(
                "{} already exists: choose another name",
                path.display()
            )));
        }
        let file = std::fs::File::create(&tmp)
            .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let r = write(&mut out).and_then(|r| {
            std::fs::rename(&tmp, path)
                .map_err(|e| {
                    Error::io(format!("rename {} to {}", tmp.display(), path.display()), e)
                })
                .map(|()| r)
        });
        if r.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        r?
    };
    if g.json() && !to_stdout {
        super::print_json(g, &report)?;
    } else {
        // With the stream on stdout, the report goes to stderr.
        let from = report
            .from_snap
            .as_deref()
            .map(|f| format!(" since {f}"))
            .unwrap_or_default();
        let line = format!(
            "export-diff of {}{from} to {}: {} of data, {} zeroed, {} of stream, {:.2} s",
            report.volume,
            report.to_snap,
            format_size(report.bytes_written),
            format_size(report.bytes_zeroed),
            format_size(report.stream_bytes),
            report.elapsed_s
        );
        if to_stdout {
            eprintln!("{line}");
        } else {
            outln!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rm(a: RmArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let spec = ImageSpec::parse(&a.backup)?;
    let Some(snap) = spec.snap.as_deref() else {
        return Err(Error::InvalidInput(format!(
            "backup rm {spec}: name the backup as BASE@SNAP (`rbdkit backup ls {}` lists them)",
            spec.pool
        )));
    };
    let cluster = g.connect()?;
    let io = cluster.ioctx(&spec.pool, spec.namespace.as_deref())?;
    let r = remove_backup(&io, &spec.image, snap)?;
    if g.json() {
        return super::print_json(g, &r).map(|()| ExitCode::SUCCESS);
    }
    if r.digests_only {
        outln!(
            "removed the block digests of {}@{} (the backup itself was already gone)",
            escape(&r.base),
            escape(&r.snap)
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "removed backup {} ({}@{})",
        r.backup_id,
        escape(&r.base),
        escape(&r.snap)
    );
    if r.base_removed {
        outln!(
            "  and the base image {}, which held no other backup",
            escape(&r.base)
        );
    }
    if r.was_latest {
        outln!(
            "  it was the chain's latest: the volume's snapshot {} starts no incremental now (the next backup is full); `rbd snap rm` it on the volume",
            escape(&r.snap)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn ls(a: LsArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    let (pool, ns) = pool_spec(&a.backup_pool)?;
    let cluster = g.connect()?;
    let io = cluster.ioctx(&pool, ns.as_deref())?;
    let chains = list_chains(&io, a.volume.as_deref())?;
    if g.json() {
        return super::print_json(g, &serde_json::json!({ "chains": chains }))
            .map(|()| ExitCode::SUCCESS);
    }
    if chains.is_empty() {
        outln!("no backups in {}", a.backup_pool);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<40} {:<12} {:>10}  {:<24}  SNAPSHOT",
        "BASE",
        "KIND",
        "SIZE",
        "CREATED"
    );
    for c in &chains {
        for b in &c.backups {
            outln!(
                "{:<40} {:<12} {:>10}  {:<24}  {}",
                escape(&c.base),
                b.kind,
                format_size(b.size),
                rbdkit::ceph::ctime_string(b.created),
                escape(&b.snap)
            );
        }
        if c.backups.is_empty() {
            outln!(
                "{:<40} (no backups: an unfinished or emptied chain)",
                escape(&c.base)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
