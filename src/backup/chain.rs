//! The backup chains in a backup pool, as Cinder's layout records them: one base image per
//! chain (`<volume>.backup.<first-id>`, or `<volume>.backup.base` for old chains), one
//! snapshot per backup (`backup.<id>.snap.<time>`), the first full and the rest incremental.
//! What `rbdkit backup ls` shows and what backup and restore look a backup up in.
use super::names::{parse_snap, volume_of_base};
use crate::ceph::{Image, IoCtx};
use crate::error::{Error, Result};
use serde::Serialize;

/// One backup: a snapshot of a base image.
#[derive(Clone, Debug, Serialize)]
pub struct BackupPoint {
    /// The backup id.
    pub backup_id: String,
    /// The snapshot name on the base image (and, while it is the latest, on the volume).
    pub snap: String,
    /// `full` (the chain's first) or `incremental`.
    pub kind: &'static str,
    /// Volume size at the backup, bytes.
    pub size: u64,
    /// When the snapshot was taken, seconds since the epoch (librbd's record of it).
    pub created: i64,
    /// The snapshot id on the base image (the chain's order).
    pub snap_id: u64,
}

/// A base image and its backups, oldest first.
#[derive(Clone, Debug, Serialize)]
pub struct Chain {
    /// The volume image it backs up (`volume-<id>`).
    pub volume: String,
    /// The base image, `pool/name`.
    pub base: String,
    /// The base image's name in its pool.
    #[serde(skip)]
    pub base_name: String,
    /// The backups, oldest first.
    pub backups: Vec<BackupPoint>,
}

impl Chain {
    /// The latest backup.
    pub fn latest(&self) -> Option<&BackupPoint> {
        self.backups.last()
    }
}

/// Reads one base image's chain.
pub fn read_chain(io: &IoCtx, base_name: &str) -> Result<Option<Chain>> {
    let Some(volume) = volume_of_base(base_name) else {
        return Ok(None);
    };
    let image = Image::open_read_only(io, base_name, None)?;
    let mut snaps = image.snapshots()?;
    snaps.sort_by_key(|s| s.id);
    let mut backups = Vec::new();
    for s in snaps {
        let Some(parsed) = parse_snap(&s.name) else {
            continue;
        };
        backups.push(BackupPoint {
            kind: if backups.is_empty() {
                "full"
            } else {
                "incremental"
            },
            backup_id: parsed.backup_id,
            created: image.snap_timestamp(s.id)?,
            snap: s.name,
            size: s.size,
            snap_id: s.id,
        });
    }
    Ok(Some(Chain {
        volume: volume.to_string(),
        base: io.describe(base_name),
        base_name: base_name.to_string(),
        backups,
    }))
}

/// The chains in the pool, of `volume` only when given, by volume then base name. Base images
/// that vanish while listing (deleted meanwhile) are skipped.
pub fn list_chains(io: &IoCtx, volume: Option<&str>) -> Result<Vec<Chain>> {
    let mut names: Vec<String> = io
        .list_images()?
        .into_iter()
        .filter(|n| volume_of_base(n).is_some_and(|v| volume.is_none_or(|w| w == v)))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        match read_chain(io, &n) {
            Ok(Some(c)) => out.push(c),
            Ok(None) => {}
            Err(e) if e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The chain and backup a snapshot name belongs to: `BACKUP_POOL/BASE@SNAP`, or a backup id
/// given as the snapshot (`BACKUP_POOL/BASE@<id>`).
pub fn find_backup(io: &IoCtx, base_name: &str, snap_or_id: &str) -> Result<(Chain, BackupPoint)> {
    let chain = read_chain(io, base_name)?.ok_or_else(|| {
        Error::InvalidInput(format!(
            "{} is not a backup base image (Cinder names them <volume>.backup.<id>); list them with `rbdkit backup ls {}`",
            io.describe(base_name),
            io.pool()
        ))
    })?;
    let point = chain
        .backups
        .iter()
        .find(|b| b.snap == snap_or_id || b.backup_id == snap_or_id)
        .cloned()
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}@{}: no such backup snapshot; list them with `rbdkit backup ls {}`",
                io.describe(base_name),
                crate::text::escape(snap_or_id),
                io.pool()
            ))
        })?;
    Ok((chain, point))
}
