//! The qcow2 header and header extensions, decoded from big-endian bytes and checked before any
//! field is used: every offset against the file size, every count against a cap. The checks
//! follow qemu's `qcow2_do_open`, `qcow2_validate_table` and `qcow2_read_extensions` (qemu 10):
//! an image qemu refuses to open is refused here, and one it opens is not refused for a reason
//! qemu does not have. One deliberate difference: an L1 (or L2) table past the end of the file,
//! which qemu reads as zeros (an empty disk), is refused here as a truncated file.
use crate::error::{Error, Result};

/// Largest cluster: 2 MiB (cluster_bits 21), as qemu.
pub const MAX_CLUSTER_BITS: u32 = 21;
/// Smallest cluster: 512 B.
pub const MIN_CLUSTER_BITS: u32 = 9;
/// Largest virtual size accepted (64 PiB); far beyond any real disk, small enough for u64 math.
pub const MAX_VIRTUAL_SIZE: u64 = 1 << 56;
/// Largest L1 table accepted: 32 MiB, qemu's own limit.
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Longest backing file name (qemu: 1023 bytes).
pub const MAX_BACKING_NAME: u32 = 1023;
/// Largest refcount table accepted: 8 MiB, qemu's `QCOW_MAX_REFTABLE_SIZE`.
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Most internal snapshots accepted: qemu's `QCOW_MAX_SNAPSHOTS`.
pub const MAX_SNAPSHOTS: u64 = 65536;
/// Fixed part of a snapshot table entry (qemu's `QCowSnapshotHeader`).
const SNAPSHOT_HEADER_BYTES: u64 = 40;
/// Offsets and sizes end below this (qemu passes them to functions taking `int64_t`).
const MAX_OFFSET: u64 = i64::MAX as u64;
/// The usual tail of a header error.
const CORRUPT: &str = "the header is corrupt (inspect it with qemu-img info)";

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
/// Autoclear bit 1: the external data file is valid as a raw image by itself.
const AUTOCLEAR_DATA_FILE_RAW: u64 = 1 << 1;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_ENCRYPTION: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;
const EXT_BITMAPS: u32 = 0x2385_2875;
/// Autoclear bit 0: the bitmaps extension is consistent with the image.
const AUTOCLEAR_BITMAPS: u64 = 1 << 0;
/// Longest backing format name qemu reads (its buffer holds 15 bytes and a NUL).
const MAX_BACKING_FORMAT: u64 = 15;
/// Most persistent dirty bitmaps (qemu's `QCOW2_MAX_BITMAPS`).
const MAX_BITMAPS: u64 = 65535;

/// How clusters are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Raw deflate (no zlib header), qcow2's default.
    Deflate,
    /// One or more zstd frames.
    Zstd,
}

/// A validated qcow2 header.
#[derive(Clone, Debug)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size.
    pub cluster_bits: u32,
    /// Guest-visible size.
    pub size: u64,
    /// Entries in the L1 table.
    pub l1_size: u32,
    /// File offset of the L1 table.
    pub l1_offset: u64,
    /// The image was not closed cleanly (harmless for reading the active image).
    pub dirty: bool,
    /// L2 entries are 128 bits with 32 subclusters each.
    pub extended_l2: bool,
    /// Compression of compressed clusters.
    pub compression: Compression,
    /// Backing file name as stored.
    pub backing_file: Option<String>,
    /// Backing file format from the header extension, if present.
    pub backing_format: Option<String>,
    /// External data file name, if the image keeps its data in one.
    pub data_file: Option<String>,
    /// log2 of the refcount width in bits (0..=6; always 4 in version 2).
    pub refcount_order: u32,
    /// File offset of the refcount table (cluster-aligned; not checked against the file size,
    /// as qemu does not: reading never needs it).
    pub refcount_table_offset: u64,
    /// Clusters of the refcount table (1 or more, at most 8 MiB of them).
    pub refcount_table_clusters: u32,
    /// Internal snapshots (at most 65536); rbdkit reads only the active image.
    pub nb_snapshots: u32,
    /// File offset of the snapshot table (cluster-aligned).
    pub snapshots_offset: u64,
    /// Compatible feature bits as stored (0 in version 2).
    pub compatible_features: u64,
    /// Autoclear feature bits as stored (0 in version 2); unknown ones are harmless.
    pub autoclear_features: u64,
    /// The external data file is a valid raw image by itself (autoclear bit 1).
    pub data_file_raw: bool,
    /// Length of the header proper, where the extensions start (72 in version 2).
    pub header_length: u64,
}

/// The fields version 3 added, with the values qemu assumes for version 2.
struct V3Fields {
    incompatible: u64,
    compatible: u64,
    autoclear: u64,
    refcount_order: u32,
    header_length: u64,
    /// The compression type byte, when the header is long enough to hold it.
    compression_type: u8,
}

impl V3Fields {
    /// Reads them from a version 3 header; a version 2 header has none.
    fn parse(first: &[u8], version: u32, cluster_size: u64, path: &str) -> Result<V3Fields> {
        let bad = |why: String| Error::bad_image(path, why);
        if version == 2 {
            // qemu ignores whatever bytes 72..104 hold in a version 2 image.
            return Ok(V3Fields {
                incompatible: 0,
                compatible: 0,
                autoclear: 0,
                refcount_order: 4,
                header_length: 72,
                compression_type: 0,
            });
        }
        if first.len() < 104 {
            return Err(bad(
                "file too short for a qcow2 v3 header (104 bytes): truncated".into(),
            ));
        }
        let header_length = be32(first, 100) as u64;
        // qemu requires 104 ..= cluster size and nothing more: a length that is not a multiple
        // of 8 is accepted (the spec asks for one), the extensions then start right there.
        if header_length < 104 {
            return Err(bad(format!(
                "header_length {header_length} is under 104, too short for a version 3 header: {CORRUPT}"
            )));
        }
        if header_length > cluster_size {
            return Err(bad(format!(
                "header_length {header_length} exceeds the cluster size {cluster_size}: {CORRUPT}"
            )));
        }
        if header_length > first.len() as u64 {
            return Err(bad(format!(
                "header_length {header_length} runs past the end of the file ({} bytes): truncated",
                first.len()
            )));
        }
        Ok(V3Fields {
            incompatible: be64(first, 72),
            compatible: be64(first, 80),
            autoclear: be64(first, 88),
            refcount_order: be32(first, 96),
            header_length,
            compression_type: if header_length > 104 { first[104] } else { 0 },
        })
    }

    /// The compression type, checked against its incompatible bit as qemu's
    /// `validate_compression_type` does: the bit is set exactly when the type is not zlib.
    fn compression(&self, path: &str) -> Result<Compression> {
        let bad = |why: String| Error::bad_image(path, why);
        let bit = self.incompatible & INCOMPAT_COMPRESSION != 0;
        match (self.compression_type, bit) {
            (0, false) => Ok(Compression::Deflate),
            (1, true) => Ok(Compression::Zstd),
            (0, true) => Err(bad(format!(
                "the compression type incompatible bit (bit 3) is set with compression type 0 (zlib), where it must not be: {CORRUPT}"
            ))),
            (1, false) => Err(bad(format!(
                "compression type 1 (zstd) without its incompatible bit (bit 3): {CORRUPT}"
            ))),
            (c, _) => Err(bad(format!(
                "unknown compression type {c}: convert the image with a qemu-img that knows it"
            ))),
        }
    }
}

/// qemu's `qcow2_validate_table`: at most `max_bytes` of entries, ending below 2^63, at a
/// cluster-aligned offset (even when there are no entries). Not checked against the file size.
fn check_table(
    what: &str,
    offset: u64,
    entries: u64,
    entry_len: u64,
    max_bytes: u64,
    cluster_size: u64,
) -> std::result::Result<(), String> {
    if entries > max_bytes / entry_len {
        let unit = if entry_len == cluster_size {
            "clusters"
        } else {
            "entries"
        };
        return Err(format!(
            "{what} of {entries} {unit} ({entry_len} bytes each) exceeds qemu's limit of {max_bytes} bytes: {CORRUPT}"
        ));
    }
    // entries * entry_len <= max_bytes, far below 2^63.
    if MAX_OFFSET - entries * entry_len < offset || !offset.is_multiple_of(cluster_size) {
        return Err(format!(
            "{what} offset {offset:#x} is invalid (not cluster-aligned, or the table would end beyond 2^63): {CORRUPT}"
        ));
    }
    Ok(())
}

/// The backing file name at `offset` (0: none), `len` bytes inside the first cluster. An
/// empty name means no backing file, as in qemu.
fn backing_name(
    first: &[u8],
    offset: u64,
    len: u32,
    cluster_size: u64,
) -> std::result::Result<Option<String>, String> {
    if offset == 0 || len == 0 {
        return Ok(None);
    }
    // The caller checked offset <= cluster_size; qemu: "Backing file name too long".
    let room = cluster_size - offset;
    if len > MAX_BACKING_NAME || len as u64 > room {
        return Err(format!(
            "backing file name of {len} bytes at {offset:#x} is too long (at most 1023 bytes, inside the first cluster: {room} here): {CORRUPT}"
        ));
    }
    let end = offset + len as u64;
    if end > first.len() as u64 {
        return Err(format!(
            "backing file name at {offset:#x} runs past the end of the file ({} bytes): truncated",
            first.len()
        ));
    }
    let name = &first[offset as usize..end as usize];
    String::from_utf8(name.to_vec())
        .map(Some)
        .map_err(|_| "backing file name is not UTF-8: rebase the image onto a UTF-8 path".into())
}

/// The big-endian u32 at `at` (the caller has checked the bounds).
pub(super) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The big-endian u64 at `at` (the caller has checked the bounds).
pub(super) fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Header {
    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Bytes per L2 entry.
    pub fn l2_entry_size(&self) -> u64 {
        if self.extended_l2 {
            16
        } else {
            8
        }
    }

    /// L2 entries per table (one table fills one cluster).
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_size()
    }

    /// Parses and validates the header from the file's first cluster (`first` holds at least
    /// min(file size, 2 MiB) bytes), for a file of `file_size` bytes (`u64::MAX` when unknown,
    /// as for a stream). It refuses what qemu's `qcow2_do_open` refuses, in the same order where
    /// that matters, and accepts what qemu accepts (a refcount table past the end of the file,
    /// unknown autoclear bits), so an image rbdkit refuses is one qemu-img refuses too.
    pub fn parse(first: &[u8], file_size: u64, path: &str) -> Result<Header> {
        let bad = |why: String| Error::bad_image(path, why);
        if first.len() < 72 {
            return Err(bad(format!(
                "file is {} bytes, too short for a qcow2 header (72): truncated",
                first.len()
            )));
        }
        if first[..4] != super::super::QCOW2_MAGIC {
            return Err(bad("not a qcow2 file (no QFI\\xfb magic)".into()));
        }
        let version = be32(first, 4);
        if version != 2 && version != 3 {
            return Err(bad(format!(
                "qcow2 version {version} is not supported (only 2 and 3)"
            )));
        }
        let cluster_bits = be32(first, 20);
        if !(MIN_CLUSTER_BITS..=MAX_CLUSTER_BITS).contains(&cluster_bits) {
            return Err(bad(format!(
                "cluster_bits {cluster_bits} is outside 9..=21 (512 B to 2 MiB): {CORRUPT}"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        // qemu keeps the size in 512-byte sectors (`total_sectors = size / 512`), so a size
        // that is not a multiple of 512 loses its tail: the guest (and qemu-img convert)
        // sees the rounded-down size, and so do we.
        let size = be64(first, 24) / 512 * 512;
        if size > MAX_VIRTUAL_SIZE {
            return Err(bad(format!(
                "virtual size {size} exceeds the 64 PiB limit: {CORRUPT}"
            )));
        }
        let v3 = V3Fields::parse(first, version, cluster_size, path)?;
        // qemu: "Invalid backing file offset", checked before the name's length.
        let backing_off = be64(first, 8);
        if backing_off > cluster_size {
            return Err(bad(format!(
                "backing file name offset {backing_off:#x} lies beyond the first cluster ({cluster_size} bytes): {CORRUPT}"
            )));
        }
        let compression = v3.compression(path)?;
        let incompat = v3.incompatible;
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(bad(format!(
                "unknown incompatible qcow2 features {unknown:#x}; convert it with a qemu-img that knows them"
            )));
        }
        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err(bad(
                "the image is marked corrupt; repair it with `qemu-img check -r all` before importing".into(),
            ));
        }
        let extended_l2 = incompat & INCOMPAT_EXTL2 != 0;
        if extended_l2 && cluster_bits < 14 {
            return Err(bad(format!(
                "extended L2 entries need clusters of 16 KiB or more, not {cluster_size}"
            )));
        }
        if v3.refcount_order > 6 {
            return Err(bad(format!(
                "refcount_order {} is over 6 (refcounts wider than 64 bits): {CORRUPT}",
                v3.refcount_order
            )));
        }
        let crypt = be32(first, 32);
        if crypt != 0 {
            let kind = match crypt {
                1 => "AES",
                2 => "LUKS",
                _ => "unknown",
            };
            return Err(bad(format!(
                "image is encrypted ({kind}); rbdkit does not read encrypted qcow2: decrypt it with qemu-img convert first"
            )));
        }

        let table = |what: &str, offset: u64, entries: u64, entry_len: u64, max_bytes: u64| {
            check_table(what, offset, entries, entry_len, max_bytes, cluster_size).map_err(&bad)
        };
        let refcount_table_offset = be64(first, 48);
        let refcount_table_clusters = be32(first, 56);
        // qemu refuses an image with no refcount table (unless checking it), but not one at
        // offset 0 or past the end of the file: reading never needs it.
        if refcount_table_clusters == 0 {
            return Err(bad(format!(
                "refcount_table_clusters is 0 (the image has no refcount table): {CORRUPT}"
            )));
        }
        table(
            "refcount table",
            refcount_table_offset,
            refcount_table_clusters as u64,
            cluster_size,
            MAX_REFTABLE_BYTES,
        )?;
        // Only the offset and the count: qemu checks the table's contents when it reads it.
        let nb_snapshots = be32(first, 60);
        let snapshots_offset = be64(first, 64);
        table(
            "snapshot table",
            snapshots_offset,
            nb_snapshots as u64,
            SNAPSHOT_HEADER_BYTES,
            SNAPSHOT_HEADER_BYTES * MAX_SNAPSHOTS,
        )?;

        // The L1 table must cover the whole disk and lie inside the file.
        let l1_size = be32(first, 36);
        let l1_offset = be64(first, 40);
        let l1_bytes = l1_size as u64 * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(bad(format!(
                "L1 table of {l1_bytes} bytes exceeds the 32 MiB limit: {CORRUPT}"
            )));
        }
        // qemu checks the alignment even of an empty table.
        if !l1_offset.is_multiple_of(cluster_size) {
            return Err(bad(format!(
                "L1 table offset {l1_offset:#x} is not cluster-aligned: {CORRUPT}"
            )));
        }
        let entry = if extended_l2 { 16 } else { 8 };
        let per_l2 = cluster_size / entry;
        let needed = size.div_ceil(cluster_size * per_l2);
        if (l1_size as u64) < needed {
            return Err(bad(format!(
                "L1 table has {l1_size} entries but the disk needs {needed}: {CORRUPT}"
            )));
        }
        if l1_size > 0
            && l1_offset
                .checked_add(l1_bytes)
                .is_none_or(|e| e > file_size)
        {
            return Err(bad(format!(
                "L1 table at offset {l1_offset:#x} ({l1_bytes} bytes) extends beyond the end of the file ({file_size} bytes): the file is truncated or corrupt"
            )));
        }

        let backing_file =
            backing_name(first, backing_off, be32(first, 16), cluster_size).map_err(&bad)?;
        let mut h = Header {
            version,
            cluster_bits,
            size,
            l1_size,
            l1_offset,
            dirty: incompat & INCOMPAT_DIRTY != 0,
            extended_l2,
            compression,
            backing_file,
            backing_format: None,
            data_file: None,
            refcount_order: v3.refcount_order,
            refcount_table_offset,
            refcount_table_clusters,
            nb_snapshots,
            snapshots_offset,
            compatible_features: v3.compatible,
            autoclear_features: v3.autoclear,
            data_file_raw: v3.autoclear & AUTOCLEAR_DATA_FILE_RAW != 0,
            header_length: v3.header_length,
        };
        // qemu reads extensions from the end of the header up to the backing file name (or
        // the end of the first cluster): a name placed before the header hides them all.
        let ext_end = if backing_off != 0 {
            backing_off
        } else {
            cluster_size
        };
        h.read_extensions(first, v3.header_length, ext_end, path)?;
        if incompat & INCOMPAT_DATA_FILE != 0 && h.data_file.is_none() {
            return Err(bad("the image keeps its data in an external file but names none: pass it with qemu-img first".into()));
        }
        if incompat & INCOMPAT_DATA_FILE == 0 {
            h.data_file = None;
            // qemu: "data-file-raw requires a data file".
            if h.data_file_raw {
                return Err(bad(format!(
                    "autoclear feature data-file-raw (bit 1) is set but the image has no external data file: {CORRUPT}"
                )));
            }
        }
        Ok(h)
    }

    /// Reads the header extensions in `start..end` as qemu's `qcow2_read_extensions` does:
    /// each needs its 8-byte head and its data inside the range ("Header extension too large"
    /// otherwise), the next starts 8-aligned relative to this one, and bytes past the end of a
    /// short file read as zeros (an end marker).
    fn read_extensions(&mut self, first: &[u8], start: u64, end: u64, path: &str) -> Result<()> {
        let bad = |why: String| Error::bad_image(path, why);
        let byte = |at: u64| first.get(at as usize).copied().unwrap_or(0);
        let word =
            |at: u64| u32::from_be_bytes([byte(at), byte(at + 1), byte(at + 2), byte(at + 3)]);
        let mut at = start;
        // Each extension advances at least 8 bytes and end <= 2 MiB, so this loop ends.
        while at < end {
            if end - at < 8 {
                return Err(bad(format!("header extension at {at:#x} runs past {end:#x}, the end of the extension area: {CORRUPT}")));
            }
            let kind = word(at);
            let len = word(at + 4) as u64;
            at += 8;
            if len > end - at {
                return Err(bad(format!("header extension {kind:#x} of {len} bytes runs past {end:#x}, the end of the extension area: {CORRUPT}")));
            }
            if kind == EXT_END {
                return Ok(());
            }
            let text = || {
                String::from_utf8((at..at + len).map(byte).collect())
                    .map_err(|_| bad(format!("header extension {kind:#x} is not UTF-8")))
            };
            match kind {
                EXT_BACKING_FORMAT if len > MAX_BACKING_FORMAT => {
                    return Err(bad(format!(
                        "backing format name of {len} bytes is over qemu's limit of {MAX_BACKING_FORMAT}: {CORRUPT}"
                    )))
                }
                EXT_BACKING_FORMAT => self.backing_format = Some(text()?),
                EXT_BITMAPS => self.check_bitmaps_extension(&(at..at + len).map(byte).collect::<Vec<u8>>(), path)?,
                EXT_DATA_FILE => self.data_file = Some(text()?),
                EXT_ENCRYPTION => {
                    return Err(bad(
                        "image has an encryption header; rbdkit does not read encrypted qcow2"
                            .into(),
                    ))
                }
                _ => {}
            }
            at += len.div_ceil(8) * 8;
        }
        Ok(())
    }
}

impl Header {
    /// The checks qemu's `qcow2_read_extensions` makes of the bitmaps extension: its length
    /// always; its fields only while the autoclear bit says the bitmaps are consistent (else
    /// qemu just warns and drops them). The bitmap directory itself is not read.
    fn check_bitmaps_extension(&self, data: &[u8], path: &str) -> Result<()> {
        let bad = |why: String| Error::bad_image(path, why);
        if data.len() != 24 {
            return Err(bad(format!(
                "bitmaps header extension is {} bytes, not 24: {CORRUPT}",
                data.len()
            )));
        }
        if self.autoclear_features & AUTOCLEAR_BITMAPS == 0 {
            return Ok(());
        }
        let (nb, reserved) = (be32(data, 0) as u64, be32(data, 4));
        let (dir_size, dir_offset) = (be64(data, 8), be64(data, 16));
        let why = if reserved != 0 {
            format!("its reserved field is {reserved:#x}, not 0")
        } else if nb == 0 || nb > MAX_BITMAPS {
            format!("it counts {nb} bitmaps (1..=65535)")
        } else if !dir_offset.is_multiple_of(self.cluster_size()) {
            format!("its directory offset {dir_offset:#x} is not cluster-aligned")
        } else if dir_size > 1024 * MAX_BITMAPS {
            format!(
                "its directory of {dir_size} bytes is over qemu's limit of {}",
                1024 * MAX_BITMAPS
            )
        } else {
            return Ok(());
        };
        Err(bad(format!(
            "bitmaps header extension is invalid: {why}: {CORRUPT}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v3(cluster_bits: u32, size: u64, l1_size: u32, l1_offset: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        h[20..24].copy_from_slice(&cluster_bits.to_be_bytes());
        h[24..32].copy_from_slice(&size.to_be_bytes());
        h[36..40].copy_from_slice(&l1_size.to_be_bytes());
        h[40..48].copy_from_slice(&l1_offset.to_be_bytes());
        h[48..56].copy_from_slice(&0x20000u64.to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[96..100].copy_from_slice(&4u32.to_be_bytes());
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
    }

    /// `h` with `bytes` written at `at`.
    fn patch(mut h: Vec<u8>, at: usize, bytes: &[u8]) -> Vec<u8> {
        h[at..at + bytes.len()].copy_from_slice(bytes);
        h
    }

    fn ok() -> Vec<u8> {
        v3(16, 1 << 30, 2, 65536)
    }

    #[test]
    fn accepts_a_minimal_v3_header() {
        let h = Header::parse(&v3(16, 1 << 30, 2, 65536), 1 << 20, "x").unwrap();
        assert_eq!(h.cluster_size(), 65536);
        assert_eq!(h.l2_entries(), 8192);
    }

    #[test]
    fn rejects_absurd_values_with_the_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (v3(30, 1 << 30, 2, 65536), "cluster_bits"),
            (v3(16, u64::MAX, 2, 65536), "virtual size"),
            (v3(16, 1 << 40, 1, 65536), "L1 table has"),
            (v3(16, 1 << 30, 2, 65537), "not cluster-aligned"),
            (v3(16, 1 << 30, 2, 1 << 30), "beyond the end"),
            (v3(16, 1 << 30, 0x0100_0000, 65536), "32 MiB"),
            // Refcount table: none, misaligned, over 8 MiB, ending beyond 2^63.
            (
                patch(ok(), 56, &0u32.to_be_bytes()),
                "refcount_table_clusters is 0",
            ),
            (
                patch(ok(), 48, &0x20200u64.to_be_bytes()),
                "refcount table offset 0x20200 is invalid",
            ),
            (
                patch(ok(), 56, &129u32.to_be_bytes()),
                "refcount table of 129 clusters",
            ),
            (
                patch(ok(), 48, &0x7fff_ffff_ffff_0000u64.to_be_bytes()),
                "refcount table offset",
            ),
            // Snapshot table: too many, misaligned even when empty, ending beyond 2^63.
            (
                patch(ok(), 60, &65537u32.to_be_bytes()),
                "snapshot table of 65537 entries",
            ),
            (
                patch(ok(), 64, &0x200u64.to_be_bytes()),
                "snapshot table offset 0x200",
            ),
            (
                patch(
                    patch(ok(), 60, &65536u32.to_be_bytes()),
                    64,
                    &0x7fff_ffff_fff0_0000u64.to_be_bytes(),
                ),
                "snapshot table offset",
            ),
            // Inconsistent fields.
            (patch(ok(), 96, &7u32.to_be_bytes()), "refcount_order 7"),
            (patch(ok(), 79, &[8]), "must not be"),
            (patch(ok(), 104, &[1]), "without its incompatible bit"),
            (patch(ok(), 104, &[2]), "unknown compression type 2"),
            (patch(ok(), 95, &[2]), "data-file-raw"),
            (patch(ok(), 100, &103u32.to_be_bytes()), "under 104"),
            (
                patch(ok(), 100, &65544u32.to_be_bytes()),
                "exceeds the cluster size",
            ),
            (
                patch(ok(), 40, &0x10200u64.to_be_bytes()),
                "not cluster-aligned",
            ),
            // Backing file name: offset past the first cluster, too long, not inside it.
            (
                patch(ok(), 8, &0x10001u64.to_be_bytes()),
                "beyond the first cluster",
            ),
            (
                patch(
                    patch(ok(), 8, &0x200u64.to_be_bytes()),
                    16,
                    &1024u32.to_be_bytes(),
                ),
                "too long",
            ),
            (
                patch(
                    patch(ok(), 8, &0xff00u64.to_be_bytes()),
                    16,
                    &257u32.to_be_bytes(),
                ),
                "256 here",
            ),
            // A backing format name over 15 bytes; a bitmaps extension that is not 24 bytes.
            (
                patch(ok(), 112, &[0xe2, 0x79, 0x2a, 0xca, 0, 0, 0, 16]),
                "backing format name of 16 bytes",
            ),
            (
                patch(ok(), 112, &[0x23, 0x85, 0x28, 0x75, 0, 0, 0, 16]),
                "not 24",
            ),
            // An extension that runs past the backing file name that ends the extension area.
            (
                patch(
                    patch(ok(), 8, &0x200u64.to_be_bytes()),
                    112,
                    &[0, 0, 0, 9, 0, 0, 0x10, 0],
                ),
                "runs past 0x200",
            ),
        ];
        for (bytes, needle) in cases {
            let e = Header::parse(&bytes, 1 << 20, "x")
                .expect_err(needle)
                .to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
        let mut corrupt = v3(16, 1 << 30, 2, 65536);
        corrupt[79] = 2;
        assert!(Header::parse(&corrupt, 1 << 20, "x")
            .unwrap_err()
            .to_string()
            .contains("marked corrupt"));
        let mut unknown = v3(16, 1 << 30, 2, 65536);
        unknown[78] = 1;
        assert!(Header::parse(&unknown, 1 << 20, "x")
            .unwrap_err()
            .to_string()
            .contains("unknown incompatible"));
        let mut enc = v3(16, 1 << 30, 2, 65536);
        enc[35] = 2;
        assert!(Header::parse(&enc, 1 << 20, "x")
            .unwrap_err()
            .to_string()
            .contains("LUKS"));
        assert!(Header::parse(&[0u8; 10], 10, "x")
            .unwrap_err()
            .to_string()
            .contains("too short"));
        for (bytes, needle) in [(ok(), ""), (patch(ok(), 60, &1u32.to_be_bytes()), "")] {
            let e = Header::parse(&bytes, 1 << 20, "x").unwrap();
            assert_eq!(e.version, 3, "{needle}");
        }
    }

    #[test]
    fn accepts_what_qemu_accepts() {
        let parse = |b: &[u8]| Header::parse(b, 1 << 20, "x");
        // Refcount table at offset 0 or past the end of the file, exactly 8 MiB of it.
        parse(&patch(ok(), 48, &0u64.to_be_bytes())).unwrap();
        parse(&patch(ok(), 48, &(1u64 << 40).to_be_bytes())).unwrap();
        parse(&patch(ok(), 56, &128u32.to_be_bytes())).unwrap();
        // 65536 snapshots, a snapshot table past the end of the file.
        parse(&patch(ok(), 60, &65536u32.to_be_bytes())).unwrap();
        parse(&patch(
            patch(ok(), 60, &1u32.to_be_bytes()),
            64,
            &(1u64 << 40).to_be_bytes(),
        ))
        .unwrap();
        // refcount_order 6, unknown autoclear bits, a header_length not a multiple of 8.
        let h = parse(&patch(patch(ok(), 96, &6u32.to_be_bytes()), 95, &[4])).unwrap();
        assert_eq!(
            (h.refcount_order, h.autoclear_features, h.data_file_raw),
            (6, 4, false)
        );
        assert_eq!(
            parse(&patch(ok(), 100, &105u32.to_be_bytes()))
                .unwrap()
                .header_length,
            105
        );
        // An empty backing file name is no backing file; a name that ends the cluster is fine.
        let mut empty = patch(ok(), 8, &0xff00u64.to_be_bytes());
        empty.resize(65536, 0);
        assert_eq!(parse(&empty).unwrap().backing_file, None);
        let full = patch(
            patch(empty, 16, &256u32.to_be_bytes()),
            0xff00,
            &[b'a'; 256],
        );
        assert_eq!(parse(&full).unwrap().backing_file.unwrap().len(), 256);
        // The virtual size is rounded down to whole 512-byte sectors, as qemu does.
        assert_eq!(parse(&v3(16, 1_048_575, 2, 65536)).unwrap().size, 1_048_064);
    }

    #[test]
    fn version_2_ignores_the_version_3_fields() {
        let mut v2 = patch(ok(), 4, &2u32.to_be_bytes());
        // Whatever bytes 72..104 hold: no features, refcount_order 4, extensions at 72.
        v2 = patch(v2, 72, &[0xff; 32]);
        v2 = patch(v2, 72, &[0; 8]);
        let h = Header::parse(&v2, 1 << 20, "x").unwrap();
        assert_eq!(
            (h.refcount_order, h.header_length, h.compatible_features),
            (4, 72, 0)
        );
        assert!(!h.dirty && !h.data_file_raw);
    }
}
