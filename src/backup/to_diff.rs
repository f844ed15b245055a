//! `rbdkit backup VOLUME --to-diff FILE|-`: a backup as an `rbd export-diff` stream instead of
//! into a backup pool, so `rbd import-diff` (or `rbdkit restore --from-diff`) applies it. Without
//! `--from-snap` it holds the whole volume; with it, what changed since that snapshot. The
//! stream ends at a new backup snapshot of the volume (Cinder's name, kept as the next
//! `--from-snap`; removed again if the stream fails) or at the snapshot given as `VOLUME@SNAP`.
//! A raw file (an NFS volume) has no snapshots: its stream holds the whole file and ends at a
//! backup snapshot name that only the image it is imported into gets.
use super::names::{new_backup_id, snap_name};
use super::rbd::partial_snap_name;
use crate::backup::diff_format::DiffHeader;
use crate::ceph::{Cluster, Image, ImageSpec};
use crate::copy::sink_diff::DiffSink;
use crate::copy::{copy_disk, Control, CopyOptions};
use crate::disk::changed::{Change, ChangedDisk};
use crate::disk::raw::RawFile;
use crate::disk::rbd::RbdDisk;
use crate::disk::DiskSource;
use crate::error::{Error, Result};
use serde::Serialize;
use std::io::Write;

/// What a diff export did.
#[derive(Clone, Debug, Serialize)]
pub struct ToDiffReport {
    /// The volume.
    pub volume: String,
    /// The snapshot the diff starts from, if any.
    pub from_snap: Option<String>,
    /// The snapshot it ends at (`import-diff` creates it on the target).
    pub to_snap: String,
    /// True when that snapshot was made by this command.
    pub snap_created: bool,
    /// Image size at the end, bytes.
    pub size: u64,
    /// Bytes of data in `w` records.
    pub bytes_written: u64,
    /// Bytes in `z` records.
    pub bytes_zeroed: u64,
    /// Bytes of stream.
    pub stream_bytes: u64,
    /// Wall time, seconds.
    pub elapsed_s: f64,
}

/// Writes the diff of `volume` (from `from_snap`, to its `@SNAP` or a new backup snapshot)
/// to `out`.
pub fn backup_to_diff(
    src: &Cluster,
    volume: &ImageSpec,
    from_snap: Option<&str>,
    copy: &CopyOptions,
    out: impl Write,
    ctl: &Control,
) -> Result<ToDiffReport> {
    let started = std::time::Instant::now();
    let io = src.ioctx(&volume.pool, volume.namespace.as_deref())?;
    let head = Image::open(&io, &volume.image, None)?;
    if let Some(f) = from_snap {
        if !head.snap_exists(f)? {
            return Err(Error::InvalidInput(format!(
                "--from-snap {}: {} has no such snapshot; list them with `rbd snap ls {}`",
                crate::text::escape(f),
                volume,
                volume
            )));
        }
    }
    let (read_snap, final_snap, created) = match &volume.snap {
        Some(s) => (s.clone(), s.clone(), false),
        None => {
            let id = new_backup_id();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let tmp = partial_snap_name(&id);
            head.snap_create(&tmp)?;
            (tmp, snap_name(&id, now), true)
        }
    };
    let r = write_diff(
        &io,
        volume,
        &read_snap,
        &final_snap,
        from_snap,
        copy,
        out,
        ctl,
    );
    match r {
        Ok(mut rep) => {
            if created {
                head.snap_rename(&read_snap, &final_snap)?;
            }
            rep.snap_created = created;
            rep.elapsed_s = started.elapsed().as_secs_f64();
            Ok(rep)
        }
        Err(e) => {
            if created {
                if let Err(ce) = head.snap_remove(&read_snap) {
                    return Err(Error::Other(format!(
                        "{e}; the temporary snapshot {volume}@{read_snap} could not be removed ({ce}): run `rbdkit cleanup {}`",
                        volume.pool
                    )));
                }
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_diff(
    io: &crate::ceph::IoCtx,
    volume: &ImageSpec,
    read_snap: &str,
    final_snap: &str,
    from_snap: Option<&str>,
    copy: &CopyOptions,
    out: impl Write,
    ctl: &Control,
) -> Result<ToDiffReport> {
    let snap = Image::open_read_only(io, &volume.image, Some(read_snap))?;
    let info = snap.stat()?;
    let disk = RbdDisk::new(&snap, info.size);
    let changed;
    let src: &dyn DiskSource = match from_snap {
        None => &disk,
        Some(f) => {
            let changes = snap
                .changed_since(Some(f), 0, info.size, snap.fast_diff_valid())?
                .into_iter()
                .map(|c| Change {
                    offset: c.offset,
                    len: c.len,
                    data: c.data,
                })
                .collect();
            changed = ChangedDisk::new(&disk, changes);
            &changed
        }
    };
    let header = DiffHeader {
        version: 1,
        from_snap: from_snap.map(str::to_string),
        to_snap: Some(final_snap.to_string()),
        size: info.size,
    };
    let rep = diff_of(src, &header, info.object_size, copy, out, ctl)?;
    Ok(ToDiffReport {
        volume: io.describe(&volume.image),
        ..rep
    })
}

/// Writes the whole raw file `path` to `out` as a diff stream ending at a new backup snapshot
/// name (what `rbd import-diff` then creates on the image it applies the stream to).
pub fn file_to_diff(
    path: &std::path::Path,
    copy: &CopyOptions,
    out: impl Write,
    ctl: &Control,
) -> Result<ToDiffReport> {
    let started = std::time::Instant::now();
    let disk = RawFile::open(path)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let header = DiffHeader {
        version: 1,
        from_snap: None,
        to_snap: Some(snap_name(&new_backup_id(), now)),
        size: disk.virtual_size(),
    };
    let rep = diff_of(&disk, &header, 4 << 20, copy, out, ctl)?;
    Ok(ToDiffReport {
        volume: path.display().to_string(),
        elapsed_s: started.elapsed().as_secs_f64(),
        ..rep
    })
}

/// Copies `src` into a diff stream with `header` on `out`, in pieces of `chunk` bytes.
fn diff_of(
    src: &dyn DiskSource,
    header: &DiffHeader,
    chunk: u64,
    copy: &CopyOptions,
    out: impl Write,
    ctl: &Control,
) -> Result<ToDiffReport> {
    let mut sink = DiffSink::new(out, header)?;
    let opts = CopyOptions {
        chunk_size: chunk,
        checksum: None,
        ..copy.clone()
    };
    let stats = copy_disk(src, &mut sink, &opts, ctl)?;
    Ok(ToDiffReport {
        volume: String::new(),
        from_snap: header.from_snap.clone(),
        to_snap: header.to_snap.clone().unwrap_or_default(),
        snap_created: false,
        size: header.size,
        bytes_written: stats.bytes_written,
        bytes_zeroed: sink.bytes_zeroed,
        stream_bytes: sink.bytes(),
        elapsed_s: 0.0,
    })
}
