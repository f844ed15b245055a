//! A pool (and optional RADOS namespace) opened for I/O, and the pool's directory of images:
//! whether one exists, listing, renaming and removing them by name. Creating images lives in
//! `create.rs`; what is done to an open image lives in `image/`.
use super::cluster::Handle;
use super::image::cstring_field;
use super::{check, cstr, Cluster};
use crate::error::{Error, Result};
use librados_sys as sys;
use librbd_sys as rbd;
use std::ptr;
use std::sync::Arc;

/// Owns the `rados_ioctx_t`; destroyed after the last image opened from it.
pub(crate) struct IoHandle {
    pub(crate) raw: sys::rados_ioctx_t,
    // Keeps the cluster connected for as long as this ioctx exists.
    _cluster: Arc<Handle>,
}

// SAFETY: rados_ioctx_t is thread-safe for the librbd/librados calls made through it; namespace
// changes happen only once, at creation, before it is shared.
unsafe impl Send for IoHandle {}
// SAFETY: as above.
unsafe impl Sync for IoHandle {}

impl Drop for IoHandle {
    fn drop(&mut self) {
        // SAFETY: raw came from rados_ioctx_create; every Image holding an Arc to us is gone.
        unsafe { sys::rados_ioctx_destroy(self.raw) };
    }
}

/// A pool (with namespace) on a connected cluster. Cheap to clone.
#[derive(Clone)]
pub struct IoCtx {
    pub(crate) handle: Arc<IoHandle>,
    pool: String,
    namespace: Option<String>,
    cluster: Cluster,
}

impl IoCtx {
    pub(crate) fn open(cluster: &Cluster, pool: &str, namespace: Option<&str>) -> Result<IoCtx> {
        let c_pool = cstr("pool name", pool)?;
        let mut raw: sys::rados_ioctx_t = ptr::null_mut();
        // SAFETY: connected cluster handle, valid C string and out-pointer.
        let ret = unsafe { sys::rados_ioctx_create(cluster.handle.raw, c_pool.as_ptr(), &mut raw) };
        if ret < 0 {
            return Err(open_pool_error(pool, ret));
        }
        let handle = IoHandle {
            raw,
            _cluster: cluster.handle.clone(),
        };
        if let Some(ns) = namespace {
            let c_ns = cstr("namespace", ns)?;
            // SAFETY: valid ioctx not yet shared with any other thread; valid C string.
            unsafe { sys::rados_ioctx_set_namespace(handle.raw, c_ns.as_ptr()) };
        }
        Ok(IoCtx {
            handle: Arc::new(handle),
            pool: pool.to_string(),
            namespace: namespace.map(str::to_string),
            cluster: cluster.clone(),
        })
    }

    /// Pool name.
    pub fn pool(&self) -> &str {
        &self.pool
    }

    /// Namespace, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The cluster this pool belongs to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// `pool[/ns]/name` for messages.
    pub fn describe(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{name}", self.pool),
            None => format!("{}/{name}", self.pool),
        }
    }
}

/// The pool's images, by name.
impl IoCtx {
    /// Removes an image (refuses, clearly, while it has snapshots or children).
    pub fn remove_image(&self, name: &str) -> Result<()> {
        let c_name = cstr("image name", name)?;
        // SAFETY: valid ioctx and C string.
        let ret = unsafe { rbd::rbd_remove(self.handle.raw, c_name.as_ptr()) };
        // The errno stays in the error (callers retry on EBUSY); the hints name the usual causes.
        check(ret, "remove image", &self.describe(name)).map(|_| ())
    }

    /// Renames an image within its pool.
    pub fn rename_image(&self, from: &str, to: &str) -> Result<()> {
        let (f, t) = (cstr("image name", from)?, cstr("image name", to)?);
        // SAFETY: valid ioctx and C strings.
        let ret = unsafe { rbd::rbd_rename(self.handle.raw, f.as_ptr(), t.as_ptr()) };
        if ret < 0 {
            return Err(rename_error(&self.describe(from), &self.describe(to), ret));
        }
        Ok(())
    }

    /// Whether an image of that name exists in the pool.
    pub fn image_exists(&self, name: &str) -> Result<bool> {
        let c_name = cstr("image name", name)?;
        let mut raw: rbd::rbd_image_t = ptr::null_mut();
        // SAFETY: valid ioctx, C string and out-pointer; a successfully opened image is closed below.
        let ret = unsafe {
            rbd::rbd_open_read_only(self.handle.raw, c_name.as_ptr(), &mut raw, ptr::null())
        };
        if ret == -libc::ENOENT {
            return Ok(false);
        }
        check(ret, "look up image", &self.describe(name))?;
        // SAFETY: raw was opened just above and is closed exactly once.
        unsafe { rbd::rbd_close(raw) };
        Ok(true)
    }

    /// Names of the images in a pool (namespace).
    pub fn list_images(&self) -> Result<Vec<String>> {
        let mut cap = 64usize;
        loop {
            let mut specs: Vec<rbd::rbd_image_spec_t> = vec![rbd::rbd_image_spec_t::default(); cap];
            let mut n = cap;
            // SAFETY: specs has room for n entries; on success librbd fills n and we free them below.
            let ret = unsafe { rbd::rbd_list2(self.handle.raw, specs.as_mut_ptr(), &mut n) };
            if ret == -libc::ERANGE && n > cap {
                cap = n;
                continue;
            }
            check(
                ret,
                "list images in",
                &self.describe("").trim_end_matches('/'),
            )?;
            let names = specs[..n]
                .iter()
                // SAFETY: librbd filled these with valid C strings.
                .map(|s| unsafe { cstring_field(s.name) })
                .collect();
            // SAFETY: frees exactly the n entries librbd filled.
            unsafe { rbd::rbd_image_spec_list_cleanup(specs.as_mut_ptr(), n) };
            return Ok(names);
        }
    }
}

/// A failed `rados_ioctx_create`; a missing pool says how to list the pools.
fn open_pool_error(pool: &str, ret: i32) -> Error {
    if ret == -libc::ENOENT {
        Error::ceph_with_hint(
            "open pool",
            pool,
            ret,
            "no such pool; list pools with `ceph osd pool ls`",
        )
    } else {
        Error::ceph("open pool", pool, ret)
    }
}

/// A failed `rbd_rename` of `from` to `to` (both `pool[/ns]/name`); a taken name is named.
fn rename_error(from: &str, to: &str, ret: i32) -> Error {
    let what = format!("{from} to {to}");
    if ret == -libc::EEXIST {
        Error::ceph_with_hint("rename image", what, ret, format!("{to} already exists"))
    } else {
        Error::ceph("rename image", what, ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_pool_keeps_enoent_with_its_hint() {
        let e = open_pool_error("nosuchpool", -libc::ENOENT);
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let s = e.to_string();
        assert!(s.starts_with("open pool nosuchpool: ENOENT"), "{s}");
        assert!(s.contains("ceph osd pool ls") && !s.contains('\n'), "{s}");
        assert_eq!(
            open_pool_error("p", -libc::EPERM).errno(),
            Some(libc::EPERM)
        );
    }

    #[test]
    fn rename_onto_existing_keeps_eexist() {
        let e = rename_error("rbd/a", "rbd/b", -libc::EEXIST);
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let s = e.to_string();
        assert!(s.starts_with("rename image rbd/a to rbd/b: EEXIST"), "{s}");
        assert!(
            s.contains("rbd/b already exists") && !s.contains('\n'),
            "{s}"
        );
        assert_eq!(
            rename_error("rbd/a", "rbd/b", -libc::EBUSY).errno(),
            Some(libc::EBUSY)
        );
    }
}
