//! A backup of an RBD volume into a backup pool, the Cinder way: the volume is snapshotted,
//! the first backup copies the snapshot into a new base image, later ones copy only what
//! changed since the previous backup's snapshot into the same base, and each backup becomes a
//! snapshot of the base with the volume snapshot's name.
//!
//! Never a half backup: the base's snapshot is created only after every byte is written and
//! the `sha256-blocks` checksum of the base reads back equal to the volume snapshot's. A full
//! backup is written under a temporary name and renamed at the end ([`crate::import`]); an
//! incremental writes into the base's head, which no backup points at, so a failure leaves
//! every earlier backup (a snapshot) intact; the next incremental also rewrites whatever a
//! failed one left in the head. The volume's new snapshot carries a temporary name until the
//! backup exists and is removed on every failure; after a SIGKILL [`find_partial_snaps`] finds it.
use super::chain::{list_chains, BackupPoint, Chain};
use super::digests::{self, BlockDigests};
use super::names::{base_name, new_backup_id, snap_name, valid_backup_id};
use crate::ceph::{
    explain_full, full_advice, full_condition, Cluster, CreateOptions, Image, ImageSpec, IoCtx,
};
use crate::copy::digest::BLOCK;
use crate::copy::fault::{injected, Fault};
use crate::copy::sink_changed::{ChangedBlocksSink, Held};
use crate::copy::sink_digest::{DigestSink, Digests};
use crate::copy::sink_rbd::RbdSink;
use crate::copy::{copy_disk, Checksum, Control, CopyOptions};
use crate::disk::changed::{align_to_blocks, merge, union, zeros_only_where, Change, ChangedDisk};
use crate::disk::rbd::RbdDisk;
use crate::disk::DiskSource;
use crate::error::{Error, Result};
use crate::import::{remove_leftover, temp_name};
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The marker that starts the name of a volume snapshot whose backup is still being made:
/// `rbdkit-partial.<host>.<pid>.<backup-id>`; Cinder's pattern (`^backup\.`) never matches it.
pub const SNAP_PARTIAL_PREFIX: &str = "rbdkit-partial.";

/// Features of a new base image: fast-diff, so that the next incremental finds what a failed
/// one left in the head from the object map instead of listing every object.
const BASE_FEATURES: u64 = 1 | 4 | 8 | 16;

/// What to back up, where, and how.
#[derive(Clone, Debug)]
pub struct BackupRequest {
    /// The volume, `pool[/ns]/image` (no snapshot).
    pub volume: ImageSpec,
    /// The backup pool.
    pub backup_pool: String,
    /// Its namespace, if any.
    pub backup_namespace: Option<String>,
    /// The backup id (a new UUID when `None`).
    pub backup_id: Option<String>,
    /// Make a full backup (a new chain) even when an incremental is possible.
    pub full: bool,
    /// Copy engine tuning (the checksum is always `sha256-blocks`).
    pub copy: CopyOptions,
    /// librbd writes in flight.
    pub concurrency: usize,
    /// Keep the previous backup's snapshot on the volume after an incremental (Cinder's
    /// `backup_ceph_max_snapshots = 0`); by default only the latest is kept, which is all the
    /// next incremental needs.
    pub keep_source_snaps: bool,
}

/// What a backup did.
#[derive(Clone, Debug, Serialize)]
pub struct BackupReport {
    /// The volume backed up.
    pub volume: String,
    /// The base image, `pool/name`.
    pub base: String,
    /// The backup id.
    pub backup_id: String,
    /// The backup's snapshot, on the base and on the volume.
    pub snap: String,
    /// `full` or `incremental`.
    pub kind: &'static str,
    /// The previous backup's snapshot an incremental started from.
    pub from_snap: Option<String>,
    /// Volume size, bytes.
    pub size: u64,
    /// Bytes of the volume looked at: the whole volume for a full backup, the changed ranges
    /// for an incremental.
    pub bytes_changed: u64,
    /// Bytes of data written to the base.
    pub bytes_written: u64,
    /// Bytes zeroed in the base (ranges that changed to zeros).
    pub bytes_zeroed: u64,
    /// Wall time, seconds.
    pub elapsed_s: f64,
    /// Always `sha256-blocks`.
    pub checksum_algorithm: Checksum,
    /// The checksum of the volume snapshot, equal to that of the backup read back.
    pub checksum: String,
    /// How the backup was checked against the volume's snapshot before it was made visible.
    pub verified: &'static str,
    /// Seconds spent finding what changed, copying it, and reading it back (incrementals).
    pub phases_s: Option<Phases>,
    /// The previous volume snapshot removed after an incremental, if any.
    pub removed_source_snap: Option<String>,
}

/// Where a backup's time went, seconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Phases {
    /// Listing the changes of the volume and of the base's head (a full backup: none).
    pub diff: f64,
    /// Reading the changes and writing them into the base.
    pub copy: f64,
    /// Reading the changed blocks of the base back (and everything, without digests).
    pub verify: f64,
}

/// The newest backup of `volume_name` in the pool whose snapshot the volume still has: what
/// the next incremental starts from.
pub fn latest_backup(
    dest: &IoCtx,
    volume: &Image,
    volume_name: &str,
) -> Result<Option<(Chain, BackupPoint)>> {
    let on_volume: Vec<String> = volume.snapshots()?.into_iter().map(|s| s.name).collect();
    let mut best: Option<(Chain, BackupPoint)> = None;
    for chain in list_chains(dest, Some(volume_name))? {
        let Some(p) = chain.latest().cloned() else {
            continue;
        };
        if !on_volume.contains(&p.snap) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| p.created >= b.created) {
            best = Some((chain, p));
        }
    }
    Ok(best)
}

/// The temporary name of the volume snapshot of backup `id` while it is being made.
pub fn partial_snap_name(id: &str) -> String {
    format!(
        "{SNAP_PARTIAL_PREFIX}{}.{}.{id}",
        crate::import::hostname(),
        std::process::id()
    )
}

/// Backs up `req.volume` (read through `src`) into the backup pool (written through `dest`).
pub fn backup(
    src: &Cluster,
    dest: &Cluster,
    req: &BackupRequest,
    ctl: &Control,
) -> Result<BackupReport> {
    let started = std::time::Instant::now();
    req.volume.forbid_snap()?;
    let id = req.backup_id.clone().unwrap_or_else(new_backup_id);
    if !valid_backup_id(&id) {
        return Err(Error::InvalidInput(format!(
            "backup id '{}': Cinder's backup ids are lower-case letters, digits and '-' (a UUID)",
            crate::text::escape(&id)
        )));
    }
    let src_io = src.ioctx(&req.volume.pool, req.volume.namespace.as_deref())?;
    let dest_io = dest.ioctx(&req.backup_pool, req.backup_namespace.as_deref())?;
    // Opening the volume and snapshotting it are writes too: a full cluster would stall them
    // until a timeout that names nothing.
    for cluster in [src, dest] {
        if let Some(why) = full_condition(cluster) {
            return Err(Error::Other(format!(
                "backup of {}: {}; nothing was made",
                req.volume,
                full_advice(&why)
            )));
        }
    }
    let volume = Image::open(&src_io, &req.volume.image, None)
        .map_err(|e| cap_hint(e, src, &req.volume.pool, "open volumes in"))?;
    let parent = match req.full {
        true => None,
        false => latest_backup(&dest_io, &volume, &req.volume.image)
            .map_err(|e| cap_hint(e, dest, &req.backup_pool, "list backups in"))?,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let final_snap = snap_name(&id, now);
    let tmp_snap = partial_snap_name(&id);
    volume
        .snap_create(&tmp_snap)
        .map_err(|e| cap_hint(e, src, &req.volume.pool, "snapshot a volume in"))?;
    let made = match &parent {
        None => full(dest, &src_io, req, &id, &tmp_snap, &final_snap, ctl),
        Some((chain, point)) => incremental(
            &dest_io,
            &src_io,
            req,
            &id,
            chain,
            point,
            &tmp_snap,
            &final_snap,
            ctl,
        ),
    };
    let mut report = match made {
        Ok(r) => r,
        Err(e) => {
            let e = cap_hint(e, dest, &req.backup_pool, "write backups to");
            let what = format!("backup of {} stopped", req.volume);
            let e = explain_full(
                dest,
                e,
                &what,
                "no backup was made, the earlier ones are intact",
            );
            return Err(match volume.snap_remove(&tmp_snap) {
                Ok(()) => e,
                Err(ce) => Error::Other(format!(
                    "{e}; the volume's temporary snapshot {}@{tmp_snap} could not be removed ({ce}): run `rbdkit cleanup {}`",
                    req.volume, req.volume.pool
                )),
            });
        }
    };
    volume.snap_rename(&tmp_snap, &final_snap).map_err(|e| {
        e.context(format!(
            "backup {id} was made ({}@{final_snap}) but the volume's snapshot {tmp_snap} could not be renamed to match; the next backup will be full",
            report.base
        ))
    })?;
    if let (Some((_, point)), false) = (&parent, req.keep_source_snaps) {
        // The next incremental starts from the new snapshot; the old one only costs space.
        if volume.snap_remove(&point.snap).is_ok() {
            report.removed_source_snap = Some(point.snap.clone());
        }
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The digests of every block of `disk` (its first `size` bytes), read by the copy engine.
fn read_digests(
    disk: &dyn DiskSource,
    size: u64,
    copy: &CopyOptions,
    ctl: &Control,
) -> Result<Digests> {
    let mut sink = DigestSink::new(None, size);
    copy_disk(disk, &mut sink, copy, ctl)?;
    sink.into_digests()
}

/// Fails unless `read_back` (the backup) equals `sent` (the source), naming the first block
/// that differs. Every read-back check of a backup ends here, so the injected
/// [`Fault::ReadBackDiffers`] does too.
fn compare(sent: &Digests, read_back: &Digests, what: &str) -> Result<()> {
    if sent == read_back && !injected(Fault::ReadBackDiffers) {
        return Ok(());
    }
    let first = sent
        .iter()
        .find(|(k, v)| read_back.get(k) != Some(v))
        .map(|(k, _)| *k)
        .or_else(|| read_back.keys().find(|k| !sent.contains_key(k)).copied())
        .unwrap_or(0);
    Err(Error::Other(format!(
        "verify {what}: the 64 KiB block at offset {} reads back different from the source; no backup was made, the earlier ones are intact",
        first * BLOCK
    )))
}

/// Reads back the byte ranges `passed` (whole blocks: what an incremental wrote or zeroed) of
/// the base `base_disk` and compares them with `sent`, the source's digests of them (and maybe
/// of more).
pub(crate) fn verify_passed(
    base_disk: &dyn DiskSource,
    passed: &[(u64, u64)],
    sent: &Digests,
    opts: &CopyOptions,
    ctl: &Control,
    what: &str,
) -> Result<()> {
    let size = base_disk.virtual_size();
    let changes = passed
        .iter()
        .map(|&(offset, len)| Change {
            offset,
            len,
            data: true,
        })
        .collect();
    let back = read_digests(&ChangedDisk::new(base_disk, changes), size, opts, ctl)?;
    // The read back keeps only non-zero blocks, as `sent` does.
    let want: Digests = passed
        .iter()
        .flat_map(|&(o, l)| sent.range(o / BLOCK..(o + l).div_ceil(BLOCK)))
        .map(|(k, v)| (*k, *v))
        .collect();
    compare(&want, &back, what)
}

/// What changed in the base's head since its snapshot `snap` (`(offset, len)`, within `len`
/// bytes): what a failed incremental left there, which the next one rewrites.
pub(crate) fn head_changes(base: &Image, snap: &str, len: u64) -> Result<Vec<(u64, u64)>> {
    Ok(base
        .changed_since(Some(snap), 0, len, base.fast_diff_valid())?
        .into_iter()
        .map(|c| (c.offset, c.len))
        .collect())
}

/// Copies `disk` into a base's head through `rbd`, passing on only the 64 KiB blocks whose
/// digest differs from `prev` (the previous backup's) or that lie in `dirty` (see
/// [`head_changes`]). Returns the digests of what was read and the byte ranges written or
/// zeroed: what must be read back.
pub(crate) fn copy_changed_blocks(
    rbd: &mut RbdSink,
    disk: &dyn DiskSource,
    prev: &BlockDigests,
    dirty: &[(u64, u64)],
    opts: &CopyOptions,
    ctl: &Control,
) -> Result<(Digests, Vec<(u64, u64)>)> {
    let size = disk.virtual_size();
    let held = Held {
        prev: &prev.blocks,
        prev_size: prev.size,
        size,
        forced: dirty
            .iter()
            .flat_map(|&(o, l)| o / BLOCK..(o + l).div_ceil(BLOCK))
            .collect(),
    };
    let mut filter = ChangedBlocksSink::new(rbd, held);
    let mut sink = DigestSink::new(Some(&mut filter), size);
    copy_disk(disk, &mut sink, opts, ctl)?;
    Ok((sink.into_digests()?, filter.passed()))
}

/// The first backup of a chain: the snapshot copied into a new base image under a temporary
/// name, read back and compared block by block, its digests stored, snapshotted, renamed.
fn full(
    dest: &Cluster,
    src_io: &IoCtx,
    req: &BackupRequest,
    id: &str,
    tmp_snap: &str,
    final_snap: &str,
    ctl: &Control,
) -> Result<BackupReport> {
    let snap = Image::open_read_only(src_io, &req.volume.image, Some(tmp_snap))?;
    let info = snap.stat()?;
    let disk = RbdDisk::new(&snap, info.size);
    full_from(
        dest,
        &disk,
        info.order as u8,
        &req.volume.image,
        req,
        id,
        final_snap,
        ctl,
    )
}

/// A full backup of `disk` (a volume snapshot, a file) named `volume` into a new base image
/// of objects of 2^`order` bytes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn full_from(
    dest: &Cluster,
    disk: &dyn DiskSource,
    order: u8,
    volume: &str,
    req: &BackupRequest,
    id: &str,
    final_snap: &str,
    ctl: &Control,
) -> Result<BackupReport> {
    let size = disk.virtual_size();
    let dest_io = dest.ioctx(&req.backup_pool, req.backup_namespace.as_deref())?;
    let base_name = base_name(volume, id);
    let base = dest_io.describe(&base_name);
    if dest_io.image_exists(&base_name)? {
        return Err(Error::Other(format!(
            "backup into {base}: EEXIST — the base image already exists; choose another --backup-id"
        )));
    }
    let create = CreateOptions {
        features: Some(BASE_FEATURES),
        order: Some(order),
        ..CreateOptions::default()
    };
    let tmp = temp_name(&base_name);
    dest_io.create_image(&tmp, size, &create)?;
    let t0 = std::time::Instant::now();
    let mut phases = Phases::default();
    let mut write = || -> Result<(u64, String)> {
        let img = Image::open(&dest_io, &tmp, None)?;
        let opts = CopyOptions {
            chunk_size: 1 << order,
            checksum: None,
            ..req.copy.clone()
        };
        let (stats, sent) = {
            let mut rbd = RbdSink::new(&img, size, size, req.concurrency);
            let mut sink = DigestSink::new(Some(&mut rbd), size);
            let stats = copy_disk(disk, &mut sink, &opts, ctl)?;
            (stats, sink.into_digests()?)
        };
        phases.copy = t0.elapsed().as_secs_f64();
        let back = read_digests(&RbdDisk::new(&img, size), size, &opts, ctl)?;
        compare(&sent, &back, &base)?;
        phases.verify = t0.elapsed().as_secs_f64() - phases.copy;
        let d = BlockDigests::from_digests(size, sent);
        digests::store(&dest_io, &base_name, final_snap, &d)?;
        img.snap_create(final_snap)?;
        img.close()?;
        if ctl.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted(format!(
                "backup into {base} cancelled; nothing was published"
            )));
        }
        dest_io.rename_image(&tmp, &base_name)?;
        Ok((stats.bytes_written, d.checksum()))
    };
    let (bytes_written, checksum) = match write() {
        Ok(r) => r,
        Err(e) => {
            let _ = digests::remove(&dest_io, &base_name, final_snap);
            return Err(match remove_leftover(&dest_io, &tmp) {
                Ok(()) => e,
                Err(ce) => Error::Other(format!(
                    "{e}; the temporary image {} could not be removed ({ce}): run `rbdkit cleanup {}`",
                    dest_io.describe(&tmp),
                    req.backup_pool
                )),
            });
        }
    };
    Ok(BackupReport {
        volume: req.volume.to_string(),
        base,
        backup_id: id.to_string(),
        snap: final_snap.to_string(),
        kind: "full",
        from_snap: None,
        size,
        bytes_changed: size,
        bytes_written,
        bytes_zeroed: 0,
        verified: "every block read back",
        phases_s: Some(phases),
        elapsed_s: 0.0,
        checksum_algorithm: Checksum::Sha256Blocks,
        checksum,
        removed_source_snap: None,
    })
}

/// A later backup: what changed on the volume since `point` (and whatever a failed backup
/// left in the base's head) copied into the base's head; the changed blocks read back and
/// compared; with the previous backup's digests that gives the checksum of the whole volume
/// and backup (without them, as for a chain Cinder made, both are read whole); the digests
/// stored, then the snapshot made.
#[allow(clippy::too_many_arguments)]
fn incremental(
    dest_io: &IoCtx,
    src_io: &IoCtx,
    req: &BackupRequest,
    id: &str,
    chain: &Chain,
    point: &BackupPoint,
    tmp_snap: &str,
    final_snap: &str,
    ctl: &Control,
) -> Result<BackupReport> {
    let t0 = std::time::Instant::now();
    let mut phases = Phases::default();
    let snap = Image::open_read_only(src_io, &req.volume.image, Some(tmp_snap))?;
    let info = snap.stat()?;
    let size = info.size;
    let base = Image::open(dest_io, &chain.base_name, None)?;
    let prev =
        digests::load(dest_io, &chain.base_name, &point.snap)?.filter(|d| d.size == point.size);
    if base.stat()?.size != size {
        base.resize(size, &mut |_, _| {})?;
    }
    let mut changes: Vec<Change> = snap
        .changed_since(Some(&point.snap), 0, size, snap.fast_diff_valid())?
        .into_iter()
        .map(|c| Change {
            offset: c.offset,
            len: c.len,
            data: c.data,
        })
        .collect();
    if point.size != size {
        // The blocks whose length changed, and the new space (zeros unless the diff says data).
        let lo = point.size.min(size) / BLOCK * BLOCK;
        let grown = [Change {
            offset: lo,
            len: size - lo,
            data: false,
        }];
        changes = merge(&changes, &grown[..usize::from(size > lo)]);
    }
    // A failed incremental may have left data in the head: rewrite those ranges from the
    // volume too, so the head equals the previous backup everywhere else.
    let dirty = head_changes(&base, &point.snap, size)?;
    let mut rbd = RbdSink::overwriting(&base, size, 0, req.concurrency);
    // With the previous backup's digests, the filter knows what the head holds and sends only
    // blocks that differ. Without them (a chain Cinder made), ranges that changed to zeros are
    // zeroed only where the base holds data (most of them are the unwritten part of objects
    // the volume created since).
    if prev.is_none() {
        let held = base.allocated(0, size, base.fast_diff_valid())?;
        changes = zeros_only_where(&changes, &held);
        rbd = rbd.zeroing_only_within(
            union(&[], &held)
                .iter()
                .map(|c| (c.offset, c.len))
                .collect(),
        );
    }
    let changes = align_to_blocks(&union(&changes, &dirty), BLOCK, size);
    phases.diff = t0.elapsed().as_secs_f64();
    let volume_disk = RbdDisk::new(&snap, size);
    let diff = ChangedDisk::new(&volume_disk, changes.clone());
    let (data, zeros) = diff.changed_bytes();
    let opts = CopyOptions {
        chunk_size: info.object_size,
        checksum: None,
        ..req.copy.clone()
    };
    let ranges: Vec<(u64, u64)> = changes.iter().map(|c| (c.offset, c.len)).collect();
    let (sent, passed) = match &prev {
        Some(p) => copy_changed_blocks(&mut rbd, &diff, p, &dirty, &opts, ctl)?,
        None => {
            let mut sink = DigestSink::new(Some(&mut rbd), size);
            copy_disk(&diff, &mut sink, &opts, ctl)?;
            (sink.into_digests()?, ranges.clone())
        }
    };
    let (written, zeroed) = (rbd.bytes_written, rbd.bytes_zeroed);
    phases.copy = t0.elapsed().as_secs_f64() - phases.diff;
    let base_disk = RbdDisk::new(&base, size);
    verify_passed(&base_disk, &passed, &sent, &opts, ctl, &chain.base)?;
    let (digests, verified) = match prev {
        Some(p) => (
            p.updated(size, &ranges, &sent),
            "changed blocks read back, the rest from the previous backup's digests",
        ),
        None => {
            // No digests of the previous backup: read both whole.
            let all = read_digests(&volume_disk, size, &opts, ctl)?;
            compare(
                &all,
                &read_digests(&base_disk, size, &opts, ctl)?,
                &chain.base,
            )?;
            (
                BlockDigests::from_digests(size, all),
                "every block read back",
            )
        }
    };
    if ctl.cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted(format!(
            "backup of {} cancelled; the previous backup {} is intact",
            req.volume, point.snap
        )));
    }
    phases.verify = t0.elapsed().as_secs_f64() - phases.diff - phases.copy;
    digests::store(dest_io, &chain.base_name, final_snap, &digests)?;
    if let Err(e) = base.snap_create(final_snap) {
        let _ = digests::remove(dest_io, &chain.base_name, final_snap);
        return Err(e);
    }
    Ok(BackupReport {
        volume: req.volume.to_string(),
        base: chain.base.clone(),
        backup_id: id.to_string(),
        snap: final_snap.to_string(),
        kind: "incremental",
        from_snap: Some(point.snap.clone()),
        size,
        bytes_changed: data + zeros,
        bytes_written: written,
        bytes_zeroed: zeroed,
        verified,
        phases_s: Some(phases),
        elapsed_s: 0.0,
        checksum_algorithm: Checksum::Sha256Blocks,
        checksum: digests.checksum(),
        removed_source_snap: None,
    })
}

/// An EPERM/EACCES names the client and the cap it lacks.
fn cap_hint(e: Error, cluster: &Cluster, pool: &str, doing: &str) -> Error {
    match e.errno() {
        Some(libc::EPERM | libc::EACCES) => {
            let client = cluster.client();
            let errno = crate::error::errno_name(e.errno().unwrap_or(libc::EPERM));
            e.context(format!(
                "{client} may not {doing} pool {pool} ({errno}): it needs the osd cap `profile rbd pool={pool}` and mon `profile rbd`; add them to its caps (`ceph auth caps {client} ...` replaces the whole list: repeat the caps it has, see `ceph auth get {client}`)"
            ))
        }
        _ => e,
    }
}

/// A volume snapshot left by a backup that was killed.
#[derive(Clone, Debug, Serialize)]
pub struct PartialSnap {
    /// The volume, `pool/name`.
    pub image: String,
    /// The snapshot.
    pub snap: String,
    /// Host and process that made it.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// True while that process still runs on this host.
    pub alive: bool,
}

/// Volume snapshots of backups that never finished, in a pool.
pub fn find_partial_snaps(io: &IoCtx) -> Result<Vec<PartialSnap>> {
    let me = crate::import::hostname();
    let mut out = Vec::new();
    for name in io.list_images()? {
        let image = match Image::open_read_only(io, &name, None) {
            Ok(i) => i,
            Err(e) if e.errno() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        for s in image.snapshots()? {
            let Some(rest) = s.name.strip_prefix(SNAP_PARTIAL_PREFIX) else {
                continue;
            };
            let mut parts = rest.splitn(3, '.');
            let (Some(host), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            out.push(PartialSnap {
                image: io.describe(&name),
                snap: s.name.clone(),
                host: host.to_string(),
                pid,
                alive: host == me && std::path::Path::new(&format!("/proc/{pid}")).exists(),
            });
        }
    }
    Ok(out)
}

/// Removes a partial backup snapshot found by [`find_partial_snaps`].
pub fn remove_partial_snap(io: &IoCtx, image: &str, snap: &str) -> Result<()> {
    if !snap.starts_with(SNAP_PARTIAL_PREFIX) {
        return Err(Error::InvalidInput(format!(
            "{snap} is not an rbdkit temporary snapshot"
        )));
    }
    Image::open(io, image, None)?.snap_remove(snap)
}
