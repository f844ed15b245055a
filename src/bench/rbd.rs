//! `rbd:POOL/IMAGE`: librbd asynchronous I/O, `iodepth` requests in flight per job. A missing
//! image is created (layering only) with `--size` and removed afterwards unless `--keep`. An
//! existing image is never removed or resized; it is written only with `--allow-existing`, and
//! otherwise opened read-only so librbd itself refuses a write.
use super::workload::random_fill;
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::ceph::{Cluster, Completions, CreateOptions, Image, ImageSpec, IoCtx};
use crate::error::Result;
use std::time::{Duration, Instant};

/// An RBD image target.
pub struct RbdTarget {
    meta: TargetMeta,
    io: IoCtx,
    image: Image,
    spec: ImageSpec,
    cache: String,
}

impl RbdTarget {
    /// Opens the image, or creates it with the policy's size; an existing one is checked
    /// against the policy before anything is written.
    pub fn open(
        name: &str,
        cluster: &Cluster,
        spec: ImageSpec,
        policy: &OpenPolicy,
    ) -> Result<RbdTarget> {
        spec.forbid_snap()?;
        let io = cluster.ioctx(&spec.pool, spec.namespace.as_deref())?;
        let created = !io.image_exists(&spec.image)?;
        let writable = if created {
            io.create_image(&spec.image, policy.create_size(), &CreateOptions::default())?;
            true
        } else {
            let probe = Image::open_read_only(&io, &spec.image, None)?;
            let size = probe.stat()?.size;
            probe.close()?;
            policy.check_existing(name, size)?
        };
        let opened = if writable {
            Image::open(&io, &spec.image, None)
        } else {
            Image::open_read_only(&io, &spec.image, None)
        };
        let image = match opened {
            Ok(i) => i,
            Err(e) => {
                if created {
                    let _ = io.remove_image(&spec.image);
                }
                return Err(e);
            }
        };
        let size = image.stat()?.size;
        let cache = cluster
            .conf_get("rbd_cache")
            .unwrap_or_else(|_| "unknown".into());
        Ok(RbdTarget {
            meta: TargetMeta {
                name: name.to_string(),
                size,
                created,
                writable,
            },
            io,
            image,
            spec,
            cache,
        })
    }
}

/// How long a job waits for any completion before counting the stall as an error and stopping.
const STALL: Duration = Duration::from_secs(60);

impl Target for RbdTarget {
    fn meta(&self) -> &TargetMeta {
        &self.meta
    }

    fn run_job(&self, spec: &JobSpec) -> Result<Recorder> {
        let depth = spec.iodepth;
        let q = Completions::new();
        let mut bufs: Vec<Option<Vec<u8>>> = (0..depth)
            .map(|i| {
                let mut b = vec![0u8; spec.bs as usize];
                random_fill(&mut b, spec.seed ^ (spec.job << 32) ^ i as u64);
                Some(b)
            })
            .collect();
        let mut submitted = vec![Instant::now(); depth];
        let mut reads = vec![false; depth];
        let mut free: Vec<usize> = (0..depth).rev().collect();
        let mut gen = spec.op_gen();
        let mut rec = spec.recorder();
        let mut in_flight = 0usize;
        let mut exhausted = false;
        loop {
            while !exhausted {
                let Some(&slot) = free.last() else { break };
                let Some(op) = spec.next_op(&mut gen) else {
                    exhausted = true;
                    break;
                };
                free.pop();
                let buf = bufs[slot]
                    .take()
                    .unwrap_or_else(|| vec![0u8; spec.bs as usize]);
                submitted[slot] = Instant::now();
                reads[slot] = op.read;
                let r = if op.read {
                    self.image.aio_read(op.offset, buf, slot as u64, &q)
                } else {
                    self.image.aio_write(op.offset, buf, slot as u64, &q)
                };
                match r {
                    Ok(()) => {
                        rec.issued += 1;
                        in_flight += 1;
                    }
                    Err(e) => {
                        rec.error(|| e.to_string());
                        bufs[slot] = Some(vec![0u8; spec.bs as usize]);
                        free.push(slot);
                        exhausted = true;
                    }
                }
            }
            if in_flight == 0 {
                break;
            }
            let Some(done) = q.recv_timeout(STALL) else {
                rec.error(|| {
                    format!(
                        "no I/O on {} completed for {} s (cluster down or full?)",
                        self.spec,
                        STALL.as_secs()
                    )
                });
                exhausted = true;
                // The image waits for these when it closes; keep reaping so buffers return.
                continue;
            };
            // Take every completion that is ready before refilling, so requests go to librbd
            // in bursts, as fio issues them, rather than one per wake-up.
            let mut next = Some(done);
            while let Some(done) = next {
                let slot = done.tag as usize;
                in_flight -= 1;
                free.push(slot);
                bufs[slot] = Some(done.buf);
                match done.result {
                    Ok(_) => rec.record(submitted[slot], done.completed_at, spec.bs, reads[slot]),
                    Err(e) => rec.error(|| e.to_string()),
                }
                next = q.try_recv();
            }
        }
        Ok(rec)
    }

    fn allocated_bytes(&self) -> Result<Option<u64>> {
        self.image.allocated_bytes().map(Some)
    }

    fn notes(&self) -> Vec<String> {
        vec![format!("librbd aio, rbd_cache = {}", self.cache)]
    }

    fn make_holes(&self) -> Result<()> {
        let size = self.meta.size;
        self.image.resize(0, &mut |_, _| {})?;
        self.image.resize(size, &mut |_, _| {})
    }

    fn finish(self: Box<Self>, keep: bool) -> Result<()> {
        // Our own open handle is a watcher: close it before removing the image.
        let RbdTarget {
            io,
            image,
            spec,
            meta,
            ..
        } = *self;
        image.close()?;
        if meta.created && !keep {
            io.remove_image(&spec.image)?;
        }
        Ok(())
    }
}
