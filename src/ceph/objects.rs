//! The RADOS objects of a pool (its namespace), for finding which objects of an image exist
//! without asking about each one: a thin image of terabytes spans millions of objects, of
//! which a pool listing returns only those that exist. And whole small objects written, read
//! and removed by name (what a backup keeps next to its image: its block digests).
use super::{check, cstr, IoCtx};
use crate::error::{Error, Result};
use librados_sys as sys;
use std::ffi::CStr;
use std::ptr;

impl IoCtx {
    /// How many objects the pool holds (all namespaces), from its statistics: cheap.
    pub fn object_count(&self) -> Result<u64> {
        // SAFETY: an all-zero rados_pool_stat_t (plain integers) is valid for librados to fill.
        let mut st: sys::rados_pool_stat_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid ioctx handle and a stats struct of the size librados expects.
        let ret = unsafe { sys::rados_ioctx_pool_stat(self.handle.raw, &mut st) };
        check(ret, "read the statistics of pool", &self.describe(""))?;
        Ok(st.num_objects)
    }

    /// Names of the objects in this pool's namespace that start with `prefix`.
    pub fn objects_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut ctx: sys::rados_list_ctx_t = ptr::null_mut();
        // SAFETY: valid ioctx handle; ctx receives a listing handle closed below.
        let ret = unsafe { sys::rados_nobjects_list_open(self.handle.raw, &mut ctx) };
        check(ret, "list the objects of pool", &self.describe(""))?;
        let mut out = Vec::new();
        let result = loop {
            let mut entry: *const std::os::raw::c_char = ptr::null();
            // SAFETY: ctx is open; librados points `entry` at a NUL-terminated name that stays
            // valid until the next call on ctx; key and namespace are not wanted.
            let ret = unsafe {
                sys::rados_nobjects_list_next(ctx, &mut entry, ptr::null_mut(), ptr::null_mut())
            };
            if ret == -libc::ENOENT {
                break Ok(());
            }
            if let Err(e) = check(ret, "list the objects of pool", &self.describe("")) {
                break Err(e);
            }
            // SAFETY: librados returned 0, so `entry` is a valid C string until the next call.
            let name = unsafe { CStr::from_ptr(entry) }.to_string_lossy();
            if name.starts_with(prefix) {
                out.push(name.into_owned());
            }
        };
        // SAFETY: ctx came from rados_nobjects_list_open and is closed once.
        unsafe { sys::rados_nobjects_list_close(ctx) };
        result.map(|()| out)
    }

    /// Replaces object `oid` with `data`.
    pub fn write_object(&self, oid: &str, data: &[u8]) -> Result<()> {
        let c = cstr("object name", oid)?;
        // SAFETY: valid ioctx, C string, and a buffer of data.len() bytes alive for the call.
        let ret = unsafe {
            sys::rados_write_full(
                self.handle.raw,
                c.as_ptr(),
                data.as_ptr() as *const std::os::raw::c_char,
                data.len(),
            )
        };
        check(ret, "write object", &self.describe(oid)).map(|_| ())
    }

    /// The size of object `oid`, `None` when it does not exist.
    pub fn object_size(&self, oid: &str) -> Result<Option<u64>> {
        let c = cstr("object name", oid)?;
        let (mut size, mut mtime) = (0u64, 0 as libc::time_t);
        // SAFETY: valid ioctx, C string and out-pointers.
        let ret = unsafe { sys::rados_stat(self.handle.raw, c.as_ptr(), &mut size, &mut mtime) };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, "look up object", &self.describe(oid))?;
        Ok(Some(size))
    }

    /// The whole of object `oid`, `None` when it does not exist; refuses one above `max` bytes.
    pub fn read_object(&self, oid: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let c = cstr("object name", oid)?;
        let Some(size) = self.object_size(oid)? else {
            return Ok(None);
        };
        if size > max {
            return Err(Error::Other(format!(
                "object {} holds {size} bytes, more than the {max} expected",
                self.describe(oid)
            )));
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: valid ioctx and C string; buf is writable for buf.len() bytes for the call.
        let ret = unsafe {
            sys::rados_read(
                self.handle.raw,
                c.as_ptr(),
                buf.as_mut_ptr() as *mut std::os::raw::c_char,
                buf.len(),
                0,
            )
        };
        let n = check(ret, "read object", &self.describe(oid))? as usize;
        buf.truncate(n);
        Ok(Some(buf))
    }

    /// Removes object `oid`; one that does not exist is no error.
    pub fn remove_object(&self, oid: &str) -> Result<()> {
        let c = cstr("object name", oid)?;
        // SAFETY: valid ioctx and C string.
        let ret = unsafe { sys::rados_remove(self.handle.raw, c.as_ptr()) };
        if ret == -libc::ENOENT {
            return Ok(());
        }
        check(ret, "remove object", &self.describe(oid)).map(|_| ())
    }
}
