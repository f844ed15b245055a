//! Our own VHD reader (qemu's "vpc"): fixed disks (the guest bytes, then the footer) and
//! dynamic disks (a block allocation table of 2 MiB blocks by default). A differencing disk
//! names a parent: refused as any named file is by default, and as not supported with
//! `--allow-backing-files` (qemu's vpc driver does not follow parents either).
//!
//! The footer is read where qemu reads it: at offset 0 when it is there (dynamic disks keep a
//! copy there), else at the end; its checksum must match. Everything the dynamic header and
//! the table say is checked before use ([`dynamic`]). This module only reads.
pub mod dynamic;
pub mod footer;

pub use dynamic::Dynamic;
pub use footer::{DiskType, Footer};

use super::policy::FilePolicy;
use super::qcow2::{ByteSource, FileBytes};
use super::{DiskSource, Extent, ExtentKind};
use crate::disk::source::{check_read_range, push_extent};
use crate::error::{Error, Result};
use crate::text::escape;
use std::path::Path;

/// An open VHD.
pub struct Vhd {
    shown: String,
    file: Box<dyn ByteSource>,
    footer: Footer,
    /// The table of a dynamic disk (`None`: fixed).
    dynamic: Option<Dynamic>,
    /// A fixed disk read as a raw file (holes found by SEEK_DATA), when opened from a file.
    raw: Option<super::raw::RawFile>,
}

impl Vhd {
    /// Opens the VHD at `path`, which the user named; `files` decides what a differencing
    /// disk's refusal says (rbdkit reads no VHD parents).
    pub fn open(path: &Path, files: &FilePolicy) -> Result<Vhd> {
        let shown = path.display().to_string();
        let file = FileBytes::open(path, "image")?;
        let mut v = Self::build(Box::new(file), shown, Some(files))?;
        if v.dynamic.is_none() {
            let raw = super::raw::RawFile::open(path)?;
            v.raw = Some(raw.truncated(v.footer.size));
        }
        Ok(v)
    }

    /// Parses a VHD held in memory (`name` names it in errors): for fuzzing and tests.
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Vhd> {
        Self::build(Box::new(bytes), name.to_string(), None)
    }

    fn build(file: Box<dyn ByteSource>, shown: String, files: Option<&FilePolicy>) -> Result<Vhd> {
        let bad = |why: String| Error::bad_image(&shown, why);
        let size = file.size();
        if size < footer::LEN as u64 {
            return Err(bad(format!(
                "VHD file is {size} bytes, shorter than its footer: the file is truncated"
            )));
        }
        let mut raw = [0u8; footer::LEN];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| Error::io(format!("read {shown}"), e))?;
        if &raw[..8] != footer::COOKIE {
            file.read_exact_at(&mut raw, size - footer::LEN as u64)
                .map_err(|e| Error::io(format!("read {shown}"), e))?;
        }
        let footer = Footer::parse(&raw, &shown)?;
        let dynamic = match footer.disk_type {
            DiskType::Fixed => {
                if footer.size > size - footer::LEN as u64 {
                    return Err(bad(format!(
                        "fixed VHD of {} bytes, but the file holds {} before its footer: the file is truncated",
                        footer.size,
                        size - footer::LEN as u64
                    )));
                }
                None
            }
            DiskType::Dynamic | DiskType::Differencing => {
                let d = Dynamic::read(file.as_ref(), footer.data_offset, footer.size, &shown)?;
                if footer.disk_type == DiskType::Differencing {
                    let parent = d.parent.clone().unwrap_or_default();
                    return Err(refuse_parent(&shown, &parent, files));
                }
                Some(d)
            }
        };
        Ok(Vhd {
            shown,
            file,
            footer,
            dynamic,
            raw: None,
        })
    }

    /// The checked footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The table of a dynamic disk.
    pub fn dynamic(&self) -> Option<&Dynamic> {
        self.dynamic.as_ref()
    }
}

/// A differencing disk's refusal: the usual one without the flag, "not supported" with it.
fn refuse_parent(shown: &str, parent: &str, files: Option<&FilePolicy>) -> Error {
    let what = format!("names parent (backing file) '{}'", escape(parent));
    match files {
        Some(f) if f.allows_named_files() => Error::bad_image(
            shown,
            format!("differencing VHD {what}: VHD parents are not supported, convert it with qemu-img first"),
        ),
        Some(_) => Error::bad_image(
            shown,
            format!("differencing VHD {what}: refused, an image must not make rbdkit read other files (pass {} if you trust it, or flatten it with qemu-img convert first)", super::policy::ALLOW_FLAG),
        ),
        None => Error::bad_image(shown, format!("differencing VHD {what}, which an in-memory image cannot follow")),
    }
}

impl DiskSource for Vhd {
    fn virtual_size(&self) -> u64 {
        self.footer.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.footer.size);
        if let Some(raw) = &self.raw {
            return raw.extents(offset, end.saturating_sub(offset));
        }
        let Some(d) = &self.dynamic else {
            return Ok(super::extents_from_data(
                offset,
                end,
                [(0, self.footer.size)],
            ));
        };
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let next = ((pos / d.block_size + 1) * d.block_size).min(end);
            let kind = if d.host(pos).is_some() {
                ExtentKind::Data
            } else {
                ExtentKind::Unallocated
            };
            push_extent(&mut out, pos, next - pos, kind);
            pos = next;
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_read_range(&self.shown, offset, buf.len(), self.footer.size)?;
        let io = |e| Error::io(format!("read {}", self.shown), e);
        let Some(d) = &self.dynamic else {
            return self.file.read_exact_at(buf, offset).map_err(io);
        };
        let mut pos = 0usize;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let n = ((d.block_size - at % d.block_size) as usize).min(buf.len() - pos);
            match d.host(at) {
                // Dynamic::read checked every allocated block lies inside the file.
                Some(h) => self
                    .file
                    .read_exact_at(&mut buf[pos..pos + n], h)
                    .map_err(io)?,
                None => buf[pos..pos + n].fill(0),
            }
            pos += n;
        }
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "vhd"
    }
}
