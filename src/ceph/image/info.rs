//! What an open image says about itself: size and layout, features and flags, id, format,
//! striping, timestamps, and how many bytes it really allocates. Read-only queries; nothing here
//! changes the image.
use super::{check, Image};
use crate::error::Result;
use librbd_sys as sys;
use serde::Serialize;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr;

/// `rbd_stat` plus what `rbd info` shows.
#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    /// Size in bytes.
    pub size: u64,
    /// Object size in bytes.
    pub object_size: u64,
    /// Number of objects the image spans.
    pub num_objects: u64,
    /// log2 of the object size.
    pub order: u32,
}

/// An image's create, access and modify times, seconds since the epoch (0: not recorded).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Timestamps {
    /// When the image was created.
    pub create: i64,
    /// Last read (librbd updates it at most every `rbd_atime_update_interval`).
    pub access: i64,
    /// Last write (same throttling, `rbd_mtime_update_interval`).
    pub modify: i64,
}

/// `secs` as C's `ctime` prints it in the local time zone, without the newline — the form
/// `rbd info` uses for its timestamps (`Tue Dec  1 23:16:57 2026`).
pub fn ctime_string(secs: i64) -> String {
    let t = secs as libc::time_t;
    let mut buf = [0 as c_char; 64];
    // SAFETY: t is a valid time_t; ctime_r writes at most 26 bytes into buf (64) and returns
    // NULL on failure (a year that does not fit), else a pointer to the NUL-terminated buf.
    let p = unsafe { libc::ctime_r(&t, buf.as_mut_ptr()) };
    if p.is_null() {
        return secs.to_string();
    }
    // SAFETY: ctime_r succeeded, so buf holds a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
    s.to_string_lossy().trim_end_matches('\n').to_string()
}

impl Image {
    /// Size, object size, object count and order.
    pub fn stat(&self) -> Result<ImageInfo> {
        let mut info = sys::rbd_image_info_t::default();
        // SAFETY: info is a valid, correctly sized out-struct.
        let ret = unsafe {
            sys::rbd_stat(
                self.raw,
                &mut info,
                std::mem::size_of::<sys::rbd_image_info_t>(),
            )
        };
        check(ret, "stat image", &self.object)?;
        Ok(ImageInfo {
            size: info.size,
            object_size: info.obj_size,
            num_objects: info.num_objs,
            order: info.order as u32,
        })
    }

    /// Feature bits.
    pub fn features(&self) -> Result<u64> {
        let mut f = 0u64;
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_features(self.raw, &mut f) };
        check(ret, "read features of", &self.object)?;
        Ok(f)
    }

    /// The pool holding the image's data objects when it is not the image's own (the image
    /// was created with `--data-pool` and has the data-pool feature), as `rbd info` shows it.
    pub fn data_pool(&self) -> Result<Option<String>> {
        if self.features()? & sys::RBD_FEATURE_DATA_POOL as u64 == 0 {
            return Ok(None);
        }
        // SAFETY: valid image handle.
        let id = unsafe { sys::rbd_get_data_pool_id(self.raw) };
        if id < 0 {
            let ret = i32::try_from(id).unwrap_or(-libc::ERANGE);
            check(ret, "read data pool of", &self.object)?;
        }
        self.io.cluster().pool_name(id).map(Some)
    }

    /// Operation feature bits (e.g. clone-child, clone-parent for v2).
    pub fn op_features(&self) -> Result<u64> {
        let mut f = 0u64;
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_op_features(self.raw, &mut f) };
        check(ret, "read op features of", &self.object)?;
        Ok(f)
    }

    /// The image id (`rbd info`'s `id`); empty for a format 1 image.
    pub fn id(&self) -> Result<String> {
        // SAFETY: valid image; buf is writable for len bytes.
        self.read_string("read id of", |buf, len| unsafe {
            sys::rbd_get_id(self.raw, buf, len)
        })
    }

    /// The prefix of the image's data objects (`rbd_data.<id>`).
    pub fn block_name_prefix(&self) -> Result<String> {
        // SAFETY: valid image; buf is writable for len bytes.
        self.read_string("read block name prefix of", |buf, len| unsafe {
            sys::rbd_get_block_name_prefix(self.raw, buf, len)
        })
    }

    /// Calls a librbd getter that fills a caller buffer with a C string and answers -ERANGE
    /// when the buffer is too small, growing the buffer up to 64 KiB.
    fn read_string(
        &self,
        op: &str,
        mut call: impl FnMut(*mut c_char, usize) -> c_int,
    ) -> Result<String> {
        let mut len = 64usize;
        loop {
            let mut buf = vec![0u8; len];
            let ret = call(buf.as_mut_ptr().cast(), len);
            if ret == -libc::ERANGE && len < 65536 {
                len *= 4;
                continue;
            }
            check(ret, op, &self.object)?;
            let end = buf.iter().position(|&b| b == 0).unwrap_or(len);
            buf.truncate(end);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
    }

    /// The image format: 1 (old) or 2.
    pub fn format(&self) -> Result<u8> {
        let mut old = 0u8;
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_old_format(self.raw, &mut old) };
        check(ret, "read format of", &self.object)?;
        Ok(if old != 0 { 1 } else { 2 })
    }

    /// Image flags (`RBD_FLAG_*`: object map or fast diff invalid).
    pub fn flags(&self) -> Result<u64> {
        let mut f = 0u64;
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_flags(self.raw, &mut f) };
        check(ret, "read flags of", &self.object)?;
        Ok(f)
    }

    /// Stripe unit in bytes and stripe count.
    pub fn striping(&self) -> Result<(u64, u64)> {
        let (mut unit, mut count) = (0u64, 0u64);
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_stripe_unit(self.raw, &mut unit) };
        check(ret, "read stripe unit of", &self.object)?;
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_stripe_count(self.raw, &mut count) };
        check(ret, "read stripe count of", &self.object)?;
        Ok((unit, count))
    }

    /// Create, access and modify times in seconds since the epoch (0 when librbd has none).
    pub fn timestamps(&self) -> Result<Timestamps> {
        let mut t = [sys::timespec::default(); 3];
        // SAFETY: valid image and out-structs.
        let ret = unsafe { sys::rbd_get_create_timestamp(self.raw, &mut t[0]) };
        check(ret, "read create timestamp of", &self.object)?;
        // SAFETY: as above.
        let ret = unsafe { sys::rbd_get_access_timestamp(self.raw, &mut t[1]) };
        check(ret, "read access timestamp of", &self.object)?;
        // SAFETY: as above.
        let ret = unsafe { sys::rbd_get_modify_timestamp(self.raw, &mut t[2]) };
        check(ret, "read modify timestamp of", &self.object)?;
        Ok(Timestamps {
            create: t[0].tv_sec,
            access: t[1].tv_sec,
            modify: t[2].tv_sec,
        })
    }

    /// Bytes actually allocated (written extents, parent included), via diff-iterate.
    pub fn allocated_bytes(&self) -> Result<u64> {
        unsafe extern "C" fn add(
            _off: u64,
            len: usize,
            exists: c_int,
            arg: *mut std::os::raw::c_void,
        ) -> c_int {
            if exists != 0 {
                // SAFETY: arg is the &mut u64 passed below, alive for the synchronous call.
                unsafe { *(arg as *mut u64) += len as u64 };
            }
            0
        }
        let size = self.stat()?.size;
        let mut total = 0u64;
        // SAFETY: valid image; callback and its &mut u64 live for the synchronous call.
        let ret = unsafe {
            sys::rbd_diff_iterate2(
                self.raw,
                ptr::null(),
                0,
                size,
                1,
                0,
                Some(add),
                &mut total as *mut u64 as *mut _,
            )
        };
        check(ret, "measure allocation of", &self.object)?;
        Ok(total)
    }
}
