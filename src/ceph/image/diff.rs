//! Which parts of an image hold data, from librbd (`rbd_diff_iterate2` from the image's
//! creation): the object map when the image has fast-diff, otherwise one object listing per
//! object in the range. Never-written objects read as zeros, so a copy reads only these.
use super::Image;
use crate::error::{Error, Result};
use librbd_sys as sys;
use std::os::raw::{c_int, c_void};

/// A range librbd reports as changed since a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed {
    /// Image offset.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
    /// True: it holds data now (read it); false: it reads as zeros now (discarded, or beyond
    /// the size at the snapshot and never written).
    pub data: bool,
}

impl Image {
    /// True when the image has fast-diff and its object map is valid at the open snapshot (or
    /// head): then diffs can be asked for whole objects, answered from the map.
    pub fn fast_diff_valid(&self) -> bool {
        let features = self.features().unwrap_or(0);
        features & u64::from(sys::RBD_FEATURE_FAST_DIFF) != 0
            && self
                .flags()
                .is_ok_and(|f| f & u64::from(sys::RBD_FLAG_FAST_DIFF_INVALID) == 0)
    }

    /// The byte ranges `(offset, len)` of `[offset, offset + len)` that hold data at the open
    /// snapshot (or head), the parent's included, in offset order. `whole_objects`: report
    /// whole objects (cheap with fast-diff's object map; coarser).
    pub fn allocated(&self, offset: u64, len: u64, whole_objects: bool) -> Result<Vec<(u64, u64)>> {
        Ok(self
            .changed_since(None, offset, len, whole_objects)?
            .into_iter()
            .filter(|c| c.data)
            .map(|c| (c.offset, c.len))
            .collect())
    }

    /// What changed in `[offset, offset + len)` between snapshot `from` of this image (`None`:
    /// its creation) and the open snapshot (or head), in offset order, adjacent ranges of the
    /// same kind merged; unchanged ranges are not listed. `whole_objects`: whole objects, from
    /// fast-diff's object map (the caller checks it is valid).
    pub fn changed_since(
        &self,
        from: Option<&str>,
        offset: u64,
        len: u64,
        whole_objects: bool,
    ) -> Result<Vec<Changed>> {
        let mut found: Vec<Changed> = Vec::new();
        unsafe extern "C" fn collect(
            off: u64,
            len: usize,
            exists: c_int,
            arg: *mut c_void,
        ) -> c_int {
            // SAFETY: `arg` is the `&mut Vec` below, alive for the synchronous call that
            // invokes this; librbd calls it from one thread at a time.
            let found = unsafe { &mut *(arg as *mut Vec<Changed>) };
            let data = exists != 0;
            if len > 0 {
                match found.last_mut() {
                    Some(last) if last.offset + last.len == off && last.data == data => {
                        last.len += len as u64
                    }
                    _ => found.push(Changed {
                        offset: off,
                        len: len as u64,
                        data,
                    }),
                }
            }
            0
        }
        let c_from = from.map(|s| super::cstr("snapshot name", s)).transpose()?;
        let from_ptr = c_from.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        let arg = &mut found as *mut Vec<Changed> as *mut c_void;
        // SAFETY: the handle is open for the life of `self`; `from_ptr` is NULL ("since
        // creation") or a C string alive across the call; `collect` matches librbd's callback
        // type and `arg` outlives the call.
        let r = unsafe {
            sys::rbd_diff_iterate2(
                self.raw,
                from_ptr,
                offset,
                len,
                1,
                u8::from(whole_objects),
                Some(collect),
                arg,
            )
        };
        if r < 0 {
            let what = match from {
                Some(f) => format!("list what changed since @{f} in"),
                None => "list the allocated extents of".to_string(),
            };
            return Err(Error::ceph(what, self.describe(), r));
        }
        found.sort_unstable_by_key(|c| c.offset);
        Ok(found)
    }
}
