//! The fixed layout of a VHDX file's first megabyte (MS-VHDX 2.1, 2.2): the file identifier
//! ("vhdxfile") at 0, two headers at 64 KiB and 128 KiB (the current one is the valid one with
//! the greater sequence number), and two copies of the region table at 192 KiB and 256 KiB,
//! which place the block allocation table and the metadata region. Every structure's CRC-32C
//! is checked; a required region rbdkit does not know is refused, as qemu refuses it.
use super::crc;
use crate::disk::qcow2::ByteSource;
use crate::error::{Error, Result};

/// The file identifier's signature.
pub const SIGNATURE: &[u8; 8] = b"vhdxfile";
const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
const HEADER_LEN: usize = 4 << 10;
const REGION_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
const REGION_LEN: usize = 64 << 10;
/// Most region table entries the spec allows.
const MAX_REGIONS: u32 = 2047;
/// Everything below this offset is the header section.
pub const HEADER_SECTION: u64 = 1 << 20;

/// The BAT region's GUID, 2DC27766-F623-4200-9D64-115E9BFD4A08, as stored (mixed-endian).
const BAT_GUID: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
/// The metadata region's GUID, 8B7CA206-4790-4B9A-B8FE-575F050F886E.
const METADATA_GUID: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);

/// A GUID as stored on disk: the first three fields little-endian, the rest as bytes.
pub const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// A region of the file: offset and length in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// Offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// What the header section says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Sequence number of the current header.
    pub sequence: u64,
    /// The current header's log GUID: all zeros when no log is in use.
    pub log_guid: [u8; 16],
    /// The log.
    pub log: Region,
    /// The block allocation table region.
    pub bat: Region,
    /// The metadata region.
    pub metadata: Region,
}

fn le(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .rev()
        .fold(0u64, |acc, &x| acc << 8 | x as u64)
}

impl Layout {
    /// Reads and checks the header section of `file`; `shown` names it in errors.
    pub fn read(file: &dyn ByteSource, shown: &str) -> Result<Layout> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        let size = file.size();
        if size < HEADER_SECTION {
            return bad(format!(
                "VHDX file is {size} bytes, shorter than its 1 MiB header section: the file is truncated"
            ));
        }
        let io = |e| Error::io(format!("read the VHDX headers of {shown}"), e);
        let mut id = [0u8; 8];
        file.read_exact_at(&mut id, 0).map_err(io)?;
        if &id != SIGNATURE {
            return bad("no VHDX file identifier (vhdxfile)".into());
        }
        // The current header: the valid one with the greater sequence number.
        let mut best: Option<(u64, Vec<u8>)> = None;
        for off in HEADER_OFFSETS {
            let mut h = vec![0u8; HEADER_LEN];
            file.read_exact_at(&mut h, off).map_err(io)?;
            if &h[..4] != b"head" || !crc::valid(&h, 4) {
                continue;
            }
            let seq = le(&h, 8, 8);
            if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                best = Some((seq, h));
            }
        }
        let Some((sequence, h)) = best else {
            return bad("no valid VHDX header (both copies fail their signature or checksum): the image is corrupt".into());
        };
        let (log_version, version) = (le(&h, 64, 2), le(&h, 66, 2));
        if version != 1 {
            return bad(format!(
                "VHDX version {version} is not supported (1): convert it with qemu-img first"
            ));
        }
        if log_version != 0 {
            return bad(format!(
                "VHDX log version {log_version} is not supported (0): the image is corrupt"
            ));
        }
        let mut log_guid = [0u8; 16];
        log_guid.copy_from_slice(&h[48..64]);
        let log = Region {
            offset: le(&h, 72, 8),
            len: le(&h, 68, 4),
        };
        let (bat, metadata) = regions(file, shown)?;
        let l = Layout {
            sequence,
            log_guid,
            log,
            bat,
            metadata,
        };
        l.check(size, shown)?;
        Ok(l)
    }

    /// The regions lie in the file, past the header section, 1 MiB-aligned as the spec
    /// requires, and do not overlap.
    fn check(&self, size: u64, shown: &str) -> Result<()> {
        let mut rs = vec![("BAT", self.bat), ("metadata", self.metadata)];
        if self.log.len != 0 {
            rs.push(("log", self.log));
        }
        for (name, r) in &rs {
            if r.offset < HEADER_SECTION
                || r.offset % HEADER_SECTION != 0
                || r.offset.checked_add(r.len).is_none_or(|e| e > size)
            {
                return Err(Error::bad_image(
                    shown,
                    format!(
                        "VHDX {name} region at offset {} ({} bytes) is misplaced or lies outside the file ({size} bytes): the image is truncated or corrupt",
                        r.offset, r.len
                    ),
                ));
            }
        }
        rs.sort_by_key(|(_, r)| r.offset);
        for w in rs.windows(2) {
            if w[0].1.end() > w[1].1.offset {
                return Err(Error::bad_image(
                    shown,
                    format!(
                        "VHDX {} and {} regions overlap: the image is corrupt",
                        w[0].0, w[1].0
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The BAT and metadata regions from the first region table that is valid.
fn regions(file: &dyn ByteSource, shown: &str) -> Result<(Region, Region)> {
    let bad = |why: String| Err(Error::bad_image(shown, why));
    let mut table = vec![0u8; REGION_LEN];
    let mut found = false;
    for off in REGION_OFFSETS {
        file.read_exact_at(&mut table, off)
            .map_err(|e| Error::io(format!("read the VHDX region table of {shown}"), e))?;
        if &table[..4] == b"regi" && crc::valid(&table, 4) {
            found = true;
            break;
        }
    }
    if !found {
        return bad("no valid VHDX region table (both copies fail their signature or checksum): the image is corrupt".into());
    }
    let count = le(&table, 8, 4) as u32;
    if count > MAX_REGIONS {
        return bad(format!(
            "VHDX region table of {count} entries (at most {MAX_REGIONS}): the image is corrupt"
        ));
    }
    let (mut bat, mut meta) = (None, None);
    for i in 0..count as usize {
        let e = &table[16 + 32 * i..48 + 32 * i];
        let r = Region {
            offset: le(e, 16, 8),
            len: le(e, 24, 4),
        };
        let required = le(e, 28, 4) & 1 != 0;
        let slot = if e[..16] == BAT_GUID {
            &mut bat
        } else if e[..16] == METADATA_GUID {
            &mut meta
        } else if required {
            return bad("VHDX has a required region rbdkit does not know: not supported, convert it with qemu-img first".into());
        } else {
            continue;
        };
        if slot.replace(r).is_some() {
            return bad("VHDX region table names a region twice: the image is corrupt".into());
        }
    }
    match (bat, meta) {
        (Some(b), Some(m)) => Ok((b, m)),
        _ => bad(
            "VHDX region table lacks the BAT or the metadata region: the image is corrupt".into(),
        ),
    }
}
