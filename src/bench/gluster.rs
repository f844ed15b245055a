//! `gluster://HOST[:PORT]/VOLUME/PATH`: a file on a GlusterFS volume through libgfapi, as qemu
//! opens Cinder's GlusterFS volumes: no mount, no root. One connection (`glfs_t`) per target,
//! shared by its jobs; each job keeps `iodepth` requests in flight with gfapi's async calls
//! (see [`crate::gluster::aio`] for why not a thread per request). A missing file is created
//! sparse with `--size`, as Cinder's GlusterFS driver does (`truncate -s`), and removed
//! afterwards unless `--keep`; an existing file is never truncated or removed, and written only
//! with `--allow-existing`.
use super::slots::{self, SlotQueue};
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::error::{Error, Result};
use crate::gluster::volume::CONNECT_TIMEOUT;
use crate::gluster::{AioQueue, GFile, GlusterUrl, Volume};
use std::sync::Arc;

/// A GlusterFS file target.
pub struct GlusterTarget {
    meta: TargetMeta,
    url: GlusterUrl,
    vol: Arc<Volume>,
    file: GFile,
}

impl GlusterTarget {
    /// Connects, then opens the file or creates it sparse with the policy's size; an existing
    /// one is checked against the policy before anything is written.
    pub fn open(name: &str, url: GlusterUrl, policy: &OpenPolicy) -> Result<GlusterTarget> {
        let vol = Volume::connect(&url, CONNECT_TIMEOUT)?;
        let path = url.abs_path();
        let (file, created) = match vol.open(&path, false)? {
            Some(f) => (f, false),
            None => (vol.create_new(&path, policy.create_size())?, true),
        };
        let size = file.stat()?.0;
        let meta = policy.file_meta(name, size, created)?;
        // An existing file was opened read-only; reopen it for writing only when allowed.
        let file = match (created, meta.writable) {
            (false, true) => vol
                .open(&path, true)?
                .ok_or_else(|| Error::Other(format!("{name} disappeared while opening it")))?,
            _ => file,
        };
        Ok(GlusterTarget {
            meta,
            url,
            vol,
            file,
        })
    }
}

impl Target for GlusterTarget {
    fn meta(&self) -> &TargetMeta {
        &self.meta
    }

    fn run_job(&self, spec: &JobSpec) -> Result<Recorder> {
        let len = spec.bs as usize;
        let mut q = Slots {
            q: AioQueue::new(&self.file, spec.iodepth, len),
            len,
        };
        Ok(slots::run(
            spec,
            &mut q,
            &self.meta.name,
            self.meta.writable,
        ))
    }

    fn allocated_bytes(&self) -> Result<Option<u64>> {
        Ok(Some(self.file.stat()?.1))
    }

    fn notes(&self) -> Vec<String> {
        vec!["GlusterFS through libgfapi, glfs_p{read,write}_async, one glfs_t per target".into()]
    }

    fn make_holes(&self) -> Result<()> {
        self.file.set_len(0)?;
        self.file.set_len(self.meta.size)
    }

    fn finish(self: Box<Self>, keep: bool) -> Result<()> {
        let GlusterTarget {
            meta,
            url,
            vol,
            file,
        } = *self;
        drop(file);
        if meta.created && !keep {
            vol.unlink(&url.abs_path())?;
        }
        Ok(())
    }
}

/// gfapi's queue as the job loop sees it: a completion's byte count checked against its length.
struct Slots<'f> {
    q: AioQueue<'f>,
    /// Every request's length (the job's block size).
    len: usize,
}

impl SlotQueue for Slots<'_> {
    fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        self.q.buf_mut(slot)
    }

    fn submit(&mut self, slot: usize, offset: u64, len: usize, read: bool) -> Result<()> {
        self.q.submit(slot, offset, len, read)
    }

    fn next_done(&mut self) -> Result<Option<(usize, std::result::Result<(), String>)>> {
        let Some((slot, ret)) = self.q.wait() else {
            return Ok(None);
        };
        let len = self.len;
        let outcome = if ret < 0 {
            Err("libgfapi reported a failure".into())
        } else if ret as usize != len {
            Err(format!("short: {ret} of {len} bytes"))
        } else {
            Ok(())
        };
        Ok(Some((slot, outcome)))
    }
}
