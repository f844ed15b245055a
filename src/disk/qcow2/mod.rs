//! Our own qcow2 reader for the active image: v2/v3, 512 B-2 MiB clusters, zero clusters,
//! unallocated clusters (backing chain or zeros), deflate and zstd compressed clusters, extended
//! L2 (32 subclusters), backing chains of qcow2 and raw files, external data files, the dirty bit.
//! It refuses corrupt, encrypted and unknown-feature images with a clear message, and whatever
//! qemu refuses to open (see [`header`] and the snapshot table walk in `snapshots`).
//!
//! Backing and external data files are opened only as the caller's [`FilePolicy`] allows (by
//! default not at all: an uploaded image must not make rbdkit read host files). Relative
//! names are resolved against the directory of the image that names them. (qemu does so for
//! backing files but opens a relative data file name from its working directory; the two
//! agree when qemu runs in the image's directory.)
//!
//! Nothing read from the image is trusted: the header is validated before use ([`header`]),
//! every table offset is checked against the file before it is read, every allocation is
//! capped, and every loop advances by at least one byte. Reads are safe from many threads at
//! once: bytes come from positional reads ([`ByteSource`]) and decoded L2 tables from a bounded
//! cache behind a mutex that is never held during I/O. This module only reads; it never writes
//! (but for [`stream`], which decodes an image arriving as a stream and keeps what arrives
//! before its tables in a temporary spill file).
mod alloc;
mod bytes;
mod compressed;
pub mod header;
mod l2;
mod snapshots;
mod spill;
pub mod stream;

pub use alloc::Allocation;
pub use bytes::{ByteSource, FileBytes};
pub use compressed::{decode_cluster, ZSTD_WINDOW_LOG_MAX};
pub use header::{Compression, Header};
pub use l2::Mapping;
pub use stream::Qcow2Stream;

use super::policy::{FilePolicy, NamedFile};
use super::{DiskSource, Extent, ExtentKind};
use crate::disk::source::{check_read_range, push_extent};
use crate::error::{Error, Result};
use l2::{L2Cache, Layout, OFFSET_MASK};
use std::path::{Path, PathBuf};

/// Longest backing chain followed, this image included (qemu has no fixed limit; real chains
/// are a handful deep, and the limit bounds the recursion of reads).
pub const MAX_CHAIN_DEPTH: usize = 16;
/// Bytes of decoded L2 tables kept in the cache of each image (64 MiB maps 512 GiB of guest
/// disk at 64 KiB clusters).
const L2_CACHE_BYTES: u64 = 64 << 20;

/// An open qcow2 image (and its backing chain).
pub struct Qcow2 {
    path: String,
    file: Box<dyn ByteSource>,
    /// The external data file, when the image keeps its data there.
    data: Option<Box<dyn ByteSource>>,
    header: Header,
    layout: Layout,
    l1: Vec<u64>,
    cache: L2Cache,
    backing: Option<Box<dyn DiskSource>>,
    /// Opened by [`Qcow2::open_metadata`]: named files were not opened.
    metadata_only: bool,
}

/// Why an image that is not a file of this host cannot follow the files it names.
pub const REMOTE_CANNOT_FOLLOW: &str = "an image on a network volume cannot follow (the safety gate checks only files of this host): copy the image and what it names to a local directory, or flatten it with qemu-img convert first";

impl Qcow2 {
    /// Opens the qcow2 image at `path`, which the user named, and the files it names
    /// (backing chain, external data file) as far as `files` allows: by default it allows
    /// none, and an image that names one is refused. Names are resolved against the
    /// directory of the image that holds them.
    pub fn open(path: &Path, files: &FilePolicy) -> Result<Qcow2> {
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| Error::io(format!("open {shown}"), e))?;
        let real =
            std::fs::canonicalize(path).map_err(|e| Error::io(format!("open {shown}"), e))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let files = files.with_image_dir(path);
        Self::open_in_chain(file, real, shown, &dir, &files, &mut Vec::new())
    }

    /// Opens the image at `path` for its metadata only (`rbdkit inspect`): the files it names
    /// are neither opened nor refused, so reading its data fails when it names any (its
    /// bytes would be wrong without them); mapping and the header are available.
    pub fn open_metadata(path: &Path) -> Result<Qcow2> {
        let shown = path.display().to_string();
        let file = FileBytes::open(path, "image")?;
        Self::build(Box::new(file), shown, Err(""), None, &mut Vec::new())
    }

    /// Parses an image held in memory, `name` naming it in errors. Such an image has no
    /// directory to resolve file names against, so one that names a backing file or an
    /// external data file is refused. For fuzzing and tests: no filesystem involved.
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Qcow2> {
        Self::build(
            Box::new(bytes),
            name.to_string(),
            Err("an in-memory image cannot follow: open it from its file"),
            Some(&FilePolicy::refuse()),
            &mut Vec::new(),
        )
    }

    /// Parses an image read from `bytes` that are not a file of this host (a GlusterFS
    /// volume's file), `shown` naming it in errors. The safety gate can only check where a
    /// file of this host lies, so one that names a backing file or an external data file is
    /// refused, whatever the policy.
    pub fn from_remote(bytes: Box<dyn ByteSource>, shown: &str) -> Result<Qcow2> {
        Self::build(
            bytes,
            shown.to_string(),
            Err(REMOTE_CANNOT_FOLLOW),
            Some(&FilePolicy::refuse()),
            &mut Vec::new(),
        )
    }

    fn open_in_chain(
        file: std::fs::File,
        real: PathBuf,
        shown: String,
        dir: &Path,
        files: &FilePolicy,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Qcow2> {
        if chain.contains(&real) {
            return Err(Error::bad_image(
                shown,
                "backing chain loops back to this image: fix the backing file names (qemu-img rebase -u)",
            ));
        }
        if chain.len() >= MAX_CHAIN_DEPTH {
            return Err(Error::bad_image(
                shown,
                format!("backing chain is deeper than {MAX_CHAIN_DEPTH} images: flatten it with qemu-img convert first"),
            ));
        }
        chain.push(real);
        let file = FileBytes::from_file(file, "image", &shown)?;
        Self::build(Box::new(file), shown, Ok(dir), Some(files), chain)
    }

    fn build(
        file: Box<dyn ByteSource>,
        shown: String,
        // Where names are resolved, or why they cannot be followed at all.
        dir: std::result::Result<&Path, &str>,
        files: Option<&FilePolicy>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Qcow2> {
        let file_size = file.size();
        let mut first = vec![0u8; file_size.min(1 << header::MAX_CLUSTER_BITS) as usize];
        file.read_exact_at(&mut first, 0)
            .map_err(|e| Error::io(format!("read {shown}"), e))?;
        let header = Header::parse(&first, file_size, &shown)?;
        drop(first);
        snapshots::check(file.as_ref(), &header, &shown)?;

        // Header::parse checked that the table lies inside the file and is at most 32 MiB.
        let mut raw_l1 = vec![0u8; header.l1_size as usize * 8];
        file.read_exact_at(&mut raw_l1, header.l1_offset)
            .map_err(|e| Error::io(format!("read L1 table of {shown}"), e))?;
        let l1 = be_words(&raw_l1);
        drop(raw_l1);

        // Every named file goes through the policy before it is opened; an in-memory image
        // has no directory, so it can follow nothing; metadata-only opens follow nothing.
        let Some(files) = files else {
            return Ok(Self::assemble(file, shown, header, l1, None, None, true));
        };
        let named = |name: &str, what: &str| match dir {
            Ok(d) => files.open_named(&shown, d, name, what),
            Err(why) => Err(Error::bad_image(
                &shown,
                format!("names {what} '{}', which {why}", crate::text::escape(name)),
            )),
        };
        let data: Option<Box<dyn ByteSource>> = match &header.data_file {
            Some(name) => {
                let f = named(name, "external data file")?;
                let shown_data = f.path.display().to_string();
                Some(Box::new(FileBytes::from_file(
                    f.file,
                    "external data file",
                    &shown_data,
                )?))
            }
            None => None,
        };
        let backing = match &header.backing_file {
            Some(name) => {
                let f = named(name, "backing file")?;
                Some(open_backing(
                    f,
                    header.backing_format.as_deref(),
                    &shown,
                    files,
                    chain,
                )?)
            }
            None => None,
        };
        Ok(Self::assemble(
            file, shown, header, l1, data, backing, false,
        ))
    }

    fn assemble(
        file: Box<dyn ByteSource>,
        path: String,
        header: Header,
        l1: Vec<u64>,
        data: Option<Box<dyn ByteSource>>,
        backing: Option<Box<dyn DiskSource>>,
        metadata_only: bool,
    ) -> Qcow2 {
        let layout = Layout {
            cluster_bits: header.cluster_bits,
            extended_l2: header.extended_l2,
            data_file: header.data_file.is_some(),
            zero_flag: header.version >= 3,
        };
        Qcow2 {
            path,
            file,
            data,
            cache: L2Cache::new(L2_CACHE_BYTES, layout.cluster_size()),
            header,
            layout,
            l1,
            backing,
            metadata_only,
        }
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn bad(&self, why: String) -> Error {
        Error::bad_image(&self.path, why)
    }

    /// Reads and decodes the L2 table at `offset` after checking it lies inside the file.
    fn load_l2(&self, offset: u64) -> Result<Vec<u64>> {
        let cs = self.layout.cluster_size();
        let file_size = self.file.size();
        if !offset.is_multiple_of(cs) {
            return Err(self.bad(format!(
                "L2 table offset {offset:#x} is not cluster-aligned: the image is corrupt"
            )));
        }
        if offset.checked_add(cs).is_none_or(|e| e > file_size) {
            return Err(self.bad(format!(
                "L2 table at offset {offset:#x} extends beyond the end of the file ({file_size} bytes): the file is truncated or corrupt"
            )));
        }
        let mut raw = vec![0u8; cs as usize];
        self.file
            .read_exact_at(&mut raw, offset)
            .map_err(|e| Error::io(format!("read L2 table of {}", self.path), e))?;
        Ok(be_words(&raw))
    }

    /// Maps guest offset `off` (below the virtual size): where the byte lives and for how many
    /// bytes from `off` that mapping holds, to the end of its subcluster (extended L2), cluster,
    /// or, when no L2 table is allocated, the range the missing table would map. One L2 entry is
    /// decoded (loading its table through the cache); see [`Qcow2::lookup_run`] for ranges.
    pub fn lookup(&self, off: u64) -> Result<(Mapping, u64)> {
        self.lookup_run(off, 1)
    }

    /// Like [`Qcow2::lookup`], then extends the run over the following (sub)clusters while they
    /// map the same way (zero, unallocated, or data at consecutive host offsets) until it
    /// covers `max_len` bytes, the mapping changes or the L2 table ends. Runs of missing L2
    /// tables are merged too. A compressed cluster is always its own run. The run may extend
    /// past `off + max_len`; callers clamp it.
    pub fn lookup_run(&self, off: u64, max_len: u64) -> Result<(Mapping, u64)> {
        self.walk(off, max_len, false)
    }

    /// [`Qcow2::lookup_run`]; with `by_kind`, the run goes on while the block-status kind stays
    /// the same (any data, compressed or not, wherever it lives), which is what extents need.
    fn walk(&self, off: u64, max_len: u64, by_kind: bool) -> Result<(Mapping, u64)> {
        let lay = &self.layout;
        let cs = lay.cluster_size();
        let per_l2 = lay.l2_entries();
        let cluster = off >> lay.cluster_bits;
        let l1_index = cluster / per_l2;
        let Some(&l1e) = usize::try_from(l1_index).ok().and_then(|i| self.l1.get(i)) else {
            return Err(self.bad(format!(
                "guest offset {off:#x} lies beyond the L1 table: the image is corrupt"
            )));
        };
        let l2_off = l1e & OFFSET_MASK;
        if l2_off == 0 {
            let span = lay.l2_span();
            let mut run = span - off % span;
            // Following missing tables: the L1 table has at most 4 Mi entries, so this ends.
            for &next in self.l1.iter().skip(l1_index as usize + 1) {
                if run >= max_len || next & OFFSET_MASK != 0 {
                    break;
                }
                run += span;
            }
            return Ok((Mapping::Unallocated, run));
        }
        let table = self.cache.get(l2_off, || self.load_l2(l2_off))?;
        let at = |index: u64, in_cluster: u64| {
            let (entry, bitmap) = lay.entry(&table, index as usize);
            lay.classify(entry, bitmap, in_cluster)
        };
        let l2_index = cluster % per_l2;
        let (m, mut run) = at(l2_index, off & (cs - 1)).map_err(|why| {
            self.bad(format!(
                "L2 entry for guest offset {off:#x}: {why}: the image is corrupt"
            ))
        })?;
        if matches!(m, Mapping::Compressed(..)) && !by_kind {
            return Ok((m, run));
        }
        // Walk on while the next (sub)cluster continues the run. An entry that does not decode
        // ends the run; its error surfaces when a caller reaches it.
        while run < max_len {
            let next = off + run;
            let (index, in_cluster) = (next >> lay.cluster_bits, next & (cs - 1));
            if index / per_l2 != l1_index {
                break;
            }
            let Ok((m2, r2)) = at(index % per_l2, in_cluster) else {
                break;
            };
            let continues = match (m, m2) {
                (Mapping::Zero, Mapping::Zero) => true,
                (Mapping::Unallocated, Mapping::Unallocated) => true,
                (Mapping::Data(h), Mapping::Data(h2)) if !by_kind => h.checked_add(run) == Some(h2),
                (Mapping::Data(_) | Mapping::Compressed(..), m2) => {
                    by_kind && matches!(m2, Mapping::Data(_) | Mapping::Compressed(..))
                }
                _ => false,
            };
            if !continues {
                break;
            }
            run += r2;
        }
        Ok((m, run))
    }

    fn read_host(&self, host: u64, buf: &mut [u8]) -> Result<()> {
        let (src, what) = match &self.data {
            Some(d) => (d.as_ref(), "external data file"),
            None => (self.file.as_ref(), "file"),
        };
        let size = src.size();
        if host.checked_add(buf.len() as u64).is_none_or(|e| e > size) {
            return Err(self.bad(format!(
                "data at host offset {host:#x} (+{} bytes) lies beyond the end of the {what} ({size} bytes): the file is truncated or corrupt",
                buf.len()
            )));
        }
        src.read_exact_at(buf, host)
            .map_err(|e| Error::io(format!("read {}", self.path), e))
    }

    /// Decodes the compressed cluster at `coff` (`clen` bytes, sector-rounded) into `cluster`,
    /// using `input` as scratch for the compressed bytes.
    fn read_compressed(
        &self,
        coff: u64,
        clen: u64,
        input: &mut Vec<u8>,
        cluster: &mut [u8],
    ) -> Result<()> {
        let file_size = self.file.size();
        if coff >= file_size {
            return Err(self.bad(format!(
                "compressed cluster at offset {coff:#x} lies beyond the end of the file ({file_size} bytes): the file is truncated or corrupt"
            )));
        }
        // The sector-rounded length may run past the end of the file (the last cluster);
        // clen is at most 4 MiB (13 bits of sectors at 2 MiB clusters).
        let len = clen.min(file_size - coff) as usize;
        input.resize(len, 0);
        self.file
            .read_exact_at(input, coff)
            .map_err(|e| Error::io(format!("read {}", self.path), e))?;
        decode_cluster(self.header.compression, input, cluster).map_err(|why| {
            self.bad(format!(
                "compressed cluster at offset {coff:#x}: {why}: the image is corrupt"
            ))
        })
    }

    fn read_backing(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let Some(b) = &self.backing else {
            buf.fill(0);
            return Ok(());
        };
        // A backing file shorter than this image reads as zeros past its end.
        let inside = b.virtual_size().saturating_sub(off).min(buf.len() as u64) as usize;
        if inside > 0 {
            b.read_at(off, &mut buf[..inside])?;
        }
        buf[inside..].fill(0);
        Ok(())
    }
}

/// Opens a backing file the policy allowed: its format from the header extension, else
/// from its content. A backing file in a format rbdkit does not read is refused by name.
fn open_backing(
    named: NamedFile,
    format: Option<&str>,
    child: &str,
    files: &FilePolicy,
    chain: &mut Vec<PathBuf>,
) -> Result<Box<dyn DiskSource>> {
    let shown = named.path.display().to_string();
    let format = match format {
        Some("qcow2") => super::Format::Qcow2,
        Some("raw") => super::Format::Raw,
        Some(other) => {
            return Err(Error::bad_image(
                child,
                format!(
                    "backing file format '{}' is not supported (qcow2, raw): convert the chain with qemu-img first",
                    crate::text::escape(other)
                ),
            ))
        }
        None => {
            let probe_file = named
                .file
                .try_clone()
                .map_err(|e| Error::io(format!("open backing file {shown}"), e))?;
            let probe = super::detect::probe(&FileBytes::from_file(probe_file, "backing file", &shown)?)?;
            super::decide(&shown, &probe, None, false)?
        }
    };
    let dir = named.path.parent().unwrap_or(Path::new("/")).to_path_buf();
    Ok(match format {
        super::Format::Qcow2 => Box::new(Qcow2::open_in_chain(
            named.file,
            named.real_path,
            shown,
            &dir,
            files,
            chain,
        )?),
        super::Format::Raw | super::Format::Iso => {
            Box::new(super::raw::RawFile::from_file(named.file, &named.path)?)
        }
        super::Format::Vmdk | super::Format::Vhd | super::Format::Vhdx => {
            return Err(Error::bad_image(
                child,
                format!("a {} backing file is not supported (qcow2, raw): convert the chain with qemu-img first", format.name()),
            ))
        }
    })
}

/// Big-endian 64-bit words of `raw` (whose length is a multiple of 8).
fn be_words(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            u64::from_be_bytes(w)
        })
        .collect()
}

impl DiskSource for Qcow2 {
    fn virtual_size(&self) -> u64 {
        self.header.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.header.size);
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |offset, len, kind| push_extent(&mut out, offset, len, kind);
        let mut pos = offset;
        while pos < end {
            let (m, run) = self.walk(pos, end - pos, true)?;
            // run >= 1 always, so pos advances.
            let n = run.min(end - pos);
            match m {
                Mapping::Data(_) | Mapping::Compressed(..) => push(pos, n, ExtentKind::Data),
                Mapping::Zero => push(pos, n, ExtentKind::Zero),
                Mapping::Unallocated => {
                    let inside = match &self.backing {
                        Some(b) => {
                            let inside = b.virtual_size().saturating_sub(pos).min(n);
                            if inside > 0 {
                                for e in b.extents(pos, inside)? {
                                    push(e.offset, e.len, e.kind);
                                }
                            }
                            inside
                        }
                        None => 0,
                    };
                    if n > inside {
                        push(pos + inside, n - inside, ExtentKind::Unallocated);
                    }
                }
            }
            pos += n;
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.metadata_only
            && (self.header.backing_file.is_some() || self.header.data_file.is_some())
        {
            return Err(self.bad(
                "opened for its metadata only, without the files it names: its data cannot be read"
                    .into(),
            ));
        }
        check_read_range(&self.path, offset, buf.len(), self.header.size)?;
        let cs = self.layout.cluster_size();
        // Scratch for compressed clusters, allocated on first use and reused within this call.
        let (mut input, mut cluster) = (Vec::new(), Vec::new());
        // Guest bytes contiguous on the host too are read with one pread: (host, start, len).
        let mut pending: Option<(u64, usize, usize)> = None;
        let mut pos = 0usize;
        while pos < buf.len() {
            let goff = offset + pos as u64;
            let want = (buf.len() - pos) as u64;
            let (m, run) = self.lookup_run(goff, want)?;
            let n = run.min(want) as usize;
            if let Mapping::Data(host) = m {
                match &mut pending {
                    Some((h, s, l)) if *h + *l as u64 == host && *s + *l == pos => *l += n,
                    _ => {
                        if let Some((h, s, l)) = pending.take() {
                            self.read_host(h, &mut buf[s..s + l])?;
                        }
                        pending = Some((host, pos, n));
                    }
                }
                pos += n;
                continue;
            }
            if let Some((h, s, l)) = pending.take() {
                self.read_host(h, &mut buf[s..s + l])?;
            }
            let dst = &mut buf[pos..pos + n];
            match m {
                Mapping::Zero => dst.fill(0),
                Mapping::Unallocated => self.read_backing(goff, dst)?,
                Mapping::Compressed(coff, clen) => {
                    let start = (goff % cs) as usize;
                    if start == 0 && n as u64 == cs {
                        // A whole cluster: decode straight into the caller's buffer.
                        self.read_compressed(coff, clen, &mut input, dst)?;
                    } else {
                        cluster.resize(cs as usize, 0);
                        self.read_compressed(coff, clen, &mut input, &mut cluster)?;
                        dst.copy_from_slice(&cluster[start..start + n]);
                    }
                }
                Mapping::Data(_) => {}
            }
            pos += n;
        }
        if let Some((h, s, l)) = pending {
            self.read_host(h, &mut buf[s..s + l])?;
        }
        Ok(())
    }

    fn format_name(&self) -> &'static str {
        "qcow2"
    }
}
