//! The VHD footer (Microsoft "Virtual Hard Disk Image Format Specification", Hard Disk
//! Footer): 512 big-endian bytes with cookie "conectix", at the end of every VHD and, for a
//! dynamic or differencing disk, copied at offset 0. Its checksum (the one's complement of the
//! byte sum, the checksum field taken as zero) is checked, as qemu checks it. The virtual size
//! follows qemu: the CHS geometry (as Virtual PC reads it), unless the creator is known to use
//! the footer's current size (Hyper-V, qemu-img with force_size, Disk2vhd, XenServer,
//! XenConverter) or the geometry is the largest one.
use crate::error::{Error, Result};

/// The footer's cookie.
pub const COOKIE: &[u8; 8] = b"conectix";
/// Footer size in bytes.
pub const LEN: usize = 512;
/// The largest CHS geometry (65535 × 16 × 255 sectors).
const MAX_GEOMETRY: u64 = 65535 * 16 * 255;

/// The disk types a footer names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskType {
    /// The data is the file, the footer after it.
    Fixed,
    /// Blocks allocated through a block allocation table.
    Dynamic,
    /// Dynamic, on top of a parent disk.
    Differencing,
}

impl DiskType {
    /// qemu-img's subformat name.
    pub fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// A checked footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Fixed, dynamic or differencing.
    pub disk_type: DiskType,
    /// Offset of the dynamic header (dynamic and differencing disks).
    pub data_offset: u64,
    /// The guest-visible size in bytes, as qemu computes it.
    pub size: u64,
    /// The creator application field.
    pub creator: [u8; 4],
}

fn be(b: &[u8], at: usize, n: usize) -> u64 {
    b[at..at + n]
        .iter()
        .fold(0u64, |acc, &x| acc << 8 | x as u64)
}

/// The checksum the VHD spec defines over `b` with the field at `at..at + 4` taken as zero.
pub fn checksum(b: &[u8], at: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(at..at + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(x as u32));
    !sum
}

impl Footer {
    /// Parses and checks a footer; `shown` names the image in errors.
    pub fn parse(b: &[u8; LEN], shown: &str) -> Result<Footer> {
        let bad = |why: String| Err(Error::bad_image(shown, why));
        if &b[..8] != COOKIE {
            return bad("no VHD footer (conectix cookie)".into());
        }
        let stored = be(b, 64, 4) as u32;
        if checksum(b, 64) != stored {
            return bad(format!(
                "VHD footer checksum is {stored:#010x}, but the footer sums to {:#010x}: the image is corrupt",
                checksum(b, 64)
            ));
        }
        let disk_type = match be(b, 60, 4) {
            2 => DiskType::Fixed,
            3 => DiskType::Dynamic,
            4 => DiskType::Differencing,
            t => return bad(format!("VHD disk type {t} is unknown (2 fixed, 3 dynamic, 4 differencing): the image is corrupt")),
        };
        let mut creator = [0u8; 4];
        creator.copy_from_slice(&b[28..32]);
        let current = be(b, 48, 8);
        let chs = be(b, 56, 2) * be(b, 58, 1) * be(b, 59, 1);
        let uses_size = [b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"].contains(&&creator);
        let size = if uses_size || chs == MAX_GEOMETRY {
            current / 512 * 512
        } else {
            chs * 512
        };
        Ok(Footer {
            disk_type,
            data_offset: be(b, 16, 8),
            size,
            creator,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn footer(
        disk_type: u32,
        size: u64,
        chs: (u16, u8, u8),
        creator: &[u8; 4],
    ) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..8].copy_from_slice(COOKIE);
        b[16..24].copy_from_slice(&512u64.to_be_bytes());
        b[28..32].copy_from_slice(creator);
        b[48..56].copy_from_slice(&size.to_be_bytes());
        b[56..58].copy_from_slice(&chs.0.to_be_bytes());
        b[58] = chs.1;
        b[59] = chs.2;
        b[60..64].copy_from_slice(&disk_type.to_be_bytes());
        let c = checksum(&b, 64);
        b[64..68].copy_from_slice(&c.to_be_bytes());
        b
    }

    #[test]
    fn size_checksum_and_type() {
        let f = Footer::parse(&footer(3, 1 << 30, (1004, 12, 17), b"qemu"), "t").unwrap();
        assert_eq!(
            (f.disk_type, f.size),
            (DiskType::Dynamic, 1004 * 12 * 17 * 512)
        );
        let f = Footer::parse(&footer(2, (1 << 30) + 7, (1004, 12, 17), b"win "), "t").unwrap();
        assert_eq!((f.disk_type, f.size), (DiskType::Fixed, 1 << 30));
        let mut b = footer(3, 1 << 30, (1, 1, 1), b"qemu");
        b[100] ^= 1;
        let e = Footer::parse(&b, "t").unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        let e = Footer::parse(&footer(7, 1, (1, 1, 1), b"qemu"), "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("disk type 7"), "{e}");
    }
}
