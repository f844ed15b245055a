//! Our own VMDK reader: a monolithicSparse or streamOptimized image (one hosted sparse extent
//! with its descriptor embedded; grains plain or deflate-compressed, with or without markers,
//! the header in a footer at the end), and, only as the caller's [`FilePolicy`] allows, a
//! descriptor file whose extents are local FLAT/VMFS or SPARSE files (monolithicFlat, vmfs,
//! twoGbMaxExtentSparse, twoGbMaxExtentFlat). VMDK3 (COWD), seSparse, vmfsSparse and delta
//! images (a parent) are refused by name.
//!
//! The create types Glance's format_inspector refuses are refused too unless the user allowed
//! named files: an embedded descriptor must say monolithicSparse or streamOptimized (or
//! nothing), and a descriptor file names other files, which goes through the same gate and
//! containment rules as a qcow2 backing file.
//!
//! Nothing read from the image is trusted: the header is checked ([`header`]), the grain
//! directory and tables are read whole at open and checked against the file and against each
//! other ([`tables`]), and each compressed grain is checked as it is decoded ([`grain`]).
//! Reads are safe from many threads at once: the tables are immutable after open and bytes
//! come from positional reads. This module only reads.
pub mod descriptor;
pub mod grain;
pub mod header;
pub mod stream;
pub mod tables;

pub use descriptor::{Descriptor, ExtentLine, ExtentType};
pub use header::SparseHeader;
pub use stream::VmdkStream;
pub use tables::{Grain, GrainTables};

use super::policy::FilePolicy;
use super::qcow2::{ByteSource, FileBytes};
use super::{DiskSource, Extent, ExtentKind};
use crate::disk::source::{check_read_range, push_extent};
use crate::error::{Error, Result};
use crate::text::escape;
use header::SECTOR;
use std::path::Path;

/// The create types a self-contained sparse file may declare (what Glance accepts).
const ONE_FILE_TYPES: [&str; 2] = ["monolithicSparse", "streamOptimized"];
/// The create types of a descriptor file whose extents rbdkit reads (when allowed).
const DESCRIPTOR_TYPES: [&str; 4] = [
    "monolithicFlat",
    "vmfs",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
];

/// An open VMDK image.
pub struct Vmdk {
    shown: String,
    size: u64,
    create_type: String,
    parts: Vec<Part>,
}

/// One extent, at a guest offset.
struct Part {
    start: u64,
    len: u64,
    body: Body,
}

enum Body {
    /// Raw bytes of a file from `offset`.
    Flat {
        file: Box<dyn ByteSource>,
        offset: u64,
        shown: String,
    },
    /// A hosted sparse extent.
    Sparse(Box<Sparse>),
}

/// A hosted sparse extent: its checked header and tables.
pub struct Sparse {
    file: Box<dyn ByteSource>,
    shown: String,
    header: SparseHeader,
    tables: GrainTables,
}

impl Sparse {
    /// Opens the sparse extent in `file` (named `shown` in errors): header and tables.
    pub fn open(file: Box<dyn ByteSource>, shown: &str) -> Result<Sparse> {
        let header = SparseHeader::read(file.as_ref(), shown)?;
        let tables = GrainTables::read(file.as_ref(), &header, shown)?;
        Ok(Sparse {
            file,
            shown: shown.to_string(),
            header,
            tables,
        })
    }

    /// The checked header.
    pub fn header(&self) -> &SparseHeader {
        &self.header
    }

    /// The checked grain tables.
    pub fn tables(&self) -> &GrainTables {
        &self.tables
    }

    /// The embedded descriptor's bytes (empty when there is none), at most
    /// [`descriptor::MAX_LEN`].
    fn descriptor_bytes(&self) -> Result<Vec<u8>> {
        let h = &self.header;
        if h.desc_offset == 0 {
            return Ok(Vec::new());
        }
        let len = (h.desc_sectors * SECTOR).min(descriptor::MAX_LEN as u64) as usize;
        let mut v = vec![0u8; len];
        self.file
            .read_exact_at(&mut v, h.desc_offset * SECTOR)
            .map_err(|e| Error::io(format!("read the VMDK descriptor of {}", self.shown), e))?;
        Ok(v)
    }

    fn bad(&self, why: String) -> Error {
        Error::bad_image(&self.shown, why)
    }

    /// Reads `buf` from extent offset `off` (inside the capacity).
    fn read(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let gb = self.header.grain_bytes();
        let mut scratch = Vec::new();
        let mut input = Vec::new();
        // Plain grains contiguous in the file are read with one pread: (host, start, len).
        let mut pending: Option<(u64, usize, usize)> = None;
        let mut pos = 0usize;
        while pos < buf.len() {
            let at = off + pos as u64;
            let (g, in_grain) = (at / gb, at % gb);
            let n = ((gb - in_grain) as usize).min(buf.len() - pos);
            match self.tables.grain(g) {
                Grain::At(s) if !self.header.compressed => {
                    let host = s * SECTOR + in_grain;
                    match &mut pending {
                        Some((h, st, l)) if *h + *l as u64 == host && *st + *l == pos => *l += n,
                        _ => {
                            if let Some((h, st, l)) = pending.take() {
                                self.pread(h, &mut buf[st..st + l])?;
                            }
                            pending = Some((host, pos, n));
                        }
                    }
                }
                Grain::At(s) => {
                    let whole = in_grain == 0 && n as u64 == gb;
                    if whole {
                        self.decode(g, s, &mut input, &mut buf[pos..pos + n])?;
                    } else {
                        scratch.resize(gb as usize, 0);
                        self.decode(g, s, &mut input, &mut scratch)?;
                        buf[pos..pos + n]
                            .copy_from_slice(&scratch[in_grain as usize..in_grain as usize + n]);
                    }
                }
                Grain::Zero | Grain::Unallocated => buf[pos..pos + n].fill(0),
            }
            pos += n;
        }
        if let Some((h, st, l)) = pending {
            self.pread(h, &mut buf[st..st + l])?;
        }
        Ok(())
    }

    fn pread(&self, host: u64, buf: &mut [u8]) -> Result<()> {
        // GrainTables checked that every plain grain's guest bytes lie inside the file.
        self.file
            .read_exact_at(buf, host)
            .map_err(|e| Error::io(format!("read {}", self.shown), e))
    }

    /// Decodes compressed grain `g` stored at sector `s` into `out`, one whole grain (past
    /// the end of the disk, the tail of the last grain reads as zeros).
    fn decode(&self, g: u64, s: u64, input: &mut Vec<u8>, out: &mut [u8]) -> Result<()> {
        let h = &self.header;
        let gb = h.grain_bytes();
        let start = s * SECTOR;
        // A grain's compressed form ends before the next grain or table, and qemu never
        // reads more than two grains for one.
        let end = self
            .tables
            .end_bound(s)
            .min(start + 2 * gb + grain::MARKER_LEN as u64);
        input.resize(end.saturating_sub(start) as usize, 0);
        self.file
            .read_exact_at(input, start)
            .map_err(|e| Error::io(format!("read {}", self.shown), e))?;
        let lba = g * h.grain_sectors;
        let need = ((h.capacity - lba) * SECTOR).min(gb) as usize;
        let e = grain::Expect {
            markers: h.markers,
            lba,
            need,
        };
        // `out` is always one whole grain (the callers' scratch or a whole-grain read).
        let r = grain::payload(input, &e).and_then(|p| grain::inflate(p, out, need));
        let produced = r.map_err(|why| {
            self.bad(format!(
                "compressed grain {g} at sector {s}: {why}: the image is corrupt"
            ))
        })?;
        out[produced..].fill(0);
        Ok(())
    }

    /// Extents of `[off, off + len)` inside this extent, at guest offset `base` + off.
    fn extents(&self, base: u64, off: u64, len: u64, push: &mut dyn FnMut(u64, u64, ExtentKind)) {
        let gb = self.header.grain_bytes();
        let end = off + len;
        let mut pos = off;
        while pos < end {
            let g = pos / gb;
            let max = (end - 1) / gb - g + 1;
            let (kind, n) = self.tables.run(g, max);
            let run_end = ((g + n) * gb).min(end);
            let k = match kind {
                Grain::At(_) => ExtentKind::Data,
                Grain::Zero => ExtentKind::Zero,
                Grain::Unallocated => ExtentKind::Unallocated,
            };
            push(base + pos, run_end - pos, k);
            pos = run_end;
        }
    }
}

impl Vmdk {
    /// Opens the VMDK at `path`, which the user named, and the extent files it names as far
    /// as `files` allows (by default none: a descriptor file is refused).
    pub fn open(path: &Path, files: &FilePolicy) -> Result<Vmdk> {
        let shown = path.display().to_string();
        let file = FileBytes::open(path, "image")?;
        let mut magic = [0u8; 4];
        if file.size() >= 4 {
            file.read_exact_at(&mut magic, 0)
                .map_err(|e| Error::io(format!("read {shown}"), e))?;
        }
        if &magic == header::MAGIC || &magic == header::COWD_MAGIC {
            let dir = path.parent().unwrap_or(Path::new("."));
            let files = files.with_image_dir(path);
            return Self::monolithic(Box::new(file), shown, Some((dir, &files)));
        }
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::descriptor_file(&file, shown, &dir, &files.with_image_dir(path))
    }

    /// Parses a self-contained sparse VMDK held in memory (`name` names it in errors): for
    /// fuzzing and tests. One that names a parent is refused, and so is a descriptor file.
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Vmdk> {
        if bytes.get(..4) != Some(header::MAGIC) {
            return Err(Error::bad_image(
                name,
                "an in-memory VMDK must be a sparse extent (KDMV); a descriptor file names other files: open it from its file",
            ));
        }
        Self::monolithic(Box::new(bytes), name.to_string(), None)
    }

    /// A sparse file with its descriptor embedded: the only extent is the file itself.
    fn monolithic(
        file: Box<dyn ByteSource>,
        shown: String,
        named: Option<(&Path, &FilePolicy)>,
    ) -> Result<Vmdk> {
        let sparse = Sparse::open(file, &shown)?;
        let raw = sparse.descriptor_bytes()?;
        if raw.is_empty() {
            return Err(Error::bad_image(
                &shown,
                "VMDK sparse extent has no embedded descriptor: it is one piece of a split disk, open the descriptor file that names it",
            ));
        }
        let d = Descriptor::parse(&raw, &shown)?;
        let compressed = sparse.header.compressed;
        let create_type = match d.create_type.as_deref() {
            None => if compressed { "streamOptimized" } else { "monolithicSparse" }.to_string(),
            Some(t) if ONE_FILE_TYPES.contains(&t) => t.to_string(),
            Some(t) => {
                return Err(Error::bad_image(
                    &shown,
                    format!(
                        "VMDK sparse extent declares createType '{}': only monolithicSparse and streamOptimized are one self-contained file (Glance refuses the others): convert it with qemu-img first",
                        escape(t)
                    ),
                ))
            }
        };
        if let Some(parent) = &d.parent {
            return Err(refuse_parent(&shown, parent, named));
        }
        let size = sparse.header.size();
        Ok(Vmdk {
            shown,
            size,
            create_type,
            parts: vec![Part {
                start: 0,
                len: size,
                body: Body::Sparse(Box::new(sparse)),
            }],
        })
    }

    /// A descriptor file: its extents opened through the policy.
    fn descriptor_file(
        file: &FileBytes,
        shown: String,
        dir: &Path,
        files: &FilePolicy,
    ) -> Result<Vmdk> {
        let bad = |why: String| Error::bad_image(&shown, why);
        if file.size() > descriptor::MAX_LEN as u64 {
            return Err(bad(format!(
                "no VMDK sparse header, and at {} bytes too long for a descriptor file (at most {}): not a VMDK image",
                file.size(),
                descriptor::MAX_LEN
            )));
        }
        let mut raw = vec![0u8; file.size() as usize];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| Error::io(format!("read {shown}"), e))?;
        let d = Descriptor::parse(&raw, &shown)?;
        let create_type = match d.create_type.as_deref() {
            Some(t) if DESCRIPTOR_TYPES.contains(&t) => t.to_string(),
            Some(t) => {
                return Err(bad(format!(
                    "VMDK descriptor file of createType '{}': not supported (monolithicFlat, vmfs, twoGbMaxExtentSparse, twoGbMaxExtentFlat): convert it with qemu-img first",
                    escape(t)
                )))
            }
            None => return Err(bad("VMDK descriptor file has no createType: the image is corrupt".into())),
        };
        if let Some(parent) = &d.parent {
            return Err(refuse_parent(&shown, parent, Some((dir, files))));
        }
        if d.extents.is_empty() {
            return Err(bad(
                "VMDK descriptor file names no extents: the image is corrupt".into(),
            ));
        }
        let mut parts = Vec::with_capacity(d.extents.len());
        let mut start = 0u64;
        for (i, e) in d.extents.iter().enumerate() {
            let len = e
                .sectors
                .checked_mul(SECTOR)
                .filter(|l| start.checked_add(*l).is_some_and(|end| end <= u64::MAX / 2))
                .ok_or_else(|| {
                    bad(format!(
                        "VMDK extent {} is too large: the image is corrupt",
                        i + 1
                    ))
                })?;
            let named = files.open_named(&shown, dir, &e.file, "extent file")?;
            let ext_shown = named.path.display().to_string();
            let bytes = FileBytes::from_file(named.file, "extent file", &ext_shown)?;
            let body = match e.kind {
                ExtentType::Flat => {
                    let offset = e.offset.saturating_mul(SECTOR);
                    if offset.checked_add(len).is_none_or(|end| end > bytes.size()) {
                        return Err(bad(format!(
                            "VMDK extent {} needs {} bytes from offset {offset} of '{}', which holds {}: the extent file is truncated",
                            i + 1,
                            len,
                            escape(&e.file),
                            bytes.size()
                        )));
                    }
                    Body::Flat {
                        file: Box::new(bytes),
                        offset,
                        shown: ext_shown,
                    }
                }
                ExtentType::Sparse => {
                    let sparse = Sparse::open(Box::new(bytes), &ext_shown)?;
                    if sparse.header.capacity != e.sectors {
                        return Err(bad(format!(
                            "VMDK extent {} declares {} sectors but its sparse header {}: the image is corrupt",
                            i + 1,
                            e.sectors,
                            sparse.header.capacity
                        )));
                    }
                    Body::Sparse(Box::new(sparse))
                }
            };
            parts.push(Part { start, len, body });
            start += len;
        }
        Ok(Vmdk {
            shown,
            size: start,
            create_type,
            parts,
        })
    }

    /// The create type (from the descriptor, or what the header implies).
    pub fn create_type(&self) -> &str {
        &self.create_type
    }

    /// The single sparse extent of a monolithicSparse/streamOptimized image.
    pub fn sparse(&self) -> Option<&Sparse> {
        match self.parts.as_slice() {
            [Part {
                body: Body::Sparse(s),
                ..
            }] => Some(s),
            _ => None,
        }
    }

    /// Guest bytes held as data by the sparse extents' tables, plus every flat extent.
    pub fn allocated_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| match &p.body {
                Body::Flat { .. } => p.len,
                Body::Sparse(s) => {
                    let mut n = 0;
                    s.extents(0, 0, p.len, &mut |_, len, k| {
                        if k == ExtentKind::Data {
                            n += len
                        }
                    });
                    n
                }
            })
            .sum()
    }
}

/// The refusal for an image that names a parent: the usual one when named files are not
/// allowed, and "not supported" when they are (rbdkit does not read VMDK delta chains).
fn refuse_parent(shown: &str, parent: &str, named: Option<(&Path, &FilePolicy)>) -> Error {
    match named {
        Some((_, files)) if files.allows_named_files() => Error::bad_image(
            shown,
            format!(
                "VMDK delta image on parent '{}': delta chains are not supported, convert it with qemu-img first",
                escape(parent)
            ),
        ),
        Some((dir, files)) => match files.open_named(shown, dir, parent, "parent (backing file)") {
            Err(e) => e,
            Ok(_) => Error::bad_image(shown, "VMDK delta images are not supported"),
        },
        None => Error::bad_image(
            shown,
            format!(
                "names parent (backing file) '{}', which an in-memory image cannot follow: open it from its file",
                escape(parent)
            ),
        ),
    }
}

impl DiskSource for Vmdk {
    fn virtual_size(&self) -> u64 {
        self.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.size);
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |offset, len, kind| push_extent(&mut out, offset, len, kind);
        for p in &self.parts {
            let (s, e) = (offset.max(p.start), end.min(p.start + p.len));
            if s >= e {
                continue;
            }
            match &p.body {
                Body::Flat { .. } => push(s, e - s, ExtentKind::Data),
                Body::Sparse(sp) => sp.extents(p.start, s - p.start, e - s, &mut push),
            }
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_read_range(&self.shown, offset, buf.len(), self.size)?;
        let end = offset + buf.len() as u64;
        for p in &self.parts {
            let (s, e) = (offset.max(p.start), end.min(p.start + p.len));
            if s >= e {
                continue;
            }
            let dst = &mut buf[(s - offset) as usize..(e - offset) as usize];
            match &p.body {
                Body::Flat {
                    file,
                    offset: fo,
                    shown,
                } => file
                    .read_exact_at(dst, fo + (s - p.start))
                    .map_err(|err| Error::io(format!("read {shown}"), err))?,
                Body::Sparse(sp) => sp.read(s - p.start, dst)?,
            }
        }
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "vmdk"
    }
}
