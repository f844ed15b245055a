//! VirtualBox VDI: signature 0xbeda107f at 0x40, the disk size at 0x170 and the block size at
//! 0x178 (little-endian). Differencing and undo images have a parent and are unsafe; qemu reads
//! only normal (dynamic) and static ones.
use super::{le32, le64, Container, Found, Input};
use crate::error::Result;

const SIGNATURE: u32 = 0xbeda_107f;
/// Version 1.1, the only one qemu opens.
const VERSION_1_1: u32 = 0x0001_0001;
/// The header fields this reads end here (the parent UUID ends at 0x1c8).
const HEADER_LEN: usize = 0x1c8;

/// Matches a VDI header at offset 0.
pub(super) fn inspect(input: &Input) -> Result<Option<Found>> {
    let h = input.head();
    if le32(h, 0x40) != Some(SIGNATURE) {
        return Ok(None);
    }
    let mut f = Found::new(Container::Vdi);
    if h.len() < HEADER_LEN {
        f.unsafe_because("VDI header is truncated");
        return Ok(Some(f));
    }
    let version = le32(h, 0x44).unwrap_or(0);
    if version != VERSION_1_1 {
        f.unsafe_because(format!("VDI version {version:#x} is not 1.1"));
    }
    f.subformat = match le32(h, 0x4c).unwrap_or(0) {
        1 => Some("dynamic".into()),
        2 => Some("static".into()),
        3 => {
            f.unsafe_because("VDI undo image: it has a parent");
            Some("undo".into())
        }
        4 => {
            f.unsafe_because("VDI differencing image: it has a parent");
            Some("differencing".into())
        }
        t => {
            f.unsafe_because(format!("VDI image type {t} is unknown"));
            None
        }
    };
    f.virtual_size = le64(h, 0x170);
    f.cluster_size = le32(h, 0x178).filter(|&b| b > 0).map(u64::from);
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::super::{probe_head, Container};

    fn header(image_type: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0x40..0x44].copy_from_slice(&super::SIGNATURE.to_le_bytes());
        h[0x44..0x48].copy_from_slice(&super::VERSION_1_1.to_le_bytes());
        h[0x4c..0x50].copy_from_slice(&image_type.to_le_bytes());
        h[0x170..0x178].copy_from_slice(&(100u64 << 20).to_le_bytes());
        h[0x178..0x17c].copy_from_slice(&(1u32 << 20).to_le_bytes());
        h
    }

    #[test]
    fn dynamic_static_and_differencing() {
        let p = probe_head(&header(1));
        assert_eq!(p.container, Container::Vdi);
        assert_eq!(p.subformat.as_deref(), Some("dynamic"));
        assert_eq!(
            (p.virtual_size, p.cluster_size),
            (Some(100 << 20), Some(1 << 20))
        );
        assert!(p.unsafe_reasons.is_empty());
        assert_eq!(probe_head(&header(2)).subformat.as_deref(), Some("static"));
        assert_eq!(probe_head(&header(4)).unsafe_reasons.len(), 1);
        assert_eq!(probe_head(&header(9)).subformat, None);
    }

    #[test]
    fn truncated_header_is_vdi_without_facts() {
        let h = header(1);
        for n in 0x44..0x1c8 {
            let p = probe_head(&h[..n]);
            assert_eq!(p.container, Container::Vdi);
            assert_eq!(p.virtual_size, None);
        }
        assert_eq!(probe_head(&h[..0x43]).container, Container::Raw);
    }
}
