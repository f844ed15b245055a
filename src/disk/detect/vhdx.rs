//! VHDX: the file identifier "vhdxfile" at 0, the region table at 192 KiB ("regi", up to 2047
//! entries), and in the metadata region it points at ("metadata", up to 2047 entries) the
//! items that give the virtual disk size, the block size and the file parameters (leave blocks
//! allocated: fixed; has parent: differencing, whose parent locator names the parent). All
//! little-endian; GUIDs in Microsoft's mixed-endian layout. Checksums (CRC-32C) are left to a
//! reader: a probe only needs to know what the file claims to be.
use super::{le16, le32, le64, utf16, Container, Found, Input};
use crate::error::Result;

const REGION_TABLE: u64 = 192 * 1024;
const TABLE_LEN: usize = 64 * 1024;
const MAX_ENTRIES: usize = 2047;
/// A metadata item this reads (a parent locator holds a few paths) is capped here.
const MAX_ITEM: usize = 64 * 1024;

/// Region and metadata item identifiers.
const METADATA_REGION: [u8; 16] = guid(
    0x8b7c_a206,
    0x4790,
    0x4b9a,
    *b"\xb8\xfe\x57\x5f\x05\x0f\x88\x6e",
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xcaa1_6737,
    0xfa36,
    0x4d43,
    *b"\xb3\xb6\x33\xf0\xaa\x44\xe7\x6b",
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2fa5_4224,
    0xcd1b,
    0x4876,
    *b"\xb2\x11\x5d\xbe\xd8\x3b\xf4\xb8",
);
const PARENT_LOCATOR: [u8; 16] = guid(
    0xa8d3_5f2b,
    0xb30b,
    0x454d,
    *b"\xab\xf7\xd3\xd8\x48\x34\xab\x0c",
);

/// File parameter flags.
const LEAVE_BLOCKS_ALLOCATED: u32 = 1;
const HAS_PARENT: u32 = 2;

/// A GUID's 16 bytes as stored on disk: the first three fields little-endian.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let (a, b, c) = (a.to_le_bytes(), b.to_le_bytes(), c.to_le_bytes());
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Matches a VHDX file identifier at offset 0 and reads what its metadata says.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    if !input.head().starts_with(b"vhdxfile") {
        return Ok(None);
    }
    let mut f = Found::new(Container::Vhdx);
    // A stream shorter than the structures cannot be told apart from a truncated file.
    let complain = input.size().is_some();
    let Some(meta_offset) = metadata_region(input, &mut f)? else {
        if complain && f.unsafe_reasons.is_empty() {
            f.unsafe_because("VHDX region table or metadata region is missing");
        }
        return Ok(Some(f));
    };
    let Some(table) = input.read(meta_offset, TABLE_LEN)? else {
        if complain {
            f.unsafe_because("VHDX metadata region is past the end of the file");
        }
        return Ok(Some(f));
    };
    if &table[..8] != b"metadata" {
        f.unsafe_because("VHDX metadata table signature is missing");
        return Ok(Some(f));
    }
    let count = usize::from(le16(&table, 10).unwrap_or(0));
    if count > MAX_ENTRIES {
        f.unsafe_because(format!(
            "VHDX metadata table has {count} entries (limit 2047)"
        ));
    }
    let mut params = None;
    for i in 0..count.min(MAX_ENTRIES) {
        let e = &table[32 + i * 32..64 + i * 32];
        let item_offset = u64::from(le32(e, 16).unwrap_or(0));
        let len = (le32(e, 20).unwrap_or(0) as usize).min(MAX_ITEM);
        let id = &e[..16];
        if id != FILE_PARAMETERS && id != VIRTUAL_DISK_SIZE && id != PARENT_LOCATOR {
            continue;
        }
        let Some(item) = input.read(meta_offset.saturating_add(item_offset), len)? else {
            if complain {
                f.unsafe_because("a VHDX metadata item lies past the end of the file");
            }
            continue;
        };
        if id == FILE_PARAMETERS {
            params = le32(&item, 0).zip(le32(&item, 4));
        } else if id == VIRTUAL_DISK_SIZE {
            f.virtual_size = le64(&item, 0);
        } else {
            f.backing_file = parent_path(&item);
        }
    }
    match params {
        Some((block, flags)) => {
            // qemu: a power of two from 1 MiB to 256 MiB.
            if block.is_power_of_two() && (1 << 20..=256 << 20).contains(&block) {
                f.cluster_size = Some(block.into());
            } else {
                f.unsafe_because(format!("VHDX block size {block} is invalid"));
            }
            f.subformat = Some(if flags & HAS_PARENT != 0 {
                f.unsafe_because("differencing VHDX: it has a parent");
                "differencing".into()
            } else if flags & LEAVE_BLOCKS_ALLOCATED != 0 {
                "fixed".into()
            } else {
                "dynamic".into()
            });
        }
        None if complain => f.unsafe_because("VHDX file parameters are missing"),
        None => {}
    }
    Ok(Some(f))
}

/// The metadata region's offset from the region table, or `None` (with a reason when the
/// table is there but wrong).
fn metadata_region(input: &Input, f: &mut Found) -> Result<Option<u64>> {
    let Some(t) = input.read(REGION_TABLE, TABLE_LEN)? else {
        return Ok(None);
    };
    if &t[..4] != b"regi" {
        f.unsafe_because("VHDX region table signature is missing");
        return Ok(None);
    }
    let count = le32(&t, 8).unwrap_or(0) as usize;
    if count > MAX_ENTRIES {
        f.unsafe_because(format!(
            "VHDX region table has {count} entries (limit 2047)"
        ));
    }
    for i in 0..count.min(MAX_ENTRIES) {
        let e = &t[16 + i * 32..48 + i * 32];
        if e[..16] == METADATA_REGION {
            return Ok(le64(e, 16));
        }
    }
    f.unsafe_because("VHDX region table has no metadata region");
    Ok(None)
}

/// The parent path a parent locator holds: its relative path, else an absolute or volume one.
fn parent_path(item: &[u8]) -> Option<String> {
    let count = usize::from(le16(item, 18)?);
    let mut best: Option<(usize, String)> = None;
    for i in 0..count.min(MAX_ITEM / 12) {
        let e = item.get(20 + i * 12..32 + i * 12)?;
        let (ko, vo) = (le32(e, 0)? as usize, le32(e, 4)? as usize);
        let (kl, vl) = (usize::from(le16(e, 8)?), usize::from(le16(e, 10)?));
        let (Some(k), Some(v)) = (
            item.get(ko..ko.checked_add(kl)?),
            item.get(vo..vo.checked_add(vl)?),
        ) else {
            continue;
        };
        let rank = match utf16(k, false).as_deref() {
            Some("relative_path") => 0,
            Some("absolute_win32_path") => 1,
            Some("volume_path") => 2,
            _ => continue,
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            if let Some(v) = utf16(v, false) {
                best = Some((rank, v));
            }
        }
    }
    best.map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::super::{probe, probe_head, Container};
    use super::*;

    fn put(v: &mut [u8], at: usize, b: &[u8]) {
        v[at..at + b.len()].copy_from_slice(b);
    }

    /// A VHDX: region table at 192 KiB, metadata region at 1 MiB with the size, the file
    /// parameters and, for a differencing disk, a parent locator naming `parent`.
    pub(crate) fn vhdx(size: u64, block: u32, flags: u32, parent: Option<&str>) -> Vec<u8> {
        let mut v = vec![0u8; 2 << 20];
        put(&mut v, 0, b"vhdxfile");
        let rt = REGION_TABLE as usize;
        put(&mut v, rt, b"regi");
        put(&mut v, rt + 8, &1u32.to_le_bytes());
        put(&mut v, rt + 16, &METADATA_REGION);
        put(&mut v, rt + 32, &(1u64 << 20).to_le_bytes());
        put(&mut v, rt + 40, &(1u32 << 20).to_le_bytes());
        let m = 1 << 20;
        put(&mut v, m, b"metadata");
        put(&mut v, m + 10, &3u16.to_le_bytes());
        let items: [(&[u8; 16], u32, u32); 3] = [
            (&FILE_PARAMETERS, 0x10000, 8),
            (&VIRTUAL_DISK_SIZE, 0x10008, 8),
            (&PARENT_LOCATOR, 0x10100, 4096),
        ];
        for (i, (id, off, len)) in items.iter().enumerate() {
            let e = m + 32 + i * 32;
            put(&mut v, e, *id);
            put(&mut v, e + 16, &off.to_le_bytes());
            put(&mut v, e + 20, &len.to_le_bytes());
        }
        put(&mut v, m + 0x10000, &block.to_le_bytes());
        put(&mut v, m + 0x10004, &flags.to_le_bytes());
        put(&mut v, m + 0x10008, &size.to_le_bytes());
        if let Some(parent) = parent {
            let l = m + 0x10100;
            put(&mut v, l + 18, &1u16.to_le_bytes());
            let key: Vec<u8> = "relative_path"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            let val: Vec<u8> = parent.encode_utf16().flat_map(u16::to_le_bytes).collect();
            put(&mut v, l + 20, &100u32.to_le_bytes());
            put(&mut v, l + 24, &200u32.to_le_bytes());
            put(&mut v, l + 28, &(key.len() as u16).to_le_bytes());
            put(&mut v, l + 30, &(val.len() as u16).to_le_bytes());
            put(&mut v, l + 100, &key);
            put(&mut v, l + 200, &val);
        }
        v
    }

    #[test]
    fn dynamic_fixed_and_differencing() {
        let p = probe(&vhdx(100 << 20, 8 << 20, 0, None)).unwrap();
        assert_eq!(p.container, Container::Vhdx);
        assert_eq!(
            (p.virtual_size, p.cluster_size),
            (Some(100 << 20), Some(8 << 20))
        );
        assert_eq!(p.subformat.as_deref(), Some("dynamic"));
        assert!(p.unsafe_reasons.is_empty(), "{:?}", p.unsafe_reasons);
        let p = probe_head(&vhdx(1 << 30, 1 << 20, LEAVE_BLOCKS_ALLOCATED, None));
        assert_eq!(p.subformat.as_deref(), Some("fixed"));
        assert_eq!(p.virtual_size, Some(1 << 30));
        let p = probe(&vhdx(1 << 30, 1 << 20, HAS_PARENT, Some("..\\base.vhdx"))).unwrap();
        assert_eq!(p.subformat.as_deref(), Some("differencing"));
        assert_eq!(p.backing_file.as_deref(), Some("..\\base.vhdx"));
        assert_eq!(p.unsafe_reasons.len(), 1);
    }

    #[test]
    fn truncated_and_hostile_tables() {
        let v = vhdx(100 << 20, 8 << 20, 0, None);
        // A short stream is still VHDX, with nothing more known and nothing to blame.
        let p = probe_head(&v[..4096]);
        assert_eq!((p.container, p.virtual_size), (Container::Vhdx, None));
        assert!(p.unsafe_reasons.is_empty());
        // The same bytes as a whole file: the tables are missing.
        assert_eq!(probe(&v[..4096].to_vec()).unwrap().unsafe_reasons.len(), 1);
        let mut bad = v.clone();
        put(
            &mut bad,
            REGION_TABLE as usize + 32,
            &u64::MAX.to_le_bytes(),
        );
        assert_eq!(probe(&bad).unwrap().unsafe_reasons.len(), 1);
        let mut bad = v.clone();
        put(&mut bad, REGION_TABLE as usize + 8, &u32::MAX.to_le_bytes());
        assert!(probe(&bad).unwrap().unsafe_reasons.len() == 1);
        let mut bad = v.clone();
        put(&mut bad, (1 << 20) + 32 + 16, &u32::MAX.to_le_bytes());
        put(&mut bad, (1 << 20) + 10, &u16::MAX.to_le_bytes());
        let p = probe(&bad).unwrap();
        assert_eq!(p.cluster_size, None);
        assert_eq!(p.unsafe_reasons.len(), 3, "{:?}", p.unsafe_reasons);
    }
}
