//! The `DiskSource` trait: what the copy engine needs from any virtual disk format.
use crate::error::{Error, Result};
use serde::Serialize;

/// How a guest range reads, as qemu's block status reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExtentKind {
    /// Holds data somewhere in the chain (may still turn out to be all zero bytes).
    Data,
    /// Known to read as zeros (qcow2 zero flag), no data stored.
    Zero,
    /// Allocated nowhere in the chain: reads as zeros.
    Unallocated,
    /// Only in a diff ([`super::changed::ChangedDisk`]): the same as in the base the target
    /// already holds, so neither read nor written.
    Unchanged,
}

/// A run of guest bytes of one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Extent {
    /// Guest offset in bytes.
    pub offset: u64,
    /// Length in bytes (> 0).
    pub len: u64,
    /// How it reads.
    pub kind: ExtentKind,
}

impl Extent {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// Appends `len` bytes of `kind` at `offset` to `out`, into its last extent when that one has
/// the same kind and ends there: readers report runs, not one extent per cluster or block.
pub fn push_extent(out: &mut Vec<Extent>, offset: u64, len: u64, kind: ExtentKind) {
    match out.last_mut() {
        Some(last) if last.kind == kind && last.end() == offset => last.len += len,
        _ => out.push(Extent { offset, len, kind }),
    }
}

/// Refuses a read of `len` bytes at `offset` that does not lie inside a virtual disk of `size`
/// bytes, naming the image `shown`.
pub fn check_read_range(shown: &str, offset: u64, len: usize, size: u64) -> Result<()> {
    if offset.checked_add(len as u64).is_none_or(|e| e > size) {
        return Err(Error::bad_image(
            shown,
            format!("read of {len} bytes at offset {offset} is past the virtual size {size}"),
        ));
    }
    Ok(())
}

/// The extents of `[offset, end)` for a disk whose data lies in `data` (`(start, len)`, in
/// offset order, not overlapping): `Data` there (clipped to the range), `Unallocated` between.
pub fn extents_from_data(
    offset: u64,
    end: u64,
    data: impl IntoIterator<Item = (u64, u64)>,
) -> Vec<Extent> {
    let mut out = Vec::new();
    let mut pos = offset;
    let mut push = |offset: u64, end: u64, kind: ExtentKind| {
        if end > offset {
            out.push(Extent {
                offset,
                len: end - offset,
                kind,
            });
        }
    };
    for (s, n) in data {
        let (s, e) = (s.max(pos), (s + n).min(end));
        if s >= e {
            continue;
        }
        push(pos, s, ExtentKind::Unallocated);
        push(s, e, ExtentKind::Data);
        pos = e;
    }
    push(pos, end, ExtentKind::Unallocated);
    out
}

/// The extents of `[offset, end)` of a file whose holes `seek(pos, SEEK_DATA | SEEK_HOLE)`
/// finds (the offset, or the errno): `Data` and `Unallocated` runs. `ENXIO` means no data
/// after `pos`; any other error means the filesystem cannot tell, so the rest is data (the
/// zero scan still keeps its zeros out of the target).
pub(crate) fn extents_by_seek(
    offset: u64,
    end: u64,
    seek: impl Fn(u64, i32) -> std::result::Result<u64, i32>,
) -> Vec<Extent> {
    let mut out: Vec<Extent> = Vec::new();
    let mut pos = offset;
    while pos < end {
        // Where the data starts at or after pos, and where that data run ends.
        let (kind, next) = match seek(pos, libc::SEEK_DATA) {
            Ok(d) if d > pos => (ExtentKind::Unallocated, d.min(end)),
            Ok(_) => (
                ExtentKind::Data,
                seek(pos, libc::SEEK_HOLE).unwrap_or(end).min(end),
            ),
            Err(libc::ENXIO) => (ExtentKind::Unallocated, end),
            Err(_) => (ExtentKind::Data, end),
        };
        let next = next.max(pos + 1).min(end);
        push_extent(&mut out, pos, next - pos, kind);
        pos = next;
    }
    out
}

/// A virtual disk readable at guest offsets, safely from many threads at once
/// (the copy engine decodes clusters in parallel).
pub trait DiskSource: Send + Sync {
    /// Virtual (guest-visible) size in bytes.
    fn virtual_size(&self) -> u64;

    /// Extents covering `[offset, offset + len)` (clamped to the virtual size), in guest order,
    /// adjacent extents of the same kind merged. Backing files are resolved: a range is
    /// `Unallocated` only if no layer of the chain holds it.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>>;

    /// Fills `buf` with the guest bytes at `offset` (zero and unallocated ranges read as zeros,
    /// reads past the virtual size are an error).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Short format name for reports: `raw`, `qcow2`.
    fn format_name(&self) -> &'static str;
}
