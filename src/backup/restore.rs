//! `rbdkit restore`: a backup snapshot (`BACKUP_POOL/BASE@SNAP`, Cinder's or rbdkit's) into a
//! new image (published atomically like an import), over an existing image (only when asked:
//! Cinder's restore onto a volume; with `restore_discard_excess_bytes` semantics, the bytes past
//! the backup's size are zeroed), or into a sparse file. Every restore is verified: the target
//! reads back with the backup's `sha256-blocks` checksum.
use super::chain::find_backup;
use crate::ceph::{Cluster, CreateOptions, Image, ImageSpec, IoCtx};
use crate::copy::sink_file::{FileSink, Writeback};
use crate::copy::sink_rbd::RbdSink;
use crate::copy::{checksum_disk, copy_disk, Checksum, Control, CopyOptions};
use crate::disk::raw::RawFile;
use crate::disk::rbd::RbdDisk;
use crate::error::{Error, Result};
use crate::import::{import, ImportRequest};
use crate::input::Input;
use serde::Serialize;
use std::path::PathBuf;

/// Where a restore goes.
#[derive(Clone, Debug)]
pub enum RestoreTarget {
    /// An image, `pool[/ns]/image`.
    Image(ImageSpec),
    /// A raw file.
    File(PathBuf),
}

/// What to restore, where, and how.
#[derive(Clone, Debug)]
pub struct RestoreRequest {
    /// The backup pool.
    pub pool: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// The base image.
    pub base: String,
    /// The backup's snapshot (or its backup id).
    pub snap: String,
    /// Where to.
    pub target: RestoreTarget,
    /// Overwrite an existing image or file.
    pub force: bool,
    /// Engine tuning (the checksum is always `sha256-blocks`).
    pub copy: CopyOptions,
    /// librbd writes in flight.
    pub concurrency: usize,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    /// The backup, `pool/base@snap`.
    pub backup: String,
    /// The backup id.
    pub backup_id: String,
    /// Where it went.
    pub target: String,
    /// `new-image`, `existing-image` or `file`.
    pub mode: &'static str,
    /// The backup's size, bytes.
    pub size: u64,
    /// Size of the target afterwards (bigger than `size` when an existing image was).
    pub target_size: u64,
    /// Bytes of data written.
    pub bytes_written: u64,
    /// Bytes zeroed in an existing image (holes of the backup, and the excess past its size).
    pub bytes_zeroed: u64,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Always `sha256-blocks`.
    pub checksum_algorithm: Checksum,
    /// The backup's checksum, which the target reads back with.
    pub checksum: String,
}

/// Restores a backup read through `src` into a target written through `dest`.
pub fn restore(
    src: &Cluster,
    dest: &Cluster,
    req: &RestoreRequest,
    ctl: &Control,
) -> Result<RestoreReport> {
    let started = std::time::Instant::now();
    let io = src.ioctx(&req.pool, req.namespace.as_deref())?;
    let (_, point) = find_backup(&io, &req.base, &req.snap)?;
    let backup = Image::open_read_only(&io, &req.base, Some(&point.snap))?;
    let info = backup.stat()?;
    let copy = CopyOptions {
        chunk_size: info.object_size,
        checksum: Some(Checksum::Sha256Blocks),
        ..req.copy.clone()
    };
    let backup_spec = format!("{}@{}", io.describe(&req.base), point.snap);
    let mut report = RestoreReport {
        backup: backup_spec,
        backup_id: point.backup_id.clone(),
        target: String::new(),
        mode: "new-image",
        size: info.size,
        target_size: info.size,
        bytes_written: 0,
        bytes_zeroed: 0,
        elapsed_s: 0.0,
        checksum_algorithm: Checksum::Sha256Blocks,
        checksum: String::new(),
    };
    match &req.target {
        RestoreTarget::File(path) => {
            report.mode = "file";
            report.target = path.display().to_string();
            let mut sink = FileSink::create_with(path, req.force, Writeback::Early)?;
            let stats = copy_disk(&RbdDisk::new(&backup, info.size), &mut sink, &copy, ctl)?;
            let want = stats.checksum.unwrap_or_default();
            sink.commit()?;
            let got = checksum_disk(&RawFile::open(path)?, &copy, ctl)?;
            if got != want {
                return Err(Error::Other(format!(
                    "verify {}: it reads back with sha256-blocks {got}, but the backup has {want}",
                    path.display()
                )));
            }
            report.bytes_written = stats.bytes_written;
            report.checksum = want;
        }
        RestoreTarget::Image(spec) => {
            spec.forbid_snap()?;
            let dio = dest.ioctx(&spec.pool, spec.namespace.as_deref())?;
            report.target = spec.to_string();
            if dio.image_exists(&spec.image)? {
                if !req.force {
                    return Err(Error::Other(format!(
                        "restore into {spec}: EEXIST — the image exists; pass --force to overwrite it with the backup (its bytes past the backup's size are zeroed)"
                    )));
                }
                report.mode = "existing-image";
                over_existing(
                    &dio,
                    spec,
                    &backup,
                    info.size,
                    &copy,
                    req.concurrency,
                    ctl,
                    &mut report,
                )?;
            } else {
                let ireq = ImportRequest {
                    dest: spec.clone(),
                    size: Some(info.size),
                    create: CreateOptions {
                        order: Some(info.order as u8),
                        ..CreateOptions::default()
                    },
                    copy: copy.clone(),
                    concurrency: req.concurrency,
                    snap: None,
                    protect: false,
                    verify: true,
                    source_format: "rbd".into(),
                };
                let r = import(
                    dest,
                    &ireq,
                    Input::Disk(Box::new(RbdDisk::new(&backup, info.size))),
                    ctl,
                )?;
                report.bytes_written = r.bytes_written;
                report.checksum = r.checksum.unwrap_or_default();
            }
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Writes the backup over an existing image: data written, the backup's holes and everything
/// past its size zeroed, then the first `size` bytes verified.
#[allow(clippy::too_many_arguments)]
fn over_existing(
    dio: &IoCtx,
    spec: &ImageSpec,
    backup: &Image,
    size: u64,
    copy: &CopyOptions,
    concurrency: usize,
    ctl: &Control,
    report: &mut RestoreReport,
) -> Result<()> {
    let target = Image::open(dio, &spec.image, None)?;
    let target_size = target.stat()?.size;
    if target_size < size {
        target.resize(size, &mut |_, _| {})?;
    }
    let end = target_size.max(size);
    let mut sink = RbdSink::overwriting(&target, end, end, concurrency);
    let stats = copy_disk(&RbdDisk::new(backup, size), &mut sink, copy, ctl)?;
    if end > size {
        // Cinder's restore_discard_excess_bytes: the volume must not keep stale data past the
        // backup's end.
        use crate::copy::Sink;
        sink.zero(size, end - size)?;
        sink.finish(end)?;
    }
    report.bytes_zeroed = sink.bytes_zeroed;
    drop(sink);
    report.bytes_written = stats.bytes_written;
    report.target_size = end;
    let want = stats.checksum.unwrap_or_default();
    let got = checksum_disk(&RbdDisk::new(&target, size), copy, ctl)?;
    if got != want {
        return Err(Error::Other(format!(
            "verify {spec}: its first {size} bytes read back with sha256-blocks {got}, but the backup has {want}"
        )));
    }
    report.checksum = want;
    Ok(())
}
