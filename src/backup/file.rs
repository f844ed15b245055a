//! A backup of a file — a raw volume on an NFS share or a mounted path — into a backup pool,
//! with Cinder's names (the base and snapshot names of [`super::names`], the file's name as
//! the volume's). A file has no snapshots to diff, so an incremental reads the whole file and
//! sends only the 64 KiB blocks whose digest differs from the previous backup's, which are kept
//! with each backup ([`super::digests`]). The file is read as it is: stop writers (or back up
//! a copy) for a consistent backup.
use super::chain::{list_chains, BackupPoint, Chain};
use super::digests::{self, BlockDigests};
use super::names::{new_backup_id, snap_name, valid_backup_id};
use super::rbd::{
    copy_changed_blocks, full_from, head_changes, verify_passed, BackupReport, BackupRequest,
};
use crate::ceph::{Cluster, Image, IoCtx};
use crate::copy::sink_rbd::RbdSink;
use crate::copy::{Checksum, Control, CopyOptions};
use crate::disk::raw::RawFile;
use crate::disk::rbd::RbdDisk;
use crate::disk::DiskSource;
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::Ordering;

/// Object size of a file's base image (2^22: 4 MiB, rbd's default).
const ORDER: u8 = 22;

/// Backs up the raw file `path` into `req`'s backup pool (`req.volume` is ignored; the volume's
/// name is the file's).
pub fn backup_file(
    dest: &Cluster,
    path: &Path,
    req: &BackupRequest,
    ctl: &Control,
) -> Result<BackupReport> {
    let started = std::time::Instant::now();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && !n.contains(['@', '/']))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "backup {}: the file's name names the backup images; give a file named like volume-<id>",
                crate::text::escape(&path.display().to_string())
            ))
        })?
        .to_string();
    let disk = RawFile::open(path)?;
    let id = req.backup_id.clone().unwrap_or_else(new_backup_id);
    if !valid_backup_id(&id) {
        return Err(Error::InvalidInput(format!(
            "backup id '{}': Cinder's backup ids are lower-case letters, digits and '-' (a UUID)",
            crate::text::escape(&id)
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let final_snap = snap_name(&id, now);
    let dest_io = dest.ioctx(&req.backup_pool, req.backup_namespace.as_deref())?;
    let prev = if req.full {
        None
    } else {
        latest_with_digests(&dest_io, &name)?
    };
    let mut report = match prev {
        None => full_from(dest, &disk, ORDER, &name, req, &id, &final_snap, ctl)?,
        Some((chain, point, d)) => incremental(
            &dest_io,
            &disk,
            req,
            &id,
            &chain,
            &point,
            &d,
            &final_snap,
            ctl,
        )?,
    };
    report.volume = path.display().to_string();
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The newest backup of `volume` whose digests are kept.
fn latest_with_digests(
    io: &IoCtx,
    volume: &str,
) -> Result<Option<(Chain, BackupPoint, BlockDigests)>> {
    let mut best: Option<(Chain, BackupPoint, BlockDigests)> = None;
    for chain in list_chains(io, Some(volume))? {
        let Some(p) = chain.latest().cloned() else {
            continue;
        };
        if best.as_ref().is_some_and(|b| b.1.created > p.created) {
            continue;
        }
        if let Some(d) = digests::load(io, &chain.base_name, &p.snap)?.filter(|d| d.size == p.size)
        {
            best = Some((chain, p, d));
        }
    }
    Ok(best)
}

#[allow(clippy::too_many_arguments)]
fn incremental(
    dest_io: &IoCtx,
    disk: &dyn DiskSource,
    req: &BackupRequest,
    id: &str,
    chain: &Chain,
    point: &BackupPoint,
    prev: &BlockDigests,
    final_snap: &str,
    ctl: &Control,
) -> Result<BackupReport> {
    let size = disk.virtual_size();
    let base = Image::open(dest_io, &chain.base_name, None)?;
    // What a failed backup left in the head is rewritten whatever the file says of it.
    let dirty = head_changes(&base, &point.snap, point.size.max(size))?;
    if base.stat()?.size != size {
        base.resize(size, &mut |_, _| {})?;
    }
    let opts = CopyOptions {
        chunk_size: base.stat()?.object_size,
        checksum: None,
        ..req.copy.clone()
    };
    let mut rbd = RbdSink::overwriting(&base, size, 0, req.concurrency);
    let (now, passed) = copy_changed_blocks(&mut rbd, disk, prev, &dirty, &opts, ctl)?;
    let (written, zeroed) = (rbd.bytes_written, rbd.bytes_zeroed);
    verify_passed(
        &RbdDisk::new(&base, size),
        &passed,
        &now,
        &opts,
        ctl,
        &chain.base,
    )?;
    if ctl.cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted(format!(
            "backup into {} cancelled",
            chain.base
        )));
    }
    let d = BlockDigests::from_digests(size, now);
    digests::store(dest_io, &chain.base_name, final_snap, &d)?;
    if let Err(e) = base.snap_create(final_snap) {
        let _ = digests::remove(dest_io, &chain.base_name, final_snap);
        return Err(e);
    }
    Ok(BackupReport {
        volume: String::new(),
        base: chain.base.clone(),
        backup_id: id.to_string(),
        snap: final_snap.to_string(),
        kind: "incremental",
        from_snap: Some(point.snap.clone()),
        size,
        bytes_changed: size,
        bytes_written: written,
        bytes_zeroed: zeroed,
        verified: "changed blocks read back, the rest from the previous backup's digests",
        phases_s: None,
        elapsed_s: 0.0,
        checksum_algorithm: Checksum::Sha256Blocks,
        checksum: d.checksum(),
        removed_source_snap: None,
    })
}
