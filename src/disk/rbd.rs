//! An RBD image (or snapshot) as a [`DiskSource`], so the copy engine reads one like any disk:
//! `export`, `copy`, `--verify` after an import, and `rbdkit checksum POOL/IMAGE`.
use super::{extents_from_data, DiskSource, Extent};
use crate::ceph::Image;
use crate::error::Result;

/// The first `size` bytes of an open image.
pub struct RbdDisk<'a> {
    image: &'a Image,
    size: u64,
    /// Ask librbd for whole objects (fast-diff's object map answers without a read).
    whole_objects: bool,
}

/// librbd's `RBD_FEATURE_FAST_DIFF`.
const FAST_DIFF: u64 = 1 << 4;
/// librbd's `RBD_FLAG_FAST_DIFF_INVALID`.
const FAST_DIFF_INVALID: u64 = 1 << 1;

impl<'a> RbdDisk<'a> {
    /// Reads `image` up to `size` bytes (its size, or less).
    pub fn new(image: &'a Image, size: u64) -> Self {
        let fast_diff = image.features().is_ok_and(|f| f & FAST_DIFF != 0)
            && image.flags().is_ok_and(|f| f & FAST_DIFF_INVALID == 0);
        RbdDisk {
            image,
            size,
            whole_objects: fast_diff,
        }
    }
}

impl DiskSource for RbdDisk<'_> {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    /// Data where librbd says objects exist (the parent's too, for a clone); the rest was
    /// never written and reads as zeros, so it is not read.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let data = self
            .image
            .allocated(offset, end - offset, self.whole_objects)?;
        Ok(extents_from_data(offset, end, data))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.image.read_at(offset, buf)
    }

    fn format_name(&self) -> &'static str {
        "rbd"
    }
}
