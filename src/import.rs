//! `import-raw`: stream a qcow2 or raw disk straight into a new RBD image, atomically.
//!
//! The image is written under a temporary name (`<name>.rbdkit-partial.<host>.<pid>`), flushed,
//! optionally read back and verified, snapshotted (and protected) if asked, and only then renamed
//! to its final name. Any error or cancellation removes the temporary image; an existing image
//! is never overwritten. After a SIGKILL the leftover is recognisable by its name and
//! [`find_leftovers`] / [`remove_leftover`] clean it up.
use crate::ceph::{explain_full, full_advice, full_condition, Cluster};
use crate::ceph::{CreateOptions, Image, ImageSpec, IoCtx};
use crate::copy::sink_rbd::RbdSink;
use crate::copy::{checksum_disk, Checksum, Control, CopyOptions, CopyStats};
use crate::disk::rbd::RbdDisk;
use crate::error::{Error, Result};
use crate::input::Input;
use serde::Serialize;
use std::sync::atomic::Ordering;

/// The marker in the name of an image that is still being imported.
pub const PARTIAL_MARKER: &str = ".rbdkit-partial.";

/// What to import, where, and how.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// The final image, `pool[/ns]/image`.
    pub dest: ImageSpec,
    /// Make the image at least this big (it is never smaller than the virtual size).
    pub size: Option<u64>,
    /// Features, order, striping of the new image.
    pub create: CreateOptions,
    /// Copy engine tuning; the chunk size is taken from the image created (its object size).
    pub copy: CopyOptions,
    /// librbd writes in flight.
    pub concurrency: usize,
    /// Snapshot to create on the finished image (Glance's `snap`).
    pub snap: Option<String>,
    /// Protect that snapshot (clone v1 parents need it).
    pub protect: bool,
    /// Read the image back and compare checksums before publishing it.
    pub verify: bool,
    /// Format name of the source, for the report.
    pub source_format: String,
}

/// The outcome of an import.
#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    /// The final image.
    pub image: String,
    /// `raw` or `qcow2`.
    pub source_format: String,
    /// Virtual size of the source, bytes.
    pub virtual_size: u64,
    /// Size of the image created, bytes.
    pub image_size: u64,
    /// Bytes written to RBD.
    pub bytes_written: u64,
    /// Bytes skipped because they read as zeros.
    pub bytes_zero_skipped: u64,
    /// Wall time of the whole import, seconds.
    pub elapsed_s: f64,
    /// Virtual size / elapsed, MiB/s.
    pub mib_per_s: f64,
    /// The checksum algorithm of `checksum` (`sha256-tree`, `sha256-blocks` or `sha256`); `None` without one.
    pub checksum_algorithm: Option<Checksum>,
    /// The checksum of the virtual disk content, hex.
    pub checksum: Option<String>,
    /// The SHA-256 of the raw image (what `sha256sum` prints), when the algorithm is `sha256`.
    pub sha256: Option<String>,
    /// qcow2 streams only: bytes that arrived before the tables naming them and went through
    /// the temporary spill file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_spilled: Option<u64>,
    /// The checksum was computed by reading the image back: the qcow2 stream's data arrived
    /// too far out of guest order to hash on the way (then `verified` stays `None`: there is no
    /// independent checksum to compare with).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub checksum_read_back: bool,
    /// True when the image was read back and matched; `None` without `--verify`.
    pub verified: Option<bool>,
    /// Snapshot created, if any.
    pub snap: Option<String>,
    /// Whether that snapshot is protected.
    pub protected: bool,
    /// Features of the image as librbd reports them after the import (`rbd info`'s names).
    pub features: Vec<String>,
}

/// The temporary name an import of `name` writes under.
pub fn temp_name(name: &str) -> String {
    format!(
        "{name}{PARTIAL_MARKER}{}.{}",
        hostname(),
        std::process::id()
    )
}

pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().replace(['/', '@', '.'], "-"))
        .unwrap_or_else(|_| "host".into())
}

/// Imports `source` into a new image named by `req.dest`.
pub fn import(
    cluster: &Cluster,
    req: &ImportRequest,
    source: Input<'_>,
    ctl: &Control,
) -> Result<ImportReport> {
    req.dest.forbid_snap()?;
    let io = cluster.ioctx(&req.dest.pool, req.dest.namespace.as_deref())?;
    if io.image_exists(&req.dest.image)? {
        return Err(Error::Other(format!(
            "import into {}: EEXIST — the image already exists; rbdkit never overwrites: remove it or choose another name",
            req.dest
        )));
    }
    if let Some(why) = full_condition(cluster) {
        return Err(Error::Other(format!(
            "import into {}: {}; nothing was created",
            req.dest,
            full_advice(&why)
        )));
    }
    let tmp_name = temp_name(&req.dest.image);
    let initial = source
        .virtual_size()
        .unwrap_or(0)
        .max(req.size.unwrap_or(0));
    io.create_image(&tmp_name, initial, &req.create)
        .map_err(|e| explain_stall(cluster, &req.dest, e))?;
    match write_and_publish(req, &io, &tmp_name, initial, source, ctl) {
        Ok(report) => Ok(report),
        Err(e) => {
            let e = explain_stall(cluster, &req.dest, e);
            // The image handle is closed by now; remove what we made (snapshots included).
            match remove_leftover(&io, &tmp_name) {
                Ok(()) => Err(match e {
                    Error::Interrupted(m) => Error::Interrupted(format!("{m}; the temporary image was removed")),
                    other => other,
                }),
                Err(ce) => Err(Error::Other(format!(
                    "{e}; the temporary image {} could not be removed ({ce}): run `rbdkit cleanup {}` once the cluster is healthy",
                    io.describe(&tmp_name),
                    req.dest.pool
                ))),
            }
        }
    }
}

/// A full cluster shows up as timed-out or refused writes; name the real cause.
fn explain_stall(cluster: &Cluster, dest: &ImageSpec, e: Error) -> Error {
    let what = format!("import into {dest} stopped");
    explain_full(cluster, e, &what, "nothing was published")
}

/// Copies into the temporary image, verifies, snapshots, and renames it to its final name.
fn write_and_publish(
    req: &ImportRequest,
    io: &IoCtx,
    tmp_name: &str,
    initial: u64,
    source: Input<'_>,
    ctl: &Control,
) -> Result<ImportReport> {
    let started = std::time::Instant::now();
    let image = Image::open(io, tmp_name, None)?;
    // Writes are object-aligned with the object size librbd chose (the request's, or the
    // cluster's rbd_default_order), not an assumed one.
    let copy = CopyOptions {
        chunk_size: image.stat()?.object_size,
        ..req.copy.clone()
    };
    let mut stats: CopyStats = {
        let mut sink = RbdSink::new(&image, initial, req.size.unwrap_or(0), req.concurrency);
        source.copy_into(&mut sink, &copy, ctl)?
    };
    let read_back = stats.checksum_fell_back;
    // Read back by the copy engine's threads, hashed where read.
    let read_checksum = || checksum_disk(&RbdDisk::new(&image, stats.virtual_size), &copy, ctl);
    let kind = req.copy.checksum;
    if read_back && kind.is_some() {
        stats.checksum = Some(read_checksum()?);
    }
    let verified = match kind {
        Some(kind) if req.verify && !read_back => {
            let expected = stats.checksum.as_deref().unwrap_or_default();
            let actual = read_checksum()?;
            if actual != expected {
                return Err(Error::Other(format!(
                    "verify {}: the image reads back with {} {actual}, but {expected} was written; the temporary image was removed",
                    req.dest,
                    kind.name()
                )));
            }
            Some(true)
        }
        _ => None,
    };
    let image_size = image.stat()?.size;
    // Read back, not taken from the request: librbd adds and drops features on its own.
    let features = crate::ceph::feature_names(image.features()?);
    if let Some(snap) = &req.snap {
        image.snap_create(snap)?;
        if req.protect {
            image.snap_protect(snap)?;
        }
    }
    image.close()?;
    if ctl.cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted(format!(
            "import into {} cancelled; nothing was published",
            req.dest
        )));
    }
    io.rename_image(tmp_name, &req.dest.image)?;
    let elapsed_s = started.elapsed().as_secs_f64();
    Ok(ImportReport {
        image: req.dest.to_string(),
        source_format: req.source_format.clone(),
        virtual_size: stats.virtual_size,
        image_size,
        bytes_written: stats.bytes_written,
        bytes_zero_skipped: stats.bytes_zero_skipped,
        elapsed_s,
        mib_per_s: stats.virtual_size as f64 / (1 << 20) as f64 / elapsed_s.max(1e-9),
        checksum_algorithm: kind,
        sha256: stats
            .checksum
            .clone()
            .filter(|_| kind == Some(Checksum::Sha256)),
        checksum: stats.checksum,
        bytes_spilled: stats.bytes_spilled,
        checksum_read_back: read_back,
        verified,
        snap: req.snap.clone(),
        protected: req.snap.is_some() && req.protect,
        features,
    })
}

/// An image left behind by an import that was killed before it could clean up.
#[derive(Clone, Debug, Serialize)]
pub struct Leftover {
    /// Pool-qualified name of the temporary image.
    pub image: String,
    /// The name the import would have published.
    pub final_name: String,
    /// Host and process that wrote it.
    pub host: String,
    /// Process id of the importer.
    pub pid: u32,
    /// True when that process still runs on this host (then it is not a leftover yet).
    pub importer_alive: bool,
}

/// Temporary images of interrupted imports in a pool.
pub fn find_leftovers(io: &IoCtx) -> Result<Vec<Leftover>> {
    let me = hostname();
    let mut out = Vec::new();
    for name in io.list_images()? {
        let Some((final_name, tail)) = name.split_once(PARTIAL_MARKER) else {
            continue;
        };
        let Some((host, pid)) = tail.rsplit_once('.') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let importer_alive = host == me && std::path::Path::new(&format!("/proc/{pid}")).exists();
        out.push(Leftover {
            image: io.describe(&name),
            final_name: final_name.to_string(),
            host: host.into(),
            pid,
            importer_alive,
        });
    }
    Ok(out)
}

/// Removes a leftover temporary image, unprotecting and removing its snapshots first.
pub fn remove_leftover(io: &IoCtx, name: &str) -> Result<()> {
    if !name.contains(PARTIAL_MARKER) {
        return Err(Error::InvalidInput(format!(
            "{name} is not an rbdkit temporary image"
        )));
    }
    {
        let image = Image::open(io, name, None)?;
        for s in image.snapshots()? {
            if s.protected {
                image.snap_unprotect(&s.name)?;
            }
            image.snap_remove(&s.name)?;
        }
    }
    // A killed importer's watch on the image lingers until the OSD times it out (30 s by
    // default); until then removal fails with EBUSY, so wait that out instead of failing.
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(LEFTOVER_WATCH_WAIT_S);
    loop {
        match io.remove_image(name) {
            Err(e) if e.errno() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// How long clean-up waits for a dead importer's watch to expire (osd_client_watch_timeout is 30 s).
pub const LEFTOVER_WATCH_WAIT_S: u64 = 45;
