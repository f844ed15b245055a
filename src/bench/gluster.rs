//! `gluster://HOST[:PORT]/VOLUME/PATH`: a file on a GlusterFS volume through libgfapi, as qemu
//! opens Cinder's GlusterFS volumes: no mount, no root. One connection (`glfs_t`) per target,
//! shared by its jobs; each job keeps `iodepth` requests in flight with gfapi's async calls
//! (see [`crate::gluster::aio`] for why not a thread per request). A missing file is created
//! sparse with `--size`, as Cinder's GlusterFS driver does (`truncate -s`), and removed
//! afterwards unless `--keep`; an existing file is never truncated or removed, and written only
//! with `--allow-existing`.
use super::workload::random_fill;
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::error::{Error, Result};
use crate::gluster::volume::CONNECT_TIMEOUT;
use crate::gluster::{AioQueue, GFile, GlusterUrl, Volume};
use std::sync::Arc;
use std::time::Instant;

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
        let depth = spec.iodepth;
        let bs = spec.bs as usize;
        let mut q = AioQueue::new(&self.file, depth, bs);
        for slot in 0..depth {
            if let Some(b) = q.buf_mut(slot) {
                random_fill(b, spec.seed ^ (spec.job << 32) ^ slot as u64);
            }
        }
        let mut submitted = vec![Instant::now(); depth];
        let mut reads = vec![false; depth];
        let mut free: Vec<usize> = (0..depth).rev().collect();
        let mut gen = spec.op_gen();
        let mut rec = spec.recorder();
        let mut exhausted = false;
        loop {
            while let Some(&slot) = free.last().filter(|_| !exhausted) {
                let Some(op) = spec.next_op(&mut gen) else {
                    exhausted = true;
                    break;
                };
                if !op.read && !self.meta.writable {
                    rec.error(|| format!("{}: not writable in this run", self.meta.name));
                    exhausted = true;
                    break;
                }
                submitted[slot] = Instant::now();
                reads[slot] = op.read;
                match q.submit(slot, op.offset, bs, op.read) {
                    Ok(()) => {
                        free.pop();
                        rec.issued += 1;
                    }
                    Err(e) => {
                        rec.error(|| e.to_string());
                        exhausted = true;
                    }
                }
            }
            let Some((slot, ret)) = q.wait() else { break };
            free.push(slot);
            if ret < 0 {
                rec.error(|| format!("I/O on {}: libgfapi reported a failure", self.meta.name));
            } else if ret as usize != bs {
                rec.error(|| format!("short I/O on {}: {ret} of {bs} bytes", self.meta.name));
            } else {
                rec.record(submitted[slot], Instant::now(), spec.bs, reads[slot]);
            }
        }
        Ok(rec)
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
