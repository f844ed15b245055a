//! A sparse raw file on a GlusterFS volume (`gluster://HOST/VOLUME/PATH`) as a copy target,
//! through libgfapi: a Cinder GlusterFS volume made from an image without mounting the volume.
//! Published as every named target is ([`super::publish`]): written under a hidden temporary
//! name in the same directory, fsync'd, then hard-linked (or with `--overwrite` renamed) to
//! its name; removed on failure. Zeros are never written: they stay holes on the brick.
//!
//! Writes go out with `glfs_pwrite_async`, [`GLUSTER_DEPTH`] at once and at most
//! [`MAX_BYTES_IN_FLIGHT`] bytes, each piece's buffer lent to libgfapi until its callback (no
//! copy), as the RBD sink lends its buffers to librbd.
use super::publish::{exists_error, partial_name, publish, Publish};
use super::{PoolBuf, Sink, MEMORY_BUDGET};
use crate::error::{Error, Result};
use crate::gluster::volume::CONNECT_TIMEOUT;
use crate::gluster::{GFile, GlusterUrl, LentWrites, Volume};
use std::collections::HashMap;
use std::sync::Arc;

/// Writes in flight at most: enough to keep the brick's disk and the client's event thread
/// busy (the bench target's qd16 reaches the brick's IOPS on this kind of machine).
pub const GLUSTER_DEPTH: usize = 16;

/// Bytes of writes in flight at most: half the copy's memory budget, which the writes share
/// with the reads, as for the RBD sink.
pub const MAX_BYTES_IN_FLIGHT: usize = (MEMORY_BUDGET / 2) as usize;

/// Writes a sparse raw image onto a volume; call [`GlusterSink::commit`] after a successful
/// copy.
pub struct GlusterSink {
    url: GlusterUrl,
    overwrite: bool,
    vol: Arc<Volume>,
    file: Arc<GFile>,
    /// The temporary file's path, absolute in the volume.
    tmp: String,
    writes: LentWrites,
    /// The buffers of the writes in flight, by tag, until their completion hands them back.
    lent: HashMap<u64, PoolBuf>,
    bytes_in_flight: usize,
    next_tag: u64,
    committed: bool,
}

impl GlusterSink {
    /// Starts a new file that will become `url`'s file. Refuses an existing one unless
    /// `overwrite`; every directory on the way must exist.
    pub fn create(url: &GlusterUrl, overwrite: bool) -> Result<GlusterSink> {
        let vol = Volume::connect(url, CONNECT_TIMEOUT)?;
        if !overwrite && vol.exists(&url.abs_path())? {
            return Err(exists_error(url));
        }
        let (dir, leaf) = match url.path.rsplit_once('/') {
            Some((d, l)) => (format!("/{d}/"), l),
            None => ("/".to_string(), url.path.as_str()),
        };
        let tmp = format!("{dir}{}", partial_name(leaf));
        let file = match vol.create_new(&tmp, 0) {
            Ok(f) => Arc::new(f),
            // Named after the file asked for, not the temporary one nobody asked for.
            Err(Error::WithErrno {
                errno: libc::ENOENT,
                ..
            }) => {
                return Err(Error::Other(format!(
                    "create {url}: no directory '{dir}' on the volume; create it first (every directory on the way must exist)"
                )))
            }
            Err(e) => return Err(e),
        };
        Ok(GlusterSink {
            url: url.clone(),
            overwrite,
            writes: LentWrites::new(file.clone()),
            vol,
            file,
            tmp,
            lent: HashMap::new(),
            bytes_in_flight: 0,
            next_tag: 0,
            committed: false,
        })
    }

    /// Publishes the finished file under its final name: a hard link, which fails if a file
    /// of that name appeared meanwhile, or with `overwrite` a rename over it.
    pub fn commit(mut self) -> Result<()> {
        let overwrite = self.overwrite;
        publish(&mut self, overwrite)?;
        self.committed = true;
        Ok(())
    }

    /// Takes back what a finished write holds; its result.
    fn retire(&mut self, f: crate::gluster::Finished) -> Result<()> {
        if let Some(mut buf) = self.lent.remove(&f.tag) {
            self.bytes_in_flight -= buf.capacity().min(self.bytes_in_flight);
            buf.restore(f.buf);
        }
        f.result
    }

    /// Waits for every write in flight; the first error.
    fn drain(&mut self) -> Result<()> {
        let mut first = None;
        while let Some(f) = self.writes.wait() {
            if let Err(e) = self.retire(f) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Publish for GlusterSink {
    fn shown(&self) -> String {
        self.url.to_string()
    }

    fn link_final(&mut self) -> Result<bool> {
        self.vol.link(&self.tmp, &self.url.abs_path())
    }

    fn rename_final(&mut self) -> Result<()> {
        self.vol.rename(&self.tmp, &self.url.abs_path())
    }

    fn remove_partial(&mut self) -> Result<()> {
        self.vol.unlink(&self.tmp)
    }
}

impl Sink for GlusterSink {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        // The length is set once, in `finish`; holes need nothing before.
        Ok(())
    }

    fn reap_finished(&mut self) -> Result<bool> {
        while let Some(f) = self.writes.try_wait() {
            self.retire(f)?;
        }
        Ok(self.writes.in_flight() > 0)
    }

    fn write(&mut self, offset: u64, mut data: PoolBuf) -> Result<()> {
        // Finished writes give their buffers back now: the readers share that memory.
        self.reap_finished()?;
        // What a write holds is its buffer's capacity.
        let len = data.capacity();
        while self.writes.in_flight() >= GLUSTER_DEPTH
            || (self.writes.in_flight() > 0 && self.bytes_in_flight + len > MAX_BYTES_IN_FLIGHT)
        {
            match self.writes.wait() {
                Some(f) => self.retire(f)?,
                None => break,
            }
        }
        self.next_tag += 1;
        self.writes.submit(self.next_tag, offset, data.take_vec())?;
        self.lent.insert(self.next_tag, data);
        self.bytes_in_flight += len;
        Ok(())
    }

    /// Waits for every write, sets the size (the tail past the last data is a hole) and
    /// flushes the file to the brick's disk before it may be published.
    fn finish(&mut self, size: u64) -> Result<()> {
        self.drain()?;
        self.file.set_len(size)?;
        self.file.sync()
    }
}

impl Drop for GlusterSink {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // The copy already failed with its own error, which is what the user needs to see.
        let _ = self.drain();
        let _ = self.vol.unlink(&self.tmp);
    }
}
