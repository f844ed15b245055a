//! RBD images: create, open (RAII), stat, snapshots, parent and children, resize, flatten,
//! clone, rename, remove, and the async I/O entry points.
use super::aio::{self, Completions, InFlight, Request};
use super::progress::{with_progress, ProgressFn};
use super::{check, cstr, IoCtx};
use crate::error::{Error, Result};
use librbd_sys as sys;
use serde::Serialize;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::Arc;

/// Options for a new image (format 2 always).
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Feature bits; `None` means the cluster config's `rbd_default_features` when an operator
    /// set it for a new image ([`create_image`]), otherwise layering only (what any kernel
    /// client can map). Clones take layering only.
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

/// RBD clone format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CloneFormat {
    /// v1: parent snapshot must be protected.
    V1,
    /// v2: no protection needed (require-min-compat-client >= mimic).
    V2,
}

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

/// An image at the other end of a parent/child link.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LinkedImage {
    /// Pool name.
    pub pool: String,
    /// Namespace ("" for none).
    pub namespace: String,
    /// Image name.
    pub image: String,
    /// Image id.
    pub image_id: String,
    /// Snapshot name (for parents).
    pub snap: Option<String>,
    /// In the trash.
    pub trash: bool,
}

impl LinkedImage {
    /// `pool[/ns]/image[@snap]`.
    pub fn spec(&self) -> String {
        let mut s = self.pool.clone();
        if !self.namespace.is_empty() {
            s.push('/');
            s.push_str(&self.namespace);
        }
        s.push('/');
        s.push_str(&self.image);
        if let Some(snap) = &self.snap {
            s.push('@');
            s.push_str(snap);
        }
        s
    }
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
            // SAFETY: self.0 is a live options handle; librbd copies the string.
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

/// Creates a format-2 image (layering only unless told otherwise). Refuses to overwrite.
pub fn create_image(io: &IoCtx, name: &str, size: u64, opts: &CreateOptions) -> Result<()> {
    let c_name = cstr("image name", name)?;
    let opts = super::create_defaults::resolve(io.cluster(), opts)?;
    let o = ImageOptions::new(&opts)?;
    // SAFETY: valid ioctx, C string and options handle for the call.
    let ret = unsafe { sys::rbd_create4(io.handle.raw, c_name.as_ptr(), size, o.0) };
    if ret == -libc::ENOENT {
        if let Some(e) = super::create_defaults::missing_data_pool(io, name, &opts) {
            return Err(e);
        }
    }
    if ret == -libc::EEXIST {
        return Err(Error::Other(format!(
            "create image {}: EEXIST — an image of that name already exists; choose another name or remove it first",
            io.describe(name)
        )));
    }
    check(ret, "create image", &io.describe(name)).map(|_| ())
}

/// Clones `parent@snap` into `child` (clone format and features from `opts`).
pub fn clone_image(
    parent_io: &IoCtx,
    parent: &str,
    snap: &str,
    child_io: &IoCtx,
    child: &str,
    opts: &CreateOptions,
) -> Result<()> {
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

/// Removes an image (refuses, clearly, while it has snapshots or children).
pub fn remove_image(io: &IoCtx, name: &str) -> Result<()> {
    let c_name = cstr("image name", name)?;
    // SAFETY: valid ioctx and C string.
    let ret = unsafe { sys::rbd_remove(io.handle.raw, c_name.as_ptr()) };
    // The errno stays in the error (callers retry on EBUSY); the hints name the usual causes.
    check(ret, "remove image", &io.describe(name)).map(|_| ())
}

/// Renames an image within its pool.
pub fn rename_image(io: &IoCtx, from: &str, to: &str) -> Result<()> {
    let (f, t) = (cstr("image name", from)?, cstr("image name", to)?);
    // SAFETY: valid ioctx and C strings.
    let ret = unsafe { sys::rbd_rename(io.handle.raw, f.as_ptr(), t.as_ptr()) };
    let what = format!("{} to {to}", io.describe(from));
    if ret == -libc::EEXIST {
        return Err(Error::Other(format!(
            "rename image {what}: EEXIST — {} already exists",
            io.describe(to)
        )));
    }
    check(ret, "rename image", &what).map(|_| ())
}

/// Whether an image of that name exists in the pool.
pub fn image_exists(io: &IoCtx, name: &str) -> Result<bool> {
    let c_name = cstr("image name", name)?;
    let mut raw: sys::rbd_image_t = ptr::null_mut();
    // SAFETY: valid ioctx, C string and out-pointer; a successfully opened image is closed below.
    let ret =
        unsafe { sys::rbd_open_read_only(io.handle.raw, c_name.as_ptr(), &mut raw, ptr::null()) };
    if ret == -libc::ENOENT {
        return Ok(false);
    }
    check(ret, "look up image", &io.describe(name))?;
    // SAFETY: raw was opened just above and is closed exactly once.
    unsafe { sys::rbd_close(raw) };
    Ok(true)
}

/// Names of the images in a pool (namespace).
pub fn list_images(io: &IoCtx) -> Result<Vec<String>> {
    let mut cap = 64usize;
    loop {
        let mut specs: Vec<sys::rbd_image_spec_t> = vec![sys::rbd_image_spec_t::default(); cap];
        let mut n = cap;
        // SAFETY: specs has room for n entries; on success librbd fills n and we free them below.
        let ret = unsafe { sys::rbd_list2(io.handle.raw, specs.as_mut_ptr(), &mut n) };
        if ret == -libc::ERANGE && n > cap {
            cap = n;
            continue;
        }
        check(
            ret,
            "list images in",
            &io.describe("").trim_end_matches('/'),
        )?;
        let names = specs[..n]
            .iter()
            // SAFETY: librbd filled these with valid C strings.
            .map(|s| unsafe { cstring_field(s.name) })
            .collect();
        // SAFETY: frees exactly the n entries librbd filled.
        unsafe { sys::rbd_image_spec_list_cleanup(specs.as_mut_ptr(), n) };
        return Ok(names);
    }
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

/// An open image; closed (after waiting for its async requests) when dropped.
pub struct Image {
    raw: sys::rbd_image_t,
    io: IoCtx,
    name: String,
    snap: Option<String>,
    object: Arc<str>,
    in_flight: Arc<InFlight>,
}

// SAFETY: librbd image handles are thread-safe for the calls made here (Ceph's own tools issue
// aio from several threads on one handle); the ioctx it uses is kept alive by `io`.
unsafe impl Send for Image {}
// SAFETY: as above.
unsafe impl Sync for Image {}

impl Image {
    /// The librbd handle, for the calls made in sibling modules (`diff.rs`).
    pub(crate) fn raw(&self) -> sys::rbd_image_t {
        self.raw
    }

    /// Opens an image read-write (or read-only at a snapshot when `snap` is given).
    pub fn open(io: &IoCtx, name: &str, snap: Option<&str>) -> Result<Image> {
        Self::open_impl(io, name, snap, snap.is_some())
    }

    /// Opens an image read-only (takes no exclusive lock; fine for info and reads).
    pub fn open_read_only(io: &IoCtx, name: &str, snap: Option<&str>) -> Result<Image> {
        Self::open_impl(io, name, snap, true)
    }

    fn open_impl(io: &IoCtx, name: &str, snap: Option<&str>, read_only: bool) -> Result<Image> {
        let c_name = cstr("image name", name)?;
        let c_snap = snap.map(|s| cstr("snapshot name", s)).transpose()?;
        let snap_ptr = c_snap.as_ref().map_or(ptr::null(), |s| s.as_ptr());
        let mut raw: sys::rbd_image_t = ptr::null_mut();
        // SAFETY: valid ioctx, C strings (or NULL snap) and out-pointer.
        let ret = unsafe {
            if read_only {
                sys::rbd_open_read_only(io.handle.raw, c_name.as_ptr(), &mut raw, snap_ptr)
            } else {
                sys::rbd_open(io.handle.raw, c_name.as_ptr(), &mut raw, snap_ptr)
            }
        };
        let mut object = io.describe(name);
        if let Some(s) = snap {
            object.push('@');
            object.push_str(s);
        }
        if ret == -libc::ENOENT {
            let what = if snap.is_some() {
                "no such image or snapshot"
            } else {
                "no such image"
            };
            return Err(Error::Other(format!(
                "open image {object}: ENOENT — {what}; check with `rbd ls {}`{}",
                io.pool(),
                if snap.is_some() {
                    format!(" and `rbd snap ls {}`", io.describe(name))
                } else {
                    String::new()
                }
            )));
        }
        check(ret, "open image", &object)?;
        Ok(Image {
            raw,
            io: io.clone(),
            name: name.to_string(),
            snap: snap.map(str::to_string),
            object: object.into(),
            in_flight: Arc::default(),
        })
    }

    /// `pool[/ns]/image[@snap]` for messages.
    pub fn describe(&self) -> &str {
        &self.object
    }

    /// The image name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool it lives in.
    pub fn ioctx(&self) -> &IoCtx {
        &self.io
    }

    /// The snapshot it was opened at, if any.
    pub fn snap(&self) -> Option<&str> {
        self.snap.as_deref()
    }

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
        check(
            unsafe { sys::rbd_get_features(self.raw, &mut f) },
            "read features of",
            &self.object,
        )?;
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
        check(
            unsafe { sys::rbd_get_op_features(self.raw, &mut f) },
            "read op features of",
            &self.object,
        )?;
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
        check(
            unsafe { sys::rbd_get_old_format(self.raw, &mut old) },
            "read format of",
            &self.object,
        )?;
        Ok(if old != 0 { 1 } else { 2 })
    }

    /// Image flags (`RBD_FLAG_*`: object map or fast diff invalid).
    pub fn flags(&self) -> Result<u64> {
        let mut f = 0u64;
        // SAFETY: valid image and out-pointer.
        check(
            unsafe { sys::rbd_get_flags(self.raw, &mut f) },
            "read flags of",
            &self.object,
        )?;
        Ok(f)
    }

    /// Stripe unit in bytes and stripe count.
    pub fn striping(&self) -> Result<(u64, u64)> {
        let (mut unit, mut count) = (0u64, 0u64);
        // SAFETY: valid image and out-pointer.
        check(
            unsafe { sys::rbd_get_stripe_unit(self.raw, &mut unit) },
            "read stripe unit of",
            &self.object,
        )?;
        // SAFETY: valid image and out-pointer.
        check(
            unsafe { sys::rbd_get_stripe_count(self.raw, &mut count) },
            "read stripe count of",
            &self.object,
        )?;
        Ok((unit, count))
    }

    /// Create, access and modify times in seconds since the epoch (0 when librbd has none).
    pub fn timestamps(&self) -> Result<Timestamps> {
        let mut t = [sys::timespec::default(); 3];
        // SAFETY: valid image and out-structs.
        check(
            unsafe { sys::rbd_get_create_timestamp(self.raw, &mut t[0]) },
            "read create timestamp of",
            &self.object,
        )?;
        // SAFETY: as above.
        check(
            unsafe { sys::rbd_get_access_timestamp(self.raw, &mut t[1]) },
            "read access timestamp of",
            &self.object,
        )?;
        // SAFETY: as above.
        check(
            unsafe { sys::rbd_get_modify_timestamp(self.raw, &mut t[2]) },
            "read modify timestamp of",
            &self.object,
        )?;
        Ok(Timestamps {
            create: t[0].tv_sec,
            access: t[1].tv_sec,
            modify: t[2].tv_sec,
        })
    }

    /// Bytes of the parent still visible through this clone.
    pub fn overlap(&self) -> Result<u64> {
        let mut o = 0u64;
        // SAFETY: valid image and out-pointer.
        check(
            unsafe { sys::rbd_get_overlap(self.raw, &mut o) },
            "read parent overlap of",
            &self.object,
        )?;
        Ok(o)
    }

    /// The parent image and snapshot, or `None` for an image that is not a clone.
    pub fn parent(&self) -> Result<Option<LinkedImage>> {
        let mut img = sys::rbd_linked_image_spec_t::default();
        let mut snap = sys::rbd_snap_spec_t::default();
        // SAFETY: valid out-structs; cleaned up below with the matching cleanup calls.
        let ret = unsafe { sys::rbd_get_parent(self.raw, &mut img, &mut snap) };
        if ret == -libc::ENOENT {
            return Ok(None);
        }
        check(ret, "read parent of", &self.object)?;
        // SAFETY: librbd filled both structs with valid C strings (or NULL).
        let linked = unsafe {
            let l = LinkedImage {
                pool: cstring_field(img.pool_name),
                namespace: cstring_field(img.pool_namespace),
                image: cstring_field(img.image_name),
                image_id: cstring_field(img.image_id),
                snap: Some(cstring_field(snap.name)),
                trash: img.trash,
            };
            sys::rbd_linked_image_spec_cleanup(&mut img);
            sys::rbd_snap_spec_cleanup(&mut snap);
            l
        };
        Ok(Some(linked))
    }

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

    /// Clones of this image (of the snapshot it was opened at, or of all its snapshots).
    pub fn children(&self) -> Result<Vec<LinkedImage>> {
        let mut cap = 16usize;
        loop {
            let mut specs = vec![sys::rbd_linked_image_spec_t::default(); cap];
            let mut n = cap;
            // SAFETY: specs has room for n entries; cleaned up below.
            let ret = unsafe { sys::rbd_list_children3(self.raw, specs.as_mut_ptr(), &mut n) };
            if ret == -libc::ERANGE && n > cap {
                cap = n;
                continue;
            }
            check(ret, "list children of", &self.object)?;
            let out = specs[..n]
                .iter()
                // SAFETY: librbd filled n entries with valid C strings.
                .map(|s| unsafe {
                    LinkedImage {
                        pool: cstring_field(s.pool_name),
                        namespace: cstring_field(s.pool_namespace),
                        image: cstring_field(s.image_name),
                        image_id: cstring_field(s.image_id),
                        snap: None,
                        trash: s.trash,
                    }
                })
                .collect();
            // SAFETY: frees the n entries librbd filled.
            unsafe { sys::rbd_linked_image_spec_list_cleanup(specs.as_mut_ptr(), n) };
            return Ok(out);
        }
    }

    /// Resizes (grows or shrinks) with progress.
    pub fn resize(&self, size: u64, progress: ProgressFn<'_>) -> Result<()> {
        // SAFETY: valid image; the trampoline and its argument live for the synchronous call.
        let ret = with_progress(progress, |cb, arg| unsafe {
            sys::rbd_resize_with_progress(self.raw, size, Some(cb), arg)
        });
        check(ret, "resize image", &self.object).map(|_| ())
    }

    /// Copies all parent data into this clone and detaches it from the parent, with progress.
    pub fn flatten(&self, progress: ProgressFn<'_>) -> Result<()> {
        // SAFETY: valid image; the trampoline and its argument live for the synchronous call.
        let ret = with_progress(progress, |cb, arg| unsafe {
            sys::rbd_flatten_with_progress(self.raw, Some(cb), arg)
        });
        check(ret, "flatten image", &self.object).map(|_| ())
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

    /// Blocks until all writes so far are stable.
    pub fn flush(&self) -> Result<()> {
        // SAFETY: valid image.
        check(
            unsafe { sys::rbd_flush(self.raw) },
            "flush image",
            &self.object,
        )
        .map(|_| ())
    }

    fn request(
        &self,
        tag: u64,
        buf: Vec<u8>,
        op: &'static str,
        offset: u64,
        q: &Completions,
    ) -> Request {
        Request {
            tag,
            buf,
            op,
            object: self.object.clone(),
            offset,
            queue: q.clone(),
            in_flight: self.in_flight.clone(),
        }
    }

    /// Starts writing `buf` at `offset`; the result and the buffer arrive on `q` with `tag`.
    pub fn aio_write(&self, offset: u64, buf: Vec<u8>, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(self.request(tag, buf, "write", offset, q), |c, p, len| {
            // SAFETY: p/len describe the request's buffer, kept alive and unmodified until the
            // callback (which is what zero-copy writes, see ConnectOptions::bulk_writes, need).
            unsafe { sys::rbd_aio_write2(raw, offset, len, p as *const c_char, c, 0) }
        })
    }

    /// Reads `buf.len()` bytes at `offset` (never-written ranges read as zeros); blocks.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        // SAFETY: buf is a live, writable slice of buf.len() bytes for the whole call; librbd
        // writes at most that many bytes into it before returning.
        let ret = unsafe {
            sys::rbd_read2(
                self.raw,
                offset,
                buf.len(),
                buf.as_mut_ptr() as *mut c_char,
                0,
            )
        };
        if ret < 0 {
            return Err(Error::ceph("read", self.object.to_string(), ret as i32));
        }
        if ret as usize != buf.len() {
            return Err(Error::Other(format!(
                "read {}: {ret} of {} bytes at offset {offset} (past the end of the image?)",
                self.object,
                buf.len()
            )));
        }
        Ok(())
    }

    /// Starts reading `buf.len()` bytes at `offset` into `buf`.
    pub fn aio_read(&self, offset: u64, buf: Vec<u8>, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(self.request(tag, buf, "read", offset, q), |c, p, len| {
            // SAFETY: p/len describe the request's writable buffer, kept alive until the callback.
            unsafe { sys::rbd_aio_read(raw, offset, len, p as *mut c_char, c) }
        })
    }

    /// Starts discarding `len` bytes at `offset`.
    pub fn aio_discard(&self, offset: u64, len: u64, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(
            self.request(tag, Vec::new(), "discard", offset, q),
            |c, _, _| {
                // SAFETY: valid image and completion; no buffer involved.
                unsafe { sys::rbd_aio_discard(raw, offset, len, c) }
            },
        )
    }

    /// Starts writing `len` zero bytes at `offset` (may deallocate).
    pub fn aio_write_zeroes(&self, offset: u64, len: u64, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        let len_usize = usize::try_from(len)
            .map_err(|_| Error::InvalidInput(format!("zero range {len} too large")))?;
        aio::submit(
            self.request(tag, Vec::new(), "write zeroes", offset, q),
            |c, _, _| {
                // SAFETY: valid image and completion; no buffer involved.
                unsafe { sys::rbd_aio_write_zeroes(raw, offset, len_usize, c, 0, 0) }
            },
        )
    }

    /// Starts a flush; completes when everything written before it is stable.
    pub fn aio_flush(&self, tag: u64, q: &Completions) -> Result<()> {
        let raw = self.raw;
        aio::submit(self.request(tag, Vec::new(), "flush", 0, q), |c, _, _| {
            // SAFETY: valid image and completion.
            unsafe { sys::rbd_aio_flush(raw, c) }
        })
    }

    /// Closes the image, reporting a failed close (Drop would only log-and-ignore it).
    pub fn close(mut self) -> Result<()> {
        // Drop runs afterwards and finds nothing left to close.
        self.close_raw()
    }

    fn close_raw(&mut self) -> Result<()> {
        self.in_flight.wait_idle();
        if self.raw.is_null() {
            return Ok(());
        }
        // SAFETY: raw is open, nothing is in flight on it, and it is closed exactly once.
        let ret = unsafe { sys::rbd_close(self.raw) };
        self.raw = ptr::null_mut();
        check(ret, "close image", &self.object).map(|_| ())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = self.close_raw();
    }
}

/// Copies a possibly-NULL C string owned by librbd.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
unsafe fn cstring_field(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}
