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
    /// The backup, BACKUP_POOL[/NAMESPACE]/BASE@SNAP (`rbdkit backup ls` lists them; the
    /// backup id may stand for the snapshot name).
    pub backup: ImageSpec,
    /// Where to: POOL[/NAMESPACE]/IMAGE, or a file path (one starting with `/` or `.`).
    pub dest: String,
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
    let Some(snap) = a.backup.snap.clone() else {
        return Err(Error::InvalidInput(format!(
            "restore {}: name the backup as BASE@SNAP (`rbdkit backup ls {}` lists them)",
            a.backup, a.backup.pool
        )));
    };
    let target = if a.dest.starts_with('/') || a.dest.starts_with('.') {
        RestoreTarget::File(PathBuf::from(&a.dest))
    } else {
        RestoreTarget::Image(ImageSpec::parse(&a.dest)?)
    };
    let req = RestoreRequest {
        pool: a.backup.pool.clone(),
        namespace: a.backup.namespace.clone(),
        base: a.backup.image.clone(),
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
