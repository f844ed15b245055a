//! `rbdkit restore --from-diff FILE|- DEST`: applies an `rbd export-diff` stream (rbd's or
//! rbdkit's) the way `rbd import-diff` does. A diff from a snapshot goes onto an image that
//! has that snapshot (its head is overwritten where the diff writes or zeroes); a diff from
//! nothing makes a new image (under a temporary name, renamed when complete) or, with
//! `--force`, goes onto an existing one. The diff's end snapshot is then created on DEST.
//! The stream is checked as it is read (see [`super::diff_format`]); the format carries no
//! checksum, so nothing more can be verified.
use super::diff_format::DiffReader;
use crate::ceph::{Cluster, CreateOptions, Image, ImageSpec};
use crate::copy::sink_rbd::RbdSink;
use crate::copy::{copy_diff_stream, Control, CopyOptions};
use crate::error::{Error, Result};
use crate::import::{remove_leftover, temp_name};
use serde::Serialize;
use std::io::Read;

/// What applying a diff did.
#[derive(Clone, Debug, Serialize)]
pub struct FromDiffReport {
    /// The image written.
    pub image: String,
    /// 1 or 2.
    pub diff_version: u8,
    /// The diff's start snapshot, if any.
    pub from_snap: Option<String>,
    /// The snapshot created at its end, if it names one.
    pub to_snap: Option<String>,
    /// Image size afterwards.
    pub size: u64,
    /// True when the image was made by this restore.
    pub created: bool,
    /// Bytes of data written.
    pub bytes_written: u64,
    /// Bytes zeroed.
    pub bytes_zeroed: u64,
    /// Bytes of stream read.
    pub stream_bytes: u64,
    /// Wall time, seconds.
    pub elapsed_s: f64,
}

/// Applies the stream `input` (named `what` in messages) to `dest`.
#[allow(clippy::too_many_arguments)]
pub fn restore_from_diff<R: Read + Send>(
    cluster: &Cluster,
    input: R,
    what: &str,
    dest: &ImageSpec,
    force: bool,
    copy: &CopyOptions,
    concurrency: usize,
    ctl: &Control,
) -> Result<FromDiffReport> {
    let started = std::time::Instant::now();
    dest.forbid_snap()?;
    let reader = DiffReader::new(input, what)?;
    let h = reader.header.clone();
    let io = cluster.ioctx(&dest.pool, dest.namespace.as_deref())?;
    let exists = io.image_exists(&dest.image)?;
    let mut report = FromDiffReport {
        image: dest.to_string(),
        diff_version: h.version,
        from_snap: h.from_snap.clone(),
        to_snap: h.to_snap.clone(),
        size: h.size,
        created: !exists,
        bytes_written: 0,
        bytes_zeroed: 0,
        stream_bytes: 0,
        elapsed_s: 0.0,
    };
    match (&h.from_snap, exists) {
        (Some(f), false) => {
            return Err(Error::InvalidInput(format!(
                "restore --from-diff {what}: the diff starts at snapshot {}, but {dest} does not exist; apply the diffs of its chain in order, the full one first",
                crate::text::escape(f)
            )))
        }
        (None, true) if !force => {
            return Err(Error::Other(format!(
                "restore --from-diff into {dest}: EEXIST — the image exists; pass --force to apply the diff onto it"
            )))
        }
        _ => {}
    }
    if exists {
        let image = Image::open(&io, &dest.image, None)?;
        if let Some(f) = &h.from_snap {
            if !image.snap_exists(f)? {
                return Err(Error::InvalidInput(format!(
                    "restore --from-diff {what}: {dest} has no snapshot {}, where the diff starts; list them with `rbd snap ls {dest}`",
                    crate::text::escape(f)
                )));
            }
        }
        check_to_snap(&image, &h.to_snap, dest)?;
        let size = image.stat()?.size;
        if size != h.size {
            image.resize(h.size, &mut |_, _| {})?;
        }
        let opts = CopyOptions {
            chunk_size: image.stat()?.object_size,
            ..copy.clone()
        };
        let mut sink = RbdSink::overwriting(&image, h.size, 0, concurrency);
        let stats = copy_diff_stream(reader, &mut sink, &opts, ctl).map_err(|e| {
            let note = format!("; {dest}'s head may be partly written, its snapshots are intact");
            match e {
                Error::InvalidInput(m) => Error::InvalidInput(m + &note),
                Error::Interrupted(m) => Error::Interrupted(m + &note),
                other => {
                    let m = other.to_string();
                    other.context(m + &note)
                }
            }
        })?;
        report.bytes_written = stats.bytes_written;
        report.bytes_zeroed = sink.bytes_zeroed;
        report.stream_bytes = stats.bytes_read.unwrap_or(0);
        drop(sink);
        if let Some(t) = &h.to_snap {
            image.snap_create(t)?;
        }
    } else {
        let tmp = temp_name(&dest.image);
        io.create_image(&tmp, h.size, &CreateOptions::default())?;
        let apply = || -> Result<()> {
            let image = Image::open(&io, &tmp, None)?;
            let opts = CopyOptions {
                chunk_size: image.stat()?.object_size,
                ..copy.clone()
            };
            let stats = {
                let mut sink = RbdSink::new(&image, h.size, h.size, concurrency);
                copy_diff_stream(reader, &mut sink, &opts, ctl)?
            };
            report.bytes_written = stats.bytes_written;
            report.stream_bytes = stats.bytes_read.unwrap_or(0);
            if let Some(t) = &h.to_snap {
                image.snap_create(t)?;
            }
            image.close()?;
            io.rename_image(&tmp, &dest.image)
        };
        if let Err(e) = apply() {
            return Err(match remove_leftover(&io, &tmp) {
                Ok(()) => e,
                Err(ce) => Error::Other(format!(
                    "{e}; the temporary image {} could not be removed ({ce}): run `rbdkit cleanup {}`",
                    io.describe(&tmp),
                    dest.pool
                )),
            });
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

fn check_to_snap(image: &Image, to: &Option<String>, dest: &ImageSpec) -> Result<()> {
    if let Some(t) = to {
        if image.snap_exists(t)? {
            return Err(Error::Other(format!(
                "restore --from-diff into {dest}: the snapshot {} where the diff ends exists already: this diff was applied before",
                crate::text::escape(t)
            )));
        }
    }
    Ok(())
}
