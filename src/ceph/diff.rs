//! Which parts of an image hold data, from librbd (`rbd_diff_iterate2` from the image's
//! creation): the object map when the image has fast-diff, otherwise one object listing per
//! object in the range. Never-written objects read as zeros, so a copy reads only these.
use super::Image;
use crate::error::{Error, Result};
use librbd_sys as sys;
use std::os::raw::{c_int, c_void};

impl Image {
    /// The byte ranges `(offset, len)` of `[offset, offset + len)` that hold data at the open
    /// snapshot (or head), the parent's included, in offset order. `whole_objects`: report
    /// whole objects (cheap with fast-diff's object map; coarser).
    pub fn allocated(&self, offset: u64, len: u64, whole_objects: bool) -> Result<Vec<(u64, u64)>> {
        let mut found: Vec<(u64, u64)> = Vec::new();
        unsafe extern "C" fn collect(
            off: u64,
            len: usize,
            exists: c_int,
            arg: *mut c_void,
        ) -> c_int {
            // SAFETY: `arg` is the `&mut Vec` below, alive for the synchronous call that
            // invokes this; librbd calls it from one thread at a time.
            let found = unsafe { &mut *(arg as *mut Vec<(u64, u64)>) };
            if exists != 0 && len > 0 {
                match found.last_mut() {
                    Some(last) if last.0 + last.1 == off => last.1 += len as u64,
                    _ => found.push((off, len as u64)),
                }
            }
            0
        }
        let arg = &mut found as *mut Vec<(u64, u64)> as *mut c_void;
        // SAFETY: the handle is open for the life of `self`; a NULL from-snapshot means "since
        // creation"; `collect` matches librbd's callback type and `arg` outlives the call.
        let r = unsafe {
            sys::rbd_diff_iterate2(
                self.raw(),
                std::ptr::null(),
                offset,
                len,
                1,
                u8::from(whole_objects),
                Some(collect),
                arg,
            )
        };
        if r < 0 {
            return Err(Error::ceph(
                "list the allocated extents of",
                self.describe(),
                r,
            ));
        }
        found.sort_unstable();
        Ok(found)
    }
}
