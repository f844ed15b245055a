//! Making images: the options of a new image (features, object size, striping, clone format)
//! and [`IoCtx::create_image`] / [`IoCtx::clone_image`], which turn them into librbd image
//! options. Opening and using an image is `image/`'s job, not this module's.
use super::{check, cstr, IoCtx};
use crate::error::{Error, Result};
use librbd_sys as sys;
use serde::Serialize;
use std::os::raw::c_int;
use std::ptr;

/// Options for a new image (format 2 always).
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Feature bits; `None` means the cluster config's `rbd_default_features` when an operator
    /// set it for a new image ([`IoCtx::create_image`]), otherwise layering only (what any
    /// kernel client can map). Clones take layering only.
    pub features: Option<u64>,
    /// Object size as a power of two (22 = 4 MiB); `None` uses the cluster default.
    pub order: Option<u8>,
    /// Stripe unit in bytes (with `stripe_count`), for fancy striping.
    pub stripe_unit: Option<u64>,
    /// Objects striped over.
    pub stripe_count: Option<u64>,
    /// Clone format for clones (1 needs a protected snapshot, 2 does not).
    pub clone_format: Option<CloneFormat>,
    /// Pool for the data objects (an erasure-coded pool, say); the image's header and metadata
    /// stay in its own pool. `None`: librbd's `rbd_default_data_pool`, if the config sets one.
    pub data_pool: Option<String>,
}

/// RBD clone format (`v1`, `v2` in JSON: enum values are lower-case in every report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloneFormat {
    /// v1: parent snapshot must be protected.
    V1,
    /// v2: no protection needed (require-min-compat-client >= mimic).
    V2,
}

/// Owned `rbd_image_options_t`, destroyed on drop.
struct ImageOptions(sys::rbd_image_options_t);

impl ImageOptions {
    fn new(opts: &CreateOptions) -> Result<ImageOptions> {
        let mut raw: sys::rbd_image_options_t = ptr::null_mut();
        // SAFETY: valid out-pointer; destroyed in Drop.
        unsafe { sys::rbd_image_options_create(&mut raw) };
        let o = ImageOptions(raw);
        o.set(sys::RBD_IMAGE_OPTION_FORMAT, 2)?;
        o.set(
            sys::RBD_IMAGE_OPTION_FEATURES,
            opts.features.unwrap_or(sys::RBD_FEATURE_LAYERING as u64),
        )?;
        if let Some(order) = opts.order {
            o.set(sys::RBD_IMAGE_OPTION_ORDER, order as u64)?;
        }
        if let (Some(unit), Some(count)) = (opts.stripe_unit, opts.stripe_count) {
            o.set(sys::RBD_IMAGE_OPTION_STRIPE_UNIT, unit)?;
            o.set(sys::RBD_IMAGE_OPTION_STRIPE_COUNT, count)?;
        }
        if let Some(f) = opts.clone_format {
            o.set(
                sys::RBD_IMAGE_OPTION_CLONE_FORMAT,
                if f == CloneFormat::V1 { 1 } else { 2 },
            )?;
        }
        if let Some(pool) = &opts.data_pool {
            let c_pool = cstr("data pool", pool)?;
            // SAFETY: o.0 is a live options handle; librbd copies the string.
            let ret = unsafe {
                sys::rbd_image_options_set_string(
                    o.0,
                    sys::RBD_IMAGE_OPTION_DATA_POOL as c_int,
                    c_pool.as_ptr(),
                )
            };
            check(ret, "set image option data pool", pool)?;
        }
        Ok(o)
    }

    fn set(&self, opt: impl TryInto<c_int>, value: u64) -> Result<()> {
        let opt: c_int = opt
            .try_into()
            .map_err(|_| Error::Other("image option out of range".into()))?;
        // SAFETY: self.0 is a live options handle.
        let ret = unsafe { sys::rbd_image_options_set_uint64(self.0, opt, value) };
        check(ret, "set image option", &opt).map(|_| ())
    }
}

impl Drop for ImageOptions {
    fn drop(&mut self) {
        // SAFETY: created by rbd_image_options_create, destroyed once.
        unsafe { sys::rbd_image_options_destroy(self.0) };
    }
}

impl IoCtx {
    /// Creates a format-2 image in this pool (layering only unless told otherwise). Refuses to
    /// overwrite.
    pub fn create_image(&self, name: &str, size: u64, opts: &CreateOptions) -> Result<()> {
        let c_name = cstr("image name", name)?;
        let opts = super::create_defaults::resolve(self.cluster(), opts)?;
        let o = ImageOptions::new(&opts)?;
        // SAFETY: valid ioctx, C string and options handle for the call.
        let ret = unsafe { sys::rbd_create4(self.handle.raw, c_name.as_ptr(), size, o.0) };
        if ret < 0 {
            let action = format!("create image {}", self.describe(name));
            if let Some(e) =
                super::create_defaults::data_pool_error(self.cluster(), &action, &opts, ret)
            {
                return Err(e);
            }
            return Err(create_error(&self.describe(name), ret));
        }
        Ok(())
    }

    /// Clones `parent@snap` (in `parent_io`) into `child` in this pool (clone format and
    /// features from `opts`).
    pub fn clone_image(
        &self,
        child: &str,
        parent_io: &IoCtx,
        parent: &str,
        snap: &str,
        opts: &CreateOptions,
    ) -> Result<()> {
        let child_io = self;
        let (p, s, c) = (
            cstr("image name", parent)?,
            cstr("snapshot name", snap)?,
            cstr("image name", child)?,
        );
        let o = ImageOptions::new(opts)?;
        // SAFETY: valid ioctxs, C strings and options handle for the call.
        let ret = unsafe {
            sys::rbd_clone3(
                parent_io.handle.raw,
                p.as_ptr(),
                s.as_ptr(),
                child_io.handle.raw,
                c.as_ptr(),
                o.0,
            )
        };
        if ret < 0 {
            let from = format!("{}@{snap}", parent_io.describe(parent));
            let to = child_io.describe(child);
            let action = format!("clone {from} to {to}");
            if let Some(e) =
                super::create_defaults::data_pool_error(self.cluster(), &action, opts, ret)
            {
                return Err(e);
            }
            return Err(clone_error(&from, &to, ret, opts.clone_format));
        }
        Ok(())
    }
}

/// A failed `rbd_create4` of `object` (`pool[/ns]/name`); a taken name gets its own hint.
fn create_error(object: &str, ret: i32) -> Error {
    if ret == -libc::EEXIST {
        Error::ceph_with_hint(
            "create image",
            object,
            ret,
            "an image of that name already exists; choose another name or remove it first",
        )
    } else {
        Error::ceph("create image", object, ret)
    }
}

/// A failed `rbd_clone3` of `from` (`pool/image@snap`) to `to`: a taken name, and EINVAL
/// unless clone v2 was asked for (an unprotected snapshot under v1), get their own hints.
fn clone_error(from: &str, to: &str, ret: i32, format: Option<CloneFormat>) -> Error {
    let what = format!("{from} to {to}");
    match -ret {
        libc::EEXIST => {
            let hint = format!("{to} already exists; choose another name or remove it first");
            Error::ceph_with_hint("clone", what, ret, hint)
        }
        libc::EINVAL if format != Some(CloneFormat::V2) => Error::ceph_with_hint(
            "clone",
            what,
            ret,
            "the snapshot must be protected for clone v1 (`rbd snap protect`), or the parent lacks the layering feature",
        ),
        _ => Error::ceph("clone", what, ret),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(e: &Error) -> String {
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        s
    }

    #[test]
    fn create_onto_existing_keeps_eexist() {
        let e = create_error("rbd/x", -libc::EEXIST);
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let s = one_line(&e);
        assert!(s.starts_with("create image rbd/x: EEXIST"), "{s}");
        assert!(s.contains("already exists"), "{s}");
        assert_eq!(
            create_error("rbd/x", -libc::ENOSPC).errno(),
            Some(libc::ENOSPC)
        );
    }

    #[test]
    fn clone_errors_keep_their_errno() {
        let e = clone_error("rbd/p@s", "rbd/c", -libc::EEXIST, Some(CloneFormat::V2));
        assert_eq!(e.errno(), Some(libc::EEXIST));
        let s = one_line(&e);
        assert!(s.starts_with("clone rbd/p@s to rbd/c: EEXIST"), "{s}");
        assert!(s.contains("rbd/c already exists"), "{s}");

        let e = clone_error("rbd/p@s", "rbd/c", -libc::EINVAL, Some(CloneFormat::V1));
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert!(one_line(&e).contains("rbd snap protect"));
        // Under v2 protection is not the cause, so no protection hint.
        let e = clone_error("rbd/p@s", "rbd/c", -libc::EINVAL, Some(CloneFormat::V2));
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert!(!one_line(&e).contains("rbd snap protect"));
    }
}
