//! Virtual disks as the reading side sees them: a size, extents in guest order and bytes at
//! guest offsets. Formats: raw files (`raw`) and qcow2 (`qcow2`); RBD images, to read back.
//! `detect` recognises every container (VMDK, VHD, VHDX, VDI, QED, LUKS, ISO too) from content.
//! Nothing here writes; nothing here trusts a size or offset read from a file.
pub mod detect;
pub mod qcow2;
pub mod raw;
#[cfg(feature = "rbd")]
pub mod rbd;
pub mod source;

pub use source::{DiskSource, Extent, ExtentKind};

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// A disk image format rbdkit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Bytes as the guest sees them.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            _ => Err(Error::InvalidInput(format!(
                "unknown source format '{s}': use qcow2 or raw"
            ))),
        }
    }
}

/// The qcow2 magic, "QFI\xfb".
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// Detects the format from the first bytes of a file.
pub fn detect(path: &Path) -> Result<Format> {
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < 4 {
        match f.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        }
    }
    Ok(if n == 4 && magic == QCOW2_MAGIC {
        Format::Qcow2
    } else {
        Format::Raw
    })
}

/// Opens a disk image, detecting its format from the magic unless `format` is given.
pub fn open(path: &Path, format: Option<Format>) -> Result<Box<dyn DiskSource>> {
    let format = match format {
        Some(f) => f,
        None => detect(path)?,
    };
    Ok(match format {
        Format::Raw => Box::new(raw::RawFile::open(path)?),
        Format::Qcow2 => Box::new(qcow2::Qcow2::open(path)?),
    })
}

/// Walks a disk the way the copy engine does and reports the first error: maps it window by
/// window, reads every data extent until `max_bytes` have been read, and reads the first
/// 4 KiB of every zero or unallocated extent (which goes through the backing chain). Only the
/// first [`SCAN_MAX_WINDOWS`] windows of [`SCAN_WINDOW`] bytes and the last one are visited, and
/// at most [`SCAN_MAX_EXTENTS`] extents, so a huge or pathologically fragmented disk ends the
/// walk early rather than running for hours. For fuzzing and replaying fuzz inputs.
pub fn scan(disk: &dyn DiskSource, max_bytes: u64) -> Result<()> {
    let size = disk.virtual_size();
    let mut buf = vec![0u8; 1 << 20];
    let (mut budget, mut extents) = (max_bytes, 0usize);
    // The first windows, then the last one (the far end of the L1 table).
    let last = size.saturating_sub(1) / SCAN_WINDOW * SCAN_WINDOW;
    let windows = (0..SCAN_MAX_WINDOWS)
        .map(|i| i * SCAN_WINDOW)
        .take_while(|&w| w < size)
        .chain((size / SCAN_WINDOW >= SCAN_MAX_WINDOWS).then_some(last));
    for window in windows {
        for e in disk.extents(window, SCAN_WINDOW)? {
            extents += 1;
            if extents > SCAN_MAX_EXTENTS {
                return Ok(());
            }
            let want = match e.kind {
                ExtentKind::Data => e.len.min(budget),
                ExtentKind::Zero | ExtentKind::Unallocated => e.len.min(4096),
            };
            let mut off = e.offset;
            while off < e.offset + want {
                let n = (e.offset + want - off).min(buf.len() as u64) as usize;
                disk.read_at(off, &mut buf[..n])?;
                off += n as u64;
            }
            if e.kind == ExtentKind::Data {
                budget -= want;
            }
        }
    }
    Ok(())
}

/// Bytes of guest disk mapped per [`scan`] step.
pub const SCAN_WINDOW: u64 = 64 << 20;
/// Windows [`scan`] visits from the start of the disk (4 GiB), before the last one.
pub const SCAN_MAX_WINDOWS: u64 = 64;
/// Most extents [`scan`] visits.
pub const SCAN_MAX_EXTENTS: usize = 1 << 16;

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
