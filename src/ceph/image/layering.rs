//! Layering as seen from an open image: its parent (image and snapshot), how much of the
//! parent still shows through (overlap), and its children. Making a clone is `IoCtx`'s job.
use super::{check, cstring_field, Image};
use crate::error::Result;
use librbd_sys as sys;
use serde::Serialize;

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

impl Image {
    /// Bytes of the parent still visible through this clone.
    pub fn overlap(&self) -> Result<u64> {
        let mut o = 0u64;
        // SAFETY: valid image and out-pointer.
        let ret = unsafe { sys::rbd_get_overlap(self.raw, &mut o) };
        check(ret, "read parent overlap of", &self.object)?;
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
}
