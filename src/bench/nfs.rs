//! `nfs://HOST[:PORT]/EXPORT/FILE`: a file on an NFSv3 share through a userspace client, so a
//! share can be measured with no mount and no root. One RPC is in flight per connection, so a
//! job opens `iodepth` connections. A missing file is created sparse with `--size`, as Cinder's
//! NFS driver does, and removed afterwards unless `--keep`; an existing file is never truncated
//! or removed, and written only with `--allow-existing`. Writes are UNSTABLE, as the Linux
//! client's O_DIRECT writes are.
use super::workload::random_fill;
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::error::{Error, Result};
use nfs3_client::nfs3_types::nfs3::{
    self, createhow3, diropargs3, filename3, nfs_fh3, nfsstat3, sattr3, stable_how, Nfs3Option,
    Nfs3Result,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Client, Nfs3ConnectionBuilder};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// Where an `nfs://` URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsUrl {
    /// Server address.
    pub host: String,
    /// NFS port, if given in the URL.
    pub port: Option<u16>,
    /// Export path, e.g. `/export`.
    pub export: String,
    /// File name inside the export (may contain `/`).
    pub file: String,
}

impl NfsUrl {
    /// Parses `nfs://HOST[:PORT]/EXPORT/FILE`; the last path component is the file.
    pub fn parse(url: &str) -> Result<NfsUrl> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "invalid NFS target '{url}': {why}; use nfs://HOST[:PORT]/EXPORT/FILE"
            ))
        };
        let rest = url
            .strip_prefix("nfs://")
            .ok_or_else(|| bad("no nfs:// prefix"))?;
        let (hostport, path) = rest.split_once('/').ok_or_else(|| bad("no export path"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)),
            None => (hostport, None),
        };
        let (export, file) = path
            .rsplit_once('/')
            .ok_or_else(|| bad("no file name after the export"))?;
        if host.is_empty() || export.is_empty() || file.is_empty() {
            return Err(bad("empty host, export or file name"));
        }
        Ok(NfsUrl {
            host: host.into(),
            port,
            export: format!("/{export}"),
            file: file.into(),
        })
    }
}

/// An NFS file target.
pub struct NfsTarget {
    meta: TargetMeta,
    url: NfsUrl,
    mount_port: Option<u16>,
    dir: nfs_fh3,
    fh: nfs_fh3,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the NFS client runtime", e))
}

fn nfs_err(what: &str, url: &NfsUrl, e: impl std::fmt::Display) -> Error {
    Error::Other(format!(
        "{what} nfs://{}{}/{}: {e}",
        url.host, url.export, url.file
    ))
}

type Client = Nfs3Client<TokioIo<tokio::net::TcpStream>>;

async fn connect(url: &NfsUrl, mount_port: Option<u16>) -> Result<(Client, nfs_fh3)> {
    let cred = opaque_auth::auth_unix(&auth_unix {
        machinename: Opaque::borrowed(b"rbdkit"),
        ..auth_unix::default()
    });
    let mut b = Nfs3ConnectionBuilder::new(TokioConnector, &url.host, &url.export)
        .connect_from_privileged_port(false)
        .credential(cred);
    if let Some(p) = url.port {
        b = b.nfs3_port(p);
    }
    if let Some(p) = mount_port {
        b = b.mount_port(p);
    }
    let conn = tokio::time::timeout(std::time::Duration::from_secs(15), b.mount())
        .await
        .map_err(|_| {
            nfs_err(
                "mount (timed out after 15 s)",
                url,
                "no answer; check the address, ports and that the server runs",
            )
        })?
        .map_err(|e| nfs_err("mount", url, e))?;
    let root = conn.root_nfs_fh3();
    Ok((conn.into_nfs3_client(), root))
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
            // Walk to the file's directory.
            let mut dir = root;
            let parts: Vec<&str> = url.file.split('/').collect();
            let (dirs, leaf) = parts.split_at(parts.len() - 1);
            for d in dirs {
                let r = c
                    .lookup(&nfs3::LOOKUP3args {
                        what: diropargs3 {
                            dir: dir.clone(),
                            name: filename3::from(d.as_bytes()),
                        },
                    })
                    .await
                    .map_err(|e| nfs_err("look up", &url, e))?;
                dir = match r {
                    Nfs3Result::Ok(ok) => ok.object,
                    Nfs3Result::Err((s, _)) => return Err(nfs_err("look up", &url, s)),
                };
            }
            let leaf = leaf[0].as_bytes().to_vec();
            let found = c
                .lookup(&nfs3::LOOKUP3args {
                    what: diropargs3 {
                        dir: dir.clone(),
                        name: filename3::from(leaf.as_slice()),
                    },
                })
                .await
                .map_err(|e| nfs_err("look up", &url, e))?;
            let (fh, created) = match found {
                Nfs3Result::Ok(ok) => (ok.object, false),
                Nfs3Result::Err((nfsstat3::NFS3ERR_NOENT, _)) => {
                    let attrs = sattr3 {
                        size: Nfs3Option::Some(size),
                        mode: Nfs3Option::Some(0o644),
                        ..sattr3::default()
                    };
                    let r = c
                        .create(&nfs3::CREATE3args {
                            where_: diropargs3 {
                                dir: dir.clone(),
                                name: filename3::from(leaf.as_slice()),
                            },
                            // GUARDED: a file that appeared since the lookup makes this
                            // fail (EXIST) instead of being truncated to `size`, as
                            // UNCHECKED would.
                            how: createhow3::GUARDED(attrs),
                        })
                        .await
                        .map_err(|e| nfs_err("create", &url, e))?;
                    match r {
                        Nfs3Result::Ok(ok) => match ok.obj {
                            Nfs3Option::Some(fh) => (fh, true),
                            Nfs3Option::None => {
                                return Err(nfs_err(
                                    "create",
                                    &url,
                                    "the server returned no file handle",
                                ))
                            }
                        },
                        Nfs3Result::Err((s, _)) => return Err(nfs_err("create", &url, s)),
                    }
                }
                Nfs3Result::Err((s, _)) => return Err(nfs_err("look up", &url, s)),
            };
            let size = getattr(&mut c, &fh, &url).await?.0;
            let writable = created || policy.check_existing(name, size)?;
            if size == 0 {
                return Err(Error::Other(format!(
                    "{name} is empty: nothing to benchmark; name a new file (bench creates it with --size)"
                )));
            }
            Ok(NfsTarget {
                meta: TargetMeta {
                    name: name.into(),
                    size,
                    created,
                    writable,
                },
                url,
                mount_port,
                dir,
                fh,
            })
        })
    }
}

/// (size, used) of a file.
async fn getattr(c: &mut Client, fh: &nfs_fh3, url: &NfsUrl) -> Result<(u64, u64)> {
    match c
        .getattr(&nfs3::GETATTR3args { object: fh.clone() })
        .await
        .map_err(|e| nfs_err("getattr", url, e))?
    {
        Nfs3Result::Ok(ok) => Ok((ok.obj_attributes.size, ok.obj_attributes.used)),
        Nfs3Result::Err((s, _)) => Err(nfs_err("getattr", url, s)),
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

    fn finish(self: Box<Self>, keep: bool) -> Result<()> {
        if !self.meta.created || keep {
            return Ok(());
        }
        runtime()?.block_on(async {
            let (mut c, _) = connect(&self.url, self.mount_port).await?;
            let name = self
                .url
                .file
                .rsplit('/')
                .next()
                .unwrap_or(&self.url.file)
                .as_bytes()
                .to_vec();
            match c
                .remove(&nfs3::REMOVE3args {
                    object: diropargs3 {
                        dir: self.dir.clone(),
                        name: filename3::from(name.as_slice()),
                    },
                })
                .await
                .map_err(|e| nfs_err("remove", &self.url, e))?
            {
                Nfs3Result::Ok(_) => Ok(()),
                Nfs3Result::Err((s, _)) => Err(nfs_err("remove", &self.url, s)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = NfsUrl::parse("nfs://127.0.0.1:2049/export/dir/vol-1").unwrap();
        assert_eq!(
            u,
            NfsUrl {
                host: "127.0.0.1".into(),
                port: Some(2049),
                export: "/export/dir".into(),
                file: "vol-1".into()
            }
        );
        assert_eq!(NfsUrl::parse("nfs://h/e/f").unwrap().port, None);
        for bad in [
            "http://x/e/f",
            "nfs://h",
            "nfs://h/f",
            "nfs://h:x/e/f",
            "nfs:///e/f",
        ] {
            assert!(NfsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
