//! Where a qcow2 image's bytes come from: a file read with positional reads (`pread`, safe from
//! many threads at once) or a buffer in memory (fuzzing, tests). The reader sees only this
//! trait, so an image can be parsed without touching the filesystem.
use crate::error::{Error, Result};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// A fixed-size run of bytes readable at any offset from many threads at once.
pub trait ByteSource: Send + Sync {
    /// Length in bytes, fixed when the source was opened.
    fn size(&self) -> u64;

    /// Fills `buf` from `offset`; a read that runs past [`ByteSource::size`] fails with
    /// `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

/// A file opened read-only; its size is taken once at open.
pub struct FileBytes {
    file: File,
    size: u64,
}

impl FileBytes {
    /// Opens `path` read-only. `what` names the file in errors ("backing file", ...).
    pub fn open(path: &Path, what: &str) -> Result<FileBytes> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("open {what} {}", path.display()), e))?;
        FileBytes::from_file(file, what, &path.display().to_string())
    }

    /// Takes a file already opened read-only (`shown` names it in errors).
    pub fn from_file(file: File, what: &str, shown: &str) -> Result<FileBytes> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {what} {shown}"), e))?;
        if meta.is_dir() {
            return Err(Error::InvalidInput(format!(
                "{what} {shown} is a directory, not a disk image"
            )));
        }
        let size = crate::disk::raw::file_size(&file, &meta)
            .map_err(|e| Error::io(format!("size of {what} {shown}"), e))?;
        Ok(FileBytes { file, size })
    }
}

impl ByteSource for FileBytes {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

impl ByteSource for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let src = usize::try_from(offset)
            .ok()
            .and_then(|start| Some(start..start.checked_add(buf.len())?))
            .and_then(|range| self.get(range));
        match src {
            Some(src) => {
                buf.copy_from_slice(src);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the in-memory image",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_are_bounds_checked() {
        let v: Vec<u8> = (0..10).collect();
        let mut b = [0u8; 4];
        v.read_exact_at(&mut b, 6).unwrap();
        assert_eq!(b, [6, 7, 8, 9]);
        assert!(v.read_exact_at(&mut b, 7).is_err());
        assert!(v.read_exact_at(&mut b, u64::MAX).is_err());
        assert_eq!(v.size(), 10);
    }
}
