//! Our own qcow2 reader for the active image: v2/v3, 512 B-2 MiB clusters, zero clusters,
//! unallocated clusters (backing chain or zeros), deflate and zstd compressed clusters, extended
//! L2 (32 subclusters), backing chains of qcow2 and raw files, external data files, the dirty bit.
//! Refuses corrupt, encrypted and unknown-feature images with a clear message. Every offset read
//! from the file is checked before use, L2 tables go through a bounded cache, and reads are
//! safe from many threads at once (positional reads; the cache is behind a mutex).
mod compressed;
pub mod header;

pub use compressed::decode_cluster;
pub use header::{Compression, Header};

use super::{DiskSource, Extent, ExtentKind};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest backing chain followed (qemu has no limit; real chains are a handful deep).
pub const MAX_CHAIN_DEPTH: usize = 16;
/// Bytes of L2 tables kept in the cache.
const L2_CACHE_BYTES: u64 = 64 << 20;

const L2_OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const OFLAG_COPIED: u64 = 1 << 63;
const OFLAG_COMPRESSED: u64 = 1 << 62;
const OFLAG_ZERO: u64 = 1;

/// Where one guest (sub)cluster's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Stored uncompressed at this host offset (of the data file if there is one).
    Data(u64),
    /// Reads as zeros.
    Zero,
    /// Not allocated here: backing file or zeros.
    Unallocated,
    /// Compressed: host offset and compressed length of the whole cluster.
    Compressed(u64, u64),
}

/// A bounded cache of decoded L2 tables keyed by their file offset.
struct L2Cache {
    tables: HashMap<u64, Arc<Vec<u64>>>,
    max_tables: usize,
}

/// An open qcow2 image (and its backing chain).
pub struct Qcow2 {
    path: String,
    file: File,
    file_size: u64,
    data: Option<(File, u64)>,
    header: Header,
    l1: Vec<u64>,
    cache: Mutex<L2Cache>,
    backing: Option<Box<dyn DiskSource>>,
}

impl Qcow2 {
    /// Opens a qcow2 image and its backing chain.
    pub fn open(path: &Path) -> Result<Qcow2> {
        Self::open_in_chain(path, &mut Vec::new())
    }

    fn open_in_chain(path: &Path, chain: &mut Vec<PathBuf>) -> Result<Qcow2> {
        let shown = path.display().to_string();
        let canonical =
            std::fs::canonicalize(path).map_err(|e| Error::io(format!("open {shown}"), e))?;
        if chain.contains(&canonical) {
            return Err(Error::bad_image(
                shown,
                "backing chain loops back to this image: fix the backing file names",
            ));
        }
        if chain.len() >= MAX_CHAIN_DEPTH {
            return Err(Error::bad_image(
                shown,
                format!("backing chain deeper than {MAX_CHAIN_DEPTH} images"),
            ));
        }
        chain.push(canonical);
        let file = File::open(path).map_err(|e| Error::io(format!("open {shown}"), e))?;
        let file_size = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {shown}"), e))?
            .len();
        let mut first = vec![0u8; file_size.min(1 << header::MAX_CLUSTER_BITS) as usize];
        file.read_exact_at(&mut first, 0)
            .map_err(|e| Error::io(format!("read {shown}"), e))?;
        let header = Header::parse(&first, file_size, &shown)?;
        drop(first);

        let mut raw_l1 = vec![0u8; header.l1_size as usize * 8];
        file.read_exact_at(&mut raw_l1, header.l1_offset)
            .map_err(|e| Error::io(format!("read L1 table of {shown}"), e))?;
        let l1: Vec<u64> = raw_l1
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();

        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let data = match &header.data_file {
            Some(name) => {
                let p = resolve(&dir, name);
                let f = File::open(&p).map_err(|e| {
                    Error::io(
                        format!("open external data file {} of {shown}", p.display()),
                        e,
                    )
                })?;
                let len = f
                    .metadata()
                    .map_err(|e| Error::io(format!("stat {}", p.display()), e))?
                    .len();
                Some((f, len))
            }
            None => None,
        };
        let backing: Option<Box<dyn DiskSource>> = match &header.backing_file {
            None => None,
            Some(name) => {
                let p = resolve(&dir, name);
                if !p.exists() {
                    return Err(Error::bad_image(
                        shown,
                        format!("backing file {} not found (names are relative to the image's directory)", p.display()),
                    ));
                }
                let format = match header.backing_format.as_deref() {
                    Some("qcow2") => super::Format::Qcow2,
                    Some("raw") => super::Format::Raw,
                    Some(other) => {
                        return Err(Error::bad_image(
                            shown,
                            format!("backing file format '{other}' is not supported (qcow2, raw)"),
                        ))
                    }
                    None => super::detect(&p)?,
                };
                Some(match format {
                    super::Format::Qcow2 => Box::new(Qcow2::open_in_chain(&p, chain)?),
                    super::Format::Raw => Box::new(super::raw::RawFile::open(&p)?),
                })
            }
        };
        let max_tables = (L2_CACHE_BYTES / header.cluster_size()).max(16) as usize;
        Ok(Qcow2 {
            path: shown,
            file,
            file_size,
            data,
            header,
            l1,
            cache: Mutex::new(L2Cache {
                tables: HashMap::new(),
                max_tables,
            }),
            backing,
        })
    }

    /// The validated header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn bad(&self, why: String) -> Error {
        Error::bad_image(&self.path, why)
    }

    /// Loads (or finds in the cache) the L2 table at `offset`.
    fn l2_table(&self, offset: u64) -> Result<Arc<Vec<u64>>> {
        if let Some(t) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .tables
            .get(&offset)
        {
            return Ok(t.clone());
        }
        let cs = self.header.cluster_size();
        if offset % cs != 0 {
            return Err(self.bad(format!(
                "L2 table offset {offset:#x} is not cluster-aligned: corrupt image"
            )));
        }
        if offset.checked_add(cs).is_none_or(|e| e > self.file_size) {
            return Err(self.bad(format!(
                "L2 table at offset {offset:#x} extends beyond the end of the file ({} bytes): the file is truncated or corrupt",
                self.file_size
            )));
        }
        let mut raw = vec![0u8; cs as usize];
        self.file
            .read_exact_at(&mut raw, offset)
            .map_err(|e| Error::io(format!("read L2 table of {}", self.path), e))?;
        let table: Arc<Vec<u64>> = Arc::new(
            raw.chunks_exact(8)
                .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        );
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.tables.len() >= cache.max_tables {
            // Bounded memory matters more than hit rate here: the copy engine walks the disk
            // in order, so a full reset costs one re-read per table at most.
            cache.tables.clear();
        }
        cache.tables.insert(offset, table.clone());
        Ok(table)
    }

    /// Maps guest offset `off` (< virtual size) and says for how many bytes from `off` the
    /// mapping holds (to the end of its subcluster, cluster, or unallocated L2 range).
    pub fn lookup(&self, off: u64) -> Result<(Mapping, u64)> {
        let h = &self.header;
        let cs = h.cluster_size();
        let in_cluster = off & (cs - 1);
        let cluster = off >> h.cluster_bits;
        let per_l2 = h.l2_entries();
        let l1_index = (cluster / per_l2) as usize;
        let l2_index = (cluster % per_l2) as usize;
        let Some(&l1e) = self.l1.get(l1_index) else {
            return Err(self.bad(format!("guest offset {off} is beyond the L1 table")));
        };
        let l2_off = l1e & L2_OFFSET_MASK;
        if l2_off == 0 {
            let span = per_l2 * cs;
            return Ok((Mapping::Unallocated, span - off % span));
        }
        let table = self.l2_table(l2_off)?;
        let (entry, bitmap) = if h.extended_l2 {
            (table[2 * l2_index], table[2 * l2_index + 1])
        } else {
            (table[l2_index], 0)
        };
        let cluster_rest = cs - in_cluster;
        if entry & OFLAG_COMPRESSED != 0 {
            let shift = 62 - (h.cluster_bits - 8);
            let coff = entry & ((1u64 << shift) - 1);
            let sectors = ((entry >> shift) & ((1u64 << (h.cluster_bits - 8)) - 1)) + 1;
            let clen = sectors * 512 - (coff & 511);
            return Ok((Mapping::Compressed(coff, clen), cluster_rest));
        }
        let host = entry & L2_OFFSET_MASK;
        let allocated_here = host != 0 || (self.data.is_some() && entry & OFLAG_COPIED != 0);
        if host % cs != 0 {
            return Err(self.bad(format!(
                "data cluster offset {host:#x} is not cluster-aligned: corrupt image"
            )));
        }
        if !h.extended_l2 {
            let m = if entry & OFLAG_ZERO != 0 {
                Mapping::Zero
            } else if allocated_here {
                Mapping::Data(host + in_cluster)
            } else {
                Mapping::Unallocated
            };
            return Ok((m, cluster_rest));
        }
        let sc_size = cs / 32;
        let sc = (in_cluster / sc_size) as u32;
        let rest = sc_size - in_cluster % sc_size;
        let m = if bitmap >> (32 + sc) & 1 != 0 {
            Mapping::Zero
        } else if bitmap >> sc & 1 != 0 {
            Mapping::Data(host + in_cluster)
        } else {
            Mapping::Unallocated
        };
        Ok((m, rest))
    }

    fn read_host(&self, host: u64, buf: &mut [u8]) -> Result<()> {
        let (file, size, what) = match &self.data {
            Some((f, s)) => (f, *s, "external data file"),
            None => (&self.file, self.file_size, "file"),
        };
        if host.checked_add(buf.len() as u64).is_none_or(|e| e > size) {
            return Err(self.bad(format!(
                "data at host offset {host:#x} (+{}) lies beyond the end of the {what} ({size} bytes): truncated or corrupt",
                buf.len()
            )));
        }
        file.read_exact_at(buf, host)
            .map_err(|e| Error::io(format!("read {}", self.path), e))
    }

    fn read_compressed(&self, coff: u64, clen: u64, cluster: &mut [u8]) -> Result<()> {
        if coff >= self.file_size {
            return Err(self.bad(format!("compressed cluster at {coff:#x} lies beyond the end of the file: truncated or corrupt")));
        }
        // The length is rounded up to whole sectors and may run past the end of the file.
        let len = clen.min(self.file_size - coff) as usize;
        let mut input = vec![0u8; len];
        self.file
            .read_exact_at(&mut input, coff)
            .map_err(|e| Error::io(format!("read {}", self.path), e))?;
        decode_cluster(self.header.compression, &input, cluster)
            .map_err(|why| self.bad(format!("compressed cluster at {coff:#x}: {why}")))
    }

    fn read_backing(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let Some(b) = &self.backing else {
            buf.fill(0);
            return Ok(());
        };
        // A backing file shorter than this image reads as zeros past its end.
        let bsize = b.virtual_size();
        let inside = bsize.saturating_sub(off).min(buf.len() as u64) as usize;
        if inside > 0 {
            b.read_at(off, &mut buf[..inside])?;
        }
        buf[inside..].fill(0);
        Ok(())
    }
}

fn resolve(dir: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

impl DiskSource for Qcow2 {
    fn virtual_size(&self) -> u64 {
        self.header.size
    }

    fn extents(&self, offset: u64, len: u64) -> Result<Vec<Extent>> {
        let end = offset.saturating_add(len).min(self.header.size);
        let mut out: Vec<Extent> = Vec::new();
        let mut push = |e: Extent| match out.last_mut() {
            Some(last) if last.kind == e.kind && last.end() == e.offset => last.len += e.len,
            _ => out.push(e),
        };
        let mut pos = offset;
        while pos < end {
            let (m, run) = self.lookup(pos)?;
            let n = run.min(end - pos);
            match m {
                Mapping::Data(_) | Mapping::Compressed(..) => push(Extent {
                    offset: pos,
                    len: n,
                    kind: ExtentKind::Data,
                }),
                Mapping::Zero => push(Extent {
                    offset: pos,
                    len: n,
                    kind: ExtentKind::Zero,
                }),
                Mapping::Unallocated => {
                    let bsize = self.backing.as_ref().map_or(0, |b| b.virtual_size());
                    let inside = bsize.saturating_sub(pos).min(n);
                    if inside > 0 {
                        if let Some(b) = &self.backing {
                            for e in b.extents(pos, inside)? {
                                push(e);
                            }
                        }
                    }
                    if n > inside {
                        push(Extent {
                            offset: pos + inside,
                            len: n - inside,
                            kind: ExtentKind::Unallocated,
                        });
                    }
                }
            }
            pos += n;
        }
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.header.size)
        {
            return Err(self.bad(format!(
                "read of {} bytes at {offset} is past the virtual size {}",
                buf.len(),
                self.header.size
            )));
        }
        let cs = self.header.cluster_size() as usize;
        let mut cluster_buf: Vec<u8> = Vec::new();
        // A run of guest bytes that are contiguous on the host too: read with one pread.
        let mut pending: Option<(u64, usize, usize)> = None; // (host, buf start, len)
        let mut pos = 0usize;
        while pos < buf.len() {
            let goff = offset + pos as u64;
            let (m, run) = self.lookup(goff)?;
            let n = (run.min((buf.len() - pos) as u64)) as usize;
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
                    cluster_buf.resize(cs, 0);
                    self.read_compressed(coff, clen, &mut cluster_buf)?;
                    let start = (goff % cs as u64) as usize;
                    dst.copy_from_slice(&cluster_buf[start..start + n]);
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
