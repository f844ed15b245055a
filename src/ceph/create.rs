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
    /// Feature bits; `None` means layering only (what a kernel client can map).
    pub features: Option<u64>,
    /// Object size as a power of two (22 = 4 MiB); `None` uses the cluster default.
    pub order: Option<u8>,
    /// Stripe unit in bytes (with `stripe_count`), for fancy striping.
    pub stripe_unit: Option<u64>,
    /// Objects striped over.
    pub stripe_count: Option<u64>,
    /// Clone format for clones (1 needs a protected snapshot, 2 does not).
    pub clone_format: Option<CloneFormat>,
}

/// RBD clone format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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
        let io = self;
        let c_name = cstr("image name", name)?;
        let o = ImageOptions::new(opts)?;
        // SAFETY: valid ioctx, C string and options handle for the call.
        let ret = unsafe { sys::rbd_create4(io.handle.raw, c_name.as_ptr(), size, o.0) };
        if ret == -libc::EEXIST {
            return Err(Error::Other(format!(
                "create image {}: EEXIST — an image of that name already exists; choose another name or remove it first",
                io.describe(name)
            )));
        }
        check(ret, "create image", &io.describe(name)).map(|_| ())
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
        let what = format!(
            "{}@{snap} to {}",
            parent_io.describe(parent),
            child_io.describe(child)
        );
        match -ret {
            libc::EEXIST => Err(Error::Other(format!(
                "clone {what}: EEXIST — {} already exists; choose another name or remove it first",
                child_io.describe(child)
            ))),
            libc::EINVAL if opts.clone_format != Some(CloneFormat::V2) => Err(Error::Other(format!(
                "clone {what}: EINVAL — the snapshot must be protected for clone v1 (`rbd snap protect`), or the parent lacks the layering feature"
            ))),
            _ => check(ret, "clone", &what).map(|_| ()),
        }
    }
}
