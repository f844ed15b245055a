//! The Cinder clone workflow: make volumes from `pool/image@snap` as COW clones.
//!
//! The snapshot must exist (or be created on request). It is protected only when the cluster
//! makes clone v1 images (require-min-compat-client below mimic); under clone v2 it is left
//! alone. Each clone is resized to the requested size (never shrunk below the parent overlap
//! unless allowed) and flattened when the parent chain would grow deeper than the limit.
//! Several destinations are made concurrently; a destination that fails is removed again if we
//! created it, so no half-made clone is left behind.
use crate::ceph::{CloneFormat, Cluster, CreateOptions, Image, ImageSpec, IoCtx};
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Parent chains deeper than this are treated as corrupt (a loop or a runaway chain).
const MAX_WALK: u32 = 256;

/// What to clone, where, and how.
#[derive(Clone, Debug)]
pub struct CloneRequest {
    /// The parent snapshot, `pool/image@snap`.
    pub parent: ImageSpec,
    /// The new images.
    pub dests: Vec<ImageSpec>,
    /// Resize each clone to this size.
    pub size: Option<u64>,
    /// Allow `size` below the parent overlap (discards data).
    pub allow_shrink: bool,
    /// Flatten a clone whose parent already has this many ancestors (Cinder's
    /// `rbd_max_clone_depth`; 0 flattens always).
    pub max_clone_depth: u32,
    /// Flatten every clone regardless of depth.
    pub flatten: bool,
    /// Create the parent snapshot if it does not exist.
    pub create_snap: bool,
    /// Features of the clones (`None`: layering only).
    pub features: Option<u64>,
    /// Object size order of the clones (`None`: the parent's).
    pub order: Option<u8>,
    /// Stripe unit and count of the clones (both or neither; `None`: librbd's default).
    pub striping: Option<(u64, u64)>,
    /// Pool for the clones' data objects (`None`: rbd_default_data_pool, if set).
    pub data_pool: Option<String>,
    /// Clones made at once.
    pub concurrency: usize,
}

/// The outcome for one destination.
#[derive(Clone, Debug, Serialize)]
pub struct CloneResult {
    /// The destination spec (`image` in JSON, the key every report uses for an image).
    #[serde(rename = "image")]
    pub dest: String,
    /// Whether the clone now exists as requested.
    pub ok: bool,
    /// One-line error when it failed.
    pub error: Option<String>,
    /// Final size in bytes.
    pub size: Option<u64>,
    /// Whether it was flattened (no longer depends on the parent).
    pub flattened: bool,
    /// Ancestors of the new image (0 once flattened).
    pub depth: u32,
    /// Wall time for this clone, seconds.
    pub elapsed_s: f64,
}

/// The outcome of a clone request.
#[derive(Clone, Debug, Serialize)]
pub struct CloneReport {
    /// The parent snapshot.
    pub parent: String,
    /// Clone format the cluster uses.
    pub clone_format: CloneFormat,
    /// Whether we created the parent snapshot.
    pub snap_created: bool,
    /// Whether we protected the parent snapshot (clone v1 only).
    pub snap_protected: bool,
    /// Ancestors of the parent image.
    pub parent_depth: u32,
    /// One entry per destination, in request order.
    pub results: Vec<CloneResult>,
    /// Wall time, seconds.
    pub elapsed_s: f64,
}

impl CloneReport {
    /// Destinations that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CloneResult> {
        self.results.iter().filter(|r| !r.ok)
    }
}

/// The clone format the cluster makes by default: v2 once require-min-compat-client >= mimic.
pub fn cluster_clone_format(cluster: &Cluster) -> Result<CloneFormat> {
    let (out, _) = cluster.mon_command(r#"{"prefix": "osd dump", "format": "json"}"#)?;
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| Error::Other(format!("cannot parse `osd dump` from the monitor: {e}")))?;
    let compat = v
        .get("require_min_compat_client")
        .and_then(|c| c.as_str())
        .unwrap_or("jewel");
    // Release names in order; clone v2 needs every client to be mimic or newer.
    const BEFORE_MIMIC: [&str; 11] = [
        "argonaut",
        "bobtail",
        "cuttlefish",
        "dumpling",
        "emperor",
        "firefly",
        "giant",
        "hammer",
        "infernalis",
        "jewel",
        "kraken",
    ];
    Ok(if BEFORE_MIMIC.contains(&compat) || compat == "luminous" {
        CloneFormat::V1
    } else {
        CloneFormat::V2
    })
}

/// Number of ancestors of an image (0 for an image that is not a clone).
pub fn clone_depth(image: &Image) -> Result<u32> {
    let cluster = image.ioctx().cluster().clone();
    let mut depth = 0;
    let mut parent = image.parent()?;
    while let Some(p) = parent {
        depth += 1;
        if depth > MAX_WALK {
            return Err(Error::Other(format!(
                "{}: parent chain longer than {MAX_WALK} images; it may be corrupt",
                image.describe()
            )));
        }
        let ns = (!p.namespace.is_empty()).then_some(p.namespace.as_str());
        let io = cluster.ioctx(&p.pool, ns)?;
        let img = Image::open_read_only(&io, &p.image, p.snap.as_deref())?;
        parent = img.parent()?;
    }
    Ok(depth)
}

/// The parent snapshot is missing: ENOENT (callers may branch on it), saying how to make it.
fn missing_snap_error(parent: &ImageSpec) -> Error {
    let hint =
        format!("no such snapshot; create it with --create-snap or `rbd snap create {parent}`");
    Error::ceph_with_hint("look up snapshot", parent.to_string(), -libc::ENOENT, hint)
}

/// Runs the clone workflow. `on_done` is called as each destination finishes.
pub fn clone_volumes(
    cluster: &Cluster,
    req: &CloneRequest,
    on_done: &(dyn Fn(&CloneResult) + Sync),
) -> Result<CloneReport> {
    let started = Instant::now();
    let snap = req.parent.require_snap()?.to_string();
    let parent_io = cluster.ioctx(&req.parent.pool, req.parent.namespace.as_deref())?;
    // Read-only first: a client like Cinder has only read caps on the images pool, and needs
    // write access only if the snapshot must be created or protected.
    let parent = Image::open_read_only(&parent_io, &req.parent.image, None)?;
    let format = cluster_clone_format(cluster)?;
    let exists = parent.snap_exists(&snap)?;
    if !exists && !req.create_snap {
        return Err(missing_snap_error(&req.parent));
    }
    let must_protect =
        format == CloneFormat::V1 && (!exists || !parent.snap_is_protected(&snap)?);
    let (mut snap_created, mut snap_protected) = (false, false);
    if !exists || must_protect {
        let writable = Image::open(&parent_io, &req.parent.image, None)?;
        if !exists {
            writable.snap_create(&snap)?;
            snap_created = true;
        }
        if must_protect {
            writable.snap_protect(&snap)?;
            snap_protected = true;
        }
        writable.close()?;
    }
    let parent_depth = clone_depth(&parent)?;
    let parent_at_snap = Image::open_read_only(&parent_io, &req.parent.image, Some(&snap))?;
    let overlap = parent_at_snap.stat()?.size;
    if let Some(size) = req.size {
        if size < overlap && !req.allow_shrink {
            return Err(Error::InvalidInput(format!(
                "--size {} is smaller than the parent {} ({}): the clone would lose data; pass --allow-shrink to do it anyway",
                crate::units::format_size(size),
                req.parent,
                crate::units::format_size(overlap)
            )));
        }
    }
    drop(parent_at_snap);
    drop(parent);

    let flatten = req.flatten || parent_depth >= req.max_clone_depth;
    let opts = CreateOptions {
        features: req.features,
        order: req.order,
        stripe_unit: req.striping.map(|s| s.0),
        stripe_count: req.striping.map(|s| s.1),
        data_pool: req.data_pool.clone(),
        clone_format: Some(format),
    };
    let ioctxs = open_dest_pools(cluster, &req.dests)?;
    let results: Vec<Mutex<Option<CloneResult>>> =
        req.dests.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = req.concurrency.clamp(1, 64).min(req.dests.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(dest) = req.dests.get(i) else { break };
                let io = &ioctxs[&(dest.pool.clone(), dest.namespace.clone())];
                let t = Instant::now();
                let outcome = clone_one(
                    &parent_io,
                    &req.parent.image,
                    &snap,
                    io,
                    dest,
                    overlap,
                    req.size,
                    flatten,
                    &opts,
                );
                let result = match outcome {
                    Ok(size) => CloneResult {
                        dest: dest.to_string(),
                        ok: true,
                        error: None,
                        size: Some(size),
                        flattened: flatten,
                        depth: if flatten { 0 } else { parent_depth + 1 },
                        elapsed_s: t.elapsed().as_secs_f64(),
                    },
                    Err(e) => CloneResult {
                        dest: dest.to_string(),
                        ok: false,
                        error: Some(e.to_string()),
                        size: None,
                        flattened: false,
                        depth: 0,
                        elapsed_s: t.elapsed().as_secs_f64(),
                    },
                };
                on_done(&result);
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            });
        }
    });
    let results = results
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    Ok(CloneReport {
        parent: req.parent.to_string(),
        clone_format: format,
        snap_created,
        snap_protected,
        parent_depth,
        results,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

fn open_dest_pools(
    cluster: &Cluster,
    dests: &[ImageSpec],
) -> Result<HashMap<(String, Option<String>), IoCtx>> {
    let mut map = HashMap::new();
    for d in dests {
        d.forbid_snap()?;
        if let Entry::Vacant(slot) = map.entry((d.pool.clone(), d.namespace.clone())) {
            slot.insert(cluster.ioctx(&d.pool, d.namespace.as_deref())?);
        }
    }
    Ok(map)
}

/// Clones, resizes and flattens one destination; removes it again if a later step fails.
#[allow(clippy::too_many_arguments)]
fn clone_one(
    parent_io: &IoCtx,
    parent: &str,
    snap: &str,
    io: &IoCtx,
    dest: &ImageSpec,
    parent_size: u64,
    size: Option<u64>,
    flatten: bool,
    opts: &CreateOptions,
) -> Result<u64> {
    io.clone_image(&dest.image, parent_io, parent, snap, opts)?;
    // A new clone has the parent snapshot's size; every round trip saved here is multiplied by
    // the number of volumes, so the size is not read back.
    let final_size = size.unwrap_or(parent_size);
    if final_size == parent_size && !flatten {
        return Ok(final_size);
    }
    let finish = || -> Result<u64> {
        let image = Image::open(io, &dest.image, None)?;
        if final_size != parent_size {
            image.resize(final_size, &mut |_, _| {})?;
        }
        if flatten {
            image.flatten(&mut |_, _| {})?;
        }
        image.close()?;
        Ok(final_size)
    };
    finish().map_err(|e| match io.remove_image(&dest.image) {
        Ok(()) => e,
        Err(cleanup) => cleanup_failed(e, &cleanup),
    })
}

/// A clone step failed and removing the half-made clone failed too: both are told, and the
/// first failure's errno is kept (it is the cause; the cleanup is a consequence).
fn cleanup_failed(e: Error, cleanup: &Error) -> Error {
    let message = format!("{e}; and removing the half-made clone failed too: {cleanup}");
    e.context(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_snapshot_is_enoent_naming_the_fix() {
        let spec: ImageSpec = "images/base@gold".parse().unwrap();
        let e = missing_snap_error(&spec);
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let s = e.to_string();
        assert!(
            s.starts_with("look up snapshot images/base@gold: ENOENT"),
            "{s}"
        );
        assert!(s.contains("--create-snap") && !s.contains('\n'), "{s}");
    }

    #[test]
    fn failed_cleanup_keeps_the_first_errno() {
        let first = Error::ceph("resize image", "volumes/v1", -libc::ENOSPC);
        let cleanup = Error::ceph("remove image", "volumes/v1", -libc::EBUSY);
        let e = cleanup_failed(first, &cleanup);
        assert_eq!(e.errno(), Some(libc::ENOSPC));
        let s = e.to_string();
        assert!(
            s.contains("ENOSPC") && s.contains("EBUSY") && !s.contains('\n'),
            "{s}"
        );
        // Without an errno to keep, the message alone survives.
        let e = cleanup_failed(Error::Other("boom".into()), &cleanup);
        assert_eq!(e.errno(), None);
        assert!(e.to_string().starts_with("boom; and removing"));
    }
}
