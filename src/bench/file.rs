//! `file:PATH`: a file on any mounted filesystem (an NFS share, GlusterFS, local disk) or a
//! block device, driven by io_uring with O_DIRECT (buffered with `--buffered`). A missing file
//! is created sparse with its size set, exactly as Cinder's NFS driver does (`truncate -s`), and
//! removed afterwards unless `--keep`. An existing file is never truncated or removed; it is
//! written only with `--allow-existing`, and otherwise opened read-only.
use super::workload::random_fill;
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::error::{Error, Result};
use io_uring::{opcode, types, IoUring};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::Instant;

/// O_DIRECT needs buffers aligned to the logical block size; 4 KiB covers every device here.
const ALIGN: usize = 4096;

/// A file target.
pub struct FileTarget {
    meta: TargetMeta,
    path: PathBuf,
    direct: bool,
    writable: bool,
}

impl FileTarget {
    /// Opens the file, or creates it sparse with the policy's size; an existing one is checked
    /// against the policy before anything is written.
    pub fn open(
        name: &str,
        path: PathBuf,
        policy: &OpenPolicy,
        buffered: bool,
    ) -> Result<FileTarget> {
        // symlink_metadata: a dangling symlink exists too (create_new would refuse it anyway).
        let created = std::fs::symlink_metadata(&path).is_err();
        if created {
            let size = policy.create_size();
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
            f.set_len(size)
                .map_err(|e| Error::io(format!("truncate {} to {size}", path.display()), e))?;
        }
        let f = File::open(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let meta = f
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        let len = if meta.file_type().is_file() {
            meta.len()
        } else {
            // Block devices report 0 in metadata; their size is where SEEK_END lands.
            use std::io::Seek;
            let mut f = f;
            f.seek(std::io::SeekFrom::End(0))
                .map_err(|e| Error::io(format!("size of {}", path.display()), e))?
        };
        let meta = policy.file_meta(name, len, created)?;
        let writable = meta.writable;
        Ok(FileTarget {
            meta,
            path,
            direct: !buffered,
            writable,
        })
    }
}

/// A block-aligned buffer carved out of a slightly larger Vec.
struct Aligned {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize, seed: u64) -> Aligned {
        let mut raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        random_fill(&mut raw[start..start + len], seed);
        Aligned { raw, start, len }
    }

    fn ptr(&mut self) -> *mut u8 {
        self.raw[self.start..self.start + self.len].as_mut_ptr()
    }
}

/// A ring for one job thread. Completions are run only when this thread asks for them
/// (single issuer, deferred task work, no interrupting IPIs), as fio sets up its rings; the
/// task-run flag tells a non-blocking enter when there is completion work to collect.
/// Kernels before 6.1 lack these flags; there the plain ring is used.
fn new_ring(entries: u32) -> std::io::Result<IoUring> {
    IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_taskrun_flag()
        .build(entries)
        .or_else(|_| IoUring::new(entries))
}

impl Target for FileTarget {
    fn meta(&self) -> &TargetMeta {
        &self.meta
    }

    fn run_job(&self, spec: &JobSpec) -> Result<Recorder> {
        let mut opts = OpenOptions::new();
        // Read-only unless the run may write: the kernel then refuses any write (EBADF).
        opts.read(true).write(self.writable);
        if self.direct {
            opts.custom_flags(libc::O_DIRECT);
        }
        let file = opts.open(&self.path).map_err(|e| {
            Error::io(
                format!(
                    "open {}{}",
                    self.path.display(),
                    if self.direct {
                        " with O_DIRECT (try --buffered)"
                    } else {
                        ""
                    }
                ),
                e,
            )
        })?;
        let depth = spec.iodepth;
        let bs = spec.bs as usize;
        let mut bufs: Vec<Aligned> = (0..depth)
            .map(|i| Aligned::new(bs, spec.seed ^ (spec.job << 32) ^ i as u64))
            .collect();
        let mut ring = new_ring((depth as u32).next_power_of_two().max(2))
            .map_err(|e| Error::io("set up io_uring (is it allowed here?)", e))?;
        let mut submitted = vec![Instant::now(); depth];
        let mut reads = vec![false; depth];
        let mut free: Vec<usize> = (0..depth).rev().collect();
        let mut gen = spec.op_gen();
        let mut rec = spec.recorder();
        let mut in_flight = 0usize;
        let mut exhausted = false;
        let fd = types::Fd(file.as_raw_fd());
        loop {
            // One request per enter, as fio does: submitting the free slots in a burst makes a
            // virtual disk complete them in a burst too (measured: convoys of 31, a fifth fewer
            // IOPS of 4k O_DIRECT reads than fio on the same file).
            'submit: {
                let Some(&slot) = free.last().filter(|_| !exhausted) else {
                    break 'submit;
                };
                let Some(op) = spec.next_op(&mut gen) else {
                    exhausted = true;
                    break 'submit;
                };
                free.pop();
                let ptr = bufs[slot].ptr();
                let entry = if op.read {
                    opcode::Read::new(fd, ptr, bs as u32)
                        .offset(op.offset)
                        .build()
                } else {
                    opcode::Write::new(fd, ptr, bs as u32)
                        .offset(op.offset)
                        .build()
                }
                .user_data(slot as u64);
                // The entry points at bufs[slot], which is not reused until its completion is
                // reaped below, and every submitted entry is reaped before this function
                // returns (the loop only ends with nothing in flight).
                // SAFETY: so the buffer and the descriptor outlive the kernel's use of them.
                if unsafe { ring.submission().push(&entry) }.is_err() {
                    free.push(slot);
                    break 'submit;
                }
                submitted[slot] = Instant::now();
                reads[slot] = op.read;
                rec.issued += 1;
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            // Block only when no slot is free; otherwise submit and collect what is done.
            let want = usize::from(free.is_empty() || exhausted);
            match ring.submit_and_wait(want) {
                Ok(_) => {}
                Err(e)
                    if e.raw_os_error() == Some(libc::EINTR)
                        || e.raw_os_error() == Some(libc::EAGAIN) =>
                {
                    continue
                }
                Err(e) => {
                    // Nothing more can be submitted; wait out what is in flight before the
                    // buffers go away.
                    rec.error(|| format!("io_uring submit on {}: {e}", self.path.display()));
                    exhausted = true;
                    if ring.submit_and_wait(in_flight).is_err() {
                        std::mem::forget(bufs);
                        return Err(Error::io(format!("io_uring on {}", self.path.display()), e));
                    }
                }
            }
            // One completion per pass, then its slot is refilled at once: the depth stays at
            // `iodepth` all the time, as fio keeps it (reaping every ready completion in one go
            // leaves slots empty while they are refilled one enter at a time: measured, an
            // average of 22 in flight at iodepth 32).
            if let Some(cqe) = ring.completion().next() {
                let slot = cqe.user_data() as usize;
                in_flight -= 1;
                free.push(slot);
                let res = cqe.result();
                if res < 0 {
                    rec.error(|| {
                        format!(
                            "I/O on {}: {}",
                            self.path.display(),
                            std::io::Error::from_raw_os_error(-res)
                        )
                    });
                } else if res as usize != bs {
                    rec.error(|| {
                        format!("short I/O on {}: {res} of {bs} bytes", self.path.display())
                    });
                } else {
                    rec.record(submitted[slot], Instant::now(), spec.bs, reads[slot]);
                }
            }
        }
        drop(ring);
        Ok(rec)
    }

    fn allocated_bytes(&self) -> Result<Option<u64>> {
        let m = std::fs::metadata(&self.path)
            .map_err(|e| Error::io(format!("stat {}", self.path.display()), e))?;
        Ok(m.file_type().is_file().then(|| m.blocks() * 512))
    }

    fn notes(&self) -> Vec<String> {
        vec![if self.direct {
            "file I/O: io_uring, O_DIRECT".into()
        } else {
            "file I/O: io_uring, buffered (page cache)".into()
        }]
    }

    fn make_holes(&self) -> Result<()> {
        let what = || format!("empty {}", self.path.display());
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| Error::io(what(), e))?;
        f.set_len(0).map_err(|e| Error::io(what(), e))?;
        f.set_len(self.meta.size).map_err(|e| Error::io(what(), e))
    }

    fn finish(self: Box<Self>, keep: bool) -> Result<()> {
        if self.meta.created && !keep {
            std::fs::remove_file(&self.path)
                .map_err(|e| Error::io(format!("remove {}", self.path.display()), e))?;
        }
        Ok(())
    }
}
