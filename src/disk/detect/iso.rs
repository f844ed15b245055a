//! ISO 9660 and UDF optical disc images, by their volume recognition sequence: 2 KiB
//! descriptors from 32 KiB (the first 16 sectors are the system area, free for boot code or
//! a hybrid MBR/GPT). "CD001" is ISO 9660, whose primary volume descriptor gives the size
//! (volume space size × logical block size); "NSR02"/"NSR03" is UDF, whose size lies in
//! structures this does not read. qemu reads either with its raw driver.
use super::{le16, le32, Container, Found, Input};
use crate::error::Result;

/// Where the volume descriptors start, and their size.
const VRS_START: u64 = 32 * 1024;
const SECTOR: usize = 2048;
/// Descriptors looked at before giving up (a real sequence is a handful long).
const MAX_DESCRIPTORS: u64 = 16;

/// Matches a volume recognition sequence at 32 KiB.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let mut iso9660_size = None;
    let (mut iso9660, mut udf) = (false, false);
    for i in 0..MAX_DESCRIPTORS {
        let Some(d) = input.read(VRS_START + i * SECTOR as u64, SECTOR)? else {
            break;
        };
        match d.get(1..6) {
            Some(b"CD001") => {
                iso9660 = true;
                // Type 1 is the primary volume descriptor; 255 ends the ISO 9660 set.
                if d[0] == 1 && iso9660_size.is_none() {
                    let blocks = le32(&d, 80).unwrap_or(0);
                    let block = le16(&d, 128).unwrap_or(0);
                    iso9660_size = Some(u64::from(blocks) * u64::from(block));
                }
            }
            Some(b"NSR02") | Some(b"NSR03") => udf = true,
            // The other members of a recognition sequence (UDF's bracket, El Torito is CD001).
            Some(b"BEA01") | Some(b"TEA01") | Some(b"BOOT2") | Some(b"CDW02") => {}
            _ => break,
        }
    }
    if !iso9660 && !udf {
        return Ok(None);
    }
    let mut f = Found::new(Container::Iso);
    f.subformat = Some(if udf { "udf" } else { "iso9660" }.into());
    f.virtual_size = iso9660_size;
    Ok(Some(f))
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::{probe, probe_head, Container};

    /// A minimal ISO 9660 image: an empty system area, a primary volume descriptor and a set
    /// terminator, padded to `blocks` 2 KiB blocks.
    pub fn iso(blocks: u32) -> Vec<u8> {
        let mut v = vec![0u8; blocks as usize * 2048];
        let pvd = 32 * 1024;
        v[pvd] = 1;
        v[pvd + 1..pvd + 6].copy_from_slice(b"CD001");
        v[pvd + 6] = 1;
        v[pvd + 80..pvd + 84].copy_from_slice(&blocks.to_le_bytes());
        v[pvd + 84..pvd + 88].copy_from_slice(&blocks.to_be_bytes());
        v[pvd + 128..pvd + 130].copy_from_slice(&2048u16.to_le_bytes());
        v[pvd + 130..pvd + 132].copy_from_slice(&2048u16.to_be_bytes());
        let term = pvd + 2048;
        v[term] = 255;
        v[term + 1..term + 6].copy_from_slice(b"CD001");
        v
    }

    #[test]
    fn iso9660_size_from_the_primary_descriptor() {
        let p = probe(&iso(40)).unwrap();
        assert_eq!(p.container, Container::Iso);
        assert_eq!(p.virtual_size, Some(40 * 2048));
        assert_eq!(p.subformat.as_deref(), Some("iso9660"));
        assert_eq!(p.container.qemu_name(), "raw");
        // Cut inside the primary descriptor: nothing to see.
        assert_eq!(probe_head(&iso(40)[..33 * 1024]).container, Container::Raw);
    }

    #[test]
    fn udf_sequence() {
        let mut v = vec![0u8; 64 * 1024];
        for (i, id) in [b"BEA01", b"NSR03", b"TEA01"].iter().enumerate() {
            let at = 32 * 1024 + i * 2048;
            v[at + 1..at + 6].copy_from_slice(*id);
        }
        let p = probe_head(&v);
        assert_eq!(p.container, Container::Iso);
        assert_eq!(
            (p.subformat.as_deref(), p.virtual_size),
            (Some("udf"), None)
        );
        // A bracket alone is not a disc.
        v[32 * 1024 + 2049..32 * 1024 + 2054].copy_from_slice(b"XXXXX");
        assert_eq!(probe_head(&v).container, Container::Raw);
    }
}
