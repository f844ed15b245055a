//! An open RBD image: opening (read-write, read-only, at a snapshot), closing (RAII, after its
//! async requests drain), and the whole-image operations resize, flatten and flush. What an
//! image reports about itself, its snapshots, its parent/children links and its data I/O live in
//! the submodules, one job each; making and naming images is the pool's (`IoCtx`) job.
mod diff;
mod info;
mod io;
mod layering;
mod snap;

pub use diff::Changed;
pub use info::{ctime_string, ImageInfo, Timestamps};
pub use layering::LinkedImage;
pub use snap::SnapInfo;

use super::aio::InFlight;
use super::progress::{with_progress, ProgressFn};
use super::{check, cstr, IoCtx};
use crate::error::{Error, Result};
use librbd_sys as sys;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::ptr;
use std::sync::Arc;

/// An open image; closed (after waiting for its async requests) when dropped.
pub struct Image {
    raw: sys::rbd_image_t,
    io: IoCtx,
    name: String,
    snap: Option<String>,
    object: Arc<str>,
    in_flight: Arc<InFlight>,
}

// SAFETY: librbd image handles are thread-safe for the calls made here (Ceph's own tools issue
// aio from several threads on one handle); the ioctx it uses is kept alive by `io`.
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

impl Image {
    /// Opens an image read-write (or read-only at a snapshot when `snap` is given).
    pub fn open(io: &IoCtx, name: &str, snap: Option<&str>) -> Result<Image> {
        Self::open_impl(io, name, snap, snap.is_some())
    }

    /// Opens an image read-only (takes no exclusive lock; fine for info and reads).
    pub fn open_read_only(io: &IoCtx, name: &str, snap: Option<&str>) -> Result<Image> {
        Self::open_impl(io, name, snap, true)
    }

    fn open_impl(io: &IoCtx, name: &str, snap: Option<&str>, read_only: bool) -> Result<Image> {
        let c_name = cstr("image name", name)?;
        let c_snap = snap.map(|s| cstr("snapshot name", s)).transpose()?;
        let snap_ptr = c_snap.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        let mut raw: sys::rbd_image_t = ptr::null_mut();
        // SAFETY: valid ioctx, C strings (or NULL snap) and out-pointer.
        let ret = unsafe {
            if read_only {
                sys::rbd_open_read_only(io.handle.raw, c_name.as_ptr(), &mut raw, snap_ptr)
            } else {
                sys::rbd_open(io.handle.raw, c_name.as_ptr(), &mut raw, snap_ptr)
            }
        };
        if ret < 0 {
            return Err(open_error(io.pool(), &io.describe(name), snap, ret));
        }
        let mut object = io.describe(name);
        if let Some(s) = snap {
            object.push('@');
            object.push_str(s);
        }
        Ok(Image {
            raw,
            io: io.clone(),
            name: name.to_string(),
            snap: snap.map(str::to_string),
            object: object.into(),
            in_flight: Arc::default(),
        })
    }

    /// `pool[/ns]/image[@snap]` for messages.
    pub fn describe(&self) -> &str {
        &self.object
    }

    /// The image name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool it lives in.
    pub fn ioctx(&self) -> &IoCtx {
        &self.io
    }

    /// The snapshot it was opened at, if any.
    pub fn snap(&self) -> Option<&str> {
        self.snap.as_deref()
    }

    /// Resizes (grows or shrinks) with progress.
    pub fn resize(&self, size: u64, progress: ProgressFn<'_>) -> Result<()> {
        // SAFETY: valid image; the trampoline and its argument live for the synchronous call.
        let ret = with_progress(progress, |cb, arg| unsafe {
            sys::rbd_resize_with_progress(self.raw, size, Some(cb), arg)
        });
        check(ret, "resize image", &self.object).map(|_| ())
    }

    /// Copies all parent data into this clone and detaches it from the parent, with progress.
    pub fn flatten(&self, progress: ProgressFn<'_>) -> Result<()> {
        // SAFETY: valid image; the trampoline and its argument live for the synchronous call.
        let ret = with_progress(progress, |cb, arg| unsafe {
            sys::rbd_flatten_with_progress(self.raw, Some(cb), arg)
        });
        check(ret, "flatten image", &self.object).map(|_| ())
    }

    /// Blocks until all writes so far are stable.
    pub fn flush(&self) -> Result<()> {
        // SAFETY: valid image.
        let ret = unsafe { sys::rbd_flush(self.raw) };
        check(ret, "flush image", &self.object).map(|_| ())
    }

    /// Closes the image, reporting a failed close (Drop would only log-and-ignore it).
    pub fn close(mut self) -> Result<()> {
        // Drop runs afterwards and finds nothing left to close.
        self.close_raw()
    }

    fn close_raw(&mut self) -> Result<()> {
        self.in_flight.wait_idle();
        if self.raw.is_null() {
            return Ok(());
        }
        // SAFETY: raw is open, nothing is in flight on it, and it is closed exactly once.
        let ret = unsafe { sys::rbd_close(self.raw) };
        self.raw = ptr::null_mut();
        check(ret, "close image", &self.object).map(|_| ())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = self.close_raw();
    }
}

/// A failed `rbd_open*` of `image` (`pool[/ns]/name`) in `pool`, at `snap` if given; a
/// missing image or snapshot says how to list them.
fn open_error(pool: &str, image: &str, snap: Option<&str>, ret: i32) -> Error {
    let object = match snap {
        Some(s) => format!("{image}@{s}"),
        None => image.to_string(),
    };
    if ret != -libc::ENOENT {
        return Error::ceph("open image", object, ret);
    }
    let hint = match snap {
        Some(_) => format!(
            "no such image or snapshot; check with `rbd ls {pool}` and `rbd snap ls {image}`"
        ),
        None => format!("no such image; check with `rbd ls {pool}`"),
    };
    Error::ceph_with_hint("open image", object, ret, hint)
}

/// Copies a possibly-NULL C string owned by librbd.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
pub(crate) unsafe fn cstring_field(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::open_error;

    #[test]
    fn missing_image_or_snapshot_keeps_enoent() {
        let e = open_error("rbd", "rbd/x", None, -libc::ENOENT);
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let s = e.to_string();
        assert!(s.starts_with("open image rbd/x: ENOENT"), "{s}");
        assert!(
            s.contains("no such image;") && s.contains("rbd ls rbd"),
            "{s}"
        );
        let s = open_error("rbd", "rbd/x", Some("s"), -libc::ENOENT).to_string();
        assert!(s.starts_with("open image rbd/x@s: ENOENT"), "{s}");
        assert!(s.contains("rbd snap ls rbd/x") && !s.contains('\n'), "{s}");
        let e = open_error("rbd", "rbd/x", None, -libc::EBUSY);
        assert_eq!(e.errno(), Some(libc::EBUSY));
    }
}
