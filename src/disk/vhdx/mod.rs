//! Our own VHDX reader: fixed and dynamic disks (MS-VHDX). A differencing disk names a parent:
//! refused as any named file is by default, and as not supported with `--allow-backing-files`
//! (qemu does not read VHDX parents either). A log that needs replaying is refused as qemu
//! refuses it when it opens an image read-only, naming `qemu-img check -r all`, which replays it.
//!
//! Checked before use: the file identifier, both headers and region tables by CRC-32C
//! ([`header`]), the metadata items ([`metadata`]), the log ([`log`]) and every block of the
//! table ([`bat`]). Reads are positional and the table is immutable after open, so any number
//! of threads read at once. This module only reads.
pub mod bat;
pub mod crc;
pub mod header;
pub mod log;
pub mod metadata;

pub use bat::{Bat, Block};
pub use header::Layout;
pub use metadata::Metadata;

use super::policy::FilePolicy;
use super::qcow2::{ByteSource, FileBytes};
use super::{DiskSource, Extent, ExtentKind};
use crate::disk::source::{check_read_range, push_extent};
use crate::error::{Error, Result};
use std::path::Path;

/// An open VHDX.
pub struct Vhdx {
    shown: String,
    file: Box<dyn ByteSource>,
    meta: Metadata,
    bat: Bat,
}

impl Vhdx {
    /// Opens the VHDX at `path`, which the user named; `files` decides what a differencing
    /// disk's refusal says (rbdkit reads no VHDX parents).
    pub fn open(path: &Path, files: &FilePolicy) -> Result<Vhdx> {
        let shown = path.display().to_string();
        let file = FileBytes::open(path, "image")?;
        Self::build(Box::new(file), shown, Some(files))
    }

    /// Parses a VHDX held in memory (`name` names it in errors): for fuzzing and tests.
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Vhdx> {
        Self::build(Box::new(bytes), name.to_string(), None)
    }

    fn build(file: Box<dyn ByteSource>, shown: String, files: Option<&FilePolicy>) -> Result<Vhdx> {
        let layout = Layout::read(file.as_ref(), &shown)?;
        let meta = Metadata::read(file.as_ref(), layout.metadata, &shown)?;
        if meta.has_parent {
            let why = match files {
                Some(f) if f.allows_named_files() => {
                    "differencing VHDX (it has a parent): VHDX parents are not supported, convert it with qemu-img first".to_string()
                }
                Some(_) => format!(
                    "differencing VHDX names a parent: refused, an image must not make rbdkit read other files (pass {} if you trust it, or flatten it with qemu-img convert first)",
                    super::policy::ALLOW_FLAG
                ),
                None => "differencing VHDX names a parent, which an in-memory image cannot follow".to_string(),
            };
            return Err(Error::bad_image(&shown, why));
        }
        log::check(file.as_ref(), &layout, &shown)?;
        let bat = Bat::read(
            file.as_ref(),
            layout.bat,
            &meta,
            &[layout.bat, layout.metadata, layout.log],
            &shown,
        )?;
        Ok(Vhdx {
            shown,
            file,
            meta,
            bat,
        })
    }

    /// The checked metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The checked block table.
    pub fn bat(&self) -> &Bat {
        &self.bat
    }
}

impl DiskSource for Vhdx {
    fn virtual_size(&self) -> u64 {
        self.meta.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.meta.size);
        let bs = self.bat.block_size();
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let next = ((pos / bs + 1) * bs).min(end);
            let kind = match self.bat.block(pos / bs) {
                Block::At(_) => ExtentKind::Data,
                Block::Zero => ExtentKind::Zero,
                Block::Unallocated => ExtentKind::Unallocated,
            };
            push_extent(&mut out, pos, next - pos, kind);
            pos = next;
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_read_range(&self.shown, offset, buf.len(), self.meta.size)?;
        let bs = self.bat.block_size();
        let mut pos = 0usize;
        while pos < buf.len() {
            let at = offset + pos as u64;
            let n = ((bs - at % bs) as usize).min(buf.len() - pos);
            match self.bat.block(at / bs) {
                // Bat::read checked every present block's guest bytes lie inside the file.
                Block::At(host) => self
                    .file
                    .read_exact_at(&mut buf[pos..pos + n], host + at % bs)
                    .map_err(|e| Error::io(format!("read {}", self.shown), e))?,
                Block::Zero | Block::Unallocated => buf[pos..pos + n].fill(0),
            }
            pos += n;
        }
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "vhdx"
    }
}
