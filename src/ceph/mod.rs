//! The only code that calls librados/librbd. Above this module everything speaks in
//! [`Cluster`], [`IoCtx`], [`Image`], [`ImageSpec`] and [`crate::Error`] — never raw pointers,
//! errno values or C strings.
//!
//! Thread-safety: librados cluster and ioctx handles and librbd image handles are documented
//! thread-safe by Ceph for the calls made here, so the wrappers are `Send + Sync`; each owner
//! keeps what it depends on alive (an image holds its ioctx, an ioctx holds its cluster).
mod aio;
mod ceph_args;
mod cluster;
mod create;
mod create_defaults;
mod features;
mod health;
mod image;
mod ioctx;
mod objects;
mod progress;
mod spec;

pub use aio::{AioDone, Completions};
pub use ceph_args::{check_client_id, client_id_from_name, Identity};
pub use cluster::{Cluster, ConnectOptions};
pub use create::{CloneFormat, CreateOptions};
pub use create_defaults::{check_striping, default_features};
pub use features::{
    check_requested, feature_names, flag_names, krbd_unsupported, op_feature_names, parse_feature,
    parse_features, Features,
};
pub use health::{explain_full, full_advice, full_condition};
pub use image::{ctime_string, Changed, Image, ImageInfo, LinkedImage, SnapInfo, Timestamps};
pub use ioctx::IoCtx;
pub use spec::ImageSpec;

use crate::error::{Error, Result};
use std::ffi::CString;

/// A C string for a name that came from the user; interior NULs are refused, not truncated.
pub(crate) fn cstr(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| {
        Error::InvalidInput(format!("{what} '{}' contains a NUL byte", s.escape_debug()))
    })
}

/// Turns a librados/librbd return code into `Ok(non-negative value)` or a `Ceph` error.
pub(crate) fn check(ret: i32, op: &str, object: &dyn std::fmt::Display) -> Result<i32> {
    if ret < 0 {
        Err(Error::ceph(op, object.to_string(), ret))
    } else {
        Ok(ret)
    }
}

/// The versions of librbd and librados this process runs against (loaded at run time, which
/// may differ from the headers it was built with), as `major.minor.extra`.
pub fn library_versions() -> (String, String) {
    let (mut a, mut b, mut c) = (0, 0, 0);
    // SAFETY: rbd_version only writes three ints through the pointers we pass, all valid.
    unsafe { librbd_sys::rbd_version(&mut a, &mut b, &mut c) };
    let rbd = format!("{a}.{b}.{c}");
    // SAFETY: rados_version only writes three ints through the pointers we pass, all valid.
    unsafe { librados_sys::rados_version(&mut a, &mut b, &mut c) };
    (rbd, format!("{a}.{b}.{c}"))
}
