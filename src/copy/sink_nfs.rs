//! A sparse raw file on an NFS share (`nfs://HOST/EXPORT/FILE`) as a copy target, through the
//! userspace client: a Cinder NFS volume written without mounting the share. Like
//! [`super::sink_file::FileSink`], the file appears under its final name only when complete
//! (written as a hidden temporary file in the same directory, then linked or renamed), and
//! zeros are never sent: they stay holes.
//!
//! Writes go out UNSTABLE on `connections` connections at once (one RPC in flight each), split
//! to the server's `wtmax`, and one COMMIT at the end makes them durable. If the server
//! restarted in between (its write verifier changed), the data may be lost: the copy fails
//! instead of publishing it.
use super::publish::{exists_error, partial_name, publish, Publish};
use super::{PoolBuf, Sink};
use crate::error::{Error, Result};
use crate::nfs::{
    connect, create_new, lookup, nfs_err, parent_dir, remove, runtime, set_size, Client, NfsUrl,
};
use nfs3_client::nfs3_types::nfs3::{
    self, diropargs3, filename3, nfs_fh3, stable_how, writeverf3, Nfs3Result,
};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Connections writing at once: each has one 1 MiB-or-so WRITE in flight.
pub const NFS_CONNECTIONS: usize = 4;

/// Writes a sparse raw image onto a share; call [`NfsSink::commit`] after a successful copy.
pub struct NfsSink {
    url: NfsUrl,
    overwrite: bool,
    rt: tokio::runtime::Runtime,
    control: Client,
    dir: nfs_fh3,
    fh: nfs_fh3,
    tmp: String,
    jobs: Option<SyncSender<(u64, PoolBuf)>>,
    writers: Vec<JoinHandle<()>>,
    state: Arc<Mutex<WriteState>>,
    committed: bool,
}

/// What the writers report.
#[derive(Default)]
struct WriteState {
    first_error: Option<String>,
    /// The server's write verifier, from the first reply.
    verifier: Option<writeverf3>,
}

impl NfsSink {
    /// Starts a new file that will become `url`'s file. Refuses an existing one unless
    /// `overwrite`; every directory on the way must exist.
    pub fn create(url: &NfsUrl, overwrite: bool) -> Result<NfsSink> {
        let rt = runtime()?;
        let tmp = partial_name(url.leaf());
        let (control, dir, fh, wtmax) = rt.block_on(async {
            let (mut c, root) = connect(url, None).await?;
            let dir = parent_dir(&mut c, root.clone(), url).await?;
            if !overwrite && lookup(&mut c, &dir, url.leaf(), url).await?.is_some() {
                return Err(exists_error(url));
            }
            let fh = create_new(&mut c, &dir, &tmp, 0, url).await?;
            let wtmax = match c.fsinfo(&nfs3::FSINFO3args { fsroot: root }).await {
                Ok(Nfs3Result::Ok(ok)) if ok.wtmax >= 4096 => ok.wtmax as usize,
                _ => 1 << 20,
            };
            Ok::<_, Error>((c, dir, fh, wtmax))
        })?;
        let state = Arc::new(Mutex::new(WriteState::default()));
        let (tx, rx) = sync_channel::<(u64, PoolBuf)>(NFS_CONNECTIONS);
        let rx = Arc::new(Mutex::new(rx));
        let mut sink = NfsSink {
            url: url.clone(),
            overwrite,
            rt,
            control,
            dir,
            fh,
            tmp,
            jobs: Some(tx),
            writers: Vec::new(),
            state,
            committed: false,
        };
        for i in 0..NFS_CONNECTIONS {
            let (rx, state, url, fh) =
                (rx.clone(), sink.state.clone(), url.clone(), sink.fh.clone());
            let w = std::thread::Builder::new()
                .name(format!("rbdkit-nfs-{i}"))
                .spawn(move || write_jobs(&rx, &state, &url, &fh, wtmax))
                .map_err(|e| Error::io("start the NFS writer threads", e))?;
            sink.writers.push(w);
        }
        Ok(sink)
    }

    /// Waits for every write; the first error, if any.
    fn drain(&mut self) -> Result<()> {
        self.jobs = None;
        for w in self.writers.drain(..) {
            let _ = w.join();
        }
        self.failure()
    }

    fn failure(&self) -> Result<()> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &st.first_error {
            Some(e) => Err(nfs_err("write", &self.url, e)),
            None => Ok(()),
        }
    }

    /// Publishes the finished file under its final name: a hard link, which fails if a file
    /// of that name appeared meanwhile, or with `overwrite` a rename over it.
    pub fn commit(mut self) -> Result<()> {
        let overwrite = self.overwrite;
        publish(&mut self, overwrite)?;
        self.committed = true;
        Ok(())
    }
}

/// `name` in `dir`, as the protocol names a directory entry.
fn entry<'a>(dir: &nfs_fh3, name: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: filename3::from(name.as_bytes()),
    }
}

impl Publish for NfsSink {
    fn shown(&self) -> String {
        self.url.to_string()
    }

    fn link_final(&mut self) -> Result<bool> {
        let (c, url) = (&mut self.control, &self.url);
        let args = nfs3::LINK3args {
            file: self.fh.clone(),
            link: entry(&self.dir, url.leaf()),
        };
        match self
            .rt
            .block_on(c.link(&args))
            .map_err(|e| nfs_err("link", url, e))?
        {
            Nfs3Result::Ok(_) => Ok(true),
            Nfs3Result::Err((nfs3::nfsstat3::NFS3ERR_EXIST, _)) => Ok(false),
            Nfs3Result::Err((s, _)) => Err(nfs_err("link", url, s)),
        }
    }

    fn rename_final(&mut self) -> Result<()> {
        let (c, url) = (&mut self.control, &self.url);
        let args = nfs3::RENAME3args {
            from: entry(&self.dir, &self.tmp),
            to: entry(&self.dir, url.leaf()),
        };
        match self
            .rt
            .block_on(c.rename(&args))
            .map_err(|e| nfs_err("rename", url, e))?
        {
            Nfs3Result::Ok(_) => Ok(()),
            Nfs3Result::Err((s, _)) => Err(nfs_err("rename", url, s)),
        }
    }

    fn remove_partial(&mut self) -> Result<()> {
        let (c, url) = (&mut self.control, &self.url);
        self.rt.block_on(remove(c, &self.dir, &self.tmp, url))
    }
}

/// One writer: its own connection, jobs from the shared queue until it closes. After an error
/// it keeps taking jobs (dropping them) so the copy never blocks on a full queue.
fn write_jobs(
    rx: &Mutex<Receiver<(u64, PoolBuf)>>,
    state: &Mutex<WriteState>,
    url: &NfsUrl,
    fh: &nfs_fh3,
    wtmax: usize,
) {
    let fail = |e: String| {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.first_error.get_or_insert(e);
    };
    let next = || rx.lock().unwrap_or_else(|e| e.into_inner()).recv().ok();
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return fail(e.to_string()),
    };
    let mut client = match rt.block_on(connect(url, None)) {
        Ok((c, _)) => Some(c),
        Err(e) => {
            fail(e.to_string());
            None
        }
    };
    while let Some((offset, data)) = next() {
        let Some(c) = client.as_mut() else { continue };
        if let Err(e) = rt.block_on(write_all(c, fh, offset, &data, wtmax, state)) {
            fail(e);
            client = None;
        }
    }
}

async fn write_all(
    c: &mut Client,
    fh: &nfs_fh3,
    offset: u64,
    data: &[u8],
    wtmax: usize,
    state: &Mutex<WriteState>,
) -> std::result::Result<(), String> {
    let mut done = 0;
    while done < data.len() {
        let n = (data.len() - done).min(wtmax);
        let args = nfs3::WRITE3args {
            file: fh.clone(),
            offset: offset + done as u64,
            count: n as u32,
            stable: stable_how::UNSTABLE,
            data: Opaque::borrowed(&data[done..done + n]),
        };
        match c.write(&args).await.map_err(|e| e.to_string())? {
            Nfs3Result::Ok(ok) if ok.count > 0 => {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                if *st.verifier.get_or_insert(ok.verf) != ok.verf {
                    return Err("the server restarted during the copy (its write verifier changed); run the copy again".into());
                }
                done += ok.count as usize;
            }
            Nfs3Result::Ok(_) => {
                return Err(format!(
                    "the server wrote nothing at offset {}",
                    offset + done as u64
                ))
            }
            Nfs3Result::Err((s, _)) => {
                return Err(format!("at offset {}: {s}", offset + done as u64))
            }
        }
    }
    Ok(())
}

impl Sink for NfsSink {
    fn ensure_size(&mut self, _size: u64) -> Result<()> {
        Ok(())
    }

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.failure()?;
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| Error::Other("NFS sink already finished".into()))?;
        jobs.send((offset, data))
            .map_err(|_| nfs_err("write", &self.url, "the writer threads stopped"))
    }

    /// Waits for every write, sets the size (the tail past the last data is a hole) and commits
    /// the writes to stable storage.
    fn finish(&mut self, size: u64) -> Result<()> {
        self.drain()?;
        let (url, fh) = (self.url.clone(), self.fh.clone());
        let verifier = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verifier;
        let c = &mut self.control;
        self.rt.block_on(async {
            set_size(c, &fh, size, &url).await?;
            let commit = c
                .commit(&nfs3::COMMIT3args {
                    file: fh,
                    offset: 0,
                    count: 0,
                })
                .await
                .map_err(|e| nfs_err("commit", &url, e))?;
            match commit {
                Nfs3Result::Ok(ok) if verifier.is_none_or(|v| v == ok.verf) => Ok(()),
                Nfs3Result::Ok(_) => Err(nfs_err(
                    "commit",
                    &url,
                    "the server restarted during the copy (its write verifier changed); run the copy again",
                )),
                Nfs3Result::Err((s, _)) => Err(nfs_err("commit", &url, s)),
            }
        })
    }
}

impl Drop for NfsSink {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let _ = self.drain();
        let (url, dir, tmp) = (self.url.clone(), self.dir.clone(), self.tmp.clone());
        let c = &mut self.control;
        let _ = self.rt.block_on(remove(c, &dir, &tmp, &url));
    }
}
