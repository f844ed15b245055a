//! VHD (qemu's "vpc"): a 512-byte big-endian footer with cookie "conectix". A fixed VHD has it
//! only at the end of the file; a dynamic or differencing one also has a copy at offset 0 and a
//! dynamic header ("cxsparse") at the footer's data offset, which gives the block size and, for
//! a differencing disk, the parent's name. qemu-img's own probe looks at offset 0 only, so it
//! takes a fixed VHD for raw; opened as vpc it reads the footer at the end, as this does.
use super::{be16, be32, be64, utf16, Container, Found, Input};
use crate::error::Result;

const COOKIE: &[u8; 8] = b"conectix";
const FOOTER: usize = 512;
/// The dynamic header's size (the parent locators end at 1024).
const DYN_HEADER: usize = 1024;
/// The largest CHS geometry a footer can hold (65535 × 16 × 255 sectors).
const MAX_GEOMETRY: u64 = 65535 * 16 * 255;

/// Matches a VHD footer at offset 0 or at the end of the file.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let head = input.head();
    let footer = if head.starts_with(COOKIE) {
        head.get(..FOOTER).map(|b| b.to_vec())
    } else {
        match input.size() {
            Some(size) if size >= FOOTER as u64 => {
                match input.read(size - FOOTER as u64, FOOTER)? {
                    Some(b) if b.starts_with(COOKIE) => Some(b.into_owned()),
                    _ => return Ok(None),
                }
            }
            _ => return Ok(None),
        }
    };
    let mut f = Found::new(Container::Vhd);
    let Some(footer) = footer else {
        f.unsafe_because("VHD footer is truncated");
        return Ok(Some(f));
    };
    f.virtual_size = virtual_size(&footer);
    let disk_type = be32(&footer, 60).unwrap_or(0);
    f.subformat = match disk_type {
        2 => Some("fixed".into()),
        3 => Some("dynamic".into()),
        4 => Some("differencing".into()),
        t => {
            f.unsafe_because(format!("VHD disk type {t} is unknown"));
            None
        }
    };
    if disk_type == 4 {
        f.unsafe_because("differencing VHD: it has a parent");
    }
    if disk_type == 3 || disk_type == 4 {
        dynamic_header(input, &footer, disk_type == 4, &mut f)?;
    }
    Ok(Some(f))
}

/// The size qemu gives the disk. qemu trusts the CHS geometry (as Virtual PC does) unless the
/// creator is known to use the footer's current size (Hyper-V "win ", qemu-img with
/// force_size "qem2", Disk2vhd "d2v ", XenConverter "CTXS", XenServer "tap\0") or the
/// geometry is the maximum one, which cannot hold larger disks.
fn virtual_size(footer: &[u8]) -> Option<u64> {
    let creator = footer.get(28..32)?;
    let current = be64(footer, 48)?;
    let chs = u64::from(be16(footer, 56)?) * u64::from(footer[58]) * u64::from(footer[59]);
    let uses_size = [b"win ", b"qem2", b"d2v ", b"CTXS", b"tap\0"]
        .iter()
        .any(|c| creator == *c);
    Some(if uses_size || chs == MAX_GEOMETRY {
        current / 512 * 512
    } else {
        chs * 512
    })
}

/// Reads the dynamic header for the block size and a differencing disk's parent name.
fn dynamic_header(input: &Input, footer: &[u8], parent: bool, f: &mut Found) -> Result<()> {
    let offset = be64(footer, 16).unwrap_or(u64::MAX);
    let Some(h) = input.read(offset, DYN_HEADER)? else {
        // A stream sees only its head; a file must have the header it points at.
        if input.size().is_some() {
            f.unsafe_because(format!(
                "VHD dynamic header at offset {offset} is past the end of the file"
            ));
        }
        return Ok(());
    };
    if !h.starts_with(b"cxsparse") {
        f.unsafe_because(format!("no VHD dynamic header at offset {offset}"));
        return Ok(());
    }
    let block = be32(&h, 32).unwrap_or(0);
    // qemu needs a power of two of at least one sector.
    if block >= 512 && block.is_power_of_two() {
        f.cluster_size = Some(block.into());
    } else {
        f.unsafe_because(format!("VHD block size {block} is invalid"));
    }
    if parent {
        f.backing_file = h.get(64..576).and_then(|b| utf16(b, true));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{probe, probe_head, Container};

    /// A footer for a disk of `size` bytes with geometry `chs` made by `creator`.
    fn footer(disk_type: u32, size: u64, chs: (u16, u8, u8), creator: &[u8; 4]) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[..8].copy_from_slice(super::COOKIE);
        let data_offset: u64 = if disk_type == 2 { u64::MAX } else { 512 };
        b[16..24].copy_from_slice(&data_offset.to_be_bytes());
        b[28..32].copy_from_slice(creator);
        b[40..48].copy_from_slice(&size.to_be_bytes());
        b[48..56].copy_from_slice(&size.to_be_bytes());
        b[56..58].copy_from_slice(&chs.0.to_be_bytes());
        b[58] = chs.1;
        b[59] = chs.2;
        b[60..64].copy_from_slice(&disk_type.to_be_bytes());
        b
    }

    fn dynamic(disk_type: u32, creator: &[u8; 4], parent: &str) -> Vec<u8> {
        let foot = footer(disk_type, 104857600, (1004, 12, 17), creator);
        let mut v = foot.clone();
        let mut h = vec![0u8; 1024];
        h[..8].copy_from_slice(b"cxsparse");
        h[32..36].copy_from_slice(&(2u32 << 20).to_be_bytes());
        for (i, u) in parent.encode_utf16().enumerate() {
            h[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        v.extend(h);
        v.extend(foot);
        v
    }

    #[test]
    fn dynamic_size_follows_qemu() {
        // Made by qemu ("qemu"): the CHS geometry wins over the footer's size.
        let p = probe(&dynamic(3, b"qemu", "")).unwrap();
        assert_eq!(p.container, Container::Vhd);
        assert_eq!(p.subformat.as_deref(), Some("dynamic"));
        assert_eq!(p.virtual_size, Some(1004 * 12 * 17 * 512));
        assert_eq!(p.cluster_size, Some(2 << 20));
        assert!(p.unsafe_reasons.is_empty());
        // Hyper-V: the footer's size.
        let p = probe_head(&dynamic(3, b"win ", ""));
        assert_eq!(p.virtual_size, Some(104857600));
    }

    #[test]
    fn differencing_names_its_parent() {
        let p = probe(&dynamic(4, b"vpc ", "C:\\base.vhd")).unwrap();
        assert_eq!(p.subformat.as_deref(), Some("differencing"));
        assert_eq!(p.backing_file.as_deref(), Some("C:\\base.vhd"));
        assert_eq!(p.unsafe_reasons.len(), 1, "{:?}", p.unsafe_reasons);
    }

    #[test]
    fn fixed_is_seen_at_the_end_only_by_probe() {
        let mut v = vec![0u8; 8192];
        v.extend(footer(2, 8192, (1, 1, 16), b"qemu"));
        let p = probe(&v).unwrap();
        assert_eq!(p.container, Container::Vhd);
        assert_eq!(
            (p.subformat.as_deref(), p.virtual_size),
            (Some("fixed"), Some(8192))
        );
        assert_eq!(p.cluster_size, None);
        assert_eq!(probe_head(&v).container, Container::Raw);
    }

    #[test]
    fn hostile_footers() {
        let mut v = dynamic(3, b"qemu", "");
        v[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(probe(&v).unwrap().unsafe_reasons.len(), 1);
        let near_end = v.len() as u64 - 100;
        v[16..24].copy_from_slice(&near_end.to_be_bytes());
        assert_eq!(probe(&v).unwrap().unsafe_reasons.len(), 1);
        v[60..64].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(probe(&v).unwrap().subformat, None);
        for n in 0..600 {
            let _ = probe(&v[..n].to_vec()).unwrap();
            let _ = probe_head(&v[..n]);
        }
    }
}
