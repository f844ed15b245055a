//! Disks on a GlusterFS volume (`gluster://HOST[:PORT]/VOLUME/PATH`), read through libgfapi
//! without a mount: the source of `import-raw`, `convert` and `checksum` when a GlusterFS
//! volume's file moves into RBD. Its format is detected from the content and checked by the
//! same gate as a local file's ([`super::decide`]); raw and qcow2 are read, a qcow2 that names
//! a backing or data file is refused (the gate can only check where a file of this host lies).
//! Reads are synchronous `glfs_pread` calls made by the engine's decode threads, many at once.
use super::qcow2::{ByteSource, Qcow2};
use super::{decide, detect, DiskSource, Extent, Format, OpenOptions};
use crate::disk::source::{check_read_range, extents_by_seek};
use crate::error::{Error, Result};
use crate::gluster::volume::CONNECT_TIMEOUT;
use crate::gluster::{GFile, GlusterUrl, Volume};
use std::sync::Arc;

/// A file of a volume, opened read-only, its size taken once at open.
#[derive(Clone)]
pub struct GlusterBytes {
    file: Arc<GFile>,
    size: u64,
}

impl ByteSource for GlusterBytes {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let n = self
            .file
            .read_at(buf, offset)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if n < buf.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ends at {} bytes", self.file.name(), offset + n as u64),
            ));
        }
        Ok(())
    }
}

/// A raw disk on a volume: the file's bytes are the guest's.
pub struct GlusterRaw {
    bytes: GlusterBytes,
}

impl DiskSource for GlusterRaw {
    fn virtual_size(&self) -> u64 {
        self.bytes.size
    }

    /// Holes come from `SEEK_DATA` / `SEEK_HOLE` (`glfs_lseek`): GlusterFS has had the seek
    /// fop since 3.8 and the posix brick answers it from the brick file, so a sparse volume
    /// file is read only where it holds data. A volume whose graph cannot answer (`EINVAL`,
    /// `ENOTSUP`: an older server, a translator without seek) is read as all data; the zero
    /// scan still keeps its zeros out of the target.
    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.bytes.size);
        let file = &self.bytes.file;
        Ok(extents_by_seek(offset, end, |pos, whence| {
            file.seek(pos, whence)
        }))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let shown = self.bytes.file.name();
        check_read_range(shown, offset, buf.len(), self.bytes.size)?;
        self.bytes
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io(format!("read {shown} at offset {offset}"), e))
    }

    fn format_name(&self) -> &'static str {
        "raw"
    }
}

/// Opens the disk at `url` (a `gluster://` URL the user named): connects within
/// [`CONNECT_TIMEOUT`], detects the format and decides as for a local file.
pub fn open(url: &str, opts: &OpenOptions) -> Result<Box<dyn DiskSource>> {
    let url = GlusterUrl::parse(url)?;
    let shown = url.to_string();
    let vol = Volume::connect(&url, CONNECT_TIMEOUT)?;
    let file = vol.open(&url.abs_path(), false)?.ok_or_else(|| {
        Error::Other(format!(
            "{shown}: no such file on the volume; check the path (relative to the volume's root)"
        ))
    })?;
    let (size, _) = file.stat()?;
    let bytes = GlusterBytes {
        file: Arc::new(file),
        size,
    };
    let probe = detect::probe(&bytes).map_err(|e| match e {
        Error::Io { what, source } => Error::io(format!("{what} of {shown}"), source),
        other => other,
    })?;
    Ok(
        match decide(&shown, &probe, opts.format, opts.trust_declared_raw)? {
            Format::Raw | Format::Iso => Box::new(GlusterRaw { bytes }),
            Format::Qcow2 => Box::new(Qcow2::from_remote(Box::new(bytes), &shown)?),
            other @ (Format::Vmdk | Format::Vhd | Format::Vhdx) => {
                return Err(Error::bad_image(
                    &shown,
                    format!(
                        "{} on gluster://: only raw and qcow2 are read from a GlusterFS volume; copy it to a local file first",
                        other.name().to_uppercase()
                    ),
                ))
            }
        },
    )
}
