//! `nfs://HOST[:PORT]/EXPORT/FILE`: a file on an NFSv3 share through a userspace client, so a
//! share can be measured with no mount and no root. One RPC is in flight per connection, so a
//! job opens `iodepth` connections. A missing file is created sparse with `--size`, as Cinder's
//! NFS driver does, and removed afterwards unless `--keep`; an existing file is never truncated
//! or removed, and written only with `--allow-existing`. Writes are UNSTABLE, as the Linux
//! client's O_DIRECT writes are.
use super::workload::random_fill;
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::error::{Error, Result};
pub use crate::nfs::NfsUrl;
use crate::nfs::{connect, create_new, getattr, lookup, parent_dir, remove, runtime, set_size};
use nfs3_client::nfs3_types::nfs3::{self, nfs_fh3, stable_how, Nfs3Result};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// An NFS file target.
pub struct NfsTarget {
    meta: TargetMeta,
    url: NfsUrl,
    mount_port: Option<u16>,
    dir: nfs_fh3,
    fh: nfs_fh3,
}

impl NfsTarget {
    /// Looks up the file, or creates it sparse with the policy's size; an existing one is
    /// checked against the policy before anything is written.
    pub fn open(
        name: &str,
        url: NfsUrl,
        mount_port: Option<u16>,
        policy: &OpenPolicy,
    ) -> Result<NfsTarget> {
        let size = policy.create_size();
        runtime()?.block_on(async {
            let (mut c, root) = connect(&url, mount_port).await?;
            let dir = parent_dir(&mut c, root, &url).await?;
            let (fh, created) = match lookup(&mut c, &dir, url.leaf(), &url).await? {
                Some(fh) => (fh, false),
                None => (
                    create_new(&mut c, &dir, url.leaf(), size, &url).await?,
                    true,
                ),
            };
            let size = getattr(&mut c, &fh, &url).await?.0;
            Ok(NfsTarget {
                meta: policy.file_meta(name, size, created)?,
                url,
                mount_port,
                dir,
                fh,
            })
        })
    }
}

struct Shared {
    gen: super::OpGen,
    rec: Recorder,
}

impl Target for NfsTarget {
    fn meta(&self) -> &TargetMeta {
        &self.meta
    }

    fn run_job(&self, spec: &JobSpec) -> Result<Recorder> {
        let rt = runtime()?;
        let local = tokio::task::LocalSet::new();
        let shared = Rc::new(RefCell::new(Shared {
            gen: spec.op_gen(),
            rec: spec.recorder(),
        }));
        local.block_on(&rt, async {
            let mut clients = Vec::new();
            for _ in 0..spec.iodepth {
                clients.push(connect(&self.url, self.mount_port).await?.0);
            }
            let mut tasks = Vec::new();
            for (i, mut c) in clients.into_iter().enumerate() {
                let shared = shared.clone();
                let fh = self.fh.clone();
                let ctl = spec.ctl.clone();
                let bs = spec.bs;
                let mut data = vec![0u8; bs as usize];
                random_fill(&mut data, spec.seed ^ (spec.job << 32) ^ i as u64);
                tasks.push(tokio::task::spawn_local(async move {
                    loop {
                        let op = {
                            let mut s = shared.borrow_mut();
                            if !ctl.take(bs) {
                                break;
                            }
                            match s.gen.next_op() {
                                Some(op) => {
                                    s.rec.issued += 1;
                                    op
                                }
                                None => break,
                            }
                        };
                        let t0 = Instant::now();
                        let outcome: std::result::Result<u64, String> = if op.read {
                            match c
                                .read(&nfs3::READ3args {
                                    file: fh.clone(),
                                    offset: op.offset,
                                    count: bs as u32,
                                })
                                .await
                            {
                                Ok(Nfs3Result::Ok(ok)) => Ok(ok.data.len() as u64),
                                Ok(Nfs3Result::Err((s, _))) => Err(s.to_string()),
                                Err(e) => Err(e.to_string()),
                            }
                        } else {
                            let args = nfs3::WRITE3args {
                                file: fh.clone(),
                                offset: op.offset,
                                count: bs as u32,
                                stable: stable_how::UNSTABLE,
                                data: Opaque::borrowed(&data),
                            };
                            match c.write(&args).await {
                                Ok(Nfs3Result::Ok(ok)) => Ok(ok.count as u64),
                                Ok(Nfs3Result::Err((s, _))) => Err(s.to_string()),
                                Err(e) => Err(e.to_string()),
                            }
                        };
                        let t1 = Instant::now();
                        let mut s = shared.borrow_mut();
                        match outcome {
                            Ok(n) if n == bs => s.rec.record(t0, t1, bs, op.read),
                            Ok(n) => s.rec.error(|| format!("short NFS I/O: {n} of {bs} bytes")),
                            Err(e) => {
                                s.rec
                                    .error(|| format!("NFS I/O at offset {}: {e}", op.offset));
                                // A broken connection stays broken: stop this slot.
                                break;
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            Ok::<(), Error>(())
        })?;
        let s = Rc::try_unwrap(shared)
            .map_err(|_| Error::Other("NFS job still running".into()))?
            .into_inner();
        Ok(s.rec)
    }

    fn allocated_bytes(&self) -> Result<Option<u64>> {
        runtime()?.block_on(async {
            let (mut c, _) = connect(&self.url, self.mount_port).await?;
            Ok(Some(getattr(&mut c, &self.fh, &self.url).await?.1))
        })
    }

    fn notes(&self) -> Vec<String> {
        vec!["userspace NFSv3, one connection per I/O in flight, UNSTABLE writes".into()]
    }

    fn make_holes(&self) -> Result<()> {
        runtime()?.block_on(async {
            let (mut c, _) = connect(&self.url, self.mount_port).await?;
            set_size(&mut c, &self.fh, 0, &self.url).await?;
            set_size(&mut c, &self.fh, self.meta.size, &self.url).await
        })
    }

    fn finish(self: Box<Self>, keep: bool) -> Result<()> {
        if !self.meta.created || keep {
            return Ok(());
        }
        runtime()?.block_on(async {
            let (mut c, _) = connect(&self.url, self.mount_port).await?;
            remove(&mut c, &self.dir, self.url.leaf(), &self.url).await
        })
    }
}
