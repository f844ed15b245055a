//! `rbdkit restore BACKUP_POOL/BASE@SNAP DEST`: a backup (Cinder's or rbdkit's) into a new
//! image, over an existing one (`--force`), or into a sparse raw file; verified.
use crate::global::Global;
use clap::Args;
use rbdkit::backup::restore::{restore, RestoreRequest, RestoreTarget};
use rbdkit::ceph::ImageSpec;
use rbdkit::copy::{Checksum, Control};
use rbdkit::units::format_size;
use rbdkit::Error;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `rbdkit restore`.
#[derive(Args)]
pub struct RestoreArgs {
    /// [BACKUP] DEST: the backup, BACKUP_POOL[/NAMESPACE]/BASE@SNAP (`rbdkit backup ls` lists
    /// them; the backup id may stand for the snapshot name), then where to: POOL[/NAMESPACE]/IMAGE
    /// or a file path (one starting with `/` or `.`). With --from-diff, DEST alone (an image).
    #[arg(value_name = "BACKUP|DEST", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// Apply an `rbd export-diff` stream from FILE or `-` (stdin) to DEST instead, as
    /// `rbd import-diff` does (a diff from a snapshot onto an image that has it).
    #[arg(long = "from-diff", value_name = "FILE|-")]
    pub from_diff: Option<PathBuf>,
    /// Overwrite DEST when it exists (an image keeps its size; bytes past the backup's end are
    /// zeroed, Cinder's `restore_discard_excess_bytes`).
    #[arg(long)]
    pub force: bool,
    /// librbd writes in flight.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[command(flatten)]
    pub dest_flags: super::dest::DestFlags,
    #[command(flatten)]
    pub engine: super::source::EngineFlags,
}

/// Restores.
pub fn run(a: RestoreArgs, g: &Global) -> rbdkit::Result<ExitCode> {
    if let Some(diff) = &a.from_diff {
        let [dest] = &a.args[..] else {
            return Err(Error::InvalidInput(
                "restore --from-diff FILE|- DEST: give DEST only (the diff is the backup)".into(),
            ));
        };
        return from_diff(&a, diff, &ImageSpec::parse(dest)?, g);
    }
    let [backup, dest] = &a.args[..] else {
        return Err(Error::InvalidInput(
            "restore BACKUP DEST: give the backup (BACKUP_POOL/BASE@SNAP) and where to restore it"
                .into(),
        ));
    };
    let backup = ImageSpec::parse(backup)?;
    let dest = dest.clone();
    let Some(snap) = backup.snap.clone() else {
        return Err(Error::InvalidInput(format!(
            "restore {}: name the backup as BASE@SNAP (`rbdkit backup ls {}` lists them)",
            backup, backup.pool
        )));
    };
    let target = if dest.starts_with('/') || dest.starts_with('.') {
        RestoreTarget::File(PathBuf::from(&dest))
    } else {
        RestoreTarget::Image(ImageSpec::parse(&dest)?)
    };
    let req = RestoreRequest {
        pool: backup.pool.clone(),
        namespace: backup.namespace.clone(),
        base: backup.image.clone(),
        snap,
        target,
        force: a.force,
        copy: a
            .engine
            .copy_options(4 << 20, Some(Checksum::Sha256Blocks))?,
        concurrency: a.concurrency,
    };
    let src = g.connect_for_bulk_io()?;
    let other = a.dest_flags.connect(g)?;
    let dest = other.as_ref().unwrap_or(&src);
    let cancel = crate::cancel::flag();
    let bar = crate::progress::bytes_bar(0, "restoring", !g.no_progress);
    let ctl = Control {
        progress: &|done, total| {
            bar.set_length(total);
            bar.set_position(done)
        },
        cancel: &cancel,
    };
    let result = restore(&src, dest, &req, &ctl);
    bar.finish_and_clear();
    let r = result?;
    if g.json() {
        super::print_json(g, &r)?;
    } else {
        outln!(
            "restored {} into {} ({}): {} of data written, {} zeroed, {:.2} s",
            r.backup,
            r.target,
            r.mode,
            format_size(r.bytes_written),
            format_size(r.bytes_zeroed),
            r.elapsed_s
        );
        outln!(
            "  {} {} (verified by reading the target back)",
            r.checksum_algorithm.name(),
            r.checksum
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn from_diff(
    a: &RestoreArgs,
    diff: &std::path::Path,
    dest: &ImageSpec,
    g: &Global,
) -> rbdkit::Result<ExitCode> {
    use std::io::IsTerminal;
    let what = diff.display().to_string();
    let input: Box<dyn std::io::Read + Send> = if diff.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            return Err(Error::InvalidInput(
                "restore --from-diff -: stdin is a terminal; pipe the diff in (rbd export-diff ... - | rbdkit restore --from-diff - DEST)".into(),
            ));
        }
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let f = std::fs::File::open(diff).map_err(|e| Error::io(format!("open {what}"), e))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, f))
    };
    let copy = a.engine.copy_options(4 << 20, None)?;
    let cluster = a.dest_flags.global(g).connect_for_bulk_io()?;
    let cancel = crate::cancel::flag();
    let ctl = Control {
        progress: &|_, _| {},
        cancel: &cancel,
    };
    let r = rbdkit::backup::from_diff::restore_from_diff(
        &cluster,
        input,
        &what,
        dest,
        a.force,
        &copy,
        a.concurrency,
        &ctl,
    )?;
    if g.json() {
        super::print_json(g, &r)?;
    } else {
        let from = r
            .from_snap
            .as_deref()
            .map(|f| format!(" from {f}"))
            .unwrap_or_default();
        let to = r
            .to_snap
            .as_deref()
            .map(|t| format!(", snapshot {t} created"))
            .unwrap_or_default();
        outln!(
            "applied the export-diff (v{}){from} to {}{to}: {} of data written, {} zeroed, {:.2} s",
            r.diff_version,
            r.image,
            format_size(r.bytes_written),
            format_size(r.bytes_zeroed),
            r.elapsed_s
        );
    }
    Ok(ExitCode::SUCCESS)
}
