//! Virtual disks as the reading side sees them: a size, extents in guest order and bytes at
//! guest offsets. Formats: raw files (`raw`) and qcow2 (`qcow2`).
//! Nothing here writes; nothing here trusts a size or offset read from a file.
pub mod qcow2;
pub mod raw;
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

/// Walks a disk the way the copy engine does — all extents, then the bytes of the first
/// `max_bytes` — and reports the first error. For fuzzing and checking untrusted images.
pub fn scan(disk: &dyn DiskSource, max_bytes: u64) -> Result<()> {
    disk.extents(0, disk.virtual_size())?;
    let size = disk.virtual_size().min(max_bytes);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        disk.read_at(off, &mut buf[..n])?;
        off += n as u64;
    }
    Ok(())
}
