//! A sparse raw file as a copy target: zeros become holes, the file appears under its final
//! name only when complete (written under a temporary name in the same directory, then renamed).
use super::{BufferPool, Sink};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Writes a sparse raw image; call [`FileSink::commit`] after a successful copy.
pub struct FileSink {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl FileSink {
    /// Starts a new file that will become `dest`. Refuses an existing `dest` unless `overwrite`.
    pub fn create(dest: &Path, overwrite: bool) -> Result<FileSink> {
        if dest.exists() && !overwrite {
            return Err(Error::InvalidInput(format!(
                "{} already exists: choose another name or pass --overwrite",
                dest.display()
            )));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{} is not a file name", dest.display())))?;
        let tmp = dest.with_file_name(format!(
            ".{}.rbdkit-partial.{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
        Ok(FileSink {
            file,
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// Publishes the finished file under its final name.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| {
            Error::io(
                format!("rename {} to {}", self.tmp.display(), self.dest.display()),
                e,
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Sink for FileSink {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        // The final length is set once, in `finish`; holes need no pre-allocation.
        Ok(())
    }

    fn write(&mut self, offset: u64, data: Vec<u8>, pool: &BufferPool) -> Result<()> {
        self.file.write_all_at(&data, offset).map_err(|e| {
            Error::io(
                format!("write {} at offset {offset}", self.tmp.display()),
                e,
            )
        })?;
        pool.put(data);
        Ok(())
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        let what = self.tmp.display().to_string();
        self.file
            .set_len(size)
            .map_err(|e| Error::io(format!("set length of {what}"), e))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io(format!("sync {what}"), e))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
