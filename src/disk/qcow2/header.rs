//! The qcow2 header and header extensions, decoded from big-endian bytes and checked before any
//! field is used: every offset against the file size, every count against a cap.
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

const INCOMPAT_DIRTY: u64 = 1 << 0;
const INCOMPAT_CORRUPT: u64 = 1 << 1;
const INCOMPAT_DATA_FILE: u64 = 1 << 2;
const INCOMPAT_COMPRESSION: u64 = 1 << 3;
const INCOMPAT_EXTL2: u64 = 1 << 4;
const INCOMPAT_KNOWN: u64 =
    INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;

const EXT_END: u32 = 0;
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const EXT_ENCRYPTION: u32 = 0x0537_be77;
const EXT_DATA_FILE: u32 = 0x4441_5441;

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
    /// min(file size, 2 MiB) bytes), for a file of `file_size` bytes.
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
                "cluster_bits {cluster_bits} is outside 9..=21 (512 B to 2 MiB): the header is corrupt (inspect it with qemu-img info)"
            )));
        }
        let cluster_size = 1u64 << cluster_bits;
        let size = be64(first, 24);
        if size > MAX_VIRTUAL_SIZE {
            return Err(bad(format!(
                "virtual size {size} exceeds the 64 PiB limit: the header is corrupt (inspect it with qemu-img info)"
            )));
        }
        let crypt = be32(first, 32);
        if crypt != 0 {
            let kind = if crypt == 1 {
                "AES"
            } else if crypt == 2 {
                "LUKS"
            } else {
                "unknown"
            };
            return Err(bad(format!(
                "image is encrypted ({kind}); rbdkit does not read encrypted qcow2: decrypt it with qemu-img convert first"
            )));
        }
        let l1_size = be32(first, 36);
        let l1_offset = be64(first, 40);
        let (mut incompat, mut header_len, mut compression_byte) = (0u64, 72u64, 0u8);
        if version == 3 {
            if first.len() < 104 {
                return Err(bad(
                    "file too short for a qcow2 v3 header (104 bytes): truncated".into(),
                ));
            }
            incompat = be64(first, 72);
            header_len = be32(first, 100) as u64;
            if header_len < 104
                || header_len > cluster_size.min(first.len() as u64)
                || header_len % 8 != 0
            {
                return Err(bad(format!(
                    "header_length {header_len} is invalid: the header is corrupt (inspect it with qemu-img info)"
                )));
            }
            if header_len > 104 {
                compression_byte = first[104];
            }
        }
        if incompat & INCOMPAT_CORRUPT != 0 {
            return Err(bad(
                "the image is marked corrupt; repair it with `qemu-img check -r all` before importing".into(),
            ));
        }
        let unknown = incompat & !INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(bad(format!(
                "unknown incompatible qcow2 features {unknown:#x}; convert it with a qemu-img that knows them"
            )));
        }
        let compression = match (incompat & INCOMPAT_COMPRESSION != 0, compression_byte) {
            (false, 0) => Compression::Deflate,
            (true, 0) => Compression::Deflate,
            (true, 1) => Compression::Zstd,
            (false, c) => {
                return Err(bad(format!(
                    "compression type {c} set without its feature bit: the header is corrupt (inspect it with qemu-img info)"
                )))
            }
            (true, c) => return Err(bad(format!("unknown compression type {c}: convert the image with a qemu-img that knows it"))),
        };
        let extended_l2 = incompat & INCOMPAT_EXTL2 != 0;
        if extended_l2 && cluster_bits < 14 {
            return Err(bad(format!(
                "extended L2 entries need clusters of 16 KiB or more, not {cluster_size}"
            )));
        }

        // The L1 table must cover the whole disk and lie inside the file.
        let entry = if extended_l2 { 16 } else { 8 };
        let per_l2 = cluster_size / entry;
        let needed = size.div_ceil(cluster_size * per_l2);
        if (l1_size as u64) < needed {
            return Err(bad(format!(
                "L1 table has {l1_size} entries but the disk needs {needed}: the header is corrupt (inspect it with qemu-img info)"
            )));
        }
        let l1_bytes = l1_size as u64 * 8;
        if l1_bytes > MAX_L1_BYTES {
            return Err(bad(format!(
                "L1 table of {l1_bytes} bytes exceeds the 32 MiB limit: the header is corrupt (inspect it with qemu-img info)"
            )));
        }
        if l1_size > 0 {
            if !l1_offset.is_multiple_of(cluster_size) {
                return Err(bad(format!(
                    "L1 table offset {l1_offset:#x} is not cluster-aligned: the header is corrupt (inspect it with qemu-img info)"
                )));
            }
            if l1_offset
                .checked_add(l1_bytes)
                .is_none_or(|e| e > file_size)
            {
                return Err(bad(format!(
                    "L1 table at offset {l1_offset:#x} ({l1_bytes} bytes) extends beyond the end of the file ({file_size} bytes): the file is truncated or corrupt"
                )));
            }
        }

        let backing_off = be64(first, 8);
        let backing_len = be32(first, 16);
        let backing_file = if backing_off == 0 {
            None
        } else {
            if backing_len == 0 || backing_len > MAX_BACKING_NAME {
                return Err(bad(format!(
                    "backing file name length {backing_len} is invalid (1..=1023)"
                )));
            }
            let end = backing_off
                .checked_add(backing_len as u64)
                .filter(|&e| e <= first.len() as u64);
            let Some(end) = end else {
                return Err(bad(format!("backing file name at {backing_off:#x} lies outside the first cluster: the header is corrupt (inspect it with qemu-img info)")));
            };
            let name = &first[backing_off as usize..end as usize];
            Some(String::from_utf8(name.to_vec()).map_err(|_| {
                bad("backing file name is not UTF-8: rebase the image onto a UTF-8 path".into())
            })?)
        };

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
        };
        h.read_extensions(first, header_len as usize, path)?;
        if incompat & INCOMPAT_DATA_FILE != 0 && h.data_file.is_none() {
            return Err(bad("the image keeps its data in an external file but names none: pass it with qemu-img first".into()));
        }
        if incompat & INCOMPAT_DATA_FILE == 0 {
            h.data_file = None;
        }
        Ok(h)
    }

    fn read_extensions(&mut self, first: &[u8], start: usize, path: &str) -> Result<()> {
        let bad = |why: String| Error::bad_image(path, why);
        let limit = first.len().min(self.cluster_size() as usize);
        let mut at = start;
        // Each extension takes at least 8 bytes, so this loop ends within limit/8 steps.
        while at + 8 <= limit {
            let kind = be32(first, at);
            let len = be32(first, at + 4) as usize;
            at += 8;
            if kind == EXT_END {
                return Ok(());
            }
            if len > limit - at {
                return Err(bad(format!("header extension {kind:#x} of {len} bytes runs past the first cluster: the header is corrupt (inspect it with qemu-img info)")));
            }
            let data = &first[at..at + len];
            let text = || {
                String::from_utf8(data.to_vec())
                    .map_err(|_| bad(format!("header extension {kind:#x} is not UTF-8")))
            };
            match kind {
                EXT_BACKING_FORMAT => self.backing_format = Some(text()?),
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
        h[100..104].copy_from_slice(&112u32.to_be_bytes());
        h
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
        ];
        for (bytes, needle) in cases {
            let e = Header::parse(&bytes, 1 << 20, "x").unwrap_err().to_string();
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
    }
}
