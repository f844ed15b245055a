//! An image's snapshots: list (with protection state), look up, create, protect, unprotect,
//! remove, rename, roll back, and when each was taken.
use super::{check, cstr, cstring_field, Image};
use crate::error::Result;
use librbd_sys as sys;
use serde::Serialize;
use std::os::raw::{c_char, c_int};

/// A snapshot of an image.
#[derive(Clone, Debug, Serialize)]
pub struct SnapInfo {
    /// Snapshot id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Image size when taken.
    pub size: u64,
    /// Protected against removal (needed for clone v1 children).
    pub protected: bool,
}

impl Image {
    /// Snapshots with their protection state.
    pub fn snapshots(&self) -> Result<Vec<SnapInfo>> {
        let mut cap: c_int = 16;
        loop {
            let mut snaps = vec![sys::rbd_snap_info_t::default(); cap as usize + 1];
            let mut n = cap;
            // SAFETY: snaps has room for n entries (+1 terminator); freed with rbd_snap_list_end.
            let ret = unsafe { sys::rbd_snap_list(self.raw, snaps.as_mut_ptr(), &mut n) };
            if ret == -libc::ERANGE {
                cap = n.max(cap * 2);
                continue;
            }
            let count = check(ret, "list snapshots of", &self.object)? as usize;
            let list: Vec<(u64, String, u64)> = snaps[..count]
                .iter()
                .map(|s| {
                    (
                        s.id,
                        // SAFETY: librbd filled count entries with valid names.
                        unsafe { cstring_field(s.name as *mut c_char) },
                        s.size,
                    )
                })
                .collect();
            // SAFETY: frees the names librbd allocated in this array.
            unsafe { sys::rbd_snap_list_end(snaps.as_mut_ptr()) };
            return list
                .into_iter()
                .map(|(id, name, size)| {
                    Ok(SnapInfo {
                        protected: self.snap_is_protected(&name)?,
                        id,
                        name,
                        size,
                    })
                })
                .collect();
        }
    }

    /// Whether a snapshot exists.
    pub fn snap_exists(&self, snap: &str) -> Result<bool> {
        let c = cstr("snapshot name", snap)?;
        let mut exists = false;
        // SAFETY: valid image, C string and out-pointer.
        let ret = unsafe { sys::rbd_snap_exists(self.raw, c.as_ptr(), &mut exists) };
        check(ret, "look up snapshot", &format!("{}@{snap}", self.object))?;
        Ok(exists)
    }

    /// Creates a snapshot.
    pub fn snap_create(&self, snap: &str) -> Result<()> {
        self.snap_call(snap, "create snapshot", sys::rbd_snap_create)
    }

    /// Protects a snapshot (clone v1 needs it).
    pub fn snap_protect(&self, snap: &str) -> Result<()> {
        self.snap_call(snap, "protect snapshot", sys::rbd_snap_protect)
    }

    /// Unprotects a snapshot.
    pub fn snap_unprotect(&self, snap: &str) -> Result<()> {
        self.snap_call(snap, "unprotect snapshot", sys::rbd_snap_unprotect)
    }

    /// Removes a snapshot.
    pub fn snap_remove(&self, snap: &str) -> Result<()> {
        self.snap_call(snap, "remove snapshot", sys::rbd_snap_remove)
    }

    fn snap_call(
        &self,
        snap: &str,
        op: &str,
        f: unsafe extern "C" fn(sys::rbd_image_t, *const c_char) -> c_int,
    ) -> Result<()> {
        let c = cstr("snapshot name", snap)?;
        // SAFETY: f is one of librbd's (image, snap name) calls; valid image and C string.
        let ret = unsafe { f(self.raw, c.as_ptr()) };
        check(ret, op, &format!("{}@{snap}", self.object)).map(|_| ())
    }

    /// When snapshot `id` was taken, seconds since the epoch.
    pub fn snap_timestamp(&self, id: u64) -> Result<i64> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid image and out-pointer to a timespec of the C layout librbd expects.
        let ret = unsafe {
            sys::rbd_snap_get_timestamp(self.raw, id, &mut ts as *mut libc::timespec as *mut _)
        };
        check(
            ret,
            "read the time of snapshot",
            &format!("{}@{id}", self.object),
        )?;
        Ok(ts.tv_sec)
    }

    /// Renames a snapshot.
    pub fn snap_rename(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (cstr("snapshot name", from)?, cstr("snapshot name", to)?);
        // SAFETY: valid image and C strings, alive across the call.
        let ret = unsafe { sys::rbd_snap_rename(self.raw, f.as_ptr(), t.as_ptr()) };
        check(ret, "rename snapshot", &format!("{}@{from}", self.object)).map(|_| ())
    }

    /// Rolls the image head back to a snapshot (every object of the image is rewritten).
    pub fn snap_rollback(&self, snap: &str) -> Result<()> {
        self.snap_call(snap, "roll back to snapshot", sys::rbd_snap_rollback)
    }

    /// Whether a snapshot is protected.
    pub fn snap_is_protected(&self, snap: &str) -> Result<bool> {
        let c = cstr("snapshot name", snap)?;
        let mut p: c_int = 0;
        // SAFETY: valid image, C string and out-pointer.
        let ret = unsafe { sys::rbd_snap_is_protected(self.raw, c.as_ptr(), &mut p) };
        check(
            ret,
            "read protection of",
            &format!("{}@{snap}", self.object),
        )?;
        Ok(p != 0)
    }
}
