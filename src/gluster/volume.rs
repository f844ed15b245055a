//! A connected GlusterFS volume (`glfs_t`) and its open files (`glfs_fd_t`). Every call into
//! libgfapi outside [`super::aio`] is here. Handles release their resource in `Drop`.
use super::{gluster_err, last_errno, GlusterUrl};
use crate::error::{Error, Result};
use glusterfs_sys as sys;
use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

/// How long connecting to a volume may take by default before the server counts as
/// unreachable (qemu's gluster driver has no limit; a benchmark or a copy must not hang).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A connected volume. Files opened from it keep it alive (they hold an `Arc`).
pub struct Volume {
    fs: *mut sys::glfs_t,
    name: String,
}

// SAFETY: a glfs_t is meant to be shared by the threads of a process: libgfapi serializes its
// own state, and qemu and fio call it from several threads at once.
unsafe impl Send for Volume {}
// SAFETY: as above; every method takes &self and libgfapi is thread-safe per glfs_t.
unsafe impl Sync for Volume {}

fn cstr(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidInput(format!("{what} '{s}' contains a NUL byte")))
}

impl Volume {
    /// Connects to `url`'s volume through its volfile server, within `timeout`. An unreachable
    /// server, a missing volume or a refused client is one error naming the volume.
    pub fn connect(url: &GlusterUrl, timeout: Duration) -> Result<Arc<Volume>> {
        let name = url.volume_url();
        let vol = cstr("volume name", &url.volume)?;
        let host = cstr("host", &url.host)?;
        // SAFETY: glfs_new copies the NUL-terminated name; NULL means it failed.
        let fs = unsafe { sys::glfs_new(vol.as_ptr()) };
        if fs.is_null() {
            return Err(gluster_err("set up a client for", &name, last_errno()));
        }
        let port = i32::from(url.port.unwrap_or(24007));
        let logfile = cstr("log file", &gluster_log())?;
        // SAFETY: fs is the live handle made above; the strings are NUL-terminated and copied.
        let r = unsafe {
            let r = sys::glfs_set_volfile_server(fs, c"tcp".as_ptr(), host.as_ptr(), port);
            // Level 4 (GF_LOG_ERROR): gfapi logs only its errors, to a file, never stderr.
            sys::glfs_set_logging(fs, logfile.as_ptr(), 4);
            r
        };
        if r != 0 {
            let e = last_errno();
            // SAFETY: fs is live and not yet initialized; fini frees it and it is not used again.
            unsafe { sys::glfs_fini(fs) };
            return Err(gluster_err("set the volfile server of", &name, e));
        }
        // glfs_init blocks until the volfile is fetched and the bricks answer, with no limit
        // of its own: it runs on a helper thread and is waited for `timeout`.
        let (tx, rx) = std::sync::mpsc::channel();
        let addr = fs as usize;
        std::thread::Builder::new()
            .name("gfapi-init".into())
            .spawn(move || {
                // SAFETY: the handle stays alive until this call returns: on a timeout the
                // caller leaks it instead of freeing it.
                let r = unsafe { sys::glfs_init(addr as *mut sys::glfs_t) };
                let _ = tx.send((r, last_errno()));
            })
            .map_err(|e| Error::io("start the GlusterFS connect thread", e))?;
        match rx.recv_timeout(timeout) {
            Ok((0, _)) => Ok(Arc::new(Volume { fs, name })),
            Ok((_, errno)) => {
                // SAFETY: init has returned (failed); fini frees the handle, not used again.
                unsafe { sys::glfs_fini(fs) };
                Err(connect_err(&name, errno))
            }
            // The init thread still uses the handle: it is left to it (a few KiB, once).
            Err(_) => Err(Error::WithErrno {
                message: format!(
                    "connect to {name}: no answer within {} s; check the address, and that glusterd and the volume's brick run (`gluster volume status {}`)",
                    timeout.as_secs(),
                    url.volume
                ),
                errno: libc::ETIMEDOUT,
            }),
        }
    }

    /// The volume's URL, `gluster://HOST[:PORT]/VOLUME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn object(&self, path: &str) -> String {
        format!("{}{path}", self.name)
    }

    /// Creates `path` (absolute in the volume), failing if it exists, with `size` bytes as a
    /// hole (sparse, as Cinder's `truncate -s`), open for reading and writing.
    pub fn create_new(self: &Arc<Self>, path: &str, size: u64) -> Result<GFile> {
        let c = cstr("path", path)?;
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_RDWR;
        // SAFETY: self.fs is a live, initialized handle; the path is NUL-terminated.
        let fd = unsafe { sys::glfs_creat(self.fs, c.as_ptr(), flags, 0o644) };
        if fd.is_null() {
            return Err(gluster_err("create", &self.object(path), last_errno()));
        }
        let f = GFile {
            fd,
            vol: self.clone(),
            name: self.object(path),
        };
        f.set_len(size)?;
        Ok(f)
    }

    /// Opens `path`; `None` when it does not exist.
    pub fn open(self: &Arc<Self>, path: &str, writable: bool) -> Result<Option<GFile>> {
        let c = cstr("path", path)?;
        let flags = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        // SAFETY: self.fs is a live, initialized handle; the path is NUL-terminated.
        let fd = unsafe { sys::glfs_open(self.fs, c.as_ptr(), flags) };
        if fd.is_null() {
            return match last_errno() {
                libc::ENOENT => Ok(None),
                e => Err(gluster_err("open", &self.object(path), e)),
            };
        }
        Ok(Some(GFile {
            fd,
            vol: self.clone(),
            name: self.object(path),
        }))
    }

    /// Whether `path` exists (a dangling name counts: lstat).
    pub fn exists(&self, path: &str) -> Result<bool> {
        let c = cstr("path", path)?;
        // SAFETY: all-zero is a valid `struct stat`, which lstat overwrites.
        let mut st: sys::stat = unsafe { std::mem::zeroed() };
        // SAFETY: live handle, NUL-terminated path, st is a valid out pointer.
        let r = unsafe { sys::glfs_lstat(self.fs, c.as_ptr(), &mut st) };
        if r == 0 {
            return Ok(true);
        }
        match last_errno() {
            libc::ENOENT => Ok(false),
            e => Err(gluster_err("stat", &self.object(path), e)),
        }
    }

    /// Removes `path`.
    pub fn unlink(&self, path: &str) -> Result<()> {
        let c = cstr("path", path)?;
        // SAFETY: live handle, NUL-terminated path.
        if unsafe { sys::glfs_unlink(self.fs, c.as_ptr()) } != 0 {
            return Err(gluster_err("remove", &self.object(path), last_errno()));
        }
        Ok(())
    }

    /// Makes `to` a second name of `from` (both absolute in the volume); `Ok(false)` when `to`
    /// exists already (nothing is replaced).
    pub fn link(&self, from: &str, to: &str) -> Result<bool> {
        let (f, t) = (cstr("path", from)?, cstr("path", to)?);
        // SAFETY: live handle, NUL-terminated paths.
        if unsafe { sys::glfs_link(self.fs, f.as_ptr(), t.as_ptr()) } != 0 {
            return match last_errno() {
                libc::EEXIST => Ok(false),
                e => Err(gluster_err(
                    &format!("link {} to", self.object(from)),
                    to,
                    e,
                )),
            };
        }
        Ok(true)
    }

    /// Renames `from` to `to` (both absolute in the volume), replacing `to` if it exists.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (cstr("path", from)?, cstr("path", to)?);
        // SAFETY: live handle, NUL-terminated paths.
        if unsafe { sys::glfs_rename(self.fs, f.as_ptr(), t.as_ptr()) } != 0 {
            let what = format!("rename {} to", self.object(from));
            return Err(gluster_err(&what, to, last_errno()));
        }
        Ok(())
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        // SAFETY: the handle is live and initialized, and every file (which holds an Arc to
        // this volume) is closed: fini is the last use.
        unsafe { sys::glfs_fini(self.fs) };
    }
}

/// Where libgfapi writes its own log: `$RBDKIT_GLUSTER_LOG`, else nowhere (errors reach the
/// user as rbdkit's one-line messages).
fn gluster_log() -> String {
    std::env::var("RBDKIT_GLUSTER_LOG").unwrap_or_else(|_| "/dev/null".into())
}

fn connect_err(name: &str, errno: i32) -> Error {
    let hint = match errno {
        libc::ENOENT => "the volume does not exist there (`gluster volume list`) or is not started",
        libc::ENOTCONN | libc::ECONNREFUSED => {
            "nothing answers: check the address and that glusterd runs"
        }
        libc::EACCES | libc::EPERM => {
            "the server refused this client: set server.allow-insecure on for the volume"
        }
        _ => "check `gluster volume status` on the server (RBDKIT_GLUSTER_LOG=FILE keeps gfapi's log)",
    };
    Error::WithErrno {
        message: format!(
            "connect to {name}: {}; {hint}",
            std::io::Error::from_raw_os_error(errno)
        ),
        errno,
    }
}

/// An open file on a volume.
pub struct GFile {
    pub(super) fd: *mut sys::glfs_fd_t,
    vol: Arc<Volume>,
    name: String,
}

// SAFETY: a glfs_fd_t may be used from any thread; positioned reads and writes carry their own
// offset, so sharing one between threads is safe in libgfapi (fio's gfapi engine does).
unsafe impl Send for GFile {}
// SAFETY: as above; every method takes &self and uses positioned calls only.
unsafe impl Sync for GFile {}

impl GFile {
    /// The file's URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The volume it is on.
    pub fn volume(&self) -> &Arc<Volume> {
        &self.vol
    }

    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            // SAFETY: fd is live; rest is a valid writable buffer of rest.len() bytes.
            let n = unsafe {
                sys::glfs_pread(
                    self.fd,
                    rest.as_mut_ptr().cast(),
                    rest.len(),
                    (offset + done as u64) as i64,
                    0,
                    std::ptr::null_mut(),
                )
            };
            match n {
                n if n < 0 => return Err(gluster_err("read from", &self.name, last_errno())),
                0 => break,
                n => done += n as usize,
            }
        }
        Ok(done)
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &buf[done..];
            // SAFETY: fd is live; rest is a valid buffer of rest.len() bytes.
            let n = unsafe {
                sys::glfs_pwrite(
                    self.fd,
                    rest.as_ptr().cast(),
                    rest.len(),
                    (offset + done as u64) as i64,
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
            match n {
                n if n <= 0 => return Err(gluster_err("write to", &self.name, last_errno())),
                n => done += n as usize,
            }
        }
        Ok(())
    }

    /// Sets the size: shrinking frees what lies past it, growing adds a hole.
    pub fn set_len(&self, len: u64) -> Result<()> {
        // SAFETY: fd is live; null pre/post stat pointers are allowed.
        let r = unsafe {
            sys::glfs_ftruncate(
                self.fd,
                len as i64,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if r != 0 {
            return Err(gluster_err("set the size of", &self.name, last_errno()));
        }
        Ok(())
    }

    /// (size, bytes allocated on the brick).
    pub fn stat(&self) -> Result<(u64, u64)> {
        // SAFETY: all-zero is a valid `struct stat`, which fstat overwrites.
        let mut st: sys::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is live; st is a valid out pointer.
        if unsafe { sys::glfs_fstat(self.fd, &mut st) } != 0 {
            return Err(gluster_err("stat", &self.name, last_errno()));
        }
        Ok((st.st_size as u64, st.st_blocks as u64 * 512))
    }

    /// `lseek(fd, pos, whence)` for `SEEK_DATA` / `SEEK_HOLE`: the offset found, or the errno
    /// (`ENXIO`: no data at or after `pos`; `EINVAL`, `ENOTSUP`: the volume cannot tell).
    /// Moves only the descriptor's position, which the positioned calls here never use.
    pub fn seek(&self, pos: u64, whence: i32) -> std::result::Result<u64, i32> {
        let pos = i64::try_from(pos).map_err(|_| libc::EINVAL)?;
        // SAFETY: fd is live; lseek reads nothing but its arguments.
        let r = unsafe { sys::glfs_lseek(self.fd, pos, whence) };
        if r < 0 {
            return Err(last_errno());
        }
        Ok(r as u64)
    }

    /// Flushes written data to the brick's disk.
    pub fn sync(&self) -> Result<()> {
        // SAFETY: fd is live; null pre/post stat pointers are allowed.
        let r = unsafe { sys::glfs_fsync(self.fd, std::ptr::null_mut(), std::ptr::null_mut()) };
        if r != 0 {
            return Err(gluster_err("flush", &self.name, last_errno()));
        }
        Ok(())
    }
}

impl Drop for GFile {
    fn drop(&mut self) {
        // SAFETY: fd is live and no request is in flight on it (an AioQueue borrows the file
        // and waits for its requests before it goes away); close is the last use.
        unsafe { sys::glfs_close(self.fd) };
    }
}
