//! An RBD image (or snapshot) as a [`DiskSource`], so the copy engine reads one like any disk:
//! `export`, `copy`, `--verify` after an import, and `rbdkit checksum POOL/IMAGE`. Only the
//! objects that exist are read: the rest of an image reads as zeros.
use super::{extents_from_data, DiskSource, Extent};
use crate::ceph::Image;
use crate::error::Result;

/// The first `size` bytes of an open image.
pub struct RbdDisk<'a> {
    image: &'a Image,
    size: u64,
    map: ObjectMap,
}

/// How the image's existing objects are found.
enum ObjectMap {
    /// Ask librbd per range (`diff_iterate`): fast-diff's object map when the image has it
    /// (`whole_objects`), otherwise one listing per object of the range.
    Diff { whole_objects: bool },
    /// The objects found once by listing the pool (sorted object numbers): for a thin image
    /// without an object map, whose pool holds far fewer objects than the image spans.
    Listed { objects: Vec<u64>, object_size: u64 },
}

/// librbd's `RBD_FEATURE_FAST_DIFF`.
const FAST_DIFF: u64 = 1 << 4;
/// librbd's `RBD_FEATURE_DATA_POOL`.
const DATA_POOL: u64 = 1 << 7;
/// librbd's `RBD_FLAG_FAST_DIFF_INVALID`.
const FAST_DIFF_INVALID: u64 = 1 << 1;
/// Listing the pool replaces the per-object walk when the pool holds fewer than this fraction
/// of the objects the image spans (a listing returns a page of names per request; the walk
/// costs a request per object).
const LIST_WHEN_POOL_BELOW: u64 = 8;

impl<'a> RbdDisk<'a> {
    /// Reads `image` up to `size` bytes (its size, or less).
    pub fn new(image: &'a Image, size: u64) -> Self {
        let features = image.features().unwrap_or(0);
        let fast_diff =
            features & FAST_DIFF != 0 && image.flags().is_ok_and(|f| f & FAST_DIFF_INVALID == 0);
        let map = if fast_diff {
            ObjectMap::Diff {
                whole_objects: true,
            }
        } else {
            Self::listed(image, size, features).unwrap_or(ObjectMap::Diff {
                whole_objects: false,
            })
        };
        RbdDisk { image, size, map }
    }

    /// The pool listing, when it is the cheaper way and it tells the truth: at the head of an
    /// image with no parent (a clone's data is partly its parent's) and its data in its own pool.
    fn listed(image: &Image, size: u64, features: u64) -> Option<ObjectMap> {
        if image.snap().is_some() || features & DATA_POOL != 0 || image.parent().ok()?.is_some() {
            return None;
        }
        let object_size = image.stat().ok()?.object_size;
        let spans = size.div_ceil(object_size.max(1));
        if image
            .ioctx()
            .object_count()
            .ok()?
            .saturating_mul(LIST_WHEN_POOL_BELOW)
            >= spans
        {
            return None;
        }
        let prefix = format!("{}.", image.block_name_prefix().ok()?);
        let mut objects: Vec<u64> = image
            .ioctx()
            .objects_with_prefix(&prefix)
            .ok()?
            .iter()
            .filter_map(|n| u64::from_str_radix(&n[prefix.len()..], 16).ok())
            .collect();
        objects.sort_unstable();
        Some(ObjectMap::Listed {
            objects,
            object_size,
        })
    }
}

impl DiskSource for RbdDisk<'_> {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    /// Data where objects exist (the parent's too, for a clone); the rest was never written
    /// and reads as zeros, so it is not read.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        Ok(match &self.map {
            ObjectMap::Diff { whole_objects } => {
                let data = self.image.allocated(offset, end - offset, *whole_objects)?;
                extents_from_data(offset, end, data)
            }
            ObjectMap::Listed {
                objects,
                object_size,
            } => {
                let first = offset / object_size;
                let from = objects.partition_point(|&o| o < first);
                let data = objects[from..]
                    .iter()
                    .take_while(|&&o| o * object_size < end)
                    .map(|&o| (o * object_size, *object_size));
                extents_from_data(offset, end, data)
            }
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.image.read_at(offset, buf)
    }

    fn format_name(&self) -> &'static str {
        "rbd"
    }
}
