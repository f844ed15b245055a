//! Raw disk images: the file's bytes are the guest's bytes. Holes (SEEK_HOLE) are reported as
//! unallocated so sparse raw files copy without reading their holes.
use super::{DiskSource, Extent};
use crate::disk::source::extents_by_seek;
use crate::error::{Error, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A raw image file.
pub struct RawFile {
    file: File,
    size: u64,
    path: PathBuf,
}

impl RawFile {
    /// Opens a raw image read-only.
    pub fn open(path: &Path) -> Result<RawFile> {
        let file =
            File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        RawFile::from_file(file, path)
    }

    /// Takes a file already opened read-only; `path` names it in errors.
    pub fn from_file(file: File, path: &Path) -> Result<RawFile> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        if meta.is_dir() {
            return Err(Error::InvalidInput(format!(
                "{} is a directory, not a disk image",
                path.display()
            )));
        }
        let size = file_size(&file, &meta)
            .map_err(|e| Error::io(format!("size of {}", path.display()), e))?;
        Ok(RawFile {
            file,
            size,
            path: path.to_path_buf(),
        })
    }

    /// This file with only its first `len` bytes as the disk (a fixed VHD: its footer follows).
    pub fn truncated(mut self, len: u64) -> RawFile {
        self.size = self.size.min(len);
        self
    }

    /// `lseek(fd, from, whence)`, `None` when the filesystem cannot tell (or past the end).
    fn seek(&self, from: u64, whence: i32) -> Option<u64> {
        let from = i64::try_from(from).ok()?;
        // SAFETY: lseek on a descriptor we own; it only moves the file position, which our
        // positional reads (pread) do not use.
        let r = unsafe { libc::lseek(self.file.as_raw_fd(), from, whence) };
        (r >= 0).then_some(r as u64)
    }
}

/// The size of an open file: its length, or for a block device (whose length reads as 0) the
/// device size.
pub(crate) fn file_size(file: &File, meta: &std::fs::Metadata) -> std::io::Result<u64> {
    use std::io::Seek;
    use std::os::unix::fs::FileTypeExt;
    if meta.file_type().is_block_device() {
        let mut f = file;
        f.seek(std::io::SeekFrom::End(0))
    } else {
        Ok(meta.len())
    }
}

impl DiskSource for RawFile {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.size);
        Ok(extents_by_seek(offset, end, |pos, whence| {
            self.seek(pos, whence).ok_or_else(|| {
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EINVAL)
            })
        }))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(Error::bad_image(
                self.path.display().to_string(),
                format!(
                    "read of {} bytes at {offset} is past the end ({} bytes)",
                    buf.len(),
                    self.size
                ),
            ));
        }
        self.file.read_exact_at(buf, offset).map_err(|e| {
            Error::io(
                format!("read {} at offset {offset}", self.path.display()),
                e,
            )
        })
    }

    fn format_name(&self) -> &'static str {
        "raw"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::ExtentKind;
    use std::io::Write;

    #[test]
    fn reports_holes_as_unallocated_and_reads_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.raw");
        let mut f = File::create(&path).unwrap();
        f.set_len(8 << 20).unwrap();
        f.write_all_at(&[7u8; 4096], 4 << 20).unwrap();
        f.flush().unwrap();
        let raw = RawFile::open(&path).unwrap();
        assert_eq!(raw.virtual_size(), 8 << 20);
        let ext = raw.extents(0, 8 << 20).unwrap();
        assert_eq!(ext.iter().map(|e| e.len).sum::<u64>(), 8 << 20);
        let data: u64 = ext
            .iter()
            .filter(|e| e.kind == ExtentKind::Data)
            .map(|e| e.len)
            .sum();
        assert!((4096..8 << 20).contains(&data), "{ext:?}");
        let mut buf = vec![0u8; 8192];
        raw.read_at((4 << 20) - 4096, &mut buf).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0) && buf[4096..].iter().all(|&b| b == 7));
        assert!(raw.read_at((8 << 20) - 10, &mut buf).is_err());
    }
}
