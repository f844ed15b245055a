//! An RBD image (or snapshot) as a [`DiskSource`], so the copy engine can read one back:
//! `--verify` after an import, and `rbdkit checksum POOL/IMAGE`.
use super::{DiskSource, Extent, ExtentKind};
use crate::ceph::Image;
use crate::error::Result;

/// The first `size` bytes of an open image.
pub struct RbdDisk<'a> {
    image: &'a Image,
    size: u64,
}

impl<'a> RbdDisk<'a> {
    /// Reads `image` up to `size` bytes (its size, or less).
    pub fn new(image: &'a Image, size: u64) -> Self {
        RbdDisk { image, size }
    }
}

impl DiskSource for RbdDisk<'_> {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    /// Everything is data: a layering-only image has no object map to ask cheaply which
    /// objects exist. Never-written objects read back as zeros and the zero scan skips them.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let len = len.min(self.size.saturating_sub(offset));
        Ok(if len == 0 {
            Vec::new()
        } else {
            vec![Extent {
                offset,
                len,
                kind: ExtentKind::Data,
            }]
        })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.image.read_at(offset, buf)
    }

    fn format_name(&self) -> &'static str {
        "rbd"
    }
}
