//! Virtual disks as the reading side sees them: a size, extents in guest order and bytes at
//! guest offsets. Formats: raw files (`raw`), qcow2 (`qcow2`) and VMDK (`vmdk`); RBD images,
//! to read back.
//! `detect` recognises every container (VMDK, VHD, VHDX, VDI, QED, LUKS, ISO too) from content.
//! Nothing here writes; nothing here trusts a size or offset read from a file.
pub mod changed;
pub mod detect;
#[cfg(feature = "gluster")]
pub mod gluster;
pub mod inspect;
pub mod mapped;
pub mod policy;
pub mod qcow2;
pub mod raw;
#[cfg(feature = "rbd")]
pub mod rbd;
pub mod source;
pub mod vhd;
pub mod vhdx;
pub mod vmdk;

pub use policy::FilePolicy;
pub use source::{
    check_read_range, extents_from_data, push_extent, DiskSource, Extent, ExtentKind,
};

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;
use std::str::FromStr;

/// A disk image format rbdkit reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Bytes as the guest sees them.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// VMware: monolithicSparse, streamOptimized, and descriptor files naming local extents.
    Vmdk,
    /// Microsoft VHD (qemu's vpc): fixed and dynamic.
    Vhd,
    /// Microsoft VHDX: fixed and dynamic.
    Vhdx,
    /// An ISO 9660 / UDF disc image, read as its raw bytes. Only when declared (Glance's
    /// `disk_format` iso): undeclared, an ISO is refused like any container, so an installer
    /// disc never becomes a volume by accident.
    Iso,
}

impl Format {
    /// The name qemu-img and Glance use.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Iso => "iso",
        }
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            "vmdk" => Ok(Format::Vmdk),
            "vhd" | "vpc" => Ok(Format::Vhd),
            "vhdx" => Ok(Format::Vhdx),
            "iso" => Ok(Format::Iso),
            _ => Err(Error::InvalidInput(format!(
                "unknown source format '{s}': use qcow2, vmdk, vhd, vhdx, raw or iso"
            ))),
        }
    }
}

/// The qcow2 magic, "QFI\xfb".
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// How to open an image the user named: its declared format, and what it may make us open.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// The format the user declared (`--source-format`); `None` detects it from the content.
    pub format: Option<Format>,
    /// With `format` raw: the bytes are a raw disk even if they look like a container (a raw
    /// disk may hold anything, a qcow2 file's bytes included). Without it a declared raw
    /// image whose content is a container is refused (OSSA-2024-002).
    pub trust_declared_raw: bool,
    /// Which backing and data files the image may name (default: none).
    pub files: FilePolicy,
}

/// The format rbdkit reads `shown` as, from what a probe of its content found and what the
/// user declared: a container rbdkit does not read is refused by name, never taken for raw;
/// content that matches two formats is refused; a declaration the content contradicts is
/// refused unless `trust_declared_raw` says the bytes are a raw disk whatever they look like.
pub fn decide(
    shown: &str,
    probe: &detect::Probe,
    declared: Option<Format>,
    trust_declared_raw: bool,
) -> Result<Format> {
    if declared == Some(Format::Raw) && trust_declared_raw {
        return Ok(Format::Raw);
    }
    if probe.is_ambiguous() {
        let names: Vec<&str> = probe.matches.iter().map(|m| m.name()).collect();
        return Err(Error::bad_image(
            shown,
            format!(
                "the content matches several formats ({}): refused, as an image hiding one header in another (convert it with qemu-img after checking it)",
                names.join(", ")
            ),
        ));
    }
    use detect::Container as C;
    let refuse = |why: String| Err(Error::bad_image(shown, why));
    match (declared, probe.container) {
        (None | Some(Format::Raw), C::Raw) => Ok(Format::Raw),
        (None | Some(Format::Qcow2), C::Qcow2) => Ok(Format::Qcow2),
        (None | Some(Format::Vmdk), C::Vmdk) => Ok(Format::Vmdk),
        (None | Some(Format::Vhd), C::Vhd) => Ok(Format::Vhd),
        (None | Some(Format::Vhdx), C::Vhdx) => Ok(Format::Vhdx),
        (Some(Format::Iso), C::Iso) => Ok(Format::Iso),
        (None, C::Iso) => refuse(
            "ISO 9660 disc image: pass --source-format iso to copy it as a raw disk (Glance's disk_format iso)".into(),
        ),
        (Some(Format::Iso), found) => refuse(format!(
            "declared iso, but the content is {}: refused (check the image, or drop --source-format)",
            found.display()
        )),
        (Some(Format::Raw), found) => refuse(format!(
            "declared raw, but the content is a {} image: refused ({}, or add --trust-declared-raw if the bytes really are a raw disk)",
            found.display(),
            match found {
                C::Qcow2 => "drop --source-format raw to read it as qcow2",
                C::Vmdk => "drop --source-format raw to read it as VMDK",
                C::Vhd => "drop --source-format raw to read it as VHD",
                C::Vhdx => "drop --source-format raw to read it as VHDX",
                _ => "convert it with qemu-img first",
            }
        )),
        (Some(Format::Qcow2), C::Raw) => refuse(
            "declared qcow2, but the content has no qcow2 header: refused (check the image, or drop --source-format)".into(),
        ),
        (Some(declared @ (Format::Vmdk | Format::Vhd | Format::Vhdx)), found) => refuse(format!(
            "declared {}, but the content is {}: refused (check the image, or drop --source-format)",
            declared.name(),
            found.display()
        )),
        (_, found) => refuse(format!(
            "{}: not supported yet, convert it with qemu-img first (qemu-img convert -O raw or -O qcow2)",
            found.display()
        )),
    }
}

/// Opens a disk image the user named (a path, or a `gluster://` URL): its format detected
/// from the content and checked against the declared one, then opened with its named files
/// as `opts` allows.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Box<dyn DiskSource>> {
    let shown = path.display().to_string();
    if shown.starts_with("gluster://") {
        #[cfg(feature = "gluster")]
        return gluster::open(&shown, opts);
        #[cfg(not(feature = "gluster"))]
        return Err(Error::InvalidInput(format!(
            "{shown}: this build has no GlusterFS support (feature gluster)"
        )));
    }
    let probe =
        detect::probe(&qcow2::FileBytes::open(path, "image")?).map_err(|e| with_name(e, &shown))?;
    let format = decide(&shown, &probe, opts.format, opts.trust_declared_raw)?;
    Ok(match format {
        Format::Raw | Format::Iso => Box::new(raw::RawFile::open(path)?),
        Format::Qcow2 => Box::new(qcow2::Qcow2::open(path, &opts.files)?),
        Format::Vmdk => Box::new(vmdk::Vmdk::open(path, &opts.files)?),
        Format::Vhd => Box::new(vhd::Vhd::open(path, &opts.files)?),
        Format::Vhdx => Box::new(vhdx::Vhdx::open(path, &opts.files)?),
    })
}

/// A probe's read error, with the file named.
fn with_name(e: Error, shown: &str) -> Error {
    match e {
        Error::Io { what, source } => Error::io(format!("{what} of {shown}"), source),
        other => other,
    }
}

/// Walks a disk the way the copy engine does and reports the first error: maps it window by
/// window, reads every data extent until `max_bytes` have been read, and reads the first
/// 4 KiB of every zero or unallocated extent (which goes through the backing chain). Only the
/// first [`SCAN_MAX_WINDOWS`] windows of [`SCAN_WINDOW`] bytes and the last one are visited, and
/// at most [`SCAN_MAX_EXTENTS`] extents, so a huge or pathologically fragmented disk ends the
/// walk early rather than running for hours. For fuzzing and replaying fuzz inputs.
pub fn scan(disk: &dyn DiskSource, max_bytes: u64) -> Result<()> {
    let size = disk.virtual_size();
    let mut buf = vec![0u8; 1 << 20];
    let (mut budget, mut extents) = (max_bytes, 0usize);
    // The first windows, then the last one (the far end of the L1 table).
    let last = size.saturating_sub(1) / SCAN_WINDOW * SCAN_WINDOW;
    let windows = (0..SCAN_MAX_WINDOWS)
        .map(|i| i * SCAN_WINDOW)
        .take_while(|&w| w < size)
        .chain((size / SCAN_WINDOW >= SCAN_MAX_WINDOWS).then_some(last));
    for window in windows {
        for e in disk.extents(window, SCAN_WINDOW)? {
            extents += 1;
            if extents > SCAN_MAX_EXTENTS {
                return Ok(());
            }
            let want = match e.kind {
                ExtentKind::Data => e.len.min(budget),
                ExtentKind::Zero | ExtentKind::Unallocated => e.len.min(4096),
                ExtentKind::Unchanged => 0,
            };
            let mut off = e.offset;
            while off < e.offset + want {
                let n = (e.offset + want - off).min(buf.len() as u64) as usize;
                disk.read_at(off, &mut buf[..n])?;
                off += n as u64;
            }
            if e.kind == ExtentKind::Data {
                budget -= want;
            }
        }
    }
    Ok(())
}

/// Bytes of guest disk mapped per [`scan`] step.
pub const SCAN_WINDOW: u64 = 64 << 20;
/// Windows [`scan`] visits from the start of the disk (4 GiB), before the last one.
pub const SCAN_MAX_WINDOWS: u64 = 64;
/// Most extents [`scan`] visits.
pub const SCAN_MAX_EXTENTS: usize = 1 << 16;

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
