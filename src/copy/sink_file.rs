//! A sparse raw file as a copy target: zeros become holes, the file appears under its final
//! name only when complete (written under a temporary name in the same directory, then renamed).
use super::{ConcurrentWrite, PoolBuf, Sink};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// When the pages written to the file go to its disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Writeback {
    /// All at the final fsync, as qemu-img leaves it. Best when the copy reads a local file on
    /// the same disk: starting write-back during a cold dense convert made it 1.06x slower
    /// (paired runs), the reads and the writes then share the disk the whole time.
    #[default]
    AtEnd,
    /// Started behind the copy every [`WRITEBACK_STEP`] written, on a thread of its own, so
    /// the disk writes while the copy computes or waits on the network and the final fsync
    /// has little left: an export from RBD to a raw file 1.87 s → 1.62, to zstd qcow2
    /// 2.73 → 2.54 (paired runs, cold).
    Early,
}

impl Writeback {
    /// [`Writeback::Early`] unless `src` is a local file on the file system `dest` is to be
    /// written on (`src`: `None` for a source that is not a local path: RBD, a network
    /// share, stdin).
    pub fn for_copy(src: Option<&Path>, dest: &Path) -> Writeback {
        use std::os::unix::fs::MetadataExt;
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let device = |p: &Path| std::fs::metadata(p).ok().map(|m| m.dev());
        match src.and_then(device) {
            Some(d) if device(dir) == Some(d) => Writeback::AtEnd,
            _ => Writeback::Early,
        }
    }
}

/// Bytes written between two starts of write-back under [`Writeback::Early`]: large enough
/// that the file's blocks are still allocated in long extents.
pub const WRITEBACK_STEP: u64 = 64 << 20;

/// Writes a sparse raw image; call [`FileSink::commit`] after a successful copy.
pub struct FileSink {
    writer: Arc<FileWriter>,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl FileSink {
    /// Starts a new file that will become `dest`. Refuses an existing `dest` unless `overwrite`.
    pub fn create(dest: &Path, overwrite: bool) -> Result<FileSink> {
        Self::create_with(dest, overwrite, Writeback::AtEnd)
    }

    /// [`FileSink::create`], its pages sent to the disk as `writeback` says.
    pub fn create_with(dest: &Path, overwrite: bool, writeback: Writeback) -> Result<FileSink> {
        if dest.exists() && !overwrite {
            return Err(super::publish::exists_error(dest.display()));
        }
        let name = dest
            .file_name()
            .ok_or_else(|| Error::InvalidInput(format!("{} is not a file name", dest.display())))?;
        let tmp = dest.with_file_name(super::publish::partial_name(&name.to_string_lossy()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
        let shown = tmp.display().to_string();
        let flusher = match writeback {
            Writeback::AtEnd => None,
            Writeback::Early => Some(Flusher::start(&file, &shown)?),
        };
        Ok(FileSink {
            writer: Arc::new(FileWriter {
                file,
                shown,
                one_at_a_time: Mutex::new(()),
                flusher,
            }),
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

    fn write(&mut self, offset: u64, data: PoolBuf) -> Result<()> {
        self.writer.write_at(offset, &data)?;
        Ok(())
    }

    fn finish(&mut self, size: u64) -> Result<()> {
        let (file, what) = (&self.writer.file, &self.writer.shown);
        file.set_len(size)
            .map_err(|e| Error::io(format!("set length of {what}"), e))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("sync {what}"), e))
    }

    fn concurrent_writer(&self) -> Option<Arc<dyn ConcurrentWrite>> {
        Some(self.writer.clone())
    }
}

/// Bytes per `pwrite`: a piece of up to an object is written in parts of this size. Whole
/// 4 MiB writes made the kernel's copy into the page cache cost many times more (perf: 58 % of
/// an export's samples in `copy_folio_from_iter_atomic`, 6 % for qemu-img's 2 MiB writes);
/// in 256 KiB parts a cold dense convert took 1.35 s instead of 2.01, an export to qcow2 1.41
/// instead of 1.67 (paired runs; 64 KiB and 1 MiB parts were no different from 256 KiB).
const WRITE_STEP: usize = 256 << 10;

/// The open temporary file, written with `pwrite` from any thread. Write-back is never started
/// from a writing thread: `sync_file_range` after each write made a cold dense convert 1.36x
/// slower (paired runs, 1.90 s against 1.38 s, twice the CPU) and a sparse one no faster.
struct FileWriter {
    file: File,
    shown: String,
    /// Taken around each write: buffered writes to one file serialize on its inode lock
    /// anyway, and contending for that in the kernel spins (measured: a quarter of the CPU
    /// of a convert with 8 decode threads); a waiting thread here sleeps instead.
    one_at_a_time: Mutex<()>,
    /// Under [`Writeback::Early`].
    flusher: Option<Flusher>,
}

/// The thread that starts write-back of the file every [`WRITEBACK_STEP`] written; it ends
/// when the file's writer is dropped.
struct Flusher {
    /// Bytes written so far.
    written: AtomicU64,
    wake: mpsc::SyncSender<()>,
}

impl Flusher {
    fn start(file: &File, shown: &str) -> Result<Flusher> {
        let own = file
            .try_clone()
            .map_err(|e| Error::io(format!("duplicate the descriptor of {shown}"), e))?;
        // One request waiting is enough: a request starts write-back of every dirty page.
        let (wake, requests) = mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("rbdkit-writeback".into())
            .spawn(move || {
                use std::os::fd::AsRawFd;
                for () in requests {
                    // SAFETY: `own` is an open descriptor this thread owns for the whole call,
                    // and the call takes no memory. It only starts write-out of dirty pages
                    // (no wait flags); a failure is left to the final fsync to report.
                    unsafe {
                        libc::sync_file_range(own.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE)
                    };
                }
            })
            .map_err(|e| Error::io(format!("start the write-back thread of {shown}"), e))?;
        Ok(Flusher {
            written: AtomicU64::new(0),
            wake,
        })
    }

    /// Counts `n` bytes written; wakes the thread each time another step is complete.
    fn wrote(&self, n: u64) {
        let before = self.written.fetch_add(n, Ordering::Relaxed);
        if before / WRITEBACK_STEP != (before + n) / WRITEBACK_STEP {
            // Full: a request is already waiting, and it covers these pages too.
            let _ = self.wake.try_send(());
        }
    }
}

impl ConcurrentWrite for FileWriter {
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        {
            let _turn = self.one_at_a_time.lock().unwrap_or_else(|e| e.into_inner());
            for (i, part) in data.chunks(WRITE_STEP).enumerate() {
                let at = offset + (i * WRITE_STEP) as u64;
                self.file
                    .write_all_at(part, at)
                    .map_err(|e| Error::io(format!("write {} at offset {at}", self.shown), e))?;
            }
        }
        if let Some(f) = &self.flusher {
            f.wrote(data.len() as u64);
        }
        Ok(())
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The threads of this process named as the write-back thread is (`comm` keeps 15 bytes).
    fn writeback_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "rbdkit-writebac")
            .count()
    }

    /// Waits up to a second for [`writeback_threads`] to be `n` (a new thread names itself
    /// once it runs; an ended one is reaped a moment later).
    fn writeback_threads_become(n: usize) -> bool {
        (0..100).any(|_| {
            let now = writeback_threads() == n;
            if !now {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            now
        })
    }

    #[test]
    fn writeback_is_early_unless_the_source_shares_the_destination_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.raw");
        std::fs::write(&src, b"x").unwrap();
        let dest = dir.path().join("out.raw");
        assert_eq!(Writeback::for_copy(Some(&src), &dest), Writeback::AtEnd);
        assert_eq!(Writeback::for_copy(None, &dest), Writeback::Early);
        // procfs is never the file system of a temporary directory.
        let elsewhere = Path::new("/proc/version");
        assert_eq!(
            Writeback::for_copy(Some(elsewhere), &dest),
            Writeback::Early
        );
        // A source that is not there (a URL) is not a local file.
        let url = Path::new("gluster://host/vol/img");
        assert_eq!(Writeback::for_copy(Some(url), &dest), Writeback::Early);
    }

    /// Writes from two threads past several write-back steps: the file holds exactly what was
    /// written, and the write-back thread runs while the file is open and ends with it.
    #[test]
    fn an_early_writeback_file_holds_what_was_written_and_its_thread_ends() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.raw");
        let before = writeback_threads();
        let mut sink = FileSink::create_with(&dest, false, Writeback::Early).unwrap();
        assert!(writeback_threads_become(before + 1), "no write-back thread");
        let piece = |i: u64| vec![(i % 251) as u8 + 1; 1 << 20];
        let n = 2 * WRITEBACK_STEP / (1 << 20) + 3;
        let writer = sink.concurrent_writer().unwrap();
        std::thread::scope(|s| {
            for half in 0..2u64 {
                let w = writer.clone();
                s.spawn(move || {
                    for i in (half..n).step_by(2) {
                        w.write_at(i << 20, &piece(i)).unwrap();
                    }
                });
            }
        });
        drop(writer);
        sink.finish(n << 20).unwrap();
        sink.commit().unwrap();
        let got = std::fs::read(&dest).unwrap();
        assert_eq!(got.len() as u64, n << 20);
        for i in 0..n {
            let at = (i << 20) as usize;
            assert!(got[at..at + (1 << 20)] == piece(i)[..], "MiB {i}");
        }
        assert!(
            writeback_threads_become(before),
            "the write-back thread outlived its file"
        );
    }
}
