//! The hosted sparse extent header ("KDMV", VMware Virtual Disk Format 1.1, "Hosted Sparse
//! Extent Header"): little-endian fields in the first sector, or, when its grain directory
//! offset says `GD_AT_END` (a streamOptimized file written as a stream), in a footer that sits
//! in the second-to-last sector, between a footer marker and the end-of-stream marker.
//!
//! Every field is checked before use, as qemu checks it at open and more where qemu would read
//! nonsense: the grain is a power of two of at most [`MAX_GRAIN_SECTORS`], a grain table holds
//! 1 to 512 entries, the grain directory holds at most [`MAX_GD_ENTRIES`] entries and lies
//! inside the file, and an unknown compression algorithm is refused rather than read raw.
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

/// The sector size every VMDK offset counts in.
pub const SECTOR: u64 = 512;
/// "KDMV" read as bytes.
pub const MAGIC: &[u8; 4] = b"KDMV";
/// The old VMware 3 sparse extent ("COWD"), which rbdkit does not read.
pub const COWD_MAGIC: &[u8; 4] = b"COWD";
/// Largest grain accepted: 64 MiB (qemu allows up to 1 GiB, but its own images use 64 KiB, and a
/// compressed grain is decoded into buffers of its size on every reading thread).
pub const MAX_GRAIN_SECTORS: u64 = 0x20000;
/// Most grain directory entries (qemu's limit of 32 Mi entries, in 4-byte entries: 128 MiB).
pub const MAX_GD_ENTRIES: u64 = 32 << 20;
/// Grain directory offset meaning "the real header is the footer at the end of the file".
pub const GD_AT_END: u64 = u64::MAX;

const FLAG_ZERO_GRAIN: u32 = 1 << 2;
const FLAG_MARKERS: u32 = 1 << 17;
/// Marker types of a streamOptimized file (the `type` field of a metadata marker).
pub const MARKER_EOS: u32 = 0;
/// A grain table follows the marker.
pub const MARKER_GT: u32 = 1;
/// The grain directory follows the marker.
pub const MARKER_GD: u32 = 2;
/// The footer (a copy of the header with the real grain directory offset) follows.
pub const MARKER_FOOTER: u32 = 3;

/// A checked sparse extent header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseHeader {
    /// 1, 2 or 3 (3 adds changed block tracking, harmless to a reader).
    pub version: u32,
    /// Raw flags.
    pub flags: u32,
    /// Virtual size in sectors.
    pub capacity: u64,
    /// Grain (cluster) size in sectors.
    pub grain_sectors: u64,
    /// Embedded descriptor: offset and length in sectors (0 when there is none).
    pub desc_offset: u64,
    /// Length of the embedded descriptor in sectors.
    pub desc_sectors: u64,
    /// Entries per grain table (512 in every image VMware or qemu writes).
    pub gtes_per_gt: u64,
    /// Grain directory offset in sectors (the footer's value when the header defers to it).
    pub gd_offset: u64,
    /// First sector that may hold grains ("overHead").
    pub grain_offset: u64,
    /// Grains are deflate-compressed (compressAlgorithm 1).
    pub compressed: bool,
    /// Compressed grains are preceded by a marker (lba, size).
    pub markers: bool,
    /// A grain table entry of 1 means "reads as zeros".
    pub zero_grain: bool,
    /// The header came from the footer at the end of the file.
    pub from_footer: bool,
    /// Entries of the grain directory: the grain tables needed to cover the capacity.
    pub gd_entries: u64,
}

impl SparseHeader {
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR
    }

    /// Virtual size in bytes.
    pub fn size(&self) -> u64 {
        self.capacity * SECTOR
    }

    /// Parses and checks the header of the sparse extent in `file` (named `shown` in errors),
    /// following it to the footer when it says so.
    pub fn read(file: &dyn ByteSource, shown: &str) -> Result<SparseHeader> {
        let bad = |why: String| Error::bad_image(shown, why);
        let size = file.size();
        if size < SECTOR {
            return Err(bad(format!(
                "VMDK file is {size} bytes, shorter than its 512-byte header: the file is truncated"
            )));
        }
        let mut first = [0u8; SECTOR as usize];
        file.read_exact_at(&mut first, 0)
            .map_err(|e| Error::io(format!("read the VMDK header of {shown}"), e))?;
        if &first[..4] == COWD_MAGIC {
            return Err(bad(
                "VMDK3 (COWD) sparse extent: not supported, convert it with qemu-img first".into(),
            ));
        }
        if &first[..4] != MAGIC {
            return Err(bad("no VMDK sparse extent header (KDMV magic)".into()));
        }
        let mut fields = Fields::decode(&first);
        let mut from_footer = false;
        if fields.gd_offset == GD_AT_END {
            fields = read_footer(file, shown)?;
            from_footer = true;
        }
        fields.check(Some(size), from_footer, shown)
    }

    /// Parses and checks the first sector of a sparse extent arriving as a stream, whose size
    /// is unknown and whose footer has not arrived: nothing is checked against the file, and
    /// a grain directory offset of `GD_AT_END` is kept as is (a stream does not need the
    /// directory: its grains carry their guest sector in their markers).
    pub fn parse_stream_head(first: &[u8; 512], shown: &str) -> Result<SparseHeader> {
        if &first[..4] == COWD_MAGIC {
            return Err(Error::bad_image(
                shown,
                "VMDK3 (COWD) sparse extent: not supported, convert it with qemu-img first",
            ));
        }
        if &first[..4] != MAGIC {
            return Err(Error::bad_image(
                shown,
                "no VMDK sparse extent header (KDMV magic)",
            ));
        }
        Fields::decode(first).check(None, false, shown)
    }

    /// Checks a footer that arrived at the end of a stream (its 512 bytes, magic first)
    /// against the header the stream started with: the footer is what a file reader reads, so
    /// the two must describe the same disk.
    pub fn check_stream_footer(&self, footer: &[u8; 512], shown: &str) -> Result<()> {
        let f = Fields::decode(footer);
        if &footer[..4] != MAGIC
            || f.capacity != self.capacity
            || f.grain != self.grain_sectors
            || f.gtes_per_gt as u64 != self.gtes_per_gt
            || f.flags != self.flags
        {
            return Err(Error::bad_image(
                shown,
                "VMDK footer describes another disk than the header (capacity, grain or flags differ): the image is corrupt",
            ));
        }
        Ok(())
    }
}

/// The raw little-endian fields of a header sector (after the magic at 0).
#[derive(Clone, Copy, Debug)]
struct Fields {
    version: u32,
    flags: u32,
    capacity: u64,
    grain: u64,
    desc_offset: u64,
    desc_sectors: u64,
    gtes_per_gt: u32,
    gd_offset: u64,
    grain_offset: u64,
    compress: u16,
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Fields {
    /// Decodes a 512-byte header sector (magic at 0).
    fn decode(s: &[u8; 512]) -> Fields {
        Fields {
            version: le32(s, 4),
            flags: le32(s, 8),
            capacity: le64(s, 12),
            grain: le64(s, 20),
            desc_offset: le64(s, 28),
            desc_sectors: le64(s, 36),
            gtes_per_gt: le32(s, 44),
            // rgdOffset at 48 is the redundant directory, which reading never needs.
            gd_offset: le64(s, 56),
            grain_offset: le64(s, 64),
            compress: u16::from_le_bytes([s[77], s[78]]),
        }
    }

    /// Checks the fields; `file_size` is `None` for a stream (nothing checked against it).
    fn check(self, file_size: Option<u64>, from_footer: bool, shown: &str) -> Result<SparseHeader> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        if self.version > 3 {
            return bad(format!(
                "VMDK version {} is not supported (1 to 3): convert it with qemu-img first",
                self.version
            ));
        }
        let compressed = match self.compress {
            0 => false,
            1 => true,
            n => {
                return bad(format!(
                    "VMDK compression algorithm {n} is unknown (0 none, 1 deflate): the image is corrupt"
                ))
            }
        };
        if self.grain == 0 || !self.grain.is_power_of_two() || self.grain > MAX_GRAIN_SECTORS {
            return bad(format!(
                "VMDK grain size of {} sectors is invalid (a power of two up to {MAX_GRAIN_SECTORS}): the image is corrupt",
                self.grain
            ));
        }
        if self.gtes_per_gt == 0 || self.gtes_per_gt > 512 {
            return bad(format!(
                "VMDK grain tables of {} entries are invalid (1 to 512): the image is corrupt",
                self.gtes_per_gt
            ));
        }
        if self.capacity == 0 {
            return bad(
                "VMDK sparse extent of capacity 0: not a disk (a descriptor inside a sparse header is not supported)".into(),
            );
        }
        if self.capacity > u64::MAX / SECTOR {
            return bad(format!(
                "VMDK capacity of {} sectors overflows: the image is corrupt",
                self.capacity
            ));
        }
        let gt_span = self.gtes_per_gt as u64 * self.grain;
        let gd_entries = self.capacity.div_ceil(gt_span);
        if gd_entries > MAX_GD_ENTRIES {
            return bad(format!(
                "VMDK grain directory of {gd_entries} entries is over the limit of {MAX_GD_ENTRIES}: refused"
            ));
        }
        if let Some(file_size) = file_size {
            self.check_in_file(gd_entries, file_size, shown)?;
        }
        Ok(SparseHeader {
            version: self.version,
            flags: self.flags,
            capacity: self.capacity,
            grain_sectors: self.grain,
            desc_offset: self.desc_offset,
            desc_sectors: self.desc_sectors,
            gtes_per_gt: self.gtes_per_gt as u64,
            gd_offset: self.gd_offset,
            grain_offset: self.grain_offset,
            compressed,
            markers: self.flags & FLAG_MARKERS != 0,
            zero_grain: self.flags & FLAG_ZERO_GRAIN != 0,
            from_footer,
            gd_entries,
        })
    }
}

impl Fields {
    /// The offsets against the file: grains start inside it, the directory and the
    /// descriptor lie inside it.
    fn check_in_file(&self, gd_entries: u64, file_size: u64, shown: &str) -> Result<()> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        let file_sectors = file_size / SECTOR;
        if self.grain_offset > file_sectors {
            return bad(format!(
                "VMDK grains start at sector {} but the file has {file_sectors} sectors: the file is truncated",
                self.grain_offset
            ));
        }
        let end = |off: u64, bytes: u64| off.checked_mul(SECTOR).and_then(|o| o.checked_add(bytes));
        if self.gd_offset == 0 || end(self.gd_offset, gd_entries * 4).is_none_or(|e| e > file_size)
        {
            return bad(format!(
                "VMDK grain directory at sector {} ({gd_entries} entries) lies outside the file ({file_size} bytes): the file is truncated or corrupt",
                self.gd_offset
            ));
        }
        if self.desc_offset != 0
            && end(self.desc_offset, self.desc_sectors.saturating_mul(SECTOR))
                .is_none_or(|e| e > file_size)
        {
            return bad(format!(
                "VMDK embedded descriptor at sector {} ({} sectors) lies outside the file: the file is truncated or corrupt",
                self.desc_offset, self.desc_sectors
            ));
        }
        Ok(())
    }
}

/// Reads the footer of a streamOptimized file: the footer marker, the header copy and the
/// end-of-stream marker in the last three whole sectors, as qemu and VMware write them.
fn read_footer(file: &dyn ByteSource, shown: &str) -> Result<Fields> {
    let bad = |why: &str| Error::bad_image(shown, why.to_string());
    let end = file.size() / SECTOR * SECTOR;
    if end < 4 * SECTOR {
        return Err(bad(
            "VMDK header defers to a footer, but the file is too short to hold one: the file is truncated",
        ));
    }
    let mut tail = [0u8; 3 * SECTOR as usize];
    file.read_exact_at(&mut tail, end - 3 * SECTOR)
        .map_err(|e| Error::io(format!("read the VMDK footer of {shown}"), e))?;
    let marker = |s: &[u8]| (le64(s, 0), le32(s, 8), le32(s, 12));
    let (_, fsize, ftype) = marker(&tail[..512]);
    let (eval, esize, etype) = marker(&tail[1024..]);
    let footer: &[u8; 512] = tail[512..1024].try_into().expect("512 bytes");
    if fsize != 0
        || ftype != MARKER_FOOTER
        || &footer[..4] != MAGIC
        || (eval, esize, etype) != (0, 0, MARKER_EOS)
    {
        return Err(bad(
            "VMDK header defers to a footer, but the file does not end with a valid footer and end-of-stream marker: the file is truncated or corrupt",
        ));
    }
    let f = Fields::decode(footer);
    if f.gd_offset == GD_AT_END {
        return Err(bad(
            "VMDK footer defers to itself for the grain directory: the image is corrupt",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header sector with qemu's streamOptimized values, for `capacity` sectors.
    pub(crate) fn header(capacity: u64) -> Vec<u8> {
        let mut v = vec![0u8; 512];
        v[..4].copy_from_slice(MAGIC);
        v[4..8].copy_from_slice(&1u32.to_le_bytes());
        v[8..12].copy_from_slice(&3u32.to_le_bytes());
        v[12..20].copy_from_slice(&capacity.to_le_bytes());
        v[20..28].copy_from_slice(&128u64.to_le_bytes());
        v[44..48].copy_from_slice(&512u32.to_le_bytes());
        v[56..64].copy_from_slice(&1u64.to_le_bytes());
        v[64..72].copy_from_slice(&2u64.to_le_bytes());
        v
    }

    #[test]
    fn fields_are_checked() {
        let mut v = header(2048);
        v.resize(4096, 0);
        let h = SparseHeader::read(&v, "t").unwrap();
        assert_eq!((h.capacity, h.grain_sectors, h.gd_entries), (2048, 128, 1));
        for (at, bytes, needle) in [
            (20usize, 0u64.to_le_bytes().to_vec(), "grain size"),
            (20, 3u64.to_le_bytes().to_vec(), "grain size"),
            (20, (1u64 << 20).to_le_bytes().to_vec(), "grain size"),
            (44, 0u32.to_le_bytes().to_vec(), "grain tables"),
            (44, 513u32.to_le_bytes().to_vec(), "grain tables"),
            (12, 0u64.to_le_bytes().to_vec(), "capacity 0"),
            (12, u64::MAX.to_le_bytes().to_vec(), "overflows"),
            (4, 4u32.to_le_bytes().to_vec(), "version 4"),
            (56, 1000u64.to_le_bytes().to_vec(), "grain directory"),
            (64, 1000u64.to_le_bytes().to_vec(), "truncated"),
            (77, 2u16.to_le_bytes().to_vec(), "compression algorithm 2"),
        ] {
            let mut w = v.clone();
            w[at..at + bytes.len()].copy_from_slice(&bytes);
            let e = SparseHeader::read(&w, "t").unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        // 2^40 sectors at one-sector grains and 1-entry tables: over the directory cap.
        let mut w = v.clone();
        w[12..20].copy_from_slice(&(1u64 << 40).to_le_bytes());
        w[20..28].copy_from_slice(&1u64.to_le_bytes());
        w[44..48].copy_from_slice(&1u32.to_le_bytes());
        let e = SparseHeader::read(&w, "t").unwrap_err().to_string();
        assert!(e.contains("over the limit"), "{e}");
    }

    #[test]
    fn a_footer_must_be_whole() {
        let mut v = header(2048);
        v[56..64].copy_from_slice(&GD_AT_END.to_le_bytes());
        v.resize(8192, 0);
        let e = SparseHeader::read(&v, "t").unwrap_err().to_string();
        assert!(e.contains("valid footer"), "{e}");
        // Footer marker, footer (the header with the directory at sector 2), EOS marker.
        let n = v.len();
        v[n - 1536 + 12..n - 1536 + 16].copy_from_slice(&MARKER_FOOTER.to_le_bytes());
        let mut f = header(2048);
        f[56..64].copy_from_slice(&2u64.to_le_bytes());
        v[n - 1024..n - 512].copy_from_slice(&f);
        let h = SparseHeader::read(&v, "t").unwrap();
        assert!(h.from_footer);
        assert_eq!(h.gd_offset, 2);
        f[56..64].copy_from_slice(&GD_AT_END.to_le_bytes());
        v[n - 1024..n - 512].copy_from_slice(&f);
        assert!(SparseHeader::read(&v, "t").is_err());
        assert!(SparseHeader::read(&v[..100].to_vec(), "t").is_err());
    }
}
