//! A pool (and optional RADOS namespace) opened for I/O.
use super::cluster::Handle;
use super::{cstr, Cluster};
use crate::error::{Error, Result};
use librados_sys as sys;
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
            return Err(if ret == -libc::ENOENT {
                Error::Other(format!(
                    "open pool {pool}: ENOENT — no such pool; list pools with `ceph osd pool ls`"
                ))
            } else {
                Error::ceph("open pool", pool, ret)
            });
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
