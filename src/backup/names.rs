//! The names Cinder's Ceph backup driver (`cinder/backup/drivers/ceph.py`) gives backup images
//! and snapshots, so rbdkit writes chains Cinder can restore and restores chains Cinder wrote.
//!
//! - A full backup of volume image `volume-<vid>` creates the base image
//!   `volume-<vid>.backup.<backup-id>` in the backup pool; its incrementals write into the same
//!   base (Cinder keeps the base's name in the backup's `service_metadata`). Chains written by
//!   older Cinder releases use one base per volume, `volume-<vid>.backup.base`.
//! - Every backup, full or incremental, is a snapshot `backup.<backup-id>.snap.<unix time>`, made
//!   on the source volume first and, once the data is in, with the same name on the base image.
//!   The next incremental sends the difference between the previous backup's snapshot and a new
//!   one, so the source keeps the latest backup snapshot.
//!
//! Nothing here talks to a cluster.

/// The suffix of the base image of old-style chains (one per volume).
pub const LEGACY_BASE_SUFFIX: &str = ".backup.base";

/// The infix between the volume's image name and the backup id in a base image's name.
pub const BASE_INFIX: &str = ".backup.";

/// The base image name of a new chain whose first (full) backup is `backup_id`.
pub fn base_name(volume_image: &str, backup_id: &str) -> String {
    format!("{volume_image}{BASE_INFIX}{backup_id}")
}

/// The volume image name a base image belongs to, if `name` is a base image's name
/// (`<volume>.backup.<id>` or `<volume>.backup.base`, not a temporary image).
pub fn volume_of_base(name: &str) -> Option<&str> {
    if name.contains(crate::import::PARTIAL_MARKER) {
        return None;
    }
    let (vol, id) = name.rsplit_once(BASE_INFIX)?;
    (!vol.is_empty() && valid_backup_id(id)).then_some(vol)
}

/// The snapshot name of backup `backup_id` taken at `unix_time` seconds (Cinder writes
/// Python's `time.time()`, a float; any text after `.snap.` is accepted when reading).
pub fn snap_name(backup_id: &str, unix_time: f64) -> String {
    format!("backup.{backup_id}.snap.{unix_time:.6}")
}

/// A backup snapshot's name taken apart.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupSnapName {
    /// The backup id (a UUID for Cinder).
    pub backup_id: String,
    /// The text after `.snap.`: the Unix time the backup was taken.
    pub timestamp: String,
}

impl BackupSnapName {
    /// The timestamp as seconds, when it is a number.
    pub fn unix_time(&self) -> Option<f64> {
        self.timestamp.parse().ok()
    }
}

/// Parses a backup snapshot name as Cinder's pattern `^backup\.([a-z0-9\-]+?)\.snap\.(.+)$`
/// does: the id is the shortest run of `[a-z0-9-]` followed by `.snap.` and at least one byte.
pub fn parse_snap(name: &str) -> Option<BackupSnapName> {
    let rest = name.strip_prefix("backup.")?;
    let mut from = 0;
    while let Some(i) = rest[from..].find(".snap.") {
        let at = from + i;
        let (id, tail) = (&rest[..at], &rest[at + ".snap.".len()..]);
        if !id.is_empty() && id.bytes().all(id_byte) && !tail.is_empty() {
            return Some(BackupSnapName {
                backup_id: id.to_string(),
                timestamp: tail.to_string(),
            });
        }
        if !rest[..at].bytes().all(id_byte) {
            return None;
        }
        from = at + 1;
    }
    None
}

fn id_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// True for an id Cinder's pattern accepts (`[a-z0-9-]+`, and `base` for old chains).
pub fn valid_backup_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(id_byte)
}

/// A new random backup id in Cinder's form (a version-4 UUID, lower-case).
pub fn new_backup_id() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_cinder() {
        assert_eq!(
            base_name("volume-1a2b", "9f00-aa"),
            "volume-1a2b.backup.9f00-aa"
        );
        assert_eq!(
            volume_of_base("volume-1a2b.backup.9f00-aa"),
            Some("volume-1a2b")
        );
        assert_eq!(
            volume_of_base("volume-1a2b.backup.base"),
            Some("volume-1a2b")
        );
        assert_eq!(volume_of_base("volume-1a2b"), None);
        assert_eq!(volume_of_base("v.backup.x.rbdkit-partial.h.1"), None);
        assert_eq!(volume_of_base("v.backup.Upper"), None);
        let s = snap_name("0c6c-11", 1700000000.25);
        assert_eq!(s, "backup.0c6c-11.snap.1700000000.250000");
        let p = parse_snap(&s).unwrap();
        assert_eq!(p.backup_id, "0c6c-11");
        assert_eq!(p.unix_time(), Some(1700000000.25));
    }

    #[test]
    fn parse_is_lazy_like_the_regex() {
        // The regex's lazy group stops at the first `.snap.` that leaves a non-empty tail.
        let p = parse_snap("backup.a.snap.b.snap.c").unwrap();
        assert_eq!(
            (p.backup_id.as_str(), p.timestamp.as_str()),
            ("a", "b.snap.c")
        );
        assert_eq!(parse_snap("backup.a.snap."), None);
        assert_eq!(parse_snap("backup..snap.1"), None);
        assert_eq!(parse_snap("backup.A.snap.1"), None);
        assert_eq!(parse_snap("backup.a.b.snap.1"), None);
        assert_eq!(parse_snap("snap"), None);
        assert_eq!(
            parse_snap("backup.x-1.snap.1.5").unwrap().unix_time(),
            Some(1.5)
        );
    }

    #[test]
    fn new_ids_are_uuid_v4_and_valid() {
        let a = new_backup_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(valid_backup_id(&a));
        assert_ne!(a, new_backup_id());
    }
}
