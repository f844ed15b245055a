//! `rbdkit backup rm`: one backup removed the way Cinder's driver removes it (its snapshot on
//! the base image, and the base image with its chain's last backup), plus what only rbdkit
//! keeps with it: its block digests. Every backup of a chain is a whole point in time of the
//! base image, so any of them can go without breaking the others.
use super::chain::find_backup;
use super::digests;
use crate::ceph::{Image, IoCtx};
use crate::error::Result;
use serde::Serialize;

/// What `remove_backup` removed.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    /// The base image, `pool/name`.
    pub base: String,
    /// The backup's snapshot name.
    pub snap: String,
    /// The backup id (empty when only digests were left).
    pub backup_id: String,
    /// Whether the base image went too (it held no other backup).
    pub base_removed: bool,
    /// Whether it was the chain's latest backup: the volume's snapshot of the same name then
    /// starts no incremental any more (the next backup of the volume is full).
    pub was_latest: bool,
    /// Whether only block digests were left of it (a backup Cinder or `rbd snap rm` removed).
    pub digests_only: bool,
}

/// Removes backup `snap_or_id` (its snapshot name or backup id) of the chain on `base_name`.
/// A backup already gone whose digests remain (removed by Cinder) has just those removed.
pub fn remove_backup(io: &IoCtx, base_name: &str, snap_or_id: &str) -> Result<Removed> {
    let base = io.describe(base_name);
    let (chain, point) = match find_backup(io, base_name, snap_or_id) {
        Ok(found) => found,
        // Not a backup (any more): its digests may still be here.
        Err(e) => {
            if !digests::remove(io, base_name, snap_or_id)? {
                return Err(e);
            }
            return Ok(Removed {
                base,
                snap: snap_or_id.to_string(),
                backup_id: String::new(),
                base_removed: false,
                was_latest: false,
                digests_only: true,
            });
        }
    };
    let was_latest = chain.latest().is_some_and(|l| l.snap == point.snap);
    let image = Image::open(io, base_name, None)?;
    if image.snap_is_protected(&point.snap)? {
        image.snap_unprotect(&point.snap)?;
    }
    image.snap_remove(&point.snap)?;
    let left = image.snapshots()?.len();
    drop(image);
    // The snapshot is gone, so the digests describe nothing: removed even if this fails later.
    digests::remove(io, base_name, &point.snap)?;
    let base_removed = left == 0;
    if base_removed {
        io.remove_image(base_name).map_err(|e| {
            e.context(format!(
                "removed backup {}@{} but not the base image, which holds no backup now: remove it with `rbd rm {base}`",
                base, point.snap
            ))
        })?;
    }
    Ok(Removed {
        base,
        snap: point.snap,
        backup_id: point.backup_id,
        base_removed,
        was_latest,
        digests_only: false,
    })
}
